"""Exactly-once under the outbox's edge cases: a send that outlasts its claim's lease is not taken over
and sent again by a second worker, a worker that lost its claim neither sends nor settles, and SQLite
never hands a deleted newest registration's or message's id to a new row."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import EventStatus, Message, OutboxItem, OutboxStatus, Registration, Role
from app.services.outbox import outbox
from app.services.registration import privacy

EMAIL = "ada@example.org"


def _register(client, event, email: str = EMAIL):
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": "Ada", "last_name": "L", "email": email, "timezone": "UTC",
                              "consent": "y"})
    assert response.status_code in (200, 303), response.get_data(as_text=True)[:300]


@pytest.fixture
def event(make_user, make_event):
    owner = make_user("owner@example.org", Role.organizer)
    return make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))


def test_a_send_that_outlasts_its_lease_is_not_taken_over_and_sent_twice(app, client, event, monkeypatch):
    emulator = app.extensions["microsoft"].emulator
    monkeypatch.setitem(app.config, "OUTBOX_LEASE_SECONDS", 0.5)
    _register(client, event)
    # ACS takes longer to accept the send than the claim's lease lasts.
    emulator.faults.add(kind="latency", latency=1.5, group="acs", path="/emails:send")

    def first_worker():
        with app.app_context():
            outbox.drain(owner="worker-a")

    first = threading.Thread(target=first_worker)
    first.start()
    time.sleep(1.0)  # worker A is inside the send; the lease it claimed with has run out
    with app.app_context():
        outbox.drain(owner="worker-b")  # worker B looks for work it could take over
    first.join(timeout=30)
    with app.app_context():
        outbox.drain(owner="worker-b")
        message = db.session.scalar(select(Message).where(Message.recipient == EMAIL))
        assert message.status.value == "sent"
    sends = [e for e in emulator.acs.sent_emails if e.operation_id == message.operation_id]
    assert len(sends) == 1, [(e.operation_id, e.duplicate) for e in emulator.acs.sent_emails]
    assert emulator.acs.duplicate_operation_ids() == []


def test_a_worker_that_lost_its_claim_does_not_send(app, client, event, monkeypatch, clock):
    emulator = app.extensions["microsoft"].emulator
    _register(client, event)
    # A first attempt is throttled, so the next one asks ACS whether that attempt got through first.
    emulator.faults.add(kind="status", group="acs", path="/emails:send", status=429, retry_after="0", count=1)
    with app.app_context():
        outbox.drain(owner="worker-a")
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "message.send"))
        assert item.status == OutboxStatus.pending and emulator.acs.sent_emails == []
    clock.shift(1.1)  # the throttled item is due again
    monkeypatch.setitem(app.config, "OUTBOX_LEASE_SECONDS", 0.5)
    # Worker A's question is slow: it stalls there past its lease, and worker B takes the item over,
    # asks (promptly: nothing went out yet) and sends, slowly. A's answer comes first: "nothing went out".
    emulator.faults.add(kind="latency", latency=1.0, group="acs", path="/emails/operations/*", count=1)
    emulator.faults.add(kind="latency", latency=1.0, group="acs", path="/emails:send", count=1)

    def stale_worker():
        with app.app_context():
            outbox.drain(owner="worker-a")

    first = threading.Thread(target=stale_worker)
    first.start()
    time.sleep(0.7)
    with app.app_context():
        outbox.drain(owner="worker-b")
    first.join(timeout=30)
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.recipient == EMAIL))
        assert message.status.value == "sent"
        assert db.session.get(OutboxItem, item.id).status == OutboxStatus.done
    assert len(emulator.acs.sent_emails) == 1, [(e.operation_id, e.duplicate) for e in emulator.acs.sent_emails]


def test_sqlite_never_reuses_the_id_of_a_deleted_newest_row(app, client, event):
    _register(client, event, "first@example.org")
    _register(client, event, "second@example.org")
    with app.app_context():
        newest = db.session.scalar(select(Registration).where(Registration.email == "second@example.org"))
        newest_id = newest.id
        newest_message_id = db.session.scalar(select(Message.id).where(Message.registration_id == newest_id))
        privacy.erase_registration(newest)
        db.session.execute(Message.__table__.delete().where(Message.id == newest_message_id))
        db.session.commit()
    _register(client, event, "third@example.org")
    with app.app_context():
        third = db.session.scalar(select(Registration).where(Registration.email == "third@example.org"))
        third_message = db.session.scalar(select(Message.id).where(Message.registration_id == third.id))
        assert third.id > newest_id and third_message > newest_message_id
