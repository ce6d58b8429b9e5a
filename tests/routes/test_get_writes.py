"""Pages that write when they are viewed, and forms that call Microsoft before they write, are never
refused for it.

On SQLite a request's reads start a snapshot; a write another process (the worker, another web worker)
commits before the request's own write makes SQLite refuse that write at once ("database is locked"),
whatever the busy timeout. So a page view writes nothing it can do without (the Microsoft page shows a
blank connection until the first connect), and a GET that must write (a download recorded, a link issued
when first shown) is one writer transaction from its first query, as a POST is (`web.writes_on_get`). A
form that is not a writer from its first query (`web.own_transactions`: it calls Microsoft first, whose
token cache is written on a connection of its own) writes through `web.unit_of_work`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import AuditEntry, AuthFlow, EventStatus, MicrosoftConnection, Registration
from app.services.registration import registrations
from tests.database import statements


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


def _get_while_another_process_writes(app, client, database_url: str, url: str):
    """GET `url` while another process commits a write just before the request's first write; returns the
    response and whether the other process could write (it cannot while the request holds the lock)."""
    return _while_another_process_writes(app, database_url, lambda: client.get(url))


def _while_another_process_writes(app, database_url: str, send: Callable[[], Any]):
    """`send()` a request while another process commits a write just before the request's first write."""
    with app.app_context():
        engine = db.engine
    other_process = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0.2)
    other_wrote: list[bool] = []

    def write_elsewhere_first(conn, cursor, statement, *args) -> None:
        if other_wrote or not statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            return
        try:
            other_process.execute("UPDATE users SET name = name || '!'")  # a real change (a no-op is no write)
            other_process.commit()
            other_wrote.append(True)
        except sqlite3.OperationalError:  # the request holds the write lock: the other process waits
            other_process.rollback()
            other_wrote.append(False)

    sa_event.listen(engine, "before_cursor_execute", write_elsewhere_first)
    try:
        response = send()
    finally:
        sa_event.remove(engine, "before_cursor_execute", write_elsewhere_first)
        other_process.close()
    return response, other_wrote


@pytest.fixture
def sqlite_only(database_url) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's snapshots; PostgreSQL takes row locks and reads what is committed")


@pytest.fixture
def registered(app, make_user, make_event):
    """A confirmed registration; returns (event id, registration id, manage token)."""
    owner = make_user("owner@example.org")
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=5)
    with app.app_context():
        outcome = registrations.register(db.session.merge(event), registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/London"))
        db.session.commit()
        return event.id, outcome.registration.id, outcome.manage_token


def _audited(app, action: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


def test_a_download_of_ones_own_data_is_recorded_while_another_process_writes(
        app, client, database_url, sqlite_only, registered):
    _, _, token = registered
    response, other_wrote = _get_while_another_process_writes(app, client, database_url, f"/r/{token}/data.json")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert other_wrote == [False]  # the download held the write lock from its first query
    assert _audited(app, "privacy.export") == 1


def test_an_organizers_export_is_recorded_while_another_process_writes(
        app, client, auth, database_url, sqlite_only, registered):
    event_id, _, _ = registered
    auth.login_as_admin()
    response, other_wrote = _get_while_another_process_writes(
        app, client, database_url, f"/manage/events/{event_id}/registrations.csv")
    assert response.status_code == 200 and "ada@example.org" in response.get_data(as_text=True)
    assert other_wrote == [False]
    assert _audited(app, "export.registrations_csv") == 1


def test_a_join_link_issued_when_the_manage_page_is_first_shown_is_kept_while_another_process_writes(
        app, client, database_url, sqlite_only, registered):
    _, reg_id, token = registered
    with app.app_context():  # confirmed before join links were issued with the confirmation
        db.session.execute(update(Registration).where(Registration.id == reg_id)
                           .values(join_token_hash=None, join_token_encrypted=None))
        db.session.commit()
    response, other_wrote = _get_while_another_process_writes(app, client, database_url, f"/r/{token}")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert other_wrote == [False]
    with app.app_context():
        assert db.session.get(Registration, reg_id).join_token_hash is not None


# --- forms that call Microsoft first, then write -----------------------------------------------------------


def test_connecting_microsoft_keeps_its_sign_in_while_another_process_writes(
        app, client, auth, database_url, sqlite_only):
    auth.login_as_admin()
    client.get("/admin/microsoft/")
    response, other_wrote = _while_another_process_writes(
        app, database_url, lambda: client.submit("/admin/microsoft/connect"))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert response.headers["Location"].startswith("https://login.emulator.invalid/")
    assert other_wrote == [False]  # the sign-in was kept in a writer transaction of its own
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthFlow)) == 1


def test_staff_sign_in_with_microsoft_keeps_its_sign_in_while_another_process_writes(
        app, client, auth, database_url, sqlite_only):
    auth.login_as_admin()
    assert client.submit("/admin/microsoft/staff-sign-in", {"enabled": "1"}).status_code == 303
    auth.logout()
    response, other_wrote = _while_another_process_writes(
        app, database_url, lambda: client.submit("/login/microsoft"))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert other_wrote == [False]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthFlow)) == 1


@pytest.mark.parametrize("form", [("/admin/microsoft/disconnect", {}),
                                  ("/admin/microsoft/staff-sign-in", {"enabled": "1"})])
def test_the_microsoft_pages_other_forms_are_kept_while_another_process_writes(
        app, client, auth, database_url, sqlite_only, form):
    auth.login_as_admin()
    url, data = form
    response, other_wrote = _while_another_process_writes(app, database_url, lambda: client.submit(url, data))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert other_wrote == [False]
    assert _audited(app, "microsoft.disconnect" if "disconnect" in url else "settings.staff_sign_in") == 1


def test_connecting_the_service_account_keeps_its_tokens_while_another_process_writes(
        app, client, auth, database_url, sqlite_only):
    auth.login_as_admin()
    response, other_wrote = _while_another_process_writes(
        app, database_url, lambda: client.submit("/admin/microsoft/connect-emulated"))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert other_wrote == [False]  # the tokens were saved by a writer from its first statement
    with app.app_context():
        row = db.session.get(MicrosoftConnection, 1)
        assert row.status.value == "connected" and row.token_cache_encrypted
