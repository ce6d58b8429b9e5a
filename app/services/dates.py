"""How Foyer writes dates and times, on every page and in every email: one format, always with its zone.

"Tue 3 Mar 2026, 14:00 (Europe/Berlin)"; a span on one day "Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)".
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from app.services.timezones import is_valid_zone


def _zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name if name and is_valid_zone(name) else "UTC")


def format_date(value: date | datetime | None) -> str:
    """'Tue 3 Mar 2026' (a datetime is taken as it is: convert it to the wanted zone first)."""
    if value is None:
        return ""
    return f"{value:%a} {value.day} {value:%b %Y}"


def format_datetime(value: datetime | None, zone: str | None = None, *, with_zone: bool = True) -> str:
    """'Tue 3 Mar 2026, 14:00 (Europe/Berlin)' in the given IANA zone (UTC when none)."""
    if value is None:
        return ""
    tz = _zone(zone)
    local = value.astimezone(tz)
    text = f"{format_date(local)}, {local:%H:%M}"
    return f"{text} ({tz.key})" if with_zone else text


def format_time(value: datetime | None, zone: str | None = None) -> str:
    """'14:00' in the given zone."""
    if value is None:
        return ""
    return f"{value.astimezone(_zone(zone)):%H:%M}"


def format_range(start: datetime, end: datetime, zone: str | None = None) -> str:
    """'Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)', or both dates when the span crosses midnight."""
    tz = _zone(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    text = format_datetime(start, tz.key, with_zone=False)
    if local_end.date() == local_start.date():
        text += f"–{local_end:%H:%M}"
    else:
        text += f" – {format_datetime(end, tz.key, with_zone=False)}"
    return f"{text} ({tz.key})"
