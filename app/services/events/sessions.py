"""Courses: one registration for several dated sessions.

An event becomes a course when its organizer adds a session: the event's own time becomes session 1
(keeping its Teams meeting, if it has one) and the new one is added beside it. From then on the event's
start and end span its sessions, each session has its own Teams meeting (events/teams.py), join window,
reminders and attendance, and registrants' invitations and the event's .ics carry every session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext

from app.models import Event, EventSession, ProvisioningStatus, User, db, utcnow
from app.services.core import audit, signals
from app.services.core.errors import Conflict, DomainError
from app.services.events import teams
from app.services.events.events import _require_editable, _require_manager

logger = logging.getLogger(__name__)

MAX_SESSIONS = 52
SESSION_MAX_LENGTH = timedelta(hours=24)
NAME_MAX = 200
#: The Teams meeting fields an event hands to its first session when it becomes a course.
MEETING_FIELDS = ("provisioning_status", "provisioning_error", "graph_event_id", "online_meeting_id", "join_url",
                  "join_meeting_id", "join_passcode")


@dataclass
class SessionData:
    """What the session form collects, already parsed (times are aware UTC)."""

    starts_at: datetime
    ends_at: datetime
    name: str = ""
    #: Email registrants the new schedule (published events only).
    notify_attendees: bool = True


def _check(event: Event, data: SessionData, *, session: EventSession | None, now: datetime) -> str:
    """Raise a DomainError for an impossible session; return the cleaned name."""
    name = " ".join((data.name or "").split())
    if len(name) > NAME_MAX:
        raise DomainError(gettext("Keep the session's name under %(max)s characters.", max=NAME_MAX), field="name")
    if data.ends_at <= data.starts_at:
        raise DomainError(gettext("The session must end after it starts."), field="ends_at")
    if data.ends_at - data.starts_at > SESSION_MAX_LENGTH:
        raise DomainError(gettext("A session can last at most 24 hours; add another session for the next day."),
                          field="ends_at")
    moved = session is None or session.starts_at != data.starts_at
    if moved and data.starts_at < now:
        raise DomainError(gettext("This time has already passed. Choose a start in the future."), field="starts_at")
    for other in event.sessions:
        if other is session:
            continue
        if data.starts_at < other.ends_at and other.starts_at < data.ends_at:
            raise Conflict(gettext("This overlaps %(session)s. Sessions of a course follow one another.",
                                   session=other.label), field="starts_at")
    return name


def _span(event: Event) -> tuple[datetime, datetime]:
    return min(s.starts_at for s in event.sessions), max(s.ends_at for s in event.sessions)


def _apply_span(event: Event) -> None:
    """The event's start and end follow its sessions (the catalogue, registration and retention use them)."""
    starts_at, ends_at = _span(event)
    if event.registration_closes_at is not None and event.registration_closes_at > ends_at:
        raise DomainError(gettext("Registration closes after the last session ends. Change the registration window "
                                  "on the event's form first."), field="ends_at")
    event.starts_at, event.ends_at = starts_at, ends_at


def _first_session(event: Event) -> EventSession:
    """The event's own time as session 1, taking over its Teams meeting."""
    if event.provisioning_status == ProvisioningStatus.pending and not event.online_meeting_id:
        raise Conflict(gettext("Foyer is still setting up this event's Teams meeting. Add sessions once it is "
                               "ready."))
    first = EventSession(event=event, starts_at=event.starts_at, ends_at=event.ends_at, name="")
    for name in MEETING_FIELDS:
        setattr(first, name, getattr(event, name))
    for name in ("graph_event_id", "online_meeting_id", "join_url", "join_meeting_id", "join_passcode"):
        setattr(event, name, None)
    return first


def _changed(event: Event, *, actor: User, before: dict[str, str], notify: bool) -> None:
    """Registrants of a published course hear of a new schedule with updated invitations, if asked."""
    event.ics_sequence += 1
    db.session.flush()
    told = event.is_published
    signals.event_updated.send(event, actor=actor, notify_attendees=notify, previous=before if told else None)


def _before(event: Event) -> dict[str, str]:
    return {"title": event.title, "starts_at": event.starts_at.isoformat(), "ends_at": event.ends_at.isoformat()}


def add_session(event: Event, data: SessionData, *, actor: User, now: datetime | None = None) -> EventSession:
    """Add a session; the first one added turns the event into a course (its own time becomes session 1)."""
    _require_manager(actor, event)
    _require_editable(event)
    now = now or utcnow()
    if len(event.sessions) >= MAX_SESSIONS:
        raise Conflict(gettext("A course can have at most %(max)s sessions.", max=MAX_SESSIONS))
    before = _before(event)
    converted = None
    if not event.sessions:
        converted = _first_session(event)
        db.session.add(converted)
    name = _check(event, data, session=None, now=now)
    session = EventSession(event=event, starts_at=data.starts_at, ends_at=data.ends_at, name=name)
    db.session.add(session)
    event.sessions.sort(key=lambda s: (s.starts_at, s.id or 0))
    _apply_span(event)
    db.session.flush()
    if event.is_published:
        if converted is not None and converted.graph_event_id:
            teams.queue_session_update(converted)  # its meeting now carries the session's name
        teams.queue_provisioning(event)
    _changed(event, actor=actor, before=before, notify=data.notify_attendees)
    audit.record("event.session_add", actor=actor, target=event, summary=f"Added {session.english_label}",
                 details={"starts_at": session.starts_at.isoformat(), "ends_at": session.ends_at.isoformat()})
    logger.info("Session %s added to event %s by %s", session.id, event.id, actor.id)
    return session


def update_session(session: EventSession, data: SessionData, *, actor: User,
                   now: datetime | None = None) -> EventSession:
    """Change a session's name or time; its Teams meeting follows."""
    event = session.event
    _require_manager(actor, event)
    _require_editable(event)
    before = _before(event)
    name = _check(event, data, session=session, now=now or utcnow())
    moved = (session.starts_at, session.ends_at) != (data.starts_at, data.ends_at)
    if not moved and name == session.name:
        return session
    session.name, session.starts_at, session.ends_at = name, data.starts_at, data.ends_at
    event.sessions.sort(key=lambda s: (s.starts_at, s.id))
    _apply_span(event)
    _changed(event, actor=actor, before=before, notify=data.notify_attendees and moved)
    teams.queue_update(event)  # numbers may have changed too: every meeting's subject follows
    audit.record("event.session_update", actor=actor, target=event, summary=f"Changed {session.english_label}",
                 details={"starts_at": session.starts_at.isoformat(), "ends_at": session.ends_at.isoformat()})
    logger.info("Session %s of event %s changed by %s", session.id, event.id, actor.id)
    return session


def remove_session(session: EventSession, *, actor: User, notify_attendees: bool = True) -> None:
    """Remove a session and cancel its Teams meeting; a course keeps at least one session."""
    event = session.event
    _require_manager(actor, event)
    _require_editable(event)
    if len(event.sessions) <= 1:
        raise Conflict(gettext("A course keeps at least one session. Cancel the event instead."))
    before = _before(event)
    label = session.english_label
    teams.queue_session_cancellation(session, f"{label} of {event.title} has been removed from the course.")
    event.sessions.remove(session)
    db.session.delete(session)
    _apply_span(event)
    db.session.flush()
    _changed(event, actor=actor, before=before, notify=notify_attendees)
    teams.queue_update(event)
    teams.sum_up(event)  # the event's Teams status follows the remaining sessions
    audit.record("event.session_remove", actor=actor, target=event, summary=f"Removed {label}")
    logger.info("A session of event %s removed by %s", event.id, actor.id)


def session_on(event: Event, now: datetime, *, grace: timedelta) -> EventSession | None:
    """The session whose join window is open now, else the next one, else the last; None without sessions."""
    if not event.sessions:
        return None
    for session in event.sessions:
        if now < session.ends_at + grace:
            return session
    return event.sessions[-1]
