"""SMS reminders over TLS: the opt-in on the registration form (validated with phonenumbers), the
reminder sent through azure-communication-sms to the emulator, and its result recorded per message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Message, MessageChannel, MessageStatus, Registration, Role, User
from app.services.outbox import outbox
from app.services.registration import reminders
from tests.conftest import Client


def _event() -> Event:
    owner = User(email="owner@example.org", name="Owner", role=Role.organizer)
    db.session.add(owner)
    db.session.flush()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=50)
    event = Event(slug="sms-event", title="SMS <event>", timezone="Europe/Berlin", starts_at=start,
                  ends_at=start + timedelta(hours=1), status=EventStatus.published, published_at=datetime.now(UTC),
                  owner_id=owner.id, reminder_offsets=[60])
    db.session.add(event)
    db.session.commit()
    return event


def _register(client, data):
    base = {"first_name": "Ada", "last_name": "L", "email": "ada@example.org", "timezone": "UTC", "consent": "y"}
    return client.submit("/events/sms-event/register", {**base, **data})


def test_sms_opt_in_is_validated_and_reminders_go_out_by_sms(tls_ctx, emulator):
    event = _event()
    tls_ctx.test_client_class = Client
    client = tls_ctx.test_client()
    page = client.get("/events/sms-event").get_data(as_text=True)
    assert "Reminders by SMS" in page and 'autocomplete="tel"' in page

    bad = _register(client, {"sms_opt_in": "y", "phone": "12345"})
    assert bad.status_code == 422 and "country code" in bad.get_data(as_text=True)
    landline = _register(client, {"sms_opt_in": "y", "phone": "+44 20 7946 0958"})
    assert landline.status_code == 422 and "not a mobile number" in landline.get_data(as_text=True)
    # A number typed without ticking the box is not kept.
    assert _register(client, {"email": "bob@example.org", "phone": "+44 7911 123456"}).status_code in (200, 303)
    ok = _register(client, {"sms_opt_in": "y", "phone": "+44 7911 123 456"})
    assert ok.status_code in (200, 303)
    db.session.rollback()
    people = {r.email: r for r in db.session.scalars(select(Registration))}
    assert people["ada@example.org"].phone == "+447911123456" and people["ada@example.org"].sms_opt_in
    assert people["bob@example.org"].phone is None and not people["bob@example.org"].sms_opt_in
    for reg in people.values():
        reg.confirmed_at = datetime.now(UTC) - timedelta(days=1)
    db.session.commit()

    reminders.sweep()
    db.session.commit()
    while outbox.drain(limit=100):
        pass

    (sms,) = emulator.acs.sms_messages
    assert sms.to == "+447911123456" and sms.from_ == "+18005550100"
    assert sms.message.startswith("Reminder: SMS <event> starts in ") and "/events/sms-event" in sms.message
    db.session.rollback()
    (row,) = db.session.scalars(select(Message).where(Message.channel == MessageChannel.sms)).all()
    assert row.status == MessageStatus.sent and row.operation_id == sms.message_id
    assert row.dedupe_key == f"reminder-sms:{event.id}:60:{people['ada@example.org'].id}"
    emails = db.session.scalars(select(Message).where(Message.kind == "reminder",
                                                      Message.channel == MessageChannel.email)).all()
    assert len(emails) == 2  # everyone confirmed still gets the email reminder


def test_an_sms_the_network_refuses_is_recorded_as_failed(tls_ctx, emulator, monkeypatch):
    event = _event()
    monkeypatch.setattr(emulator.config, "sms_fail_numbers", ("+447911123456",))
    tls_ctx.test_client_class = Client
    client = tls_ctx.test_client()
    assert _register(client, {"sms_opt_in": "y", "phone": "+447911123456"}).status_code in (200, 303)
    db.session.rollback()
    for reg in db.session.scalars(select(Registration)):
        reg.confirmed_at = datetime.now(UTC) - timedelta(days=1)
    db.session.commit()
    reminders.sweep()
    db.session.commit()
    while outbox.drain(limit=100):
        pass
    db.session.rollback()
    (row,) = db.session.scalars(select(Message).where(Message.channel == MessageChannel.sms)).all()
    assert row.status == MessageStatus.failed and "cannot receive" in row.last_error
    assert event.id
