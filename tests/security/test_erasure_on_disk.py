"""Erased personal data is gone from the SQLite files themselves, not only from query results: deleted rows
are overwritten (secure_delete) and the write-ahead log, which keeps old copies of pages, is truncated
after an erasure and after the retention purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.models import Event, EventStatus, Registration, Role
from app.services import outbox

NAME, EMAIL = "Quillonbert", "quillonbert.zephyrine@example.org"


def _files(app) -> list[Path]:
    database = Path(db.engine.url.database)
    return [path for path in (database, Path(f"{database}-wal")) if path.exists()]


def _on_disk(app, needle: str) -> list[str]:
    """The database files (WAL included) that still hold `needle`, in UTF-8 as SQLite stores text."""
    return [path.name for path in _files(app) if needle.encode() in path.read_bytes()]


def _register(client, event) -> None:
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": NAME, "last_name": "Z", "email": EMAIL, "timezone": "UTC",
                              "consent": "y"}, form_url=f"/events/{event.slug}")
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.fixture
def sqlite_app(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite's files only")
    return app


def test_an_erased_person_leaves_nothing_in_the_database_files(sqlite_app, client, auth, make_user, make_event):
    app = sqlite_app
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))
    _register(client, event)
    with app.app_context():
        outbox.drain()  # the confirmation goes out: its record is kept, emptied, after the erasure
        assert _on_disk(app, EMAIL) and _on_disk(app, NAME)  # the test can see what it looks for
    auth.login_as_admin()
    response = client.submit("/admin/privacy/person/erase", {"email": EMAIL, "confirm": "y"},
                             form_url="/admin/privacy/")
    assert response.status_code == 303, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Registration.id)) is None
        assert _on_disk(app, EMAIL) == [] and _on_disk(app, NAME) == []


def test_the_retention_purge_leaves_nothing_in_the_database_files(sqlite_app, client, make_user, make_event):
    app = sqlite_app
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), retention_days=1)
    _register(client, event)
    with app.app_context():
        outbox.drain()
        row = db.session.get(Event, event.id)
        row.ends_at = datetime.now(UTC) - timedelta(days=2)
        row.starts_at = row.ends_at - timedelta(hours=1)
        db.session.commit()
        assert _on_disk(app, EMAIL)
    jobs.purge_personal_data(app)
    with app.app_context():
        assert db.session.get(Event, event.id).personal_data_purged_at is not None
        assert _on_disk(app, EMAIL) == [] and _on_disk(app, NAME) == []
