"""Per-person privacy: everything Foyer holds about one registration (export), and its erasure.

Erasure keeps only an anonymous count on the event (`events.erased_registrations`). The seat is
freed through the registration engine first, so the waitlist moves on exactly as after a cancel;
then the registration, its answers and transitions go, and every queued or sent email that was
addressed to the person is removed (unsent) or emptied (sent: only the fact and status remain).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from app.models import Event, Message, MessageStatus, OutboxItem, OutboxStatus, Registration, User, db, utcnow
from app.services import catalog, registrations

logger = logging.getLogger(__name__)

#: Export format version, so people (and tools) can tell what they are reading.
EXPORT_VERSION = 1
#: What a sent email's record keeps once its recipient has been erased.
ERASED_PAYLOAD = {"erased": True}
#: Outbox rows already being sent by a worker: their record is emptied, not deleted.
_KEEP_STATUSES = (OutboxStatus.done, OutboxStatus.running)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _email_rows(reg: Registration) -> list[OutboxItem]:
    """The outbox emails about this registration: its own keyed messages, and anything else for this
    event addressed to the person (verification, re-sent links) unless the address is shared with
    another registration of theirs for the same event (then only the keyed ones are theirs for sure).
    """
    prefix = f"email:registration:{reg.id}:"
    shared = db.session.scalar(
        select(Registration.id).where(Registration.event_id == reg.event_id, Registration.email == reg.email,
                                      Registration.id != reg.id).limit(1)
    ) is not None
    rows = db.session.scalars(
        select(OutboxItem).where(OutboxItem.kind == "email.send", OutboxItem.event_id == reg.event_id)
        .order_by(OutboxItem.id)
    )
    mine = []
    for row in rows:
        payload = row.payload if isinstance(row.payload, dict) else {}
        addressed = str(payload.get("to", "")).lower() == reg.email.lower()
        if row.dedupe_key.startswith(prefix) or (addressed and not shared):
            mine.append(row)
    return mine


def _message_rows(reg: Registration) -> list[Message]:
    """The messages to this registration: its own, and others for this event to the person's address
    (unless another registration of theirs for the event shares it).
    """
    shared = db.session.scalar(
        select(Registration.id).where(Registration.event_id == reg.event_id, Registration.email == reg.email,
                                      Registration.id != reg.id).limit(1)
    ) is not None
    query = select(Message).where(Message.event_id == reg.event_id).order_by(Message.id)
    return [m for m in db.session.scalars(query)
            if m.registration_id == reg.id or (not shared and m.recipient.lower() == reg.email.lower())]


def export_registration(reg: Registration) -> dict[str, Any]:
    """Everything Foyer holds about one registration, as plain JSON-ready data."""
    event = reg.event
    emails = []
    for row in _email_rows(reg):
        payload = row.payload if isinstance(row.payload, dict) else {}
        emails.append({
            "subject": payload.get("subject", ""),
            "to": payload.get("to", ""),
            "text": payload.get("text", ""),
            "attachments": [a.get("name", "") for a in payload.get("attachments") or [] if isinstance(a, dict)],
            "status": row.status.value,
            "queued_at": _iso(row.created_at),
            "sent_at": _iso(row.completed_at),
        })
    for message in _message_rows(reg):
        emails.append({
            "subject": message.subject,
            "to": message.recipient,
            "text": message.body_text,
            "attachments": [a.get("name", "") for a in message.attachments or [] if isinstance(a, dict)],
            "status": message.status.value,
            "queued_at": _iso(message.created_at),
            "sent_at": _iso(message.sent_at),
        })
    return {
        "export_version": EXPORT_VERSION,
        "exported_at": _iso(utcnow()),
        "registration": {
            "first_name": reg.first_name,
            "last_name": reg.last_name,
            "email": reg.email,
            "timezone": reg.timezone,
            "phone": reg.phone,
            "sms_reminders": reg.sms_opt_in,
            "state": reg.state.value,
            "waitlist_position": registrations.waitlist_position(reg),
            "consent_version": reg.consent_version,
            "registered_at": _iso(reg.created_at),
            "confirmed_at": _iso(reg.confirmed_at),
            "cancelled_at": _iso(reg.cancelled_at),
            "updated_at": _iso(reg.updated_at),
            "joined_first_at": _iso(reg.first_joined_at),
            "last_seen_at": _iso(reg.last_seen_at),
        },
        "event": {
            "title": event.title,
            "url": catalog.event_url(event),
            "timezone": event.timezone,
            "starts_at": _iso(event.starts_at),
            "ends_at": _iso(event.ends_at),
            "status": event.status.value,
        },
        "answers": [{"question": a.question_label, "answer": a.value} for a in reg.answers],
        "history": [
            {"from": t.from_state, "to": t.to_state, "at": _iso(t.at), "by": t.actor_kind, "note": t.note}
            for t in reg.transitions
        ],
        "emails": emails,
    }


def erase_registration(reg: Registration, *, actor: User | None = None) -> Event:
    """Erase a registration for good (actor None: the attendee themself); returns its event.

    The seat is freed first through the registration engine (which promotes from the waitlist),
    then every row about the person is deleted or emptied; the event counts one more erasure.
    """
    if reg.is_active:
        registrations.cancel(reg, actor=actor, note="Personal data erased on request")
    event = reg.event
    reg_id = reg.id
    for row in _email_rows(reg):
        if row.status in _KEEP_STATUSES:
            # Sent (or being sent right now): keep that it happened, not what or to whom.
            row.payload = dict(ERASED_PAYLOAD)
            row.last_error = ""
        else:
            # Never sent: an erased person gets no more email (the cancellation included).
            db.session.delete(row)
    for message in _message_rows(reg):
        if message.status in (MessageStatus.sent, MessageStatus.sending):
            # Sent (or being sent right now): keep that it happened, not what or to whom.
            message.recipient, message.recipient_name, message.subject = "(erased)", "", "(erased)"
            message.body_text, message.body_html, message.attachments, message.last_error = "", "", [], ""
            item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
            if item is not None:
                item.payload = {"message_id": message.id, "attachments": [], **ERASED_PAYLOAD}
        else:
            item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
            if item is not None and item.status != OutboxStatus.running:
                db.session.delete(item)
            db.session.delete(message)
    db.session.delete(reg)  # answers and transitions go with it (ORM cascade and ON DELETE CASCADE)
    db.session.execute(
        update(Event).where(Event.id == event.id)
        .values(erased_registrations=Event.erased_registrations + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.refresh(event, ["erased_registrations"])
    logger.info("Registration %s of event %s erased by %s", reg_id, event.id, actor.id if actor else "the attendee")
    return event
