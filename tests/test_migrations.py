"""The Alembic migrations, on SQLite and PostgreSQL: they build the schema from nothing, every
downgrade undoes its upgrade, and the migrated schema matches the models exactly.

These tests make their own empty database rather than use the shared `app` fixture, whose schema
is already at head and holds other tests' rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from app import config as foyer_config  # not `import TestConfig`: pytest would try to collect it
from app import create_app
from app.extensions import db
from app.schema import enable_migrations


def _root_conftest(config: pytest.Config):
    """tests/conftest.py as pytest loaded it (its helpers make and drop PostgreSQL databases).

    It cannot be imported by name: every conftest.py outside a package is the module "conftest",
    so `import conftest` would return whichever one pytest loaded last.
    """
    wanted = Path(__file__).resolve().parent / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == wanted:
            return plugin
    raise RuntimeError("tests/conftest.py is not loaded")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The same database list as the `app` fixture (FOYER_TEST_DATABASES).
    if "database_kind" in metafunc.fixturenames:
        metafunc.parametrize("database_kind", _root_conftest(metafunc.config).DATABASES)


@pytest.fixture
def empty_database_url(database_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new database with no tables at all."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    conftest = _root_conftest(request.config)
    name = f"foyer_migrations_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    yield conftest.fresh_postgres_database(name)
    conftest.drop_postgres_database(name)


@pytest.fixture
def migrated_app(empty_database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app bound to the empty database, inside an app context (nothing migrated yet)."""
    application = create_app(
        foyer_config.TestConfig, instance_path=tmp_path / "instance", SQLALCHEMY_DATABASE_URI=empty_database_url
    )
    enable_migrations(application)
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def _current_revisions() -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())


def _leftover_postgres_objects() -> list[str]:
    """Types and sequences a downgrade forgot (PostgreSQL keeps enums after their table is gone)."""
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') "
            "UNION ALL SELECT 'sequence ' || sequence_name FROM information_schema.sequences "
            "WHERE sequence_schema = 'public'"
        ))
        return sorted(r[0] for r in rows)



def _insert_row(conn, table_name: str, **values) -> int:
    """Insert one row, giving every required column the values passed or a plain value of its type."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None:
            continue
        if column.primary_key and isinstance(column.type, sa.Integer):
            continue
        if isinstance(column.type, sa.DateTime):
            row[column.name] = datetime.now(UTC)
        elif isinstance(column.type, sa.Boolean):
            row[column.name] = False
        elif isinstance(column.type, sa.Integer | sa.Numeric):
            row[column.name] = 0
        elif isinstance(column.type, sa.JSON):
            row[column.name] = {}
        else:
            row[column.name] = f"{column.name}-value"
    result = conn.execute(table.insert().values(**row))
    return result.inserted_primary_key[0]


def test_upgrade_from_empty_then_downgrade_to_base_then_upgrade_again(migrated_app):
    assert _tables() == set()
    model_tables = set(db.metadata.tables)

    upgrade()
    assert _current_revisions() == set(_script().get_heads())
    assert model_tables <= _tables(), f"tables the migrations never create: {sorted(model_tables - _tables())}"

    downgrade(revision="base")
    assert _tables() <= {"alembic_version"}, f"left behind by the downgrades: {sorted(_tables() - {'alembic_version'})}"
    assert _current_revisions() == set()
    if db.engine.dialect.name == "postgresql":
        assert _leftover_postgres_objects() == []

    upgrade()
    assert _current_revisions() == set(_script().get_heads())
    assert model_tables <= _tables()


def test_each_migration_downgrades_cleanly_and_upgrades_again(migrated_app):
    """The "stairway": up one revision, down one, up again, for every revision in order."""
    revisions = list(reversed(list(_script().walk_revisions())))
    assert revisions, "no migrations found"
    for revision in revisions:
        upgrade(revision=revision.revision)
        assert revision.revision in _current_revisions()
        if isinstance(revision.down_revision, tuple):
            continue  # a merge point: stepping down from it has no single target
        downgrade(revision=revision.down_revision or "base")
        assert revision.revision not in _current_revisions()
        upgrade(revision=revision.revision)
        assert revision.revision in _current_revisions()


def test_models_and_migrations_agree(migrated_app):
    upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], (
        "The models and the migrated schema differ; write a migration "
        "(flask --app wsgi db migrate -m '…', then review it):\n" + "\n".join(map(repr, differences))
    )


def test_the_autoincrement_rebuild_keeps_every_row_and_reference(migrated_app, database_kind):
    """On SQLite, registrations and messages are rebuilt for AUTOINCREMENT: rows, the answers and messages
    that point at them, and the partial unique index all survive, both ways."""
    if database_kind != "sqlite":
        pytest.skip("PostgreSQL sequences never reuse ids: nothing is rebuilt")
    upgrade(revision="5b7e2c1d9a40")
    # Rows go in as plain SQL filled from the schema at that revision: the models describe the newest
    # schema, and later columns do not exist yet.
    with db.engine.begin() as conn:
        owner_id = _insert_row(conn, "users", email="o@example.org", name="O", role="organizer")
        event_id = _insert_row(conn, "events", slug="e", title="E", timezone="UTC", owner_id=owner_id)
        _insert_row(conn, "registrations", id=7, event_id=event_id, state="confirmed", email="a@example.org",
                    first_name="A", last_name="B", timezone="UTC", manage_token_hash="h7")
        _insert_row(conn, "registration_transitions", registration_id=7, to_state="confirmed", actor_kind="attendee")
    db.session.remove()
    upgrade()
    with db.engine.connect() as conn:
        schema = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'registrations'")).scalar_one()
        assert "AUTOINCREMENT" in schema
        assert conn.execute(text("SELECT email FROM registrations WHERE id = 7")).scalar_one() == "a@example.org"
        kept = conn.execute(text("SELECT count(*) FROM registration_transitions WHERE registration_id = 7"))
        assert kept.scalar() == 1
        indexes = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE tbl_name = 'registrations'"))}
        assert "uq_registrations_active_email" in indexes
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    downgrade(revision="5b7e2c1d9a40")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM registration_transitions")).scalar() == 1
        schema = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'registrations'")).scalar_one()
        assert "AUTOINCREMENT" not in schema


def test_the_seat_rows_take_over_the_seat_counter(migrated_app, database_kind):
    """Each event gets a taken seat per seat its counter counted, held by its confirmed registrations in the
    order they were confirmed, and free seats up to its capacity; going back restores the counter."""
    upgrade(revision="3fe1de6a9da7")
    with db.engine.begin() as conn:
        owner_id = _insert_row(conn, "users", email="o@example.org", name="O", role="organizer")
        plain = {"timezone": "UTC", "owner_id": owner_id, "status": "published", "provisioning_status": "ready"}
        limited = _insert_row(conn, "events", slug="limited", title="L", capacity=5, confirmed_count=2, **plain)
        # One of its three was purged: only the count remains.
        unlimited = _insert_row(conn, "events", slug="open", title="O", confirmed_count=3, **plain)
        for n, (event_id, state) in enumerate([(limited, "confirmed"), (limited, "waitlisted"), (limited, "confirmed"),
                                               (unlimited, "confirmed"), (unlimited, "confirmed")]):
            _insert_row(conn, "registrations", event_id=event_id, state=state, email=f"p{n}@example.org",
                        first_name="P", last_name=str(n), timezone="UTC", manage_token_hash=f"h{n}")
    db.session.remove()
    upgrade()
    with db.engine.connect() as conn:
        def seats(event_id: int) -> tuple[int, int]:
            taken = conn.execute(text("SELECT count(*) FROM event_seats WHERE event_id = :e AND taken"),
                                 {"e": event_id}).scalar()
            free = conn.execute(text("SELECT count(*) FROM event_seats WHERE event_id = :e AND NOT taken"),
                                {"e": event_id}).scalar()
            return taken, free

        assert seats(limited) == (2, 3) and seats(unlimited) == (3, 0)
        held = conn.execute(text(
            "SELECT r.state, s.taken FROM registrations r LEFT JOIN event_seats s ON s.id = r.seat_id "
            "ORDER BY r.id")).all()
        assert [tuple(row) for row in held] == [("confirmed", True), ("waitlisted", None), ("confirmed", True),
                                                ("confirmed", True), ("confirmed", True)]
        assert conn.execute(text("SELECT count(DISTINCT seat_id) FROM registrations")).scalar() == 4
    downgrade(revision="3fe1de6a9da7")
    with db.engine.connect() as conn:
        counted = dict(conn.execute(text("SELECT slug, confirmed_count FROM events")).all())
        assert counted == {"limited": 2, "open": 3}
        assert conn.execute(text("SELECT count(*) FROM registrations")).scalar() == 5
