"""Registrations: who signed up for which event, their answers, and every change of their state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import UTCDateTime, db, utcnow
from app.models.event import Event, Question


class RegistrationState(enum.StrEnum):
    #: Held until the attendee confirms their address (events with email verification).
    unverified = "unverified"
    #: Waiting for an organizer's approval; takes a seat only once approved.
    pending = "pending"
    confirmed = "confirmed"
    waitlisted = "waitlisted"
    denied = "denied"
    cancelled = "cancelled"


#: States that make a registration "active": at most one per (event, email).
ACTIVE_STATES = (
    RegistrationState.unverified,
    RegistrationState.pending,
    RegistrationState.confirmed,
    RegistrationState.waitlisted,
)
_ACTIVE_SQL = "state IN ('unverified', 'pending', 'confirmed', 'waitlisted')"


class Registration(db.Model):
    __tablename__ = "registrations"
    __table_args__ = (
        # One active registration per person and event, enforced by the database under any rush.
        Index("uq_registrations_active_email", "event_id", "email", unique=True,
              postgresql_where=db.text(_ACTIVE_SQL), sqlite_where=db.text(_ACTIVE_SQL)),
        Index("ix_registrations_event_state", "event_id", "state", "created_at"),
        Index("ix_registrations_event_attended", "event_id", "attended"),
        # The organizer's table sorts by these within one event (see services/roster.py).
        Index("ix_registrations_event_created", "event_id", "created_at", "id"),
        Index("ix_registrations_event_email", "event_id", "email", "id"),
        Index("ix_registrations_event_name", "event_id", "last_name", "first_name", "id"),
        # SQLite would hand a deleted newest row's id to the next registration; ids are never reused.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    state: Mapped[RegistrationState] = mapped_column(
        Enum(RegistrationState, name="registration_state", native_enum=False, length=20)
    )
    #: Normalised (lower-cased) address: the identity of the registrant for this event.
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    #: The attendee's own IANA zone, for emails and pages.
    timezone: Mapped[str] = mapped_column(String(64))
    #: Mobile number in E.164 (e.g. +4915123456789) for SMS reminders; only kept with `sms_opt_in`.
    phone: Mapped[str | None] = mapped_column(String(20))
    #: The attendee asked for reminders by SMS (a consent of its own).
    sms_opt_in: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: Version of the privacy notice the attendee agreed to.
    consent_version: Mapped[int | None]
    #: sha256 of the personal manage-link token (the token itself is never stored).
    manage_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The manage-link token encrypted at rest (MultiFernet), so later emails can repeat the personal link.
    manage_token_encrypted: Mapped[str | None] = mapped_column(Text)
    #: sha256 of the personal join-link token, while one is issued.
    join_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: The join-link token encrypted at rest, so emails, invites and organizers can repeat the link.
    join_token_encrypted: Mapped[str | None] = mapped_column(Text)
    #: sha256 of the last join token the organizer revoked, so that link says "replaced" rather than "unknown".
    join_token_revoked_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: sha256 of the email-verification token, and when the unverified hold lapses.
    verify_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    verify_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Bumped on every change attendees see in their calendar invite (iCalendar SEQUENCE offset).
    ics_sequence: Mapped[int] = mapped_column(default=0)
    #: The ACS identity used to join the Teams meeting, once created.
    acs_user_id: Mapped[str | None] = mapped_column(String(200))
    first_joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the attendee last left the call from the join page (None while in it or never joined).
    last_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: After the event: True / False once attendance is known (Graph reports merged with Foyer's own join
    #: records), NULL before that.
    attended: Mapped[bool | None]
    #: Earliest join over every source, and the time present (overlapping intervals counted once).
    attendance_first_join_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attendance_seconds: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    event: Mapped[Event] = relationship()
    answers: Mapped[list[RegistrationAnswer]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", order_by="RegistrationAnswer.id"
    )
    transitions: Mapped[list[RegistrationTransition]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", order_by="RegistrationTransition.id"
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def attendance_minutes(self) -> int | None:
        return None if self.attendance_seconds is None else round(self.attendance_seconds / 60)

    def __repr__(self) -> str:
        return f"<Registration {self.id} {self.state}>"


class RegistrationAnswer(db.Model):
    __tablename__ = "registration_answers"
    #: The organizer's answer filters look up one registration's answer to one question.
    __table_args__ = (Index("ix_registration_answers_registration_question", "registration_id", "question_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), index=True)
    #: NULL once the organizer deletes the question; the label is kept for exports.
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"), index=True)
    question_label: Mapped[str] = mapped_column(String(300))
    #: A string (text, single choice), a list of strings (multiple choice) or a bool (checkbox).
    value: Mapped[Any] = mapped_column(JSON)

    registration: Mapped[Registration] = relationship(back_populates="answers")
    question: Mapped[Question | None] = relationship()


class RegistrationTransition(db.Model):
    """Every state change: from, to, when, and who (an organizer, the attendee, or the system)."""

    __tablename__ = "registration_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: "attendee", "system", or "organizer" (with actor_user_id).
    actor_kind: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")

    registration: Mapped[Registration] = relationship(back_populates="transitions")
