"""Delivery reports end to end, over real sockets: a `flask worker` process sends the emails through ACS
(the emulator over loopback TLS); the emulator, as Event Grid, validates a webhook subscription on Foyer
served on a loopback port and posts its delivery reports there; the organizer's browser then sees
"Delivered" and "Bounced (…)".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import WSGIRequestHandler, make_server

from app.extensions import db
from app.models import Event, EventStatus, Message, MessageStatus, Role
from app.services.registration import registrations
from tests.conftest import PASSWORD
from tests.integration import test_worker_process as worker_process
from tests.integration.test_worker_process import run_worker_once, wait_for
from tests.services.microsoft import conftest as tls_fixtures

tls_emulator = tls_fixtures.tls_emulator
tls_app = tls_fixtures.tls_app
emulator = tls_fixtures.emulator
tls_ctx = tls_fixtures.tls_ctx
worker_env = worker_process.worker_env


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def served(app) -> Iterator[str]:
    """Foyer on http://127.0.0.1:<free port>, where Event Grid (the emulator) posts."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="foyer-webhook", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def subscribed(app, served, emulator) -> Iterator[str]:
    """The ACS resource's Event Grid subscription to Foyer's webhook, as an admin pastes it in the portal."""
    url = f"{served}/webhooks/acs/events?secret={app.config['ACS_WEBHOOK_SECRET']}"
    emulator.acs.subscribe(url)  # raises unless Foyer answers the validation handshake
    yield url
    emulator.acs.unsubscribe()


def _event_with(owner_id: int, *emails: str) -> int:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    event = Event(slug="delivery", title="Delivery check", timezone="Europe/Berlin", starts_at=start,
                  ends_at=start + timedelta(hours=1), status=EventStatus.published, published_at=datetime.now(UTC),
                  owner_id=owner_id)
    db.session.add(event)
    db.session.commit()
    for n, email in enumerate(emails):
        registrations.register(event, registrations.RegistrationData(
            first_name="Guest", last_name=f"{n:03d}", email=email, timezone="UTC"))
    db.session.commit()
    return event.id


def _messages() -> dict[str, Message]:
    db.session.rollback()
    return {m.recipient: m for m in db.session.scalars(select(Message))}


def _organizer_page(base: str, path: str) -> str:
    browser = requests.Session()
    browser.trust_env = False
    login = browser.get(f"{base}/login", timeout=10).text
    token = login.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    answer = browser.post(f"{base}/login", data={"email": "owner@example.org", "password": PASSWORD,
                                                 "csrf_token": token}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text[:300]
    return browser.get(f"{base}{path}", timeout=10).text


def test_worker_sent_emails_end_delivered_or_bounced_from_event_grid_reports(tls_ctx, emulator, worker_env, served,
                                                                            subscribed, make_user, monkeypatch):
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ("gone@example.net",))
    event_id = _event_with(make_user("owner@example.org", Role.organizer).id, "ada@example.org", "gone@example.net")

    run_worker_once(worker_env, ACS_STATUS_POLL_SECONDS="0")
    sent = _messages()
    assert {m.status for m in sent.values()} <= {MessageStatus.sent, MessageStatus.failed}
    assert sent["ada@example.org"].delivery == ""  # ACS accepted it; nobody knows yet whether it arrived

    assert emulator.acs.deliver_reports() == {"delivered": 2, "failed": 0, "pending": 0}

    done = _messages()
    ada, gone = done["ada@example.org"], done["gone@example.net"]
    assert ada.delivery == "Delivered" and ada.delivery_text == "Delivered"
    assert ada.delivery_reported_at is not None
    assert gone.delivery == "Bounced" and gone.delivery_text.startswith("Bounced (550 5.1.1")
    # The report names the message by the Operation-Id Foyer chose for the send.
    assert {e["data"]["messageId"] for e in emulator.acs.delivered_reports} == {ada.operation_id, gone.operation_id}

    page = _organizer_page(served, f"/manage/events/{event_id}/registrations")
    assert "Email: Bounced (550 5.1.1" in page[page.index("gone@example.net"):][:400]
    assert "Email: " not in page[page.index("ada@example.org"):][:200]


def test_reports_posted_automatically_as_the_emulator_accepts_each_send(tls_ctx, emulator, worker_env, subscribed,
                                                                       make_user, monkeypatch):
    monkeypatch.setattr(emulator.config, "auto_deliver_reports", True)
    _event_with(make_user("owner@example.org", Role.organizer).id, "bob@example.org")
    run_worker_once(worker_env, ACS_STATUS_POLL_SECONDS="0")
    wait_for(lambda: _messages()["bob@example.org"].delivery == "Delivered", timeout=15,
             what="the delivery report at Foyer's webhook")
    assert not emulator.acs.pending_reports
