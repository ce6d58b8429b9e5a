"""Registrations: who signed up for which event, their answers, and every change of their state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Enum, ForeignKey, Index, String, Text, delete, func, insert, inspect, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Mapper, column_property, mapped_column, relationship

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


class EventSeat(db.Model):
    """One seat of an event: free, or taken by a confirmed registration (`Registration.seat_id`).

    Seats are rows, not a counter on the event, so that sign-ups for one event take different rows and
    commit side by side: a seat is claimed with one guarded UPDATE of a free row (PostgreSQL skips rows
    another transaction is claiming, `FOR UPDATE SKIP LOCKED`), and never twice. An event with a
    capacity has exactly `capacity` rows (`sync_seats`, on every flush that sets the capacity); an
    unlimited event has only its taken seats, each inserted when someone is confirmed. A taken seat
    stays taken when its registration is purged, so the count of seats taken outlives personal data.
    """

    __tablename__ = "event_seats"
    __table_args__ = (Index("ix_event_seats_event_taken", "event_id", "taken", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    taken: Mapped[bool] = mapped_column(default=False, server_default="0")


#: Seats taken: read when first used (one COUNT over the event's seat index), never written.
Event.confirmed_count = column_property(
    select(func.count()).where(EventSeat.event_id == Event.id, EventSeat.taken.is_(True))
    .correlate_except(EventSeat).scalar_subquery(),
    deferred=True,
)


def sync_seats(connection: Connection, event_id: int, capacity: int | None) -> None:
    """Make the event's free seats `capacity` minus the seats taken (none when unlimited).

    Run under the event's exclusive lock (or while nobody can register yet), so no claim races it.
    Taken seats are never touched: a capacity below them leaves no free seat (the engine refuses that).
    """
    seats = EventSeat.__table__
    taken = connection.scalar(select(func.count()).where(seats.c.event_id == event_id, seats.c.taken.is_(True)))
    free = connection.scalar(select(func.count()).where(seats.c.event_id == event_id, seats.c.taken.is_(False)))
    wanted = 0 if capacity is None else max(capacity - (taken or 0), 0)
    if (free or 0) > wanted:
        surplus = (select(seats.c.id).where(seats.c.event_id == event_id, seats.c.taken.is_(False))
                   .order_by(seats.c.id.desc()).limit(free - wanted))
        connection.execute(delete(seats).where(seats.c.id.in_(surplus.scalar_subquery())))
    elif (free or 0) < wanted:
        connection.execute(insert(seats), [{"event_id": event_id, "taken": False}] * (wanted - (free or 0)))


@sa_event.listens_for(Event, "after_insert")
def _seats_for_new_event(mapper: Mapper, connection: Connection, target: Event) -> None:
    if target.capacity:
        sync_seats(connection, target.id, target.capacity)


@sa_event.listens_for(Event, "after_update")
def _seats_follow_capacity(mapper: Mapper, connection: Connection, target: Event) -> None:
    if inspect(target).attrs.capacity.history.has_changes():
        sync_seats(connection, target.id, target.capacity)


class Registration(db.Model):
    __tablename__ = "registrations"
    __table_args__ = (
        # One active registration per person and event, enforced by the database under any rush.
        Index("uq_registrations_active_email", "event_id", "email", unique=True,
              postgresql_where=db.text(_ACTIVE_SQL), sqlite_where=db.text(_ACTIVE_SQL)),
        Index("ix_registrations_event_state", "event_id", "state", "created_at"),
        Index("ix_registrations_event_attended", "event_id", "attended"),
        # The organizer's table sorts by these within one event (see services/registration/roster.py).
        Index("ix_registrations_event_created", "event_id", "created_at", "id"),
        Index("ix_registrations_event_email", "event_id", "email", "id"),
        Index("ix_registrations_event_name", "event_id", "last_name", "first_name", "id"),
        # A seat is held by one registration at most.
        Index("uq_registrations_seat_id", "seat_id", unique=True),
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
    #: The language the attendee registered in (e.g. "de"); their emails are written in it. None: the default.
    language: Mapped[str | None] = mapped_column(String(16))
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
    #: The seat a confirmed registration holds (`EventSeat`); NULL in every other state.
    seat_id: Mapped[int | None] = mapped_column(ForeignKey("event_seats.id", ondelete="SET NULL"))
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
