"""Pages that write when they are viewed are never refused for it.

On SQLite a request's reads start a snapshot; a write another process (the worker, another web worker)
commits before the request's own write makes SQLite refuse that write at once ("database is locked"),
whatever the busy timeout. So a page view writes nothing it can do without (the Microsoft page shows a
blank connection until the first connect), and a GET that must write (a download recorded, a link issued
when first shown) is one writer transaction from its first query, as a POST is (`web.writes_on_get`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, EventStatus, MicrosoftConnection
from app.services.registration import registrations


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs."""
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)


def test_the_microsoft_page_writes_nothing_before_the_first_connect(app, client, auth):
    auth.login_as_admin()
    with statements(app) as sent:
        page = client.get("/admin/microsoft/")
        disconnect = client.get("/admin/microsoft/disconnect")
    assert page.status_code == 200 and "Not connected" in page.get_data(as_text=True)
    assert "Connect the emulated service account" in page.get_data(as_text=True)
    assert disconnect.status_code == 200
    assert [s for s in sent if s.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")] == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MicrosoftConnection)) == 0


def test_a_download_that_is_recorded_is_not_refused_by_another_process_writing_meanwhile(
        app, client, make_user, make_event, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's snapshots; PostgreSQL takes row locks and reads what is committed")
    owner = make_user("owner@example.org")
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=5)
    with app.app_context():
        outcome = registrations.register(db.session.merge(event), registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/London"))
        db.session.commit()
        token = outcome.manage_token
    with app.app_context():
        engine = db.engine
    other_process = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0.2)
    other_wrote: list[bool] = []

    def write_elsewhere_first(conn, cursor, statement, *args) -> None:
        """Just before the request's first write, another process commits one of its own."""
        if other_wrote or not statement.lstrip().upper().startswith("INSERT"):
            return
        try:
            other_process.execute("UPDATE events SET title = title || '!'")  # a real change (a no-op is no write)
            other_process.commit()
            other_wrote.append(True)
        except sqlite3.OperationalError:  # the request holds the write lock: the other process waits
            other_process.rollback()
            other_wrote.append(False)

    sa_event.listen(engine, "before_cursor_execute", write_elsewhere_first)
    try:
        response = client.get(f"/r/{token}/data.json")
    finally:
        sa_event.remove(engine, "before_cursor_execute", write_elsewhere_first)
        other_process.close()
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert other_wrote == [False]  # the download held the write lock from its first query
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "privacy.export")) == 1
