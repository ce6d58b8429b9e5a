"""Messages: every email or SMS Foyer sends to a person, one row per logical message, and the
organizer's per-event wording overrides.

A Message is rendered when it is queued (subject, HTML and text are kept, so the admin viewer shows
exactly what went out) and sent by the worker through the outbox. Its status follows the send:
queued -> sending -> sent (ACS accepted it) | failed | suppressed (deliberately not sent, e.g. a
reminder for an event that had already started). `delivery_status` is ACS's final word from polling
the operation.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import UTCDateTime, db, utcnow
from app.models.event import Event


class MessageStatus(enum.StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    suppressed = "suppressed"


class MessageChannel(enum.StrEnum):
    email = "email"
    sms = "sms"


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_event_kind_status", "event_id", "kind", "status"),
        #: The dispatcher's two questions: slots taken recently, and who is more urgent.
        Index("ix_messages_reserved_at", "reserved_at"),
        Index("ix_messages_status_deadline", "status", "deadline"),
        # SQLite would hand a deleted newest row's id to the next message; ids are never reused.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: One logical message: e.g. "registration:12:confirmed:40" or "reminder:3:60:12"; never sent twice.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[MessageChannel] = mapped_column(
        Enum(MessageChannel, name="message_channel", native_enum=False, length=10), default=MessageChannel.email
    )
    #: The message type: confirmed, pending, approved, denied, waitlisted, promoted, reminder, event_changed,
    #: event_cancelled, cancelled, organizer, verify, resend.
    kind: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, name="message_status", native_enum=False, length=20), default=MessageStatus.queued
    )
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("registrations.id", ondelete="SET NULL"),
                                                        index=True)
    #: Messages sent together (an organizer message, one reminder of an event) share a batch key.
    batch: Mapped[str | None] = mapped_column(String(120), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(400), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    #: name and contentType of each attachment, and its size once sent. The bytes are never kept here: a
    #: calendar invite is built when the email is sent, any other file lives in the outbox payload.
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    #: Sort key for the dispatcher (earliest first): the time by which the message should be out.
    deadline: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The client-chosen ACS Operation-Id (email) or the SMS message id.
    operation_id: Mapped[str] = mapped_column(String(100), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    #: ACS's final status of the operation (Succeeded / Failed / Canceled), from polling.
    delivery_status: Mapped[str] = mapped_column(String(30), default="")
    #: When a quota slot was taken for this message (the dispatcher counts these to pace itself).
    reserved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    event: Mapped[Event | None] = relationship()

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.kind} {self.status}>"


class MessageOverride(db.Model):
    """An organizer's own subject and intro paragraph (Markdown) for one message type of one event."""

    __tablename__ = "message_overrides"
    __table_args__ = (UniqueConstraint("event_id", "kind", name="uq_message_overrides_event_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    #: May use {title}; empty keeps Foyer's subject.
    subject: Mapped[str] = mapped_column(String(200), default="")
    #: Markdown, sanitised when rendered; empty keeps Foyer's intro.
    intro: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
