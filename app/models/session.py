"""A course's sessions: one registration, several dated sessions, each with its own Teams meeting,
join window, reminders and attendance.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext
from sqlalchemy import CheckConstraint, Enum, ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import LocalTimes, UTCDateTime, db, utcnow
from app.models.event import Event, ProvisioningStatus


def session_label(number: int, name: str = "") -> str:
    """A session as people read it, in their language: "Session 2" or "Session 2: Testing"."""
    if name:
        return gettext("Session %(num)s: %(name)s", num=number, name=name)
    return gettext("Session %(num)s", num=number)


class EventSession(LocalTimes, db.Model):
    """One session of a course. The event's own start and end span its sessions."""

    __tablename__ = "event_sessions"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    #: Optional, e.g. "Week 2: Testing"; the public page numbers sessions either way.
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    provisioning_status: Mapped[ProvisioningStatus] = mapped_column(
        Enum(ProvisioningStatus, name="provisioning_status", native_enum=False, length=20),
        default=ProvisioningStatus.not_requested,
    )
    provisioning_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    graph_event_id: Mapped[str | None] = mapped_column(String(255))
    online_meeting_id: Mapped[str | None] = mapped_column(String(512))
    #: Stored verbatim: Teams join URLs carry %-escapes that must not be decoded.
    join_url: Mapped[str | None] = mapped_column(Text)
    join_meeting_id: Mapped[str | None] = mapped_column(String(64))
    join_passcode: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())

    event: Mapped[Event] = relationship(back_populates="sessions")

    @property
    def timezone(self) -> str:
        return self.event.timezone

    @property
    def number(self) -> int:
        """1 for the first session by start time."""
        return next((i for i, s in enumerate(self.event.sessions, 1) if s.id == self.id), 0)

    @property
    def label(self) -> str:
        """"Session 2" or "Session 2: Testing", in the reader's language."""
        return session_label(self.number, self.name)

    @property
    def english_label(self) -> str:
        """The label as records keep it, whoever's request wrote them: audit summaries, Teams meetings."""
        return f"Session {self.number}: {self.name}" if self.name else f"Session {self.number}"

    @property
    def title(self) -> str:
        """The calendar subject of the session's Teams meeting."""
        return f"{self.event.title} — {self.english_label}"

    @property
    def is_cancelled(self) -> bool:
        return self.event.is_cancelled

    def __repr__(self) -> str:
        return f"<EventSession {self.id} of event {self.event_id}>"


class SessionAttendance(db.Model):
    """Whether and how long one registrant attended one session (from the import and Foyer's join page)."""

    __tablename__ = "session_attendances"

    session_id: Mapped[int] = mapped_column(ForeignKey("event_sessions.id", ondelete="CASCADE"), primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"),
                                                 primary_key=True, index=True)
    #: Foyer's own join record for this session (the join page), as on the registration for the whole event.
    first_joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Set by the attendance import: None until then.
    attended: Mapped[bool | None]
    seconds: Mapped[int | None]
