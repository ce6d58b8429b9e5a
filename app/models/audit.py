"""The audit log: who did what to which object, and when. Written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import UTCDateTime, db, utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
        Index("ix_audit_log_event_at", "event_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The staff member who acted; NULL for the attendee themself, the worker, or a deleted user.
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    #: Who acted, as shown: a staff member's address at the time, "attendee", "system" or "anonymous".
    actor_label: Mapped[str] = mapped_column(String(320), default="")
    #: Dotted verb, e.g. "event.publish", "registration.approve", "export.registrations_csv", "auth.login".
    action: Mapped[str] = mapped_column(String(60))
    #: What was acted on: ("event", "12"), ("registration", "345"), ("user", "3"), ("setting", "branding").
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(100), default="")
    #: The event concerned, kept for filtering even after the event is deleted (no foreign key).
    event_id: Mapped[int | None]
    #: One line a person can read. Never a secret, never an attendee's personal data.
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The client address of the request, when there was one.
    ip: Mapped[str] = mapped_column(String(64), default="")

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.action}>"
