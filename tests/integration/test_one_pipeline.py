"""One email pipeline: the emails that once went out through a second, blocking path (a registrant's
re-issued join link, the admins' "re-connect Microsoft 365" alert; the attendance follow-ups are in
test_attendance_import.py) are message kinds like every other email. Each is logged (listed in
/admin/messages), paced by the quota, sent once under its own Operation-Id, asked about at ACS before
any second attempt, and no send holds the worker while ACS works on it. Emails an earlier version queued
the old way are taken into the message log on upgrade."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Event, EventStatus, Message, MessageStatus, OutboxItem, OutboxStatus, Role
from app.services.microsoft import connection
from app.services.microsoft.acs import AcsEmailClient, EmailMessage
from app.services.outbox import outbox
from app.services.registration import registrations
from tests.routes.admin.test_microsoft import connect_service_account

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"


def _header(request, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)


def email_posts(emulator) -> list:
    return [r for r in emulator.requests_for("acs") if r.method == "POST" and r.path.endswith("/emails:send")]


def set_quota(client, per_minute: int, per_hour: int = 1000) -> None:
    """Set the ACS email quota as an admin does (Admin → Messages)."""
    response = client.submit("/admin/messages/quota", {"per_minute": str(per_minute), "per_hour": str(per_hour)})
    assert response.status_code in (200, 303), response.get_data(as_text=True)[:500]


def send_paced(app, emulator, kind: str, *, per_pass: int) -> list[Message]:
    """Run the worker until every `kind` message is out, letting a minute pass between runs; check that no
    run sends more than the quota allows and that each message went to ACS once, under its own Operation-Id.
    """
    passes = 0
    while True:
        before = len(email_posts(emulator))
        with app.app_context():
            outbox.drain(limit=500)
            sent_now = len(email_posts(emulator)) - before
            assert sent_now <= per_pass, f"{sent_now} sends in one minute with a quota of {per_pass}"
            waiting = db.session.scalars(select(Message).where(Message.kind == kind,
                                                               Message.status != MessageStatus.sent)).all()
            assert all(m.status == MessageStatus.queued for m in waiting)  # deferred by the quota, never failed
            if not waiting:
                break
            # A minute passes: the slots taken free up, and the deferred sends are due.
            for taken in db.session.scalars(select(Message).where(Message.reserved_at.is_not(None))):
                taken.reserved_at -= timedelta(seconds=62)
            db.session.execute(update(OutboxItem).where(OutboxItem.status == OutboxStatus.pending,
                                                        OutboxItem.kind == "message.send")
                               .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
            db.session.commit()
        passes += 1
        assert passes < 20, "the messages never went out"
    with app.app_context():
        rows = db.session.scalars(select(Message).where(Message.kind == kind).order_by(Message.id)).all()
        for row in rows:
            db.session.expunge(row)
    per_operation = Counter(_header(r, "Operation-Id") for r in email_posts(emulator))
    for row in rows:
        assert row.status == MessageStatus.sent and row.attempts == 1
        assert per_operation[row.operation_id] == 1  # one send at ACS, under the message's own Operation-Id
    assert emulator.acs.duplicate_operation_ids() == []
    return rows


@pytest.fixture
def confirmed(app, make_user, make_event):
    """Three confirmed registrants of a published event with a Teams meeting, their confirmations sent."""
    owner = make_user("owner@example.org")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), title="Spring call",
                       starts_at=start, ends_at=start + timedelta(hours=1), join_url=TEAMS_URL)
    ids = []
    with app.app_context():
        row = db.session.get(Event, event.id)
        for first in ("Ada", "Bob", "Cleo"):
            outcome = registrations.register(row, registrations.RegistrationData(
                first_name=first, last_name="Test", email=f"{first.lower()}@example.org", timezone="Asia/Tokyo"))
            db.session.commit()
            ids.append(outcome.registration.id)
        outbox.drain(limit=500)
        db.session.remove()
    return event, ids


def reissue(client, event, reg_id) -> None:
    url = f"/manage/events/{event.id}/registrations/{reg_id}/join-link"
    assert client.submit(url, {}).status_code == 303


def test_new_join_links_are_logged_paced_and_sent_once(app, client, auth, emulator, confirmed):
    event, ids = confirmed
    auth.login_as_admin()
    set_quota(client, 1)
    auth.logout()
    auth.login("owner@example.org")
    for reg_id in ids:
        reissue(client, event, reg_id)

    rows = send_paced(app, emulator, "join_link", per_pass=1)
    assert sorted(r.recipient for r in rows) == ["ada@example.org", "bob@example.org", "cleo@example.org"]
    assert all(r.event_id == event.id and r.registration_id in ids for r in rows)
    mail = next(e for e in emulator.acs.sent_emails if e.to[0]["address"] == "ada@example.org"
                and e.subject == "Your new join link: Spring call")
    assert "http://localhost/j/" in mail.plain_text and "no longer works" in mail.plain_text
    assert "(Asia/Tokyo)" in mail.plain_text and "<!DOCTYPE html>" in mail.html  # branded, in her zone

    auth.logout()
    auth.login("admin@example.org")
    listing = client.get("/admin/messages?kind=join_link").get_data(as_text=True)
    assert listing.count("Your new join link: Spring call") == 3 and "New join link" in listing


def test_admin_alerts_are_logged_paced_and_sent_once(app, client, auth, emulator, make_user):
    admin = auth.login_as_admin()
    make_user("second-admin@example.org", Role.admin)
    make_user("third-admin@example.org", Role.admin)
    set_quota(client, 2)
    connect_service_account(app, client)
    with app.app_context():
        connection.record_reconnect_required("AADSTS50173: the grant was revoked")
        assert connection.alert_admins_if_needed() == 3
        assert connection.alert_admins_if_needed() == 0  # once per breakage

    rows = send_paced(app, emulator, "admin_alert", per_pass=2)
    assert sorted(r.recipient for r in rows) == sorted([admin.email, "second-admin@example.org",
                                                        "third-admin@example.org"])
    assert all(r.event_id is None for r in rows)
    alert = next(e for e in emulator.acs.sent_emails if e.to[0]["address"] == "second-admin@example.org")
    assert alert.subject == "Foyer needs you to re-connect Microsoft 365"
    assert "AADSTS50173" in alert.plain_text and "http://localhost/admin/microsoft/" in alert.plain_text
    listing = client.get("/admin/messages?kind=admin_alert").get_data(as_text=True)
    assert "second-admin@example.org" in listing and "Admin alert" in listing


def test_a_lost_answer_is_asked_about_before_any_resend_and_no_call_waits_on_acs(app, client, auth, emulator,
                                                                                 confirmed, monkeypatch):
    event, ids = confirmed
    # ACS keeps the operation "Running" for a long time and asks to be polled only every 25 seconds.
    monkeypatch.setattr(emulator.config, "email_polls_to_complete", 1000)
    monkeypatch.setattr(emulator.config, "email_retry_after", 25)
    auth.login("owner@example.org")
    reissue(client, event, ids[0])
    # ACS accepts the send, then its answer is lost.
    emulator.faults.add(kind="drop", group="acs", path="/emails:send", process=True, count=1)
    started = time.monotonic()
    with app.app_context():
        outbox.drain(limit=500)
        (message,) = db.session.scalars(select(Message).where(Message.kind == "join_link")).all()
        assert message.status == MessageStatus.queued and message.attempts == 1
        db.session.execute(update(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}")
                           .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
        operation_id = message.operation_id
        outbox.drain(limit=500)
        message = db.session.scalar(select(Message).where(Message.kind == "join_link"))
        assert message.status == MessageStatus.sent and message.operation_status == "Running"
    assert time.monotonic() - started < 20  # neither attempt waited for ACS to finish

    acs = [r for r in emulator.requests_for("acs") if operation_id in (_header(r, "Operation-Id") or "")
           or r.path.endswith(f"/emails/operations/{operation_id}")]
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in acs]
    # Sent once; the second attempt asked ACS (which said "Running") instead of sending again. Only the
    # delivery-status polls follow.
    assert calls[:2] == [("POST", "emails:send"), ("GET", operation_id)]
    assert set(calls[2:]) <= {("GET", operation_id)}
    assert emulator.acs.duplicate_operation_ids() == []


def test_the_second_email_path_is_gone():
    assert importlib.util.find_spec("app.services.notifications") is None
    assert not hasattr(AcsEmailClient, "send")  # only submit (no waiting) and operation_status remain


def test_emails_queued_by_the_old_path_are_taken_into_the_message_log_and_sent_once(app, emulator, confirmed):
    """An upgrade can find plain emails still queued by the earlier second path (outbox kind "email.send")."""
    event, (ada_id, *_) = confirmed
    acs = app.extensions["microsoft"].acs_email
    already, never = str(uuid.uuid4()), str(uuid.uuid4())
    with app.app_context():
        # The earlier version had handed the first to ACS when the worker stopped; the second, not yet.
        acs.submit(EmailMessage(to=[("ada@example.org", "Ada")], subject="Thank you for joining", plain_text="Hi",
                                html="<p>Hi</p>"), operation_id=already)
        for address, operation_id, key in (("ada@example.org", already, f"registration:{ada_id}:followup"),
                                           ("admin@example.org", never, "admin-alert:reconnect:1:1")):
            outbox.enqueue("email.send", {"to": address, "name": "", "subject": "Thank you for joining",
                                          "text": "Hi", "html": "", "operation_id": operation_id, "attachments": []},
                           dedupe_key=f"email:{key}", event_id=event.id if address.startswith("ada") else None)
        db.session.commit()
        outbox.drain(limit=500)
        rows = {m.recipient: m for m in db.session.scalars(select(Message).where(Message.kind == "legacy"))}
        assert {a: (m.status, m.operation_id, m.event_id, m.registration_id) for a, m in rows.items()} == {
            "ada@example.org": (MessageStatus.sent, already, event.id, ada_id),  # erasure and retention find it
            "admin@example.org": (MessageStatus.sent, never, None, None)}
        items = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "email.send")).all()
        assert [i.status for i in items] == [OutboxStatus.done, OutboxStatus.done]
    per_operation = Counter(_header(r, "Operation-Id") for r in email_posts(emulator))
    assert per_operation[already] == 1 and per_operation[never] == 1  # ACS was asked, not sent to again
    assert emulator.acs.duplicate_operation_ids() == []
