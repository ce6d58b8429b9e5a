"""iCalendar output for events, built with the `icalendar` package (never by hand).

`event_vevent` makes one VEVENT; `event_calendar` wraps events in a VCALENDAR with the VTIMEZONEs
they need. The public feed, the per-event download and (later) the confirmation emails share them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from icalendar import Calendar
from icalendar import Event as VEvent

from app.models import Event, utcnow
from app.services.catalog import event_url, markdown_to_text
from app.services.settings import get_branding

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


def _description(event: Event, url: str) -> str:
    parts = []
    if event.is_cancelled:
        reason = event.cancellation_reason.strip()
        parts.append(f"This event has been cancelled. {reason}".strip())
    text = markdown_to_text(event.description)
    if text:
        parts.append(text)
    parts.append(f"Details: {url}")
    return "\n\n".join(parts)


def event_vevent(event: Event, *, stamp: datetime | None = None) -> VEvent:
    """One VEVENT: stable UID, SEQUENCE from the event, times in the event's own zone (TZID)."""
    url = event_url(event)
    summary = f"Cancelled: {event.title}" if event.is_cancelled else event.title
    return VEvent.new(
        uid=event_uid(event),
        sequence=event.ics_sequence,
        start=event.local_starts_at,
        end=event.local_ends_at,
        summary=summary,
        description=_description(event, url),
        location=LOCATION,
        url=url,
        status="CANCELLED" if event.is_cancelled else "CONFIRMED",
        stamp=stamp or utcnow(),
        last_modified=event.updated_at,
        created=event.created_at,
    )


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
        calendar.add_component(event_vevent(event, stamp=stamp))
    if events:
        # Only the transitions around these events: the default span (1970-2038) bloats every file.
        first = min(e.local_starts_at.date() for e in events) - timedelta(days=366)
        last = max(e.local_ends_at.date() for e in events) + timedelta(days=366)
        calendar.add_missing_timezones(first_date=date(first.year, 1, 1), last_date=date(last.year + 1, 1, 1))
    return calendar


def calendar_bytes(calendar: Calendar) -> bytes:
    """The calendar serialised as RFC 5545 text (CRLF, folded lines)."""
    return calendar.to_ical()
