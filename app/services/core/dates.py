"""How Foyer writes dates and times, on every page and in every email: one format, always with its zone.

"Tue 3 Mar 2026, 14:00 (Europe/Berlin)"; a span on one day "Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)".
In another language (the current Flask-Babel locale) the date and time follow that language's own
conventions ("Di., 3. März 2026, 14:00 (Europe/Berlin)"); the zone is always the IANA name.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from babel.dates import format_time as babel_time
from flask_babel import get_locale

from app.services.core.timezones import is_valid_zone


def _zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name if name and is_valid_zone(name) else "UTC")


def _locale():
    """The current locale when it is not English (English keeps Foyer's own format), else None."""
    try:
        locale = get_locale()
    except RuntimeError:  # no application context
        return None
    return None if locale is None or locale.language == "en" else locale


def format_date(value: date | datetime | None) -> str:
    """'Tue 3 Mar 2026' (a datetime is taken as it is: convert it to the wanted zone first)."""
    if value is None:
        return ""
    locale = _locale()
    if locale is not None:
        return format_skeleton("yMMMEd", value, locale=locale)
    return f"{value:%a} {value.day} {value:%b %Y}"


def format_day(value: date | datetime, *, year: bool = True, full_month: bool = False) -> str:
    """'3 Mar 2026' without the weekday ('3 Mar' without the year, '3 March 2026' with the month's full name)."""
    locale = _locale()
    if locale is not None:
        return format_skeleton(("y" if year else "") + ("MMMM" if full_month else "MMM") + "d", value, locale=locale)
    text = f"{value.day} {value:%B}" if full_month else f"{value.day} {value:%b}"
    return f"{text} {value:%Y}" if year else text


def _hours(value: datetime) -> str:
    locale = _locale()
    if locale is not None:
        return babel_time(value, "short", tzinfo=value.tzinfo, locale=locale)
    return f"{value:%H:%M}"


def format_datetime(value: datetime | None, zone: str | None = None, *, with_zone: bool = True) -> str:
    """'Tue 3 Mar 2026, 14:00 (Europe/Berlin)' in the given IANA zone (UTC when none)."""
    if value is None:
        return ""
    tz = _zone(zone)
    local = value.astimezone(tz)
    text = f"{format_date(local)}, {_hours(local)}"
    return f"{text} ({tz.key})" if with_zone else text


def format_time(value: datetime | None, zone: str | None = None) -> str:
    """'14:00' in the given zone."""
    if value is None:
        return ""
    return _hours(value.astimezone(_zone(zone)))


def format_range(start: datetime, end: datetime, zone: str | None = None) -> str:
    """'Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)', or both dates when the span crosses midnight."""
    tz = _zone(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    text = format_datetime(start, tz.key, with_zone=False)
    if local_end.date() == local_start.date():
        text += f"–{_hours(local_end)}"
    else:
        text += f" – {format_datetime(end, tz.key, with_zone=False)}"
    return f"{text} ({tz.key})"
