"""Erased personal data is gone from the SQLite files themselves, not only from query results: deleted rows
are overwritten (secure_delete) and the write-ahead log, which keeps old copies of pages, is truncated
after an erasure and after the retention purge."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app, jobs
from app.config import TestConfig
from app.extensions import db
from app.models import Event, EventStatus, Registration, Role, User
from app.services.outbox import outbox

NAME, EMAIL = "Quillonbert", "quillonbert.zephyrine@example.org"


def _files(app) -> list[Path]:
    database = Path(db.engine.url.database)
    return [path for path in (database, Path(f"{database}-wal")) if path.exists()]


#: Prints the name of each file (argv[2:]) that holds the text argv[1].
_FIND = ("import pathlib, sys\n"
         "for name in sys.argv[2:]:\n"
         "    if sys.argv[1].encode() in pathlib.Path(name).read_bytes(): print(pathlib.Path(name).name)\n")


def _on_disk(app, needle: str) -> list[str]:
    """The database files (WAL included) that still hold `needle`, in UTF-8 as SQLite stores text.

    A child process reads them: closing a file this process also holds open through SQLite would drop every
    POSIX lock SQLite holds on it (sqlite.org/howtocorrupt.html, 2.2), and the next process to close the
    database would take itself for its last user and delete the -wal and -shm under the open connections.
    """
    found = subprocess.run([sys.executable, "-c", _FIND, needle, *map(str, _files(app))],
                           capture_output=True, text=True, check=True, timeout=60)
    return found.stdout.split()


def _register(client, event) -> None:
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": NAME, "last_name": "Z", "email": EMAIL, "timezone": "UTC",
                              "consent": "y"})
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
    response = client.submit("/admin/privacy/person/erase", {"email": EMAIL, "confirm": "y"})
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


def test_after_an_erasure_the_files_stay_shared_with_other_processes(sqlite_app, database_url, client, auth,
                                                                     make_user, make_event, tmp_path):
    """Looking into the files costs this process none of its SQLite locks: a process that then opens and closes
    the database (a gunicorn worker, `flask worker`) must not take itself for the last user and delete the
    -wal and -shm under this process's open connections, or the next app on the file cannot even connect."""
    app = sqlite_app
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))
    _register(client, event)
    auth.login_as_admin()
    response = client.submit("/admin/privacy/person/erase", {"email": EMAIL, "confirm": "y"})
    assert response.status_code == 303, response.get_data(as_text=True)
    with app.app_context():
        assert _on_disk(app, EMAIL) == []
        database = db.engine.url.database
        assert db.engine.pool.checkedin()  # this process keeps its connections open meanwhile
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('SELECT count(*) FROM users').fetchone(); c.close()", database],
                   check=True, timeout=60)
    assert Path(f"{database}-shm").exists()
    make_user("later@example.org")  # this process writes on through the connections it kept
    other = create_app(TestConfig, instance_path=tmp_path / "instance", SQLALCHEMY_DATABASE_URI=database_url)
    with other.app_context():
        try:
            assert db.session.scalar(select(User.email).where(User.email == "later@example.org"))
            assert db.session.scalar(select(func.count()).select_from(Registration)) == 0
        finally:
            db.session.remove()
            db.engine.dispose()
