"""The unit of work over HTTP, against a real SQLite writer holding the write lock (another process, such
as the worker, in the middle of its own write). A request that changes things waits its turn and tries
again while the database stays locked; once every try is used it says so and stores nothing, never a 500.
A request that calls Microsoft between its reads and its writes still writes while another connection
commits meanwhile (the worker at its work). A join, which waits on ACS, holds up no other request while it
waits (both databases).

The busy timeout is cut from 10 s to 50 ms for the SQLite lock tests, so each try gives up quickly.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from app import web
from app.extensions import db
from app.jobs import HEARTBEAT_KEY
from app.models import AuthFlow, EventStatus, Question, Registration
from app.services.registration import registrations
from tests.conftest import Client
from tests.microsoft_helpers import emulator_answer
from tests.routes.public import test_join

event = test_join.event
owner = test_join.owner
register = test_join.register
join_times = test_join._set_times

BUSY_TIMEOUT_MS = 50
REGISTRATION = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
                "timezone": "Europe/Paris", "consent": "y"}


@pytest.fixture
def database_file(app, database_url) -> Iterator[str]:
    """The SQLite file, with the app's connections giving up on a lock after BUSY_TIMEOUT_MS."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer lock; PostgreSQL has no database-wide write lock")

    def short_timeout(dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "connect", short_timeout)
    engine.dispose()  # pooled connections reconnect with the short timeout
    try:
        yield database_url.removeprefix("sqlite:///")
    finally:
        sa_event.remove(engine, "connect", short_timeout)
        engine.dispose()


@contextmanager
def writer_holding_the_lock(path: str, *, for_seconds: float | None = None) -> Iterator[None]:
    """Another connection holds SQLite's write lock: for `for_seconds`, or until the block ends."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(for_seconds, other.rollback) if for_seconds is not None else None
    if release is not None:
        release.start()
    try:
        yield
    finally:
        if release is not None:
            release.join()
        other.rollback()
        other.close()


@contextmanager
def worker_committing(path: str) -> Iterator[None]:
    """Another connection commits the worker's heartbeat every 20 ms until the block ends (the worker at
    its work while a request runs)."""
    stop = threading.Event()

    def beat() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        while not stop.wait(0.02):
            value = json.dumps({"at": datetime.now(UTC).isoformat(), "worker": "elsewhere:1"})
            other.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                          "excluded.value", (HEARTBEAT_KEY, value))
        other.close()

    thread = threading.Thread(target=beat)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _published_event(make_user, make_event):
    owner = make_user("owner@example.org")
    return make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=10)


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_a_registration_waits_out_a_locked_database_and_is_saved(app, client, make_user, make_event, database_file,
                                                                 caplog):
    event = _published_event(make_user, make_event)
    form_url = f"/events/{event.slug}/register"
    token = client.csrf_token(form_url)
    # Several tries of 50 ms each, with back-offs between them, outlast a lock held for 0.3 s.
    with caplog.at_level(logging.WARNING, logger="app.web"), writer_holding_the_lock(database_file, for_seconds=0.3):
        response = client.post(form_url, data={**REGISTRATION, "csrf_token": token})

    assert response.status_code == 303, response.get_data(as_text=True)
    assert _count(app, Registration) == 1
    assert f"Database busy: registration for event {event.id} (attempt 1)" in caplog.text


def test_a_registration_that_finds_the_database_locked_on_every_try_stores_nothing_and_says_so(
        app, client, make_user, make_event, database_file, monkeypatch):
    monkeypatch.setattr(web, "BUSY_ATTEMPTS", 2)
    event = _published_event(make_user, make_event)
    form_url = f"/events/{event.slug}/register"
    token = client.csrf_token(form_url)
    with writer_holding_the_lock(database_file):
        response = client.post(form_url, data={**REGISTRATION, "csrf_token": token})

    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "We are very busy right now" in body
    assert 'value="Ada"' in body  # what was typed comes back
    assert _count(app, Registration) == 0


def test_an_organizer_change_waits_out_a_locked_database(app, client, auth, make_event, database_file, caplog):
    event = make_event(auth.login_as_organizer())
    url = f"/manage/events/{event.id}/questions"
    token = client.csrf_token(f"/manage/events/{event.id}/edit")
    with caplog.at_level(logging.WARNING, logger="app.web"), writer_holding_the_lock(database_file, for_seconds=0.3):
        response = client.post(url, data={"new-question-label": "Company", "new-question-kind": "short_text",
                                          "csrf_token": token})

    assert response.status_code == 303
    assert _count(app, Question) == 1
    assert "Database busy: organizer_questions.questions_POST (attempt 1)" in caplog.text


def test_an_organizer_change_that_finds_the_database_locked_on_every_try_is_a_503_and_stores_nothing(
        app, client, auth, make_event, database_file, monkeypatch):
    monkeypatch.setattr(web, "BUSY_ATTEMPTS", 2)
    event = make_event(auth.login_as_organizer())
    url = f"/manage/events/{event.id}/questions"
    token = client.csrf_token(f"/manage/events/{event.id}/edit")
    with writer_holding_the_lock(database_file):
        response = client.post(url, data={"new-question-label": "Company", "new-question-kind": "short_text",
                                          "csrf_token": token})

    assert response.status_code == 503
    assert "We are very busy right now" in response.get_data(as_text=True)
    assert _count(app, Question) == 0


def test_a_duplicate_the_unique_index_refuses_runs_once_more_and_is_recognised(app, client, make_user, make_event,
                                                                              monkeypatch, caplog):
    """A repeat sign-up that the look-up misses (as a first sign-up of the same address still in flight
    elsewhere is missed) is refused by the partial unique index; run once more, it is a duplicate."""
    event = _published_event(make_user, make_event)
    form_url = f"/events/{event.slug}/register"
    assert client.submit(form_url, REGISTRATION).status_code == 303
    looked_up = registrations._active_registration
    misses = iter([True])

    def missed_once(event, email, **options):
        return None if next(misses, False) else looked_up(event, email, **options)

    monkeypatch.setattr(registrations, "_active_registration", missed_once)
    with caplog.at_level(logging.WARNING, logger="app.web"):
        response = client.submit(form_url, REGISTRATION)

    assert response.status_code == 303
    assert _count(app, Registration) == 1
    assert f"registration for event {event.id} refused by the database; trying once more" in caplog.text


def test_the_microsoft_connect_callback_waits_out_a_locked_database(app, client, auth, database_file, caplog):
    """The answer from Microsoft's sign-in page uses up its flow as a writer: while the worker writes, it
    waits its turn instead of failing on the write after its read."""
    auth.login_as_admin()
    started = client.submit("/admin/microsoft/connect")
    service_oid = app.extensions["microsoft"].emulator.config.users[0].oid
    path, fields = emulator_answer(client, started.headers["Location"], service_oid)
    with caplog.at_level(logging.WARNING, logger="app.web"), writer_holding_the_lock(database_file, for_seconds=0.3):
        done = client.post(path, data=fields)

    assert done.status_code == 303, done.get_data(as_text=True)
    assert "outcome=connected" in done.headers["Location"]
    assert "Database busy: taking the Microsoft connect flow (attempt 1)" in caplog.text
    assert _count(app, AuthFlow) == 0  # used up


def test_staff_sign_in_with_microsoft_survives_the_worker_writing_during_the_token_exchange(
        app, client, auth, database_file):
    """While Foyer redeems the sign-in code at Microsoft (a network call of a few hundred ms), the worker
    commits its own writes. The sign-in then records itself as a writer that waits its turn, never on a
    read snapshot taken before the call (SQLite refuses to turn that into a write: a 500)."""
    emulator = app.extensions["microsoft"].emulator
    auth.login_as_admin()
    assert client.submit("/admin/microsoft/staff-sign-in", {"enabled": "1"}).status_code == 303
    adele = next(u for u in emulator.config.users if u.upn.startswith("adele."))
    assert client.submit("/admin/users/invite", {"name": "Adele Vance", "role": "organizer",
                                                 "email": adele.upn}).status_code == 303
    auth.logout()
    start = client.submit("/login/microsoft")
    path, fields = emulator_answer(client, start.headers["Location"], adele.oid)
    emulator.faults.add(kind="latency", group="entra", path="*/oauth2/v2.0/token", latency=0.4, count=1)
    with worker_committing(database_file):
        done = client.post(path, data=fields)

    assert done.status_code == 303, done.get_data(as_text=True)[:2000]
    assert urlsplit(done.headers["Location"]).path == "/manage/events/"
    assert client.get("/manage/events/").status_code == 200  # signed in


def test_a_join_session_survives_the_worker_writing_while_acs_issues_the_token(app, client, database_file,
                                                                               event, register):
    """At the start of an event the worker is busy (reminders, follow-ups) while attendees join, and creating
    an attendee's ACS identity and token takes network calls. The join makes them with no transaction open and
    then records itself as a writer that waits its turn, never on a read snapshot taken before the calls."""
    reg_id, token = register(event)
    join_times(app, event.id, starts_in=timedelta(minutes=-5))
    csrf = client.csrf_token(f"/j/{token}")
    app.extensions["microsoft"].emulator.faults.add(kind="latency", group="acs", latency=0.2, count=2)
    with worker_committing(database_file):
        response = client.post(f"/j/{token}/session", headers={"X-CSRFToken": csrf})

    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.get_json()["userId"].startswith("8:acs:")
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        assert reg.acs_user_id == response.get_json()["userId"] and reg.first_joined_at is not None


# --- a join waits on ACS alone ----------------------------------------------------------------------------

#: How long the emulated ACS takes over each identity call in the tests below: far longer than a
#: registration's write, so a registration that had to wait for a join would show it.
ACS_SECONDS = 2.0


def _join_in_background(app, token: str) -> tuple[threading.Thread, dict]:
    """POST the join session request from another client on a thread; its response lands in the dict."""
    joiner = Client(app, app.response_class)
    csrf = joiner.csrf_token(f"/j/{token}")
    answer: dict = {}

    def join() -> None:
        response = joiner.post(f"/j/{token}/session", headers={"X-CSRFToken": csrf})
        answer.update(status=response.status_code, body=response.get_json())

    thread = threading.Thread(target=join)
    thread.start()
    return thread, answer


def test_a_join_waiting_on_acs_holds_up_no_registration(app, client, event, register):
    """Attendees join all at once when an event starts, and each first join waits on two ACS calls (an
    identity, then a token). Those calls run outside any transaction of Foyer's: a registration arriving
    meanwhile is saved at once, not after the join (on SQLite the join used to hold the write lock across
    the calls, so every sign-up and the worker waited on ACS)."""
    _reg_id, token = register(event)
    join_times(app, event.id, starts_in=timedelta(minutes=-5), capacity=10)
    form_url = f"/events/{event.slug}/register"
    csrf = client.csrf_token(form_url)
    app.extensions["microsoft"].emulator.faults.add(kind="latency", group="acs", latency=ACS_SECONDS, count=1)

    thread, answer = _join_in_background(app, token)
    time.sleep(0.3)  # the join is at ACS now
    started = time.monotonic()
    response = client.post(form_url, data={**REGISTRATION, "email": "grace@example.org", "csrf_token": csrf})
    took = time.monotonic() - started
    thread.join(timeout=30)

    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert took < ACS_SECONDS / 2, f"the registration waited {took:.2f} s for a join at ACS"
    assert answer["status"] == 200, answer
    assert answer["body"]["userId"].startswith("8:acs:")


def test_two_first_joins_of_one_registration_at_once_share_one_identity(app, event, register):
    """The same person opens the call on two devices at once, before they ever joined: both calls to ACS
    create an identity, one is stored first, and the other device gets a token for the stored identity,
    so the registration keeps one identity that every token belongs to."""
    reg_id, token = register(event)
    join_times(app, event.id, starts_in=timedelta(minutes=-5))
    app.extensions["microsoft"].emulator.faults.add(kind="latency", group="acs", latency=0.5, count=4)

    joins = [_join_in_background(app, token) for _ in range(2)]
    for thread, _answer in joins:
        thread.join(timeout=30)

    answers = [answer for _thread, answer in joins]
    assert [a["status"] for a in answers] == [200, 200], answers
    with app.app_context():
        stored = db.session.get(Registration, reg_id).acs_user_id
    assert stored is not None
    assert {a["body"]["userId"] for a in answers} == {stored}


def test_a_registration_cancelled_while_its_join_waits_on_acs_gets_no_session(app, event, register):
    """Cancelled while its join waited on ACS: the join is checked again as it is recorded, refused, and
    the token never handed out; nothing of the join is recorded."""
    reg_id, token = register(event)
    join_times(app, event.id, starts_in=timedelta(minutes=-5))
    app.extensions["microsoft"].emulator.faults.add(kind="latency", group="acs", latency=ACS_SECONDS, count=1)

    thread, answer = _join_in_background(app, token)
    time.sleep(0.3)  # the join is at ACS now
    with app.app_context():
        registrations.cancel(db.session.get(Registration, reg_id))
        db.session.commit()
    thread.join(timeout=30)

    assert answer["status"] == 409, answer
    assert answer["body"]["state"] == "cancelled" and "token" not in answer["body"]
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        assert reg.first_joined_at is None and reg.acs_user_id is None


def test_a_join_that_finds_the_database_locked_on_every_try_asks_to_try_again_and_records_nothing(
        app, client, database_file, event, register, monkeypatch):
    """The token came from ACS but the join could not be recorded: the browser is told to try again (its
    Try again button), gets no token, and no join is recorded."""
    monkeypatch.setattr(web, "BUSY_ATTEMPTS", 2)
    reg_id, token = register(event)
    join_times(app, event.id, starts_in=timedelta(minutes=-5))
    csrf = client.csrf_token(f"/j/{token}")
    with writer_holding_the_lock(database_file):
        response = client.post(f"/j/{token}/session", headers={"X-CSRFToken": csrf})

    assert response.status_code == 503
    body = response.get_json()
    assert body["retry"] is True and body["state"] == "open" and "token" not in body
    assert "try again" in body["error"].lower()
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        assert reg.first_joined_at is None and reg.acs_user_id is None
