"""`flask foyer …` commands."""

from __future__ import annotations

import click
from flask import Flask, current_app

from app.extensions import db
from app.models import Role
from app.services import accounts
from app.services.errors import DomainError


def register(app: Flask) -> None:
    @app.cli.group("foyer")
    def foyer() -> None:
        """Foyer administration commands."""

    @foyer.command("create-admin")
    @click.argument("email")
    @click.option("--name", default="", help="The admin's display name.")
    @click.password_option(help="The password (prompted for when omitted).")
    def create_admin(email: str, name: str, password: str) -> None:
        """Create an admin account with EMAIL (works on a new or an existing installation)."""
        try:
            user = accounts.create_user(
                email, role=Role.admin, name=name, password=password,
                min_length=current_app.config["PASSWORD_MIN_LENGTH"],
            )
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        db.session.commit()
        click.echo(f"Admin {user.email} created.")
