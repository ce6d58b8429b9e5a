"""Reminders: each event's schedule (minutes before the start) turned into messages by a sweep that
the worker runs every minute.

The sweep reads everything from the database, so a worker that was down catches up: a reminder whose
time passed is still sent if the event has not started, and recorded as suppressed otherwise. Each
reminder has the dedupe key `reminder:{event}:{offset}:{registration}`, so sweeps may overlap or
repeat without sending twice; on PostgreSQL an advisory lock keeps a second worker from sweeping at
the same time. A batch that the email quota cannot send in time starts early enough to finish
by its nominal time.

A course (an event with sessions) has the event's schedule before each session: the keys are
`reminder:{event}:s{session}:{offset}:{registration}`, and the email names the session.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import and_, func, or_, select, text

from app.models import (
    Event,
    EventSession,
    EventStatus,
    Message,
    Registration,
    RegistrationState,
    db,
    utcnow,
)
from app.models.base import begin_write
from app.services.core.links import event_url
from app.services.core.settings import get_languages, text_language
from app.services.events.events import describe_offset
from app.services.messaging import dispatch, queueing, rendering
from app.services.registration import emails

logger = logging.getLogger(__name__)

#: Reminders for events that started longer ago than this are no longer looked at.
LOOKBACK = timedelta(days=1)
#: The longest reminder offset (services/events/events.py REMINDER_MAX) plus room for an early start.
LOOKAHEAD = timedelta(days=61)


def _scope(event_id: int, session_id: int | None) -> str:
    return f"{event_id}:s{session_id}" if session_id else str(event_id)


def reminder_key(event_id: int, offset: int, registration_id: int, session_id: int | None = None) -> str:
    return f"reminder:{_scope(event_id, session_id)}:{offset}:{registration_id}"


def sms_reminder_key(event_id: int, offset: int, registration_id: int, session_id: int | None = None) -> str:
    return f"reminder-sms:{_scope(event_id, session_id)}:{offset}:{registration_id}"


def _in_reach(now: datetime):
    """Published events with reminders possibly due: starting soon or lately, or a course still running."""
    courses = select(EventSession.event_id)
    return and_(Event.status == EventStatus.published, Event.starts_at < now + LOOKAHEAD,
                or_(Event.starts_at > now - LOOKBACK, and_(Event.ends_at > now - LOOKBACK, Event.id.in_(courses))))


def occasions(event: Event, now: datetime) -> list[tuple[int | None, datetime]]:
    """(session id or None, start) of what the event's reminders count down to: itself, or each session
    of a course still in reach.
    """
    if not event.sessions:
        return [(None, event.starts_at)]
    return [(s.id, s.starts_at) for s in event.sessions if now - LOOKBACK < s.starts_at < now + LOOKAHEAD]


@dataclass
class SweepResult:
    queued: int = 0
    suppressed: int = 0
    locked_out: bool = False
    events: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ReminderPlan:
    """One reminder of an event: when it is due, how long its batch takes, when it starts."""

    offset: int
    label: str
    due_at: datetime
    recipients: int
    duration: timedelta
    starts_sending_at: datetime
    #: The batch cannot finish by its due time any more (it would have had to start in the past).
    late: bool

    @property
    def early(self) -> bool:
        return self.duration >= timedelta(minutes=2)


def plan(event: Event, *, now: datetime | None = None) -> list[ReminderPlan]:
    """The event's reminders, with the batch duration at the current quota (for the organizer's page)."""
    now = now or utcnow()
    recipients = event.confirmed_count or 0
    quota = dispatch.get_quota()
    plans = []
    # A course's reminders count down to its next session.
    starts_at = next((s.starts_at for s in event.sessions if s.starts_at > now), event.sessions[-1].starts_at) \
        if event.sessions else event.starts_at
    for offset in sorted(event.reminder_offsets or [], reverse=True):
        due = starts_at - timedelta(minutes=offset)
        duration = timedelta(seconds=dispatch.drain_seconds(recipients, quota))
        start = due - duration
        plans.append(ReminderPlan(offset=offset, label=describe_offset(offset), due_at=due, recipients=recipients,
                                  duration=duration, starts_sending_at=start, late=start < now < starts_at
                                  and due > now and duration > timedelta(0)))
    return plans


#: A large batch is committed in parts, so the worker starts sending (and SQLite lets other writers in).
COMMIT_EVERY = 200


def _checkpoint() -> bool:
    """Commit what is queued so far and take the sweep lock again (False if another worker has it now)."""
    db.session.commit()
    begin_write()
    return _try_lock()


def _try_lock() -> bool:
    """PostgreSQL: only one worker sweeps at a time (released when the sweep's transaction ends)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return True
    return bool(db.session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                   {"k": dispatch.SWEEP_LOCK_KEY}).scalar())


def _due_work(now: datetime) -> bool:
    """Whether any due reminder is still missing (a read-only look, so an idle sweep takes no write lock)."""
    events = db.session.execute(select(Event.id, Event.starts_at, Event.reminder_offsets, Event.confirmed_count)
                                .where(_in_reach(now))).all()
    quota = dispatch.get_quota()
    for event_id, event_start, offsets, confirmed in events:
        lead = timedelta(seconds=dispatch.drain_seconds(confirmed or 0, quota))
        course = db.session.execute(select(EventSession.id, EventSession.starts_at)
                                    .where(EventSession.event_id == event_id)).all()
        starts = [(s_id, s_start) for s_id, s_start in course if now - LOOKBACK < s_start < now + LOOKAHEAD] \
            if course else [(None, event_start)]
        for session_id, starts_at in starts:
            for offset in {int(o) for o in (offsets or [])}:
                due = starts_at - timedelta(minutes=offset)
                if now < due - lead:
                    continue
                wanted = db.session.scalar(select(func.count(Registration.id)).where(
                    Registration.event_id == event_id, Registration.state == RegistrationState.confirmed,
                    (Registration.confirmed_at.is_(None)) | (Registration.confirmed_at <= due))) or 0
                have = db.session.scalar(select(func.count(Message.id)).where(
                    Message.event_id == event_id, Message.kind == "reminder",
                    Message.dedupe_key.like(f"reminder:{_scope(event_id, session_id)}:{offset}:%"))) or 0
                if wanted > have:
                    return True
    return False


def sweep(now: datetime | None = None) -> SweepResult:
    """Queue every due reminder (the caller commits)."""
    now = now or utcnow()
    result = SweepResult()
    db.session.rollback()
    if not _due_work(now):
        db.session.rollback()
        return result
    db.session.rollback()
    begin_write()
    if not _try_lock():
        result.locked_out = True
        return result
    events = db.session.scalars(select(Event).where(_in_reach(now))).all()
    quota = dispatch.get_quota()
    sms_on = bool(current_app.config.get("ACS_SMS_SENDER"))
    for event in events:
        offsets = sorted({int(o) for o in (event.reminder_offsets or [])})
        if not offsets:
            continue
        lead = timedelta(seconds=dispatch.drain_seconds(event.confirmed_count or 0, quota))
        regs = None
        swept = False
        for session_id, starts_at in occasions(event, now):
            due_offsets = [o for o in offsets if now >= starts_at - timedelta(minutes=o) - lead]
            if not due_offsets:
                continue
            if regs is None:
                regs = db.session.scalars(select(Registration).where(
                    Registration.event_id == event.id, Registration.state == RegistrationState.confirmed)
                    .order_by(Registration.id)).all()
            swept = True
            if not _sweep_occasion(event, session_id, starts_at, offsets, due_offsets, regs, now, sms_on, result):
                result.locked_out = True
                return result
        if swept:
            result.events.append(event.id)
    if result.queued or result.suppressed:
        logger.info("Reminder sweep: %s queued, %s recorded as not sent", result.queued, result.suppressed)
    return result


def _sweep_occasion(event: Event, session_id: int | None, starts_at: datetime, offsets: list[int],
                    due_offsets: list[int], regs, now: datetime, sms_on: bool, result: SweepResult) -> bool:
    """Queue the due reminders before one start (the event's, or a course session's); False when the
    sweep lost its lock at a checkpoint.
    """
    session = next((s for s in event.sessions if s.id == session_id), None) if session_id else None
    scope = _scope(event.id, session_id)
    for offset in due_offsets:
        due = starts_at - timedelta(minutes=offset)
        prefix = f"reminder:{scope}:{offset}:"
        done = set(db.session.scalars(select(Message.dedupe_key).where(
            Message.event_id == event.id, Message.kind == "reminder", Message.dedupe_key.like(prefix + "%"))))
        # A smaller offset already due makes this one stale ("tomorrow" an hour before the start).
        superseded = next((o for o in offsets if o < offset and now >= starts_at - timedelta(minutes=o)),
                          None)
        batch = f"reminder:{scope}:{offset}"
        for reg in regs:
            key = reminder_key(event.id, offset, reg.id, session_id)
            if key in done:
                continue
            if reg.confirmed_at is not None and reg.confirmed_at > due:
                continue  # confirmed after this reminder's time: their confirmation said it all
            if now >= starts_at:
                reason = ("Not sent: the session had already started when the reminder was due to go out."
                          if session else
                          "Not sent: the event had already started when the reminder was due to go out.")
            elif superseded is not None:
                reason = f"Not sent: the {describe_offset(superseded)} reminder replaces it."
            else:
                reason = ""
            if reason:
                if queueing.record_suppressed("reminder", event=event, registration=reg, dedupe_key=key,
                                              reason=reason, batch=batch):
                    result.suppressed += 1
                continue
            if emails.notify_registration(reg, "reminder", dedupe_key=key, deadline=due, batch=batch, now=now,
                                          session=session):
                result.queued += 1
                if result.queued % COMMIT_EVERY == 0 and not _checkpoint():
                    return False
            if sms_on and reg.sms_opt_in and reg.phone:
                body = _sms_reminder(event, session, reg, now)
                queueing.queue_sms("reminder", event=event, registration=reg, deadline=due, batch=batch,
                                   dedupe_key=sms_reminder_key(event.id, offset, reg.id, session_id), body=body)
    return True


def _sms_reminder(event: Event, session: EventSession | None, reg: Registration, now: datetime) -> str:
    """A reminder's SMS text, in the language the registration was made in (as its emails are)."""
    language = reg.language if reg.language in get_languages().offered else None
    with force_locale(language) if language else nullcontext():
        when = rendering.relative_start(session or event, now, reg.timezone)
        title = event.title_in(text_language())
        what = f"{title[:60]} ({session.label[:30]})" if session else title[:80]
        return gettext("Reminder: %(what)s starts %(when)s. Details: %(url)s", what=what, when=when,
                       url=messages_event_url(event))


def messages_event_url(event: Event) -> str:
    return event_url(event)

