"""Recurring events: an event repeated by a rule (weekly, every N weeks, or monthly on the same weekday),
each occurrence an ordinary event with its own registration, Teams meeting, reminders and attendance.

Occurrences keep the first one's wall-clock time in its zone: the rule runs on local times (dateutil's
rrule, RFC 5545 semantics) and each is stored in UTC, so an 18:00 event stays at 18:00 across a DST change.
The organizer may change the title and description of every future occurrence at once, cancel them all at
once, or edit or cancel one occurrence on its own like any event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil.rrule import MONTHLY, WEEKLY, rrule, weekday
from flask_babel import gettext
from sqlalchemy import func, select

from app.models import Event, EventSeries, EventStatus, Registration, RegistrationState, User, db, utcnow
from app.models.registration import ACTIVE_STATES
from app.services.core import audit, signals
from app.services.core.dates import format_day
from app.services.core.errors import Conflict, DomainError
from app.services.core.timezones import NonexistentLocalTime, local_to_utc, utc_to_local
from app.services.events import events, teams

logger = logging.getLogger(__name__)

FREQUENCIES = ("weekly", "monthly")
MAX_OCCURRENCES = 52
MAX_INTERVAL = 12
#: How far beyond its first date a series may reach.
HORIZON = timedelta(days=2 * 366)
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


@dataclass
class RepeatData:
    """What the repeat form collects: every `interval` weeks, or every `interval` months on the same
    weekday; `count` occurrences in all (the first included) or until a date (in the event's zone).
    """

    frequency: str
    interval: int = 1
    count: int | None = None
    until: date | None = None


def _nth_weekday(local: datetime) -> int:
    """Which weekday of its month a date is (1–4), or -1 for a fifth one (the last)."""
    n = (local.day - 1) // 7 + 1
    return -1 if n == 5 else n


def describe(event: Event, data: RepeatData) -> str:
    """"Every 2 weeks, 6 times" / "Monthly on the third Tuesday, until 30 Jun 2031"."""
    local = utc_to_local(event.starts_at, event.timezone)
    if data.frequency == "weekly":
        head = "Weekly" if data.interval == 1 else f"Every {data.interval} weeks"
    else:
        every = "Monthly" if data.interval == 1 else f"Every {data.interval} months"
        head = f"{every} on the {ORDINALS[_nth_weekday(local)]} {local:%A}"
    tail = f"{data.count} times" if data.count else f"until {data.until.day} {data.until:%b %Y}"
    return f"{head}, {tail}"


def _rule(event: Event, data: RepeatData) -> tuple[rrule, str]:
    local = utc_to_local(event.starts_at, event.timezone)
    until = datetime.combine(data.until, datetime.max.time()) if data.until else None
    kwargs = {"dtstart": local, "interval": data.interval, "count": data.count, "until": until}
    if data.frequency == "weekly":
        rule = rrule(WEEKLY, **kwargs)
    else:
        rule = rrule(MONTHLY, byweekday=weekday(local.weekday(), _nth_weekday(local)), **kwargs)
    text = str(rule).splitlines()[-1].removeprefix("RRULE:")
    return rule, text


def _check(event: Event, data: RepeatData) -> None:
    if data.frequency not in FREQUENCIES:
        raise DomainError(gettext("Choose weekly or monthly."), field="frequency")
    if not 1 <= (data.interval or 0) <= MAX_INTERVAL:
        raise DomainError(gettext("Repeat every 1 to %(max)s weeks or months.", max=MAX_INTERVAL), field="interval")
    if (data.count is None) == (data.until is None):
        raise DomainError(gettext("Give either how many times the event happens in all, or the date of the last "
                                  "one."), field="count")
    if data.count is not None and not 2 <= data.count <= MAX_OCCURRENCES:
        raise DomainError(gettext("A series has 2 to %(max)s occurrences, this one included.", max=MAX_OCCURRENCES),
                          field="count")
    if data.until is not None:
        first = utc_to_local(event.starts_at, event.timezone).date()
        if data.until <= first:
            raise DomainError(gettext("The last date must be after this event's date."), field="until")
        if data.until > first + HORIZON:
            raise DomainError(gettext("A series can reach at most two years beyond this event's date."), field="until")
    if event.is_cancelled:
        raise Conflict(gettext("This event is cancelled and can no longer be changed."))
    if event.series_id is not None:
        raise Conflict(gettext("This event is already part of a series."))
    if event.sessions:
        raise Conflict(gettext("A course cannot be repeated: add sessions to it instead."))


def occurrence_starts(event: Event, data: RepeatData) -> list[datetime]:
    """The UTC starts of the occurrences after the event itself, at its local time; DomainError when the
    rule makes too many or lands on a time the clocks skip.
    """
    rule, _ = _rule(event, data)
    starts = []
    last = utc_to_local(event.starts_at, event.timezone) + HORIZON
    for index, local in enumerate(rule):
        if index == 0:
            continue  # the event itself
        if local > last:
            raise DomainError(gettext("A series can reach at most two years beyond this event's date; make it "
                                      "shorter."),
                              field="count" if data.count else "until")
        if index >= MAX_OCCURRENCES:
            raise DomainError(gettext("That makes more than %(max)s occurrences; choose an earlier last date.",
                                      max=MAX_OCCURRENCES),
                              field="until")
        try:
            starts.append(local_to_utc(local, event.timezone))
        except NonexistentLocalTime as exc:
            raise DomainError(gettext("%(time)s on %(day)s does not exist in %(zone)s: the clocks go forward then. "
                                      "Choose another time for the event first.", time=local.strftime("%H:%M"),
                                      day=format_day(local, full_month=True), zone=event.timezone),
                              field="frequency") from exc
    if not starts:
        raise DomainError(gettext("That rule gives no other date before the last date."), field="until")
    return starts


def _slug(event: Event, start: datetime) -> str:
    local = utc_to_local(start, event.timezone)
    base = f"{event.slug[: events.SLUG_MAX - 11].rstrip('-')}-{local:%Y-%m-%d}"
    return events.unique_slug(base)


def repeat_event(event: Event, data: RepeatData, *, actor: User, now: datetime | None = None) -> EventSeries:
    """Make the event the first occurrence of a series and create the others (published if it is)."""
    events._require_manager(actor, event)
    now = now or utcnow()
    _check(event, data)
    starts = occurrence_starts(event, data)
    _, rule_text = _rule(event, data)
    series = EventSeries(owner_id=event.owner_id, rule=rule_text, description=describe(event, data))
    db.session.add(series)
    db.session.flush()
    event.series_id = series.id
    length = event.ends_at - event.starts_at
    for start in starts:
        copy = events.clone_event(event, actor=actor, shift=start - event.starts_at)
        copy.title, copy.slug, copy.series_id = event.title, _slug(event, start), series.id
        copy.starts_at, copy.ends_at = start, start + length  # the wall-clock time, whatever the UTC shift
        db.session.flush()
        if event.is_published and start > now:
            events.publish_event(copy, actor=actor, now=now)
    audit.record("event.series_create", actor=actor, target=event,
                 summary=f"Repeated “{event.title}”: {series.description}",
                 details={"series_id": series.id, "rule": series.rule, "occurrences": len(starts) + 1})
    logger.info("Event %s repeated as series %s (%s more) by %s", event.id, series.id, len(starts), actor.id)
    return series


def occurrences(series_id: int) -> list[Event]:
    """The series' events by date."""
    query = select(Event).where(Event.series_id == series_id).order_by(Event.starts_at, Event.id)
    return list(db.session.scalars(query))


def upcoming_others(event: Event, *, now: datetime | None = None) -> list[Event]:
    """The other published dates of the event's series that have not started yet, by date ([] outside a series)."""
    if event.series_id is None:
        return []
    query = (select(Event).where(Event.series_id == event.series_id, Event.id != event.id,
                                 Event.status == EventStatus.published, Event.starts_at > (now or utcnow()))
             .order_by(Event.starts_at, Event.id))
    return list(db.session.scalars(query))


def update_future(series: EventSeries, *, title: str, description: str, actor: User, notify_attendees: bool = True,
                  now: datetime | None = None) -> int:
    """Give every occurrence that has not started yet a new title and description; returns how many changed."""
    now = now or utcnow()
    title = " ".join((title or "").split())
    if not title:
        raise DomainError(gettext("Give the events a title."), field="title")
    if len(title) > 200:
        raise DomainError(gettext("Keep the title under 200 characters."), field="title")
    changed = 0
    for event in occurrences(series.id):
        if event.starts_at <= now or event.is_cancelled or not events.can_manage(actor, event):
            continue
        if (event.title, event.description or "") == (title, description or ""):
            continue
        previous = {"title": event.title, "starts_at": event.starts_at.isoformat(),
                    "ends_at": event.ends_at.isoformat()}
        renamed = event.title != title
        event.title, event.description = title, description or ""
        event.ics_sequence += 1
        db.session.flush()
        teams.queue_update(event)
        told = event.is_published and renamed
        signals.event_updated.send(event, actor=actor, notify_attendees=notify_attendees,
                                   previous=previous if told else None)
        changed += 1
    audit.record("event.series_update", actor=actor, target=("series", series.id),
                 summary=f"Changed {changed} future occurrence(s)", details={"series_id": series.id, "title": title})
    logger.info("Series %s: %s future occurrences changed by %s", series.id, changed, actor.id)
    return changed


@dataclass(frozen=True)
class CancelPreview:
    """What cancelling a series' future dates would do: the dates, and how many registrants are emailed."""

    occurrences: list[Event]
    registrants: int
    meetings: int


def _cancellable(series_id: int, actor: User, now: datetime, *, lock: bool = False) -> list[Event]:
    """The occurrences that have not started, are not cancelled and that `actor` may manage; `lock` takes
    them FOR UPDATE (re-read), so a second cancellation running beside the first waits and then skips them.
    """
    query = (select(Event).where(Event.series_id == series_id, Event.starts_at > now,
                                 Event.status != EventStatus.cancelled)
             .order_by(Event.starts_at, Event.id))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return [e for e in db.session.scalars(query) if not e.is_cancelled and events.can_manage(actor, e)]


def cancel_preview(series: EventSeries, *, actor: User, now: datetime | None = None) -> CancelPreview:
    """The future dates `cancel_future` would cancel, the registrants it would email (those of dates the
    public saw, as a single cancellation does) and the Teams meetings it would cancel.
    """
    rows = _cancellable(series.id, actor, now or utcnow())
    told = [e.id for e in rows if e.published_at is not None]
    registrants = db.session.scalar(
        select(func.count(Registration.id)).where(Registration.event_id.in_(told),
                                                  Registration.state.in_(ACTIVE_STATES),
                                                  Registration.state != RegistrationState.unverified)
    ) if told else 0
    meetings = sum(teams.meetings_to_cancel(e) for e in rows)
    return CancelPreview(rows, registrants or 0, meetings)


def cancel_future(series: EventSeries, *, actor: User, reason: str = "", now: datetime | None = None) -> int:
    """Cancel every occurrence that has not started yet, each as `events.cancel_event` cancels one (its Teams
    meeting, its registrants' emails, its audit record); returns how many. Dates already cancelled or
    started are left alone, so a second submission cancels nothing more.
    """
    now = now or utcnow()
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise DomainError(gettext("Keep the message under 2,000 characters."), field="reason")
    rows = _cancellable(series.id, actor, now, lock=True)
    for event in rows:
        events.cancel_event(event, actor=actor, reason=reason, now=now)
    if rows:
        audit.record("event.series_cancel", actor=actor, target=("series", series.id),
                     summary=f"Cancelled {len(rows)} future occurrence(s)",
                     details={"series_id": series.id, "event_ids": [e.id for e in rows]})
    logger.info("Series %s: %s future occurrences cancelled by %s", series.id, len(rows), actor.id)
    return len(rows)
