"""Messages: every email or SMS Foyer sends to a person, one row per logical message, and the
organizer's per-event wording overrides.

A Message is rendered when it is queued (subject, HTML and text are kept, so the admin viewer shows
exactly what went out) and sent by the worker through the outbox. Its status follows the send:
queued -> sending -> sent (handed to ACS) | failed | suppressed (deliberately not sent, e.g. a
reminder for an event that had already started).

What happened after the hand-over is kept apart, because ACS reports it apart:
* `operation_status` is the ACS send operation's status from polling (Running, then Succeeded or Failed;
  "Accepted" for an SMS). Succeeded means ACS accepted the email for delivery, not that it arrived.
* `delivery` is the recipient's outcome from ACS's delivery report (an Event Grid event posted to
  Foyer's webhook): Delivered, Bounced, Suppressed, Failed, FilteredSpam, Quarantined, Expanded (email)
  or Delivered / Failed (SMS), with ACS's details and the time of the delivery attempt.
Each report event is recorded once in `message_delivery_reports` (Event Grid delivers at least once).
"""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
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
        #: Delivery reports name the message by its ACS id.
        Index("ix_messages_operation_id", "operation_id"),
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
    #: The ACS send operation's status from polling (Running / Succeeded / Failed / Canceled; SMS: Accepted).
    #: Succeeded means accepted for delivery; whether it arrived is `delivery`.
    operation_status: Mapped[str] = mapped_column(String(30), default="")
    #: The delivery report's status as ACS words it (Delivered, Bounced, Suppressed, Failed, …); "" until one arrives.
    delivery: Mapped[str] = mapped_column(String(30), default="")
    #: ACS's explanation with the report (e.g. the receiving server's bounce message).
    delivery_details: Mapped[str] = mapped_column(Text, default="")
    #: When ACS attempted the delivery it reports.
    delivery_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When a quota slot was taken for this message (the dispatcher counts these to pace itself).
    reserved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    event: Mapped[Event | None] = relationship()

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.kind} {self.status}>"

    @property
    def delivery_problem(self) -> bool:
        """ACS reported that the message did not reach the recipient."""
        return bool(self.delivery) and self.delivery not in DELIVERED_STATUSES

    @property
    def delivery_text(self) -> str:
        """The reported delivery in organizers' words, with ACS's reason for a problem: "Bounced (550 …)"."""
        if not self.delivery:
            return ""
        words = str(DELIVERY_LABELS.get(self.delivery, self.delivery))
        if self.delivery_problem and self.delivery_details:
            return f"{words} ({self.delivery_details})"
        return words


#: Delivery-report statuses that mean the message arrived (Expanded: handed to a distribution list's members).
DELIVERED_STATUSES = frozenset({"Delivered", "Expanded"})
#: What organizers read for each status a delivery report can carry (ACS's own words stay in `delivery`).
DELIVERY_LABELS = {
    "Delivered": _l("Delivered"),
    "Expanded": _l("Delivered (to a distribution list)"),
    "Bounced": _l("Bounced"),
    "Suppressed": _l("Suppressed"),
    "Failed": _l("Not delivered"),
    "FilteredSpam": _l("Filtered as spam"),
    "Quarantined": _l("Quarantined"),
}


class MessageDeliveryReport(db.Model):
    """One ACS delivery-report event as received (its Event Grid id), so a redelivery is recognised."""

    __tablename__ = "message_delivery_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The Event Grid event id; Event Grid may deliver the same event more than once.
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


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
