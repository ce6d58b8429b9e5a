"""Events and what hangs off them: speakers, registration questions, co-organizers and their title and
description in other languages.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, attribute_keyed_dict, mapped_column, relationship

from app.models.base import LocalTimes, UTCDateTime, db, utcnow
from app.models.user import User

if TYPE_CHECKING:
    from app.models.session import EventSession


class EventStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    cancelled = "cancelled"


class ProvisioningStatus(enum.StrEnum):
    """Where the event's Teams meeting stands (filled in by the Microsoft layer)."""

    not_requested = "not_requested"
    pending = "pending"
    ready = "ready"
    failed = "failed"


class QuestionKind(enum.StrEnum):
    short_text = "short_text"
    long_text = "long_text"
    single_choice = "single_choice"
    multiple_choice = "multiple_choice"
    checkbox = "checkbox"

    @property
    def label(self) -> LazyString:
        """The kind's name, in the language of wherever it is shown."""
        return QUESTION_KIND_LABELS[self]

    @property
    def has_options(self) -> bool:
        return self in (QuestionKind.single_choice, QuestionKind.multiple_choice)


QUESTION_KIND_LABELS = {
    QuestionKind.short_text: _l("Short text"),
    QuestionKind.long_text: _l("Long text"),
    QuestionKind.single_choice: _l("Single choice"),
    QuestionKind.multiple_choice: _l("Multiple choice"),
    QuestionKind.checkbox: _l("Checkbox"),
}

DEFAULT_REMINDER_OFFSETS = [24 * 60, 60]  #: minutes before the start


class EventOrganizer(db.Model):
    """A co-organizer: a user who may manage an event they do not own."""

    __tablename__ = "event_organizers"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class Event(LocalTimes, db.Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    #: Markdown as the organizer typed it; rendered and sanitised on display.
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[EventStatus] = mapped_column(
        Enum(EventStatus, name="event_status", native_enum=False, length=20), default=EventStatus.draft, index=True
    )
    #: IANA zone the organizer scheduled in; start/end are stored in UTC.
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: NULL means unlimited.
    capacity: Mapped[int | None]
    registration_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    registration_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approval_required: Mapped[bool] = mapped_column(default=False)
    waitlist_enabled: Mapped[bool] = mapped_column(default=True)
    #: Reminder offsets in minutes before the start, e.g. [1440, 60].
    reminder_offsets: Mapped[list[int]] = mapped_column(JSON, default=lambda: list(DEFAULT_REMINDER_OFFSETS))
    #: Stored file name of the banner under the upload folder.
    banner_filename: Mapped[str | None] = mapped_column(String(100))
    banner_alt: Mapped[str] = mapped_column(String(300), default="")
    #: A small copy of the banner for the catalogue's cards, made once when the banner is uploaded.
    banner_thumb_filename: Mapped[str | None] = mapped_column(String(100))
    cancellation_reason: Mapped[str] = mapped_column(Text, default="")
    #: Bumped on every attendee-visible change (iCalendar SEQUENCE).
    ics_sequence: Mapped[int] = mapped_column(default=0)

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    #: The recurring series this event is one occurrence of (each occurrence has its own registration).
    series_id: Mapped[int | None] = mapped_column(ForeignKey("event_series.id", ondelete="SET NULL"), index=True)
    co_organizers: Mapped[list[User]] = relationship(secondary="event_organizers", order_by="User.email")

    #: Seats taken (`confirmed_count`) are counted from the event's seat rows (`EventSeat` in
    #: models/registration.py), which the registration engine claims and frees one row each.
    #: "everyone", or "organization" (only addresses at the organization's domains; verification forced).
    who_can_register: Mapped[str] = mapped_column(String(20), default="everyone", server_default="everyone")
    #: Hold registrations until the attendee clicks the link in a verification email.
    require_email_verification: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: Registrations erased at the attendee's request: counted, nothing else kept.
    erased_registrations: Mapped[int] = mapped_column(default=0, server_default="0")
    #: How Foyer attendees enter the Teams meeting: "bypass" (straight in) or "lobby" (wait to be admitted).
    attendee_lobby: Mapped[str] = mapped_column(String(20), default="bypass", server_default="bypass")
    #: What the join page embeds: "call_with_chat" (the CallWithChat composite) or "call_only" (CallComposite).
    call_experience: Mapped[str] = mapped_column(String(20), default="call_with_chat",
                                                 server_default="call_with_chat")
    #: How many minutes before the start attendees may join.
    join_opens_minutes: Mapped[int] = mapped_column(default=15, server_default="15")
    #: How many minutes after the end the join link keeps working (overruns).
    join_grace_minutes: Mapped[int] = mapped_column(default=30, server_default="30")
    #: Where the recording can be watched, shown on the join page once the event has ended.
    recording_url: Mapped[str] = mapped_column(Text, default="", server_default="")
    provisioning_status: Mapped[ProvisioningStatus] = mapped_column(
        Enum(ProvisioningStatus, name="provisioning_status", native_enum=False, length=20),
        default=ProvisioningStatus.not_requested,
    )
    provisioning_error: Mapped[str] = mapped_column(Text, default="")
    graph_event_id: Mapped[str | None] = mapped_column(String(255))
    online_meeting_id: Mapped[str | None] = mapped_column(String(512))
    #: Stored verbatim: Teams join URLs carry %-escapes that must not be decoded.
    join_url: Mapped[str | None] = mapped_column(Text)
    #: The meeting's joinMeetingIdSettings: a second way in (Teams "join with an ID", the ACS
    #: TeamsMeetingIdLocator) when there is no join URL.
    join_meeting_id: Mapped[str | None] = mapped_column(String(64))
    join_passcode: Mapped[str | None] = mapped_column(String(64))
    #: Teams meeting options for attendees: may they turn on their microphone and camera, and is the
    #: meeting chat on ("enabled") or off ("disabled"). Only the organizer presents.
    allow_attendee_mic: Mapped[bool] = mapped_column(default=True, server_default="1")
    allow_attendee_camera: Mapped[bool] = mapped_column(default=True, server_default="1")
    meeting_chat: Mapped[str] = mapped_column(String(20), default="enabled", server_default="enabled")

    #: Days after the end when attendees' personal data is purged; NULL uses the admin's default.
    retention_days: Mapped[int | None]
    #: When the retention purge ran; afterwards only `purged_counts` remain.
    personal_data_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Anonymous counts kept by the purge: registrations by state, attended, no-shows.
    purged_counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: When attendance was last imported from the meeting's Graph attendance reports, and what it found.
    attendance_imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attendance_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Optional follow-up after the attendance import: "thanks" to attendees, "sorry we missed you" to no-shows.
    followup_enabled: Mapped[bool] = mapped_column(default=False, server_default="0")
    followup_recording_url: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    #: Where the import of the meeting's recordings stands (after_event.RecordingsState values).
    recordings_state: Mapped[str] = mapped_column(String(30), default="", server_default="")
    recordings_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Optional feedback survey sent with the follow-up: a 1–5 rating and up to a few questions, each
    #: {"label", "kind" (a QuestionKind), "options", "required"}.
    feedback_enabled: Mapped[bool] = mapped_column(default=False, server_default="0")
    feedback_questions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    speakers: Mapped[list[Speaker]] = relationship(
        back_populates="event", order_by="Speaker.position", cascade="all, delete-orphan"
    )
    questions: Mapped[list[Question]] = relationship(
        back_populates="event", order_by="Question.position", cascade="all, delete-orphan"
    )
    tag_rows: Mapped[list[EventTag]] = relationship(order_by="EventTag.tag", cascade="all, delete-orphan")
    #: A course's sessions, by start; empty for a single-session event.
    sessions: Mapped[list[EventSession]] = relationship(
        back_populates="event", order_by="EventSession.starts_at, EventSession.id", cascade="all, delete-orphan"
    )
    #: The title and description written in other languages, by language code (see `title_in`).
    texts: Mapped[dict[str, EventText]] = relationship(collection_class=attribute_keyed_dict("language"),
                                                       cascade="all, delete-orphan")

    def title_in(self, language: str | None) -> str:
        """The title in `language` when the organizer wrote one, else the main title (None: the main one)."""
        text = self.texts.get(language) if language else None
        return text.title if text is not None and text.title else self.title

    def description_in(self, language: str | None) -> str:
        """The description (Markdown) in `language` when the organizer wrote one, else the main one."""
        text = self.texts.get(language) if language else None
        return text.description if text is not None and text.description else self.description

    @property
    def tags(self) -> list[str]:
        """The event's catalogue tags, normalized (see services/events/catalog.normalize_tags), sorted."""
        return [row.tag for row in self.tag_rows]

    @property
    def is_course(self) -> bool:
        """Several sessions under one registration (each with its own Teams meeting)."""
        return bool(self.sessions)

    @property
    def is_published(self) -> bool:
        return self.status == EventStatus.published

    @property
    def is_cancelled(self) -> bool:
        return self.status == EventStatus.cancelled

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.slug!r}>"


class Speaker(db.Model):
    __tablename__ = "speakers"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    photo_filename: Mapped[str | None] = mapped_column(String(100))
    #: Optional; a speaker with an address is invited to the Teams meeting as a presenter. Never public.
    email: Mapped[str] = mapped_column(String(320), default="", server_default="")

    event: Mapped[Event] = relationship(back_populates="speakers")


class EventText(db.Model):
    """An event's title and description in one language besides the main text; either may be blank (the
    main one is shown instead).
    """

    __tablename__ = "event_texts"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")


class EventTag(db.Model):
    """One catalogue tag of an event (lower case, single spaces), for filtering by tag."""

    __tablename__ = "event_tags"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class Question(db.Model):
    """A custom registration question."""

    __tablename__ = "questions"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[QuestionKind] = mapped_column(Enum(QuestionKind, name="question_kind", native_enum=False, length=20))
    label: Mapped[str] = mapped_column(String(300))
    help_text: Mapped[str] = mapped_column(String(500), default="")
    required: Mapped[bool] = mapped_column(default=False)
    #: Choices for single/multiple choice questions.
    options: Mapped[list[str]] = mapped_column(JSON, default=list)

    event: Mapped[Event] = relationship(back_populates="questions")
