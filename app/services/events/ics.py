"""iCalendar output for events, built with the `icalendar` package (never by hand).

`event_vevent` makes one VEVENT (`event_vevents` one per session of a course); `event_calendar` wraps
events in a VCALENDAR with the VTIMEZONEs they need. The public feed and the per-event download share
them, and a registrant's personal invitation (registration/emails.py) is built from the same pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

from flask import current_app
from flask_babel import gettext
from icalendar import Calendar, Timezone
from icalendar import Event as VEvent

from app.models import Event, EventSession, Registration, utcnow
from app.services.core.links import event_url
from app.services.core.markdown import markdown_to_text
from app.services.core.settings import get_branding, text_language

logger = logging.getLogger(__name__)

PRODID = "-//Foyer//Foyer events//EN"
#: What calendar apps are told about where the event happens (the join link is personal).
LOCATION = "Online (Microsoft Teams)"


def uid_host() -> str:
    """The host part of every UID: PUBLIC_BASE_URL's host, so UIDs survive moving web servers."""
    return urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "localhost"


def event_uid(event: Event) -> str:
    """The stable iCalendar UID of an event."""
    return f"event-{event.id}@{uid_host()}"


def session_uid(session: EventSession) -> str:
    """The stable iCalendar UID of one session of a course in published calendars."""
    return f"event-{session.event_id}-session-{session.id}@{uid_host()}"


def _description(event: Event, url: str) -> str:
    parts = []
    if event.is_cancelled:
        reason = event.cancellation_reason.strip()
        parts.append(gettext("This event has been cancelled. %(reason)s", reason=reason).strip())
    text = markdown_to_text(event.description_in(text_language()))
    if text:
        parts.append(text)
    parts.append(gettext("Details: %(url)s", url=url))
    return "\n\n".join(parts)


def event_vevent(event: Event, *, stamp: datetime | None = None) -> VEvent:
    """One VEVENT: stable UID, SEQUENCE from the event, times in the event's own zone (TZID)."""
    return _vevent(event, uid=event_uid(event), title=event.title_in(text_language()), start=event.local_starts_at,
                   end=event.local_ends_at, created=event.created_at, stamp=stamp)


def session_vevent(session: EventSession, *, stamp: datetime | None = None) -> VEvent:
    """One VEVENT for one session of a course: its own UID and times, the course's details."""
    event = session.event
    return _vevent(event, uid=session_uid(session), title=f"{event.title_in(text_language())} — {session.label}",
                   start=session.local_starts_at, end=session.local_ends_at, created=session.created_at, stamp=stamp)


def _vevent(event: Event, *, uid: str, title: str, start: datetime, end: datetime, created: datetime,
            stamp: datetime | None) -> VEvent:
    """A VEVENT with the event's details, status and SEQUENCE, for the given UID, title and times."""
    url = event_url(event)
    return VEvent.new(
        uid=uid,
        sequence=event.ics_sequence,
        start=start,
        end=end,
        summary=gettext("Cancelled: %(title)s", title=title) if event.is_cancelled else title,
        description=_description(event, url),
        location=LOCATION,
        url=url,
        status="CANCELLED" if event.is_cancelled else "CONFIRMED",
        stamp=stamp or utcnow(),
        last_modified=event.updated_at,
        created=created,
    )


def event_vevents(event: Event, *, stamp: datetime | None = None) -> list[VEvent]:
    """The event's VEVENTs: one, or one per session of a course."""
    if event.sessions:
        return [session_vevent(session, stamp=stamp) for session in event.sessions]
    return [event_vevent(event, stamp=stamp)]


def event_calendar(events: Iterable[Event], method: str | None = "PUBLISH", *, name: str | None = None) -> Calendar:
    """A VCALENDAR holding the events and exactly the VTIMEZONEs they reference."""
    events = list(events)
    calendar = Calendar.new(
        prodid=PRODID,
        method=method,
        name=name or f"{get_branding().site_name} events",
        uid=f"calendar@{uid_host()}",
        refresh_interval=timedelta(hours=1),
    )
    # Older clients read the X- names only.
    calendar.add("X-PUBLISHED-TTL", timedelta(hours=1))
    stamp = utcnow()
    for event in events:
        for vevent in event_vevents(event, stamp=stamp):
            calendar.add_component(vevent)
    if events:
        # Only the transitions around these events: the default span (1970-2038) bloats every file.
        first = min(e.local_starts_at.date() for e in events) - timedelta(days=366)
        last = max(e.local_ends_at.date() for e in events) + timedelta(days=366)
        add_timezones(calendar, date(first.year, 1, 1), date(last.year + 1, 1, 1))
    return calendar


@lru_cache(maxsize=256)
def _vtimezone(tzid: str, first: date, last: date) -> Timezone | None:
    """A zone's VTIMEZONE with its transitions between two dates: the same for every file that needs
    it, so it is built once per process (never changed once built; files share it read-only).
    """
    try:
        return Timezone.from_tzid(tzid, first_date=first, last_date=last)
    except ValueError:  # a zone the tz database does not know: left out, as icalendar does
        return None


def add_timezones(calendar: Calendar, first: date, last: date) -> None:
    """`Calendar.add_missing_timezones` from the cache above: a VTIMEZONE for every TZID the calendar
    uses and lacks, placed before the components that refer to it.
    """
    at = len(calendar.timezones)
    for tzid in sorted(calendar.get_missing_tzids()):
        timezone = _vtimezone(tzid, first, last)
        if timezone is not None:
            calendar.subcomponents.insert(at, timezone)
            at += 1


def calendar_bytes(calendar: Calendar) -> bytes:
    """The calendar serialised as RFC 5545 text (CRLF, folded lines)."""
    return calendar.to_ical()


# --- add-to-calendar links --------------------------------------------------------------------------

GOOGLE_TEMPLATE_URL = "https://calendar.google.com/calendar/render"
OUTLOOK_COM_COMPOSE_URL = "https://outlook.live.com/calendar/0/action/compose"
OUTLOOK_WORK_COMPOSE_URL = "https://outlook.office.com/calendar/0/action/compose"


def add_to_calendar_links(reg: Registration, *, link: str) -> dict[str, str]:
    """Links that open Google Calendar / Outlook with the event filled in (every value URL-encoded)."""
    event = reg.event
    details = (gettext("Join the event (personal link, keep it to yourself): %(link)s", link=link) + "\n\n"
               + gettext("Event page: %(url)s", url=event_url(event)))
    utc = "%Y%m%dT%H%M%SZ"
    title = event.title_in(text_language())
    google = {"action": "TEMPLATE", "text": title,
              "dates": f"{event.starts_at.astimezone(UTC):{utc}}/{event.ends_at.astimezone(UTC):{utc}}",
              "ctz": event.timezone, "details": details, "location": link}
    outlook = {"path": "/calendar/action/compose", "rru": "addevent", "subject": title,
               "startdt": event.starts_at.astimezone(UTC).isoformat(),
               "enddt": event.ends_at.astimezone(UTC).isoformat(), "body": details, "location": link}
    return {
        "google": f"{GOOGLE_TEMPLATE_URL}?{urlencode(google)}",
        "outlook_com": f"{OUTLOOK_COM_COMPOSE_URL}?{urlencode(outlook)}",
        "outlook_work": f"{OUTLOOK_WORK_COMPOSE_URL}?{urlencode(outlook)}",
    }
