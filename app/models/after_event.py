"""What comes after an event: the Teams meeting's recordings (imported for the organizer to approve) and
the attendees' feedback.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import UTCDateTime, db, utcnow
from app.models.event import Event


class RecordingStatus(enum.StrEnum):
    #: Imported; the organizer has not decided yet (the follow-up waits).
    pending = "pending"
    #: The organizer approved it: the follow-up links to it.
    approved = "approved"
    #: The organizer declined it: the follow-up goes out without it.
    declined = "declined"


class RecordingsState(enum.StrEnum):
    """Where the import of an event's recordings stands (`events.recordings_state`)."""

    #: Not looked for yet.
    none = ""
    #: Looked for; Teams has none yet (the worker looks again for a while).
    waiting = "waiting"
    #: At least one recording was imported.
    found = "found"
    #: The meeting was not recorded (no recording a day after the end).
    not_recorded = "not_recorded"
    #: The Microsoft 365 connection lacks the recording permission: an admin must reconnect.
    permission_missing = "permission_missing"
    #: A recording was larger than RECORDING_MAX_MB and was not copied.
    too_large = "too_large"
    #: The import gave up (Microsoft kept refusing); the organizer can look again.
    failed = "failed"


class EventRecording(db.Model):
    """One recording of the event's Teams meeting, copied into Foyer's storage (Graph serves a meeting's
    recording to its organizer only, so attendees watch Foyer's copy through their personal link).
    """

    __tablename__ = "event_recordings"
    __table_args__ = (UniqueConstraint("event_id", "graph_id", name="uq_event_recordings_event_graph"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    #: The callRecording's id in Graph.
    graph_id: Mapped[str] = mapped_column(String(512))
    #: For a course, the session whose meeting was recorded ("Session 2: Day 2"), kept as text; else empty.
    session_label: Mapped[str] = mapped_column(String(250), default="", server_default="")
    #: Graph's createdDateTime / endDateTime of the recording.
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recording_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int]
    #: File name under RECORDING_FOLDER (random; never from Graph).
    stored_name: Mapped[str] = mapped_column(String(100))
    #: The meeting's transcript (WebVTT) when one was allowed and found; shown as captions if shared.
    transcript_stored_name: Mapped[str | None] = mapped_column(String(100))
    #: The organizer's choice: may attendees see the transcript (it names the speakers)?
    share_transcript: Mapped[bool] = mapped_column(default=False)
    status: Mapped[RecordingStatus] = mapped_column(
        Enum(RecordingStatus, name="recording_status", native_enum=False, length=20), default=RecordingStatus.pending
    )
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    event: Mapped[Event] = relationship()


class FeedbackResponse(db.Model):
    """One attendee's answer to the event's feedback survey: a rating and the organizer's questions.
    At most one per registration (the database says so).
    """

    __tablename__ = "feedback_responses"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), unique=True)
    rating: Mapped[int]
    #: [{"label": …, "kind": …, "value": …}] in the survey's order, labels copied as they were asked.
    answers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
