"""IANA time zones: the choices organizers pick from, and local wall time <-> UTC with DST care."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

logger = logging.getLogger(__name__)

DEFAULT_ZONE = "UTC"

#: Shown first in the picker: the zones most organizers use.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Helsinki",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
)

#: Names that `available_timezones()` may list but that are not zones anyone should schedule in.
_EXCLUDED = {"Factory", "localtime", "posixrules"}


class NonexistentLocalTime(ValueError):
    """The wall-clock time is skipped in that zone (clocks spring forward over it)."""


@lru_cache(maxsize=1)
def all_zones() -> frozenset[str]:
    """Every IANA zone name that may be chosen."""
    return frozenset(
        name for name in available_timezones() if name not in _EXCLUDED and not name.startswith(("posix/", "right/"))
    )


@lru_cache(maxsize=1)
def zone_choices() -> dict[str, dict[str, str]]:
    """Grouped choices for a <select> (optgroups): common zones first, then all others sorted."""
    zones = all_zones()
    common = [z for z in COMMON_ZONES if z in zones]
    others = sorted(zones - set(common))
    return {
        "Common time zones": {z: zone_label(z) for z in common},
        "All time zones": {z: zone_label(z) for z in others},
    }


def zone_label(zone: str) -> str:
    """How a zone is named in lists: 'America/New York'."""
    return zone.replace("_", " ")


def is_valid_zone(name: str | None) -> bool:
    """True when `name` is a zone Foyer offers."""
    return bool(name) and name in all_zones()


def get_zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an offered zone name; ValueError otherwise."""
    if not is_valid_zone(name):
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - tzdata and the list disagree
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_to_utc(local: datetime, zone_name: str) -> datetime:
    """Interpret a naive wall-clock time in `zone_name` and return it as aware UTC.

    A time inside a spring-forward gap does not exist and raises `NonexistentLocalTime`. A time in
    a fall-back overlap happens twice; the first occurrence (fold=0, still summer time) is taken,
    which is what calendar programs do.
    """
    zone = get_zone(zone_name)
    naive = local.replace(tzinfo=None, fold=0)
    aware = naive.replace(tzinfo=zone)
    round_trip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != naive:
        raise NonexistentLocalTime(f"{naive:%H:%M} on {naive.day} {naive:%B %Y} does not exist in {zone_name}")
    return aware.astimezone(UTC)


def utc_to_local(value: datetime | None, zone_name: str) -> datetime | None:
    """A UTC datetime as a naive wall-clock time in `zone_name` (for datetime-local inputs)."""
    if value is None:
        return None
    return value.astimezone(get_zone(zone_name)).replace(tzinfo=None)
