"""Admin → Messages: the list with filters, the email in a sandboxed frame under its own policy,
retrying a failed message, and the quota form."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import EventStatus, Message, MessageStatus, Registration, Role
from app.services.messaging import dispatch, queueing
from app.services.outbox import outbox
from tests.mail import queued_emails


def _register(client, event, email, first="Ada"):
    return client.submit(f"/events/{event.slug}/register",
                         {"first_name": first, "last_name": "L", "email": email, "timezone": "UTC", "consent": "y"})


def _send_everything(app) -> None:
    with app.app_context():
        while outbox.drain(limit=100):
            pass


def test_admin_lists_filters_and_shows_a_message_in_a_sandboxed_frame(app, client, auth, make_event, make_user):
    owner = make_user("owner@example.org", Role.organizer)
    one = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), title="First <b>event</b>")
    two = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), title="Second event")
    _register(client, one, "ada@example.org", first="<script>alert(1)</script>")
    _register(client, two, "bob@example.org")
    auth.login_as_admin()
    page = client.get("/admin/messages").get_data(as_text=True)
    assert "ada@example.org" in page and "bob@example.org" in page and "<script>alert" not in page
    only_two = client.get(f"/admin/messages?event={two.id}").get_data(as_text=True)
    assert "bob@example.org" in only_two and "ada@example.org" not in only_two
    assert "No messages match." in client.get("/admin/messages?status=failed").get_data(as_text=True)
    assert "ada@example.org" in client.get("/admin/messages?kind=confirmed&status=queued").get_data(as_text=True)
    assert client.get("/admin/messages?event=x&page=y&kind=<x>").status_code == 200  # junk filters are ignored

    # A registration's email is written as it is sent: until then the viewer says so.
    assert "(written as it is sent)" in page
    with app.app_context():
        message_id = db.session.scalar(select(Message.id).where(Message.recipient == "ada@example.org"))
    queued = client.get(f"/admin/messages/{message_id}").get_data(as_text=True)
    assert "Foyer writes this email as it sends it" in queued and "sandbox=" not in queued

    _send_everything(app)
    detail = client.get(f"/admin/messages/{message_id}").get_data(as_text=True)
    assert "Foyer writes this email" not in detail and "registered: First" in detail  # its subject, once written
    assert f'src="/admin/messages/{message_id}/html"' in detail and 'sandbox=""' in detail
    frame = client.get(f"/admin/messages/{message_id}/html")
    csp = frame.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "sandbox" in csp
    assert "frame-ancestors 'self'" in csp and frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    body = frame.get_data(as_text=True)
    assert "registered for First &lt;b&gt;event" in body and "<script>alert" not in body
    assert client.get("/admin/messages/999999").status_code == 404


@pytest.mark.db_agnostic
def test_organizers_cannot_see_the_admin_viewer(client, auth):
    auth.login_as_organizer()
    assert client.get("/admin/messages").status_code == 404


def test_admin_retries_a_failed_message(app, client, auth, make_event, make_user, monkeypatch):
    emulator = app.extensions["microsoft"].emulator
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ("ada@example.org",))
    _register(client, event, "ada@example.org")
    with app.app_context():
        while outbox.drain(limit=100):
            pass
        (mail,) = queued_emails()
        assert mail["status"] == "failed"
        message_id, first_operation = mail["message"].id, mail["message"].operation_id
    auth.login_as_admin()
    detail = client.get(f"/admin/messages/{message_id}").get_data(as_text=True)
    assert "Retry sending" in detail and "EmailDropped" in detail
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ())
    response = client.submit(f"/admin/messages/{message_id}/retry")
    assert response.status_code == 303
    with app.app_context():
        while outbox.drain(limit=100):
            pass
        message = db.session.get(Message, message_id)
        assert message.status == MessageStatus.sent and message.operation_id != first_operation
    assert len(emulator.acs.sent_emails) == 2 and emulator.acs.duplicate_operation_ids() == []
    # A sent message cannot be retried.
    again = client.submit(f"/admin/messages/{message_id}/retry")
    assert "Only failed messages can be retried." in client.get(again.headers["Location"]).get_data(as_text=True)


def test_admin_sets_the_quota_and_bad_values_are_422(app, client, auth):
    auth.login_as_admin()
    page = client.get("/admin/messages").get_data(as_text=True)
    assert "Currently 30 per minute and 100 per hour" in page
    bad = client.submit("/admin/messages/quota", {"per_minute": "ten", "per_hour": "5"})
    assert bad.status_code == 422
    smaller = client.submit("/admin/messages/quota", {"per_minute": "50", "per_hour": "10"})
    assert smaller.status_code == 422 and "cannot be smaller" in smaller.get_data(as_text=True)
    ok = client.submit("/admin/messages/quota", {"per_minute": "5", "per_hour": "10"})
    assert ok.status_code == 303
    with app.app_context():
        assert dispatch.get_quota() == dispatch.Quota(5, 10)


def test_the_viewer_masks_personal_links(app, client, auth, make_event, make_user):
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))
    _register(client, event, "ada@example.org")
    _send_everything(app)
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.recipient == "ada@example.org"))
        message_id, stored = message.id, (message.body_html or "") + (message.body_text or "")
    tokens = re.findall(r"/(?:r|j|registrations/verify)/([A-Za-z0-9_-]{16,})", stored)
    assert tokens  # the stored email holds the attendee's personal link
    auth.login_as_admin()
    detail = client.get(f"/admin/messages/{message_id}").get_data(as_text=True)
    frame = client.get(f"/admin/messages/{message_id}/html").get_data(as_text=True)
    for token in tokens:
        assert token not in detail and token not in frame
    assert "[redacted]" in detail and "[redacted]" in frame


def test_an_email_never_written_is_listed_as_such_not_as_an_sms(app, client, auth, make_event, make_user):
    """A reminder recorded as not sent (the event had started) has no words: the list says so."""
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))
    _register(client, event, "ada@example.org")
    with app.app_context():
        registration = db.session.scalar(select(Registration))
        queueing.record_suppressed("reminder", event=registration.event, registration=registration,
                                   dedupe_key="reminder:test", reason="Not sent: the event had already started.")
        db.session.commit()
    auth.login_as_admin()
    page = client.get("/admin/messages?kind=reminder").get_data(as_text=True)
    assert "(not written)" in page and "(SMS)" not in page
    with app.app_context():
        message_id = db.session.scalar(select(Message.id).where(Message.kind == "reminder"))
    detail = client.get(f"/admin/messages/{message_id}").get_data(as_text=True)
    assert "This email was never written: it was not sent." in detail and "already started" in detail
