"""The live part of an event beside the call: attendees' questions (Q&A) with upvotes, and polls.

Attendees act through their registration (the join link); organizers moderate. Questions and upvotes
are the attendee's personal data (erased and purged with the registration, ON DELETE CASCADE); a poll
vote loses its registration on erasure or purge (ON DELETE SET NULL) and stays as an anonymous count.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import UTCDateTime, db, utcnow


class LiveQuestionStatus(enum.StrEnum):
    #: Waiting for a moderator (events that moderate before display); only its asker sees it.
    pending = "pending"
    #: Shown to every attendee.
    approved = "approved"
    #: Shown, with the written answer or marked "answered live".
    answered = "answered"
    #: Hidden from attendees (its asker included); moderators still see it.
    dismissed = "dismissed"


class PollStatus(enum.StrEnum):
    #: Prepared before the event; attendees do not see it.
    draft = "draft"
    #: Launched: attendees vote.
    open = "open"
    #: Closed: no more votes; attendees see the results.
    closed = "closed"


class LiveSettings(db.Model):
    """An event's Q&A settings (an event without a row has the defaults)."""

    __tablename__ = "live_settings"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    #: Attendees may ask without their name shown (moderators do not see it either).
    allow_anonymous: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: New questions wait for a moderator's approval before other attendees see them.
    moderate_questions: Mapped[bool] = mapped_column(default=False, server_default="0")


class LiveQuestion(db.Model):
    """A question an attendee asked during the event."""

    __tablename__ = "live_questions"
    __table_args__ = (Index("ix_live_questions_event_status", "event_id", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(String(500))
    #: Asked without the name shown.
    anonymous: Mapped[bool] = mapped_column(default=False)
    status: Mapped[LiveQuestionStatus] = mapped_column(
        Enum(LiveQuestionStatus, name="live_question_status", native_enum=False, length=20)
    )
    pinned: Mapped[bool] = mapped_column(default=False)
    #: The moderator's written answer (may be empty when answered live).
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_live: Mapped[bool] = mapped_column(default=False)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())

    registration = relationship("Registration")


class LiveQuestionVote(db.Model):
    """One attendee's upvote of a question (at most one per registration)."""

    __tablename__ = "live_question_votes"

    question_id: Mapped[int] = mapped_column(ForeignKey("live_questions.id", ondelete="CASCADE"), primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"),
                                                 primary_key=True, index=True)


class Poll(db.Model):
    """A poll an organizer prepares and launches during the event."""

    __tablename__ = "live_polls"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    prompt: Mapped[str] = mapped_column(String(300))
    #: Several choices may be picked (otherwise exactly one).
    multiple: Mapped[bool] = mapped_column(default=False)
    status: Mapped[PollStatus] = mapped_column(Enum(PollStatus, name="poll_status", native_enum=False, length=20))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())

    options: Mapped[list[PollOption]] = relationship(order_by="PollOption.position", cascade="all, delete-orphan",
                                                     passive_deletes=True)


class PollOption(db.Model):
    __tablename__ = "live_poll_options"

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("live_polls.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    label: Mapped[str] = mapped_column(String(200))


class PollVote(db.Model):
    """One registration's vote in a poll; the database allows one per registration and poll."""

    __tablename__ = "live_poll_votes"
    __table_args__ = (UniqueConstraint("poll_id", "registration_id", name="uq_live_poll_votes_poll_registration"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("live_polls.id", ondelete="CASCADE"))
    #: NULL once the voter's data was erased or purged: the vote stays, as an anonymous count.
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("registrations.id", ondelete="SET NULL"),
                                                        index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())


class PollVoteChoice(db.Model):
    """An option picked in a vote (one row per option for multiple choice)."""

    __tablename__ = "live_poll_vote_choices"

    vote_id: Mapped[int] = mapped_column(ForeignKey("live_poll_votes.id", ondelete="CASCADE"), primary_key=True)
    option_id: Mapped[int] = mapped_column(ForeignKey("live_poll_options.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)
