"""IANA time zones: the choices organizers pick from, and local wall time <-> UTC with DST care."""

from __future__ import annotations

import difflib
import logging
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask_babel import gettext

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


@lru_cache(maxsize=1)
def _by_folded_name() -> dict[str, str]:
    """Each zone under a forgiving spelling: lower case, spaces for underscores."""
    return {_fold(z): z for z in all_zones()}


def _fold(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


def canonical_zone(name: str | None) -> str:
    """`name` as the zone's exact IANA spelling when it names one regardless of case, spaces and
    underscores ("america/new york" -> "America/New_York"); otherwise `name` stripped, unchanged.
    """
    name = (name or "").strip()
    if name in all_zones():
        return name
    return _by_folded_name().get(_fold(name), name)


#: Typed names longer than this get no suggestion (no zone name is half as long).
_SUGGEST_MAX = 64


def suggest_zone(name: str | None) -> str | None:
    """The known zone closest to a mistyped name ("Europe/Amsterdm" -> "Europe/Amsterdam"), or None."""
    folded = _fold(name or "")
    if not folded or len(folded) > _SUGGEST_MAX:
        return None
    close = difflib.get_close_matches(folded, _by_folded_name().keys(), n=1, cutoff=0.75)
    return _by_folded_name()[close[0]] if close else None


def zone_error(name: str | None, *, example: str = "Europe/Paris") -> str:
    """What to tell someone whose typed time zone is not one we know."""
    typed = (name or "").strip()
    if not typed:
        return gettext("Enter your time zone, like %(example)s.", example=example)
    shown = typed if len(typed) <= _SUGGEST_MAX else typed[:_SUGGEST_MAX] + "…"
    suggestion = suggest_zone(typed)
    if suggestion:
        return gettext("‘%(typed)s’ is not a time zone we know; did you mean %(suggestion)s?", typed=shown,
                       suggestion=suggestion)
    return gettext("‘%(typed)s’ is not a time zone we know. Enter a name like %(example)s, or pick one from the "
                   "list of all time zones.", typed=shown, example=example)


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
