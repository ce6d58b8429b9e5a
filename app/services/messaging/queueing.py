"""Queueing: one logical message is one `Message` row under a unique dedupe key and one outbox item, written
in the caller's transaction; a key recorded before makes queueing it again a no-op.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.models import Event, Message, MessageChannel, MessageStatus, OutboxItem, Registration, db, utcnow
from app.models.base import insert_unless_exists
from app.services.core import crypto
from app.services.messaging.attachments import invite_description
from app.services.messaging.kinds import RECIPIENT_NAME_MAX, clean_header, new_operation_id
from app.services.messaging.rendering import Rendered, render_deferred
from app.services.outbox import outbox


def existing_message(dedupe_key: str) -> Message | None:
    """The message recorded under this key, if any."""
    return db.session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))


def words_of(message: Message) -> Rendered:
    """What a message says: its stored words, or, for an email queued to be written as it is sent and not
    sent yet, the words it would be written with now (nothing is stored).
    """
    stored = Rendered(subject=message.subject, html=message.body_html, text=message.body_text)
    if message.body_text or message.channel != MessageChannel.email:
        return stored
    payload = db.session.scalar(select(OutboxItem.payload)
                                .where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
    spec = payload.get("render") if isinstance(payload, dict) else None
    return (render_deferred(spec) if spec else None) or stored


def insert_message(message: Message) -> Message | None:
    """Record a message; None when its key was recorded before (or by a concurrent transaction first)."""
    return insert_unless_exists(message, "dedupe_key")


def queue_email(kind: str, *, event: Event | None, to: str, name: str, dedupe_key: str,
                rendered: Rendered | None = None, render: dict[str, Any] | None = None,
                registration: Registration | None = None, attachments: list[tuple[str, str, bytes]] | None = None,
                invite: dict[str, Any] | None = None, deadline: datetime | None = None,
                batch: str | None = None, secret_link: str | None = None) -> Message | None:
    """Record one email and queue its sending, in the caller's transaction; a repeated key is a no-op.

    The email is either `rendered` now or written as it is sent from `render`, a spec of plain values
    (ids, numbers, text) that the registered `deferred_renderer` turns into the email: the request that
    queues it then renders nothing, and the email shows the event as it is when it goes out.
    `invite` is an invitation spec (registration emails' `invite_spec`): the .ics is built when the email
    is sent, by the registered `invite_builder`.
    `event` is None for staff emails. `secret_link` replaces SECRET_LINK in the body as it is sent.
    """
    if (rendered is None) == (render is None):
        raise ValueError("an email is either rendered now or has a spec to be written from as it is sent")
    now = utcnow()
    files = [{"name": clean_header(n), "contentType": t, "contentInBase64": base64.b64encode(b).decode()}
             for n, t, b in (attachments or [])]
    described = [{"name": f["name"], "contentType": f["contentType"], "size": len(b)}
                 for f, (_, _, b) in zip(files, attachments or [], strict=True)]
    if invite is not None:
        described.append(invite_description(invite["method"]))  # its size is recorded once it is built
    message = insert_message(Message(
        dedupe_key=dedupe_key, channel=MessageChannel.email, kind=kind, status=MessageStatus.queued,
        event_id=event.id if event is not None else None,
        registration_id=registration.id if registration is not None else None, batch=batch,
        recipient=to, recipient_name=clean_header(name)[:RECIPIENT_NAME_MAX],
        subject=rendered.subject if rendered is not None else "",
        body_text=rendered.text if rendered is not None else "",
        body_html=rendered.html if rendered is not None else "", attachments=described,
        deadline=deadline or now + timedelta(minutes=10), operation_id=new_operation_id(),
        created_at=now,
    ))
    if message is None:
        return None
    payload: dict[str, Any] = {"message_id": message.id, "attachments": files}
    if invite is not None:
        payload["invite"] = invite
    if render is not None:
        payload["render"] = render
    if secret_link is not None:
        payload["secret_link"] = crypto.encrypt(secret_link)
    outbox.enqueue("message.send", payload, dedupe_key=f"message:{dedupe_key}",
                   event_id=event.id if event is not None else None)
    return message


def queue_sms(kind: str, *, event: Event, registration: Registration, dedupe_key: str, body: str,
              deadline: datetime | None = None, batch: str | None = None) -> Message | None:
    """Record one SMS and queue its sending (the registrant opted in and gave a number)."""
    if not registration.phone:
        return None
    message = insert_message(Message(
        dedupe_key=dedupe_key, channel=MessageChannel.sms, kind=kind, status=MessageStatus.queued,
        event_id=event.id, registration_id=registration.id, batch=batch, recipient=registration.phone,
        recipient_name=clean_header(registration.full_name)[:RECIPIENT_NAME_MAX], subject="", body_text=body,
        body_html="",
        deadline=deadline or utcnow() + timedelta(minutes=10), created_at=utcnow(),
    ))
    if message is None:
        return None
    outbox.enqueue("message.send", {"message_id": message.id, "attachments": []},
                   dedupe_key=f"message:{dedupe_key}", event_id=event.id)
    return message


def record_suppressed(kind: str, *, event: Event, registration: Registration, dedupe_key: str, reason: str,
                      batch: str | None = None, channel: MessageChannel = MessageChannel.email) -> Message | None:
    """Record a message deliberately not sent (e.g. a reminder for an event that already started)."""
    return insert_message(Message(
        dedupe_key=dedupe_key, channel=channel, kind=kind, status=MessageStatus.suppressed, event_id=event.id,
        registration_id=registration.id, batch=batch, recipient=registration.email if channel == "email"
        else (registration.phone or ""), recipient_name=clean_header(registration.full_name)[:RECIPIENT_NAME_MAX],
        last_error=reason, operation_id="", created_at=utcnow(),
    ))
