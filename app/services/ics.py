"""iCalendar output for events, built with the `icalendar` package (never by hand).

`event_vevent` makes one VEVENT; `event_calendar` wraps events in a VCALENDAR with the VTIMEZONEs
they need. The public feed and the per-event download share them; `registration_invite` is one
registrant's personal invitation (iTIP REQUEST / CANCEL), attached to emails and downloadable
from the manage page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

from flask import current_app
from icalendar import Alarm, Calendar, Timezone, vCalAddress
from icalendar import Event as VEvent

from app.models import Event, Registration, RegistrationState, utcnow
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


# --- a registrant's personal invitation (iTIP) ----------------------------------------------------

#: How long before the start the invitation's reminder pops up.
INVITE_ALARM_BEFORE = timedelta(minutes=15)
INVITE_METHODS = ("REQUEST", "CANCEL")


def registration_uid(reg: Registration) -> str:
    """The stable UID of one registrant's invitation: the same for every update and the cancellation."""
    return f"registration-{reg.id}@{uid_host()}"


def registration_sequence(reg: Registration, method: str = "REQUEST") -> int:
    """SEQUENCE of the invitation: event changes plus changes to this registration.

    A cancellation counts one more, so calendars rank it above the last invitation they received
    even when nothing else changed (a registrant cancelling their own seat changes neither counter).
    """
    return (reg.event.ics_sequence or 0) + (reg.ics_sequence or 0) + (1 if method == "CANCEL" else 0)


def personal_link(reg: Registration) -> str:
    """The attendee's personal join link (/j/<token>) for a place that has one; else the manage link.
    Never the raw Teams URL: the join link checks the registration and can be revoked.
    """
    from app.services import joins, registrations

    if reg.state == RegistrationState.confirmed or reg.join_token_hash:
        return joins.join_url(reg)
    return registrations.manage_url(registrations.manage_token_for(reg))


def registration_vevent(reg: Registration, method: str = "REQUEST", *, stamp: datetime | None = None,
                        link: str | None = None) -> VEvent:
    """The VEVENT of a registrant's invitation: ORGANIZER, ATTENDEE, personal link, a 15-minute alarm."""
    if method not in INVITE_METHODS:
        raise ValueError(f"unsupported iTIP method {method!r}")
    event = reg.event
    link = link or personal_link(reg)
    cancelled = method == "CANCEL"
    site = get_branding().site_name
    organizer = vCalAddress(f"mailto:{current_app.config['ACS_SENDER_ADDRESS']}")
    organizer.params["CN"] = site
    attendee = vCalAddress(f"mailto:{reg.email}")
    attendee.params.update({"CN": reg.full_name or reg.email, "ROLE": "REQ-PARTICIPANT",
                            "PARTSTAT": "DECLINED" if cancelled else "ACCEPTED", "RSVP": "FALSE",
                            "CUTYPE": "INDIVIDUAL"})
    parts = []
    if event.is_cancelled:
        parts.append(f"This event has been cancelled. {event.cancellation_reason.strip()}".strip())
    elif cancelled:
        parts.append("Your registration has been cancelled.")
    text = markdown_to_text(event.description)
    if text:
        parts.append(text)
    parts.append(f"Join the event (personal link, keep it to yourself): {link}")
    parts.append(f"Event page: {event_url(event)}")
    vevent = VEvent.new(
        uid=registration_uid(reg),
        sequence=registration_sequence(reg, method),
        start=event.local_starts_at,
        end=event.local_ends_at,
        summary=f"Cancelled: {event.title}" if cancelled else event.title,
        description="\n\n".join(parts),
        location=link,
        url=link,
        organizer=organizer,
        attendees=[attendee],
        status="CANCELLED" if cancelled else "CONFIRMED",
        transparency="TRANSPARENT" if cancelled else "OPAQUE",
        stamp=stamp or utcnow(),
        last_modified=max(t for t in (event.updated_at, reg.updated_at, event.created_at) if t is not None),
        created=reg.created_at,
    )
    if not cancelled:
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", f"{event.title} starts in 15 minutes")
        alarm.add("TRIGGER", -INVITE_ALARM_BEFORE)
        vevent.add_component(alarm)
    return vevent


def registration_invite(reg: Registration, method: str = "REQUEST", *, link: str | None = None) -> bytes:
    """A registrant's calendar invitation (METHOD:REQUEST) or its cancellation (METHOD:CANCEL), as bytes.

    `link` is the personal link to put in it (default: the attendee's join link).
    """
    calendar = Calendar.new(prodid=PRODID, method=method)
    calendar.add_component(registration_vevent(reg, method, link=link))
    start = reg.event.local_starts_at.date()
    end = reg.event.local_ends_at.date()
    add_timezones(calendar, date(start.year - 1, 1, 1), date(end.year + 2, 1, 1))
    return calendar.to_ical()


# --- add-to-calendar links --------------------------------------------------------------------------

GOOGLE_TEMPLATE_URL = "https://calendar.google.com/calendar/render"
OUTLOOK_COM_COMPOSE_URL = "https://outlook.live.com/calendar/0/action/compose"
OUTLOOK_WORK_COMPOSE_URL = "https://outlook.office.com/calendar/0/action/compose"


def add_to_calendar_links(reg: Registration, *, link: str) -> dict[str, str]:
    """Links that open Google Calendar / Outlook with the event filled in (every value URL-encoded)."""
    event = reg.event
    details = f"Join the event (personal link, keep it to yourself): {link}\n\nEvent page: {event_url(event)}"
    utc = "%Y%m%dT%H%M%SZ"
    google = {"action": "TEMPLATE", "text": event.title,
              "dates": f"{event.starts_at.astimezone(UTC):{utc}}/{event.ends_at.astimezone(UTC):{utc}}",
              "ctz": event.timezone, "details": details, "location": link}
    outlook = {"path": "/calendar/action/compose", "rru": "addevent", "subject": event.title,
               "startdt": event.starts_at.astimezone(UTC).isoformat(),
               "enddt": event.ends_at.astimezone(UTC).isoformat(), "body": details, "location": link}
    return {
        "google": f"{GOOGLE_TEMPLATE_URL}?{urlencode(google)}",
        "outlook_com": f"{OUTLOOK_COM_COMPOSE_URL}?{urlencode(outlook)}",
        "outlook_work": f"{OUTLOOK_WORK_COMPOSE_URL}?{urlencode(outlook)}",
    }
