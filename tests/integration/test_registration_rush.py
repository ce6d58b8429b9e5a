"""A rush of real, simultaneous sign-ups over HTTP, on SQLite and PostgreSQL.

Foyer is served on a loopback socket by a threaded server; 200 clients, each with its own session
and CSRF token, post the registration form at the same moment for 20 seats (10 % re-use an address).
Exactly 20 must be confirmed, the rest waitlisted, every repeat recognised (its owner is re-sent the
link), and nothing may fail. Every client reads the same "check your inbox", so the counts come from the
database and the outbox.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

from app.extensions import db
from app.models import Event, EventStatus, OutboxItem, Registration, RegistrationState

CLIENTS = 200
CAPACITY = 20
DUPLICATES = 20
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def served(app) -> Iterator[str]:
    """The test app on http://127.0.0.1:<free port>."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="rush-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def rush(base_url: str, slug: str, emails: list[str]) -> list[str]:
    """Every client loads the form, waits for the others, then all submit at once; returns outcomes."""
    barrier = threading.Barrier(len(emails), timeout=60)

    def one(i_email: tuple[int, str]) -> str:
        i, email = i_email
        with requests.Session() as http:
            page = http.get(f"{base_url}/events/{slug}/register", timeout=60)
            token = CSRF.search(page.text)
            barrier.wait()
            if token is None:
                return f"no form ({page.status_code})"
            response = http.post(f"{base_url}/events/{slug}/register", timeout=120, data={
                "csrf_token": token.group(1), "first_name": f"Person{i}", "last_name": "Rush", "email": email,
                "timezone": "Europe/Berlin", "consent": "y",
            })
            if response.status_code >= 500:
                return f"error {response.status_code}"
            if response.status_code == 200 and "Check your inbox" in response.text:
                return "inbox"
            return f"unexpected {response.status_code}"

    with ThreadPoolExecutor(max_workers=len(emails)) as pool:
        return list(pool.map(one, enumerate(emails)))


def test_rush_confirms_exactly_capacity_and_waitlists_the_rest(app, served, make_user, make_event):
    owner = make_user("owner@example.org")
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=CAPACITY,
                       waitlist_enabled=True)
    unique = [f"person{i}@example.org" for i in range(CLIENTS - DUPLICATES)]
    # Repeats differ in case and spacing: the address is normalised before the unique index sees it.
    emails = unique + [f" PERSON{i}@Example.org" for i in range(0, CLIENTS - DUPLICATES, 9)][:DUPLICATES]
    assert len(emails) == CLIENTS

    outcomes = Counter(rush(served, event.slug, emails))

    assert outcomes == {"inbox": CLIENTS}, outcomes
    with app.app_context():
        rows = db.session.execute(select(Registration.state, func.count()).where(
            Registration.event_id == event.id).group_by(Registration.state)).all()
        assert dict(rows) == {RegistrationState.confirmed: CAPACITY,
                              RegistrationState.waitlisted: CLIENTS - DUPLICATES - CAPACITY}
        assert db.session.get(Event, event.id).confirmed_count == CAPACITY
        distinct = db.session.scalar(select(func.count(func.distinct(Registration.email))).where(
            Registration.event_id == event.id))
        assert distinct == CLIENTS - DUPLICATES
        resent = db.session.scalar(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.event_id == event.id, OutboxItem.dedupe_key.like("%:resend:%")))
        assert resent == DUPLICATES
