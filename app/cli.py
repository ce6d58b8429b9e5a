"""`flask foyer …` commands."""

from __future__ import annotations

import click
from flask import Flask, current_app

from app.config import deploy_problems
from app.extensions import db
from app.models import Role
from app.services.accounts import accounts, setup_code
from app.services.core import crypto
from app.services.core.errors import DomainError
from app.services.integrations import webhooks
from app.services.messaging import delivery_reports
from app.services.microsoft import connection


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
        setup_code.discard()  # first-run setup is over, if it was still open
        db.session.commit()
        click.echo(f"Admin {user.email} created.")

    @foyer.command("setup-code")
    def print_setup_code() -> None:
        """Print a new one-time code for first-run setup at /setup (the previous one stops working)."""
        if accounts.has_any_user():
            raise click.ClickException("Foyer is already set up: sign in, or use create-admin.")
        code = setup_code.issue()
        db.session.commit()
        click.echo(f"Setup code: {code}  (enter it at {current_app.config['PUBLIC_BASE_URL']}/setup)")

    @foyer.command("deploy-check")
    def deploy_check() -> None:
        """Check the configuration for production: debug off, real secrets, https links, secure cookies.

        Exits non-zero when something must be fixed; warnings are advice.
        """
        problems, warnings = deploy_problems(current_app.config, debug=current_app.debug)
        for text in problems:
            click.echo(f"FAIL  {text}")
        for text in warnings:
            click.echo(f"WARN  {text}")
        if problems:
            raise click.ClickException(f"{len(problems)} problem(s) to fix before going live.")
        click.echo("OK    Ready for production." + (" Mind the warnings above." if warnings else ""))

    register_security(foyer)

    from app.services.microsoft import emulator_cli  # noqa: PLC0415 — the emulator is loaded only when it is used

    # The emulator's Event Grid delivers ACS's reports to Foyer's delivery-report webhook, as Azure's would.
    emulator_cli.register(app, delivery_webhook_url=delivery_reports.webhook_url)


def register_security(foyer_group) -> None:
    """Key-management commands (attached to the `flask foyer` group)."""

    @foyer_group.command("rotate-key")
    @click.option("--print-new-key", is_flag=True,
                  help="Only print a fresh key to put first in ENCRYPTION_KEYS, then exit.")
    def rotate_key(print_new_key: bool) -> None:
        """Re-encrypt stored secrets with the newest key in ENCRYPTION_KEYS.

        To rotate: run with --print-new-key, put the printed key first in ENCRYPTION_KEYS (keep the old
        keys after it), restart Foyer, run this command, then drop the old keys.
        """
        if print_new_key:
            click.echo(crypto.generate_key())
            return
        count = connection.rotate_secrets() + webhooks.rotate_secrets()
        db.session.commit()
        click.echo(f"Re-encrypted {count} stored secret(s) with the newest key.")
