"""The outbox: side effects (Graph calls, emails) written in the same transaction as their cause,
performed later by the worker with retries; the dedupe key makes each one idempotent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import UTCDateTime, db, utcnow


class OutboxStatus(enum.StrEnum):
    pending = "pending"  #: due at `next_attempt_at`
    running = "running"  #: claimed by a worker until `locked_until`
    waiting = "waiting"  #: parked until the Microsoft connection is repaired
    done = "done"
    failed = "failed"  #: gave up (permanent error or too many attempts)


class OutboxItem(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Which handler performs it, e.g. "teams.provision".
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Unique per logical side effect, e.g. "teams.provision:12:3"; a second enqueue is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(OutboxStatus, name="outbox_status", native_enum=False, length=20), default=OutboxStatus.pending
    )
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=10)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Raised by every claim: the worker holding claim N may settle the item, or call a provider for it,
    #: only while the item is still at N (a worker that outlived its lease finds a newer claim).
    claim_version: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, default="")
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<OutboxItem {self.id} {self.kind} {self.status}>"
