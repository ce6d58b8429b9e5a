"""Webhooks end to end: an admin registers an endpoint over HTTP, domain events are POSTed to a real
receiver on 127.0.0.1 through the outbox, signed (the receiver verifies), retried with backoff,
delivered once per event and endpoint, and a worker killed mid-delivery neither loses nor doubles one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    DeliveryStatus,
    Event,
    EventStatus,
    OutboxItem,
    OutboxStatus,
    Registration,
    Role,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from app.services.attendance import attendance
from app.services.core import crypto
from app.services.events import events as event_service
from app.services.integrations import webhooks
from app.services.outbox import outbox
from app.services.registration import privacy, registrations
from tests import webhook_receiver
from tests.database import every_row_as_text

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_RE = re.compile(r'id="signing-secret" type="text" value="([^"]+)"')
ALL_KINDS = list(webhooks.KINDS)


@pytest.fixture
def receiver(app, monkeypatch):
    """A receiver on loopback, with plain http:// allowed for loopback (WEBHOOK_ALLOW_HTTP_LOOPBACK)."""
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_HTTP_LOOPBACK", True)
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT_SECONDS", 5)
    rx, server = webhook_receiver.start()
    yield rx
    rx.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def add_endpoint(auth, client):
    """Register an endpoint through the admin page, as an admin does; returns its signing secret."""

    signed_in = []

    def _add(url: str, kinds: list[str] = ALL_KINDS) -> str:
        if not signed_in:
            signed_in.append(auth.login_as_admin())
        page = client.submit("/admin/webhooks/", {"url": url, "description": "CRM", "kinds": kinds})
        assert page.status_code == 201, page.get_data(as_text=True)
        match = SECRET_RE.search(page.get_data(as_text=True))
        assert match
        return match.group(1)

    return _add


def _register(app, event_id: int, email: str = "ada@example.org") -> int:
    with app.app_context():
        event = db.session.get(Event, event_id)
        data = registrations.RegistrationData(first_name="Ada", last_name="Lovelace", email=email,
                                              timezone="Europe/London")
        outcome = registrations.register(event, data)
        db.session.commit()
        return outcome.registration.id


def _webhook_items(app) -> list[OutboxItem]:
    with app.app_context():
        items = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == webhooks.DELIVER_KIND)
                                   .order_by(OutboxItem.id)).all()
        db.session.expunge_all()
        return items


def _drain_webhooks(app) -> None:
    """What the worker does (the registrations' emails go out too; they have their own tests)."""
    with app.app_context():
        outbox.drain()


def test_registration_events_reach_the_receiver_signed(app, receiver, add_endpoint, make_user, make_event):
    secret = add_endpoint(receiver.url, ["registration.created", "registration.confirmed", "event.published"])
    event = make_event(make_user(), status=EventStatus.published, capacity=5)
    reg_id = _register(app, event.id)
    _drain_webhooks(app)

    got = receiver.wait_for(2)
    assert [r.json["type"] for r in got] == ["registration.created", "registration.confirmed"]
    for received in got:
        assert webhook_receiver.verify(secret, received)
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["Foyer-Event"] == received.json["type"]
        assert received.json["data"]["registration"]["id"] == reg_id
        assert received.json["data"]["registration"]["email"] == "ada@example.org"
        assert received.json["data"]["event"]["id"] == event.id
    # A changed body, a wrong secret or an old timestamp fails the receiver's check.
    tampered = webhook_receiver.Received(got[0].headers, got[0].body.replace(b"Ada", b"Eve"))
    assert not webhook_receiver.verify(secret, tampered)
    assert not webhook_receiver.verify("whsec_wrong", got[0])
    with app.app_context():
        assert not webhooks.verify_signature(secret, got[0].headers["Foyer-Signature"], got[0].body,
                                             now=time.time() + 301)
        assert webhooks.verify_signature(secret, got[0].headers["Foyer-Signature"], got[0].body)
        deliveries = db.session.scalars(select(WebhookDelivery)).all()
        assert {d.status for d in deliveries} == {DeliveryStatus.delivered}
        assert all(d.attempts == 1 and d.last_status_code == 200 for d in deliveries)


def test_only_subscribed_kinds_are_sent_once_per_event_and_endpoint(app, receiver, add_endpoint, make_user,
                                                                    make_event):
    add_endpoint(receiver.url, ["registration.cancelled", "registration.promoted"])
    add_endpoint(receiver.url + "?second", ["registration.promoted"])
    event = make_event(make_user(), status=EventStatus.published, capacity=1, waitlist_enabled=True)
    first = _register(app, event.id, "first@example.org")
    second = _register(app, event.id, "second@example.org")  # waitlisted
    with app.app_context():
        registrations.cancel(db.session.get(Registration, first))  # the attendee cancels; second is promoted
        db.session.commit()
        # Announcing the same event again queues nothing: the dedupe key is the event's id.
        reg = db.session.get(Registration, second)
        assert webhooks.announce_registration(reg, "waitlisted", reg.transitions[-1]) == 0
        db.session.commit()
    _drain_webhooks(app)
    _drain_webhooks(app)
    receiver.wait_for(3)
    time.sleep(0.2)
    assert sorted(r.json["type"] for r in receiver.received) == [
        "registration.cancelled", "registration.promoted", "registration.promoted"]
    promoted = [r for r in receiver.received if r.json["type"] == "registration.promoted"]
    assert promoted[0].json["id"] == promoted[1].json["id"]  # one event, two endpoints
    assert promoted[0].headers["Foyer-Delivery-Id"] != promoted[1].headers["Foyer-Delivery-Id"]
    assert promoted[0].json["data"]["registration"]["id"] == second


def test_event_lifecycle_is_announced(app, receiver, add_endpoint, make_user, make_event):
    add_endpoint(receiver.url, ["event.published", "event.changed", "event.cancelled"])
    owner = make_user(role=Role.organizer)
    draft = make_event(owner)
    with app.app_context():
        actor = db.session.get(User, owner.id)
        event = db.session.get(Event, draft.id)
        event_service.publish_event(event, actor=actor)
        db.session.commit()
        event_service.update_event(event, event_service.EventData(
            title="Renamed call", starts_at=event.starts_at, ends_at=event.ends_at, timezone=event.timezone,
            slug=event.slug), actor=actor)
        db.session.commit()
        event_service.cancel_event(event, actor=actor, reason="Speaker ill")
        db.session.commit()
        assert len(_webhook_items(app)) == 3
    _drain_webhooks(app)
    got = receiver.wait_for(3)
    assert sorted(r.json["type"] for r in got) == ["event.cancelled", "event.changed", "event.published"]
    cancelled = next(r for r in got if r.json["type"] == "event.cancelled")
    assert cancelled.json["data"]["event"]["status"] == "cancelled"
    changed = next(r for r in got if r.json["type"] == "event.changed")
    assert changed.json["data"]["event"]["title"] == "Renamed call"


def test_attendance_import_is_announced_with_its_summary(app, receiver, add_endpoint, make_user, make_event):
    add_endpoint(receiver.url, ["attendance.imported"])
    event = make_event(make_user(), status=EventStatus.published)
    with app.app_context():
        attendance.import_attendance({"event_id": event.id})  # the outbox job, for an event without a meeting
        outbox.drain()
    (got,) = receiver.wait_for(1)
    assert got.json["type"] == "attendance.imported"
    assert got.json["data"]["attendance"]["source"] == "foyer"
    assert got.json["data"]["event"]["id"] == event.id


def test_failures_are_retried_with_growing_backoff_until_delivered(app, receiver, add_endpoint, make_user,
                                                                  make_event):
    add_endpoint(receiver.url, ["registration.created"])
    receiver.statuses = [500, 503]
    event = make_event(make_user(), status=EventStatus.published)
    _register(app, event.id)
    waits = []
    for expected_attempts in (1, 2):
        before = utcnow()
        _drain_webhooks(app)
        (item,) = _webhook_items(app)
        assert item.status == OutboxStatus.pending
        waits.append((item.next_attempt_at - before).total_seconds())
        with app.app_context():
            delivery = db.session.scalar(select(WebhookDelivery))
            assert (delivery.status, delivery.attempts) == (DeliveryStatus.pending, expected_attempts)
            assert delivery.last_status_code == [500, 503][expected_attempts - 1]
        _drain_webhooks(app)  # not due yet: nothing is sent before the backoff has passed
        assert len(receiver.received) == expected_attempts
        with app.app_context():
            db.session.get(OutboxItem, item.id).next_attempt_at = utcnow()  # the backoff has passed
            db.session.commit()
    assert 4 <= waits[0] <= 6 and 9 <= waits[1] <= 12  # 5 s, then 10 s (±10 % jitter)
    _drain_webhooks(app)
    assert len(receiver.wait_for(3)) == 3
    assert len({r.headers["Foyer-Delivery-Id"] for r in receiver.received}) == 1  # one delivery, three tries
    with app.app_context():
        delivery = db.session.scalar(select(WebhookDelivery))
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.delivered, 3, 200)


def test_a_receiver_that_never_answers_2xx_ends_failed_in_the_log(app, receiver, add_endpoint, make_user,
                                                                 make_event):
    add_endpoint(receiver.url, ["registration.created"])
    receiver.statuses = [410] * 3
    event = make_event(make_user(), status=EventStatus.published)
    _register(app, event.id)
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == webhooks.DELIVER_KIND))
        item.max_attempts = 3
        db.session.commit()
    for _ in range(3):
        _drain_webhooks(app)
        with app.app_context():
            for row in db.session.scalars(select(OutboxItem).where(OutboxItem.kind == webhooks.DELIVER_KIND)):
                row.next_attempt_at = utcnow()
            db.session.commit()
    with app.app_context():
        delivery = db.session.scalar(select(WebhookDelivery))
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.failed, 3)
        assert "410" in delivery.last_error


WORKER_SCRIPT = """
import sys
from app import create_app
from app.config import TestConfig
from app.services.outbox import outbox
app = create_app(TestConfig, instance_path=sys.argv[1], SQLALCHEMY_DATABASE_URI=sys.argv[2],
                 WEBHOOK_ALLOW_HTTP_LOOPBACK=True, WEBHOOK_TIMEOUT_SECONDS=30)
with app.app_context():
    for item_id in outbox.claim_due(10, owner="worker-a"):
        outbox.perform(item_id, owner="worker-a")
"""


def test_a_worker_killed_mid_delivery_leaves_it_to_the_next_one_and_the_receiver_processes_it_once(
        app, receiver, add_endpoint, make_user, make_event, database_url):
    add_endpoint(receiver.url, ["event.changed"])
    event = make_event(make_user(), status=EventStatus.published)
    with app.app_context():
        webhooks.announce_event("event.changed", db.session.get(Event, event.id))
        db.session.commit()
    receiver.hold = True  # the POST arrives, and the worker dies before it hears the answer
    worker = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, app.instance_path, database_url],  # noqa: S603
                              cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert receiver.got_request.wait(60), worker.stderr.read().decode() if worker.poll() is not None else ""
        worker.kill()
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stderr.close()
    receiver.hold = False
    receiver.release.set()

    (item,) = _webhook_items(app)
    assert (item.status, item.locked_by) == (OutboxStatus.running, "worker-a")
    with app.app_context():
        delivery = db.session.scalar(select(WebhookDelivery))
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.pending, 0)  # the outcome was never recorded
        assert outbox.claim_due(10, owner="worker-b") == []  # the dead worker's lease still holds
        later = utcnow() + timedelta(seconds=item.locked_until.timestamp() - utcnow().timestamp() + 1)
        assert outbox.claim_due(10, owner="worker-b", now=later) == [item.id]
        assert outbox.perform(item.id, owner="worker-b") == OutboxStatus.done

    got = receiver.wait_for(2)
    assert len(got) == 2  # at least once: the same delivery twice
    assert got[0].headers["Foyer-Delivery-Id"] == got[1].headers["Foyer-Delivery-Id"]
    assert got[0].json["id"] == got[1].json["id"]
    assert receiver.processed == [got[0].headers["Foyer-Delivery-Id"]]  # processed once by its id
    with app.app_context():
        delivery = db.session.scalar(select(WebhookDelivery))
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.delivered, 1)
        _drain_webhooks(app)
    assert len(receiver.received) == 2  # and never again


def test_a_worker_killed_before_sending_loses_nothing(app, receiver, add_endpoint, make_user, make_event):
    add_endpoint(receiver.url, ["event.changed"])
    event = make_event(make_user(), status=EventStatus.published)
    with app.app_context():
        webhooks.announce_event("event.changed", db.session.get(Event, event.id))
        db.session.commit()
        (item_id,) = outbox.claim_due(10, owner="worker-a")  # claimed, then the worker dies
        assert outbox.claim_due(10, owner="worker-b") == []
        later = utcnow() + outbox.lease() + timedelta(seconds=1)
        assert outbox.claim_due(10, owner="worker-b", now=later) == [item_id]
        outbox.perform(item_id, owner="worker-b")
    assert len(receiver.wait_for(1)) == 1
    time.sleep(0.2)
    assert len(receiver.received) == 1


def test_http_and_private_addresses_are_refused_unless_loopback_is_allowed(app, auth, client, monkeypatch):
    auth.login_as_admin()
    for url, allowed_with_flag in [("http://127.0.0.1:9/hook", True), ("http://example.org/hook", False),
                                   ("https://10.1.2.3/hook", False), ("https://169.254.169.254/latest", False),
                                   ("https://localhost/hook", True), ("https://user:pw@example.org/", False),
                                   ("ftp://example.org/", False), ("https://[::1]/hook", True)]:
        for flag in (False, True):
            monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_HTTP_LOOPBACK", flag)
            page = client.submit("/admin/webhooks/", {"url": url, "kinds": ["event.published"]})
            expected = 201 if (flag and allowed_with_flag) else 422
            assert page.status_code == expected, (url, flag)
    good = client.submit("/admin/webhooks/", {"url": "https://crm.example.org/hooks", "kinds": ["event.published"]})
    assert good.status_code == 201
    no_kinds = client.submit("/admin/webhooks/", {"url": "https://crm.example.org/hooks"})
    assert no_kinds.status_code == 422 and "Choose at least one" in no_kinds.get_data(as_text=True)


def test_a_name_resolving_into_a_private_network_is_not_posted_to(app, auth, client, monkeypatch, make_user,
                                                                  make_event):
    auth.login_as_admin()
    page = client.submit("/admin/webhooks/", {"url": "https://crm.example.org/hook", "kinds": ["event.changed"]})
    assert page.status_code == 201
    # The name now points into the private network (DNS rebinding): Foyer resolves it before each POST.
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("10.0.0.5", 443))])
    event = make_event(make_user(), status=EventStatus.published)
    with app.app_context():
        webhooks.announce_event("event.changed", db.session.get(Event, event.id))
        db.session.commit()
        outbox.drain()
        (item,) = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == webhooks.DELIVER_KIND)).all()
        assert item.status == OutboxStatus.failed and "private address" in item.last_error
        assert db.session.scalar(select(WebhookDelivery)).status == DeliveryStatus.failed


def test_rotate_key_re_encrypts_signing_secrets(app, receiver, add_endpoint, monkeypatch):
    secret = add_endpoint(receiver.url, ["event.changed"])
    old_keys = list(app.config["ENCRYPTION_KEYS"])
    new_key = crypto.generate_key()
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", [new_key, *old_keys])
    monkeypatch.delitem(app.extensions, "foyer_fernet", raising=False)
    result = app.test_cli_runner().invoke(args=["foyer", "rotate-key"])
    assert result.exit_code == 0 and "Re-encrypted 1 stored secret" in result.output
    monkeypatch.setitem(app.config, "ENCRYPTION_KEYS", [new_key])  # the old key dropped
    monkeypatch.delitem(app.extensions, "foyer_fernet", raising=False)
    with app.app_context():
        assert crypto.decrypt(db.session.scalar(select(WebhookEndpoint)).secret_encrypted) == secret
    monkeypatch.delitem(app.extensions, "foyer_fernet", raising=False)


def test_erasure_and_the_retention_purge_empty_the_delivery_log(app, receiver, add_endpoint, make_user, make_event):
    add_endpoint(receiver.url, ["registration.created", "registration.cancelled"])
    event = make_event(make_user(), status=EventStatus.published)
    erased_id = _register(app, event.id, "erase-me@example.org")
    _register(app, event.id, "purge-me@example.org")
    _drain_webhooks(app)
    assert len(receiver.wait_for(2)) == 2
    with app.app_context():
        privacy.erase_registration(db.session.get(Registration, erased_id))  # cancels first: not sent
        db.session.commit()
        rows = "\n".join(every_row_as_text())
        assert "erase-me@example.org" not in rows and "purge-me@example.org" in rows
        cancelled = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.kind == "registration.cancelled"))
        assert cancelled.status == DeliveryStatus.failed and cancelled.payload["erased"] is True
        privacy.purge_event(db.session.get(Event, event.id))
        db.session.commit()
        assert "purge-me@example.org" not in "\n".join(every_row_as_text())
        assert len(db.session.scalars(select(WebhookDelivery)).all()) == 3  # the log keeps that they happened
    _drain_webhooks(app)
    time.sleep(0.2)
    assert len(receiver.received) == 2
