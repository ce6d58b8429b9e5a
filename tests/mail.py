"""Queued emails as tests read them: one dict per Message row (to, name, subject, text, html,
attachments as the sender builds them from the outbox item, dedupe_key, status), in queue order."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Message, MessageChannel, OutboxItem
from app.services.messaging.attachments import message_attachments
from app.services.messaging.queueing import words_of


def queued_emails(**filters) -> list[dict]:
    """Every email message (optionally only those `to` one address), oldest first.

    Attachments come from the sender's own code (`message_attachments`): a calendar invite is built
    from the registration and event as they are now, as it would be if the email went out now.
    """
    rows = db.session.scalars(select(Message).where(Message.channel == MessageChannel.email).order_by(Message.id))
    items = {i.dedupe_key: i for i in db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "message.send"))}
    out = []
    for m in rows:
        item = items.get(f"message:{m.dedupe_key}")
        words = words_of(m)  # one queued to be written as it is sent: as the sender would write it now
        out.append({"to": m.recipient, "name": m.recipient_name, "subject": words.subject, "text": words.text,
                    "html": words.html, "kind": m.kind, "status": m.status.value, "dedupe_key": m.dedupe_key,
                    "attachments": message_attachments(item.payload) if item is not None else [],
                    "message": m})
    if "to" in filters:
        out = [p for p in out if p["to"] == filters["to"]]
    return out
