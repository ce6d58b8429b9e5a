"""The schema's migrations (Flask-Migrate on Alembic), loaded where they are used and nowhere else.

Alembic, with the Mako and Pygments it imports, adds about 8 MB to a process. A web worker never
migrates (`flask db upgrade` runs before the server starts), so the app registers a `flask db` group
that sets Flask-Migrate up when it is used; code that migrates in process (the tests, the benches)
calls `migrate_to_latest(app)`, or `enable_migrations(app)` before Flask-Migrate's own functions.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import ScriptInfo

from app.models.base import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def enable_migrations(app: Flask) -> None:
    """Set Flask-Migrate up on `app` (once): `flask db …` and `flask_migrate.upgrade()` then work."""
    if "migrate" in app.extensions:
        return
    from flask_migrate import Migrate  # noqa: PLC0415  (loaded on use: a web worker never needs it)

    Migrate(app, db, render_as_batch=True, compare_type=True, directory=str(MIGRATIONS))


def migrate_to_latest(app: Flask) -> None:
    """Bring `app`'s database to the latest revision, in this process (as `flask db upgrade` does)."""
    enable_migrations(app)
    from flask_migrate import upgrade  # noqa: PLC0415  (see enable_migrations)

    with app.app_context():
        upgrade()


class MigrationsGroup(click.Group):
    """`flask db …`: Flask-Migrate's own group (its options, its commands), set up when it is used."""

    def _migrate_group(self, ctx: click.Context) -> click.Group:
        enable_migrations(ctx.ensure_object(ScriptInfo).load_app())
        from flask_migrate.cli import db as migrate_group  # noqa: PLC0415  (see enable_migrations)

        return migrate_group

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self._migrate_group(ctx).get_params(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._migrate_group(ctx).list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._migrate_group(ctx).get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        self.callback = self._migrate_group(ctx).callback  # takes the options (--directory, --x-arg)
        return super().invoke(ctx)


def register(app: Flask) -> None:
    app.cli.add_command(MigrationsGroup("db", help="Perform database migrations (upgrade, downgrade, current, …)."))
