"""Graph's published v1.0 facts: which properties a type has, their types, enum members, action parameters.

The facts come from Microsoft's own metadata and docs, copied into `specs/` with their `source`:
`graph-v1.0-facts.json` (types, properties, enum members and bound actions from msgraph-metadata's
clean v1.0 CSDL) and `graph-timezones.json` (the IANA names `dateTimeTimeZone.timeZone` accepts).
The emulated Graph refuses a write these facts refuse, and the test suite walks every Graph write
Foyer makes through `write_problems`, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

SPECS = Path(__file__).with_name("specs")
#: Graph hides enum members declared after this one unless the client asks for them.
SENTINEL = "unknownFutureValue"
INCLUDE_UNKNOWN = "include-unknown-enum-members"
#: The onlineMeeting properties the v1.0 "Update onlineMeeting" page lists as updatable
#: (api-reference/v1.0/api/onlinemeeting-update.md, limited to those v1.0's metadata declares).
MEETING_UPDATABLE = frozenset(
    {
        "allowAttendeeToEnableCamera",
        "allowAttendeeToEnableMic",
        "allowBreakoutRooms",
        "allowCopyingAndSharingMeetingContent",
        "allowedLobbyAdmitters",
        "allowedPresenters",
        "allowLiveShare",
        "allowMeetingChat",
        "allowPowerPointSharing",
        "allowRecording",
        "allowTeamworkReactions",
        "allowTranscription",
        "allowWhiteboard",
        "endDateTime",
        "isEntryExitAnnounced",
        "lobbyBypassSettings",
        "participants",
        "recordAutomatically",
        "startDateTime",
        "subject",
        "watermarkProtection",
        "broadcastSettings",
    }
)


class FactsError(ValueError):
    """A write Graph would refuse: `code` and `message` as Graph answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@functools.cache
def facts() -> dict[str, Any]:
    return json.loads((SPECS / "graph-v1.0-facts.json").read_text(encoding="utf-8"))


@functools.cache
def timezone_facts() -> dict[str, Any]:
    return json.loads((SPECS / "graph-timezones.json").read_text(encoding="utf-8"))


@functools.cache
def accepted_iana_zones() -> frozenset[str]:
    """The IANA names Graph takes in `timeZone` and `Prefer: outlook.timezone` (with the alternative spellings)."""
    tz = timezone_facts()
    return frozenset(tz["iana_accepted"]) | frozenset(tz["iana_alternative_spellings"])


def type_info(name: str) -> dict[str, Any] | None:
    return facts()["types"].get(name.removeprefix("#").removeprefix("microsoft.graph."))


@functools.cache
def properties(name: str) -> dict[str, dict[str, Any]]:
    """All properties of a type, its `base` chain included."""
    info = type_info(name)
    if info is None:
        return {}
    inherited = properties(info["base"]) if info.get("base") else {}
    return {**inherited, **info.get("properties", {})}


def derives_from(name: str, ancestor: str) -> bool:
    while name:
        if name == ancestor:
            return True
        info = type_info(name)
        name = (info or {}).get("base", "")
    return False


def visible_members(enum: str, *, include_unknown: bool) -> tuple[str, ...]:
    """The members a client may send or see: those after `unknownFutureValue` only when it opted in."""
    members = tuple(type_info(enum)["members"])
    if include_unknown or SENTINEL not in members:
        return members
    return members[: members.index(SENTINEL) + 1]


def check_object(type_name: str, body: Any, *, include_unknown: bool, path: str = "") -> None:
    """Raise FactsError if `body` is not a valid write of `type_name` (properties, value types, enums)."""
    if not isinstance(body, dict):
        raise FactsError(
            "BadRequest", f"Invalid request body: an object of type 'microsoft.graph.{type_name}' is expected."
        )
    declared = body.get("@odata.type")
    if isinstance(declared, str):
        derived = declared.removeprefix("#").removeprefix("microsoft.graph.")
        if type_info(derived) is None:
            return  # a derived type the facts don't carry: nothing more can be checked
        if not derives_from(derived, type_name):
            raise FactsError(
                "RequestBodyRead",
                f"A type named '{declared}' could not be resolved as a type derived from "
                f"'microsoft.graph.{type_name}'.",
            )
        type_name = derived
    props = properties(type_name)
    for key, value in body.items():
        if key.startswith("@odata") or "@odata." in key:
            continue
        if key not in props:
            raise FactsError(
                "RequestBodyRead",
                f"The property '{key}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only use "
                "property names that are defined by the type or mark the type as open type.",
            )
        check_value(props[key], value, include_unknown=include_unknown, path=f"{path}{key}")


def check_value(prop: dict[str, Any], value: Any, *, include_unknown: bool, path: str) -> None:
    """Check one property's value against its declared type."""
    kind = prop["type"]
    if value is None:
        if not prop.get("nullable", True):
            raise FactsError(
                "RequestBodyRead",
                f"A null value was found for the property named '{path}', which has "
                "the expected type that does not allow null values.",
            )
        return
    if kind.startswith("["):
        if not isinstance(value, list):
            raise FactsError("RequestBodyRead", f"A collection was expected for the property '{path}'.")
        item = {"type": kind[1:-1], "nullable": False}
        for index, element in enumerate(value):
            check_value(item, element, include_unknown=include_unknown, path=f"{path}[{index}]")
        return
    if prop.get("navigation"):
        return  # deep inserts: not modelled
    if kind.startswith("Edm."):
        _check_primitive(kind, value, path)
        return
    info = type_info(kind)
    if info is None:
        return  # a type the facts don't carry
    if info["kind"] == "enum":
        members = info["members"]
        if not isinstance(value, str):
            raise FactsError(
                "RequestBodyRead",
                f"Cannot convert the literal '{json.dumps(value)}' to the expected type 'microsoft.graph.{kind}'.",
            )
        # Flag enums take "a,b"; each member must exist. Graph matches members case-insensitively
        # (its own examples send "contentType": "HTML").
        by_lower = {m.lower(): m for m in members}
        visible = {m.lower() for m in visible_members(kind, include_unknown=include_unknown)}
        for member in (v.strip() for v in value.split(",")):
            if member.lower() not in by_lower:
                raise FactsError("RequestBodyRead", f"Requested value '{member}' was not found.")
            if member.lower() not in visible:
                raise FactsError(
                    "BadRequest",
                    f"The value '{member}' of '{path}' is an evolvable enum member of 'microsoft.graph.{kind}': send "
                    f"'Prefer: {INCLUDE_UNKNOWN}' to use it.",
                )
        return
    check_object(kind, value, include_unknown=include_unknown, path=f"{path}.")


def _check_primitive(kind: str, value: Any, path: str) -> None:
    ok = {
        "Edm.String": lambda v: isinstance(v, str),
        "Edm.Guid": lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F-]{36}", v) is not None,
        "Edm.Boolean": lambda v: isinstance(v, bool),
        "Edm.Int32": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
        "Edm.Int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Edm.Double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "Edm.DateTimeOffset": _is_datetime,
        "Edm.Date": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v) is not None,
    }.get(kind)
    if ok is not None and not ok(value):
        literal = json.dumps(value) if not isinstance(value, str) else value
        raise FactsError("RequestBodyRead", f"Cannot convert the literal '{literal}' to the expected type '{kind}'.")


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Graph sends 7 fractional digits; Python parses at most 6
        digits = re.match(r"\d*", rest).group(0)
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def check_action(entity: str, action: str, body: Any) -> None:
    """Check a bound action's parameters (names are matched case-insensitively, as Graph does)."""
    spec = next((a for a in facts()["actions"].get(entity, []) if a["name"] == action), None)
    if spec is None:
        return
    params = {name.lower(): kind for name, kind in spec["parameters"].items()}
    for key, value in (body or {}).items():
        if key.lower() not in params:
            raise FactsError(
                "RequestBodyRead",
                f"The parameter '{key}' in the request payload is not a valid parameter for the operation '{action}'.",
            )
        check_value({"type": params[key.lower()]}, value, include_unknown=False, path=key)


def mask_evolvable(type_name: str, value: Any, *, include_unknown: bool) -> Any:
    """A response value as a client without the Prefer header sees it: hidden members read `unknownFutureValue`."""
    if include_unknown or not isinstance(value, dict):
        return value
    props = properties(type_name)
    result = dict(value)
    for key, item in value.items():
        prop = props.get(key)
        if prop is None or item is None:
            continue
        kind = prop["type"].strip("[]")
        info = type_info(kind) if not kind.startswith("Edm.") else None
        if info is None:
            continue
        if info["kind"] == "enum" and isinstance(item, str):
            visible = visible_members(kind, include_unknown=False)
            result[key] = ",".join(m if m in visible else SENTINEL for m in item.split(","))
        elif info["kind"] != "enum":
            if isinstance(item, list):
                result[key] = [mask_evolvable(kind, i, include_unknown=False) for i in item]
            else:
                result[key] = mask_evolvable(kind, item, include_unknown=False)
    return result


def prefers_unknown_members(prefer_values: list[str]) -> bool:
    return any(INCLUDE_UNKNOWN in part.lower() for part in prefer_values)


# --- the suite-wide walk: which type a recorded Graph write is for ---------------------------------

_WRITES = (
    (re.compile(r"^/v1\.0/me(?:/calendar)?/events$"), "POST", "event"),
    (re.compile(r"^/v1\.0/me(?:/calendar)?/events/[^/]+$"), "PATCH", "event"),
    (re.compile(r"^/v1\.0/me/onlineMeetings/[^/]+$"), "PATCH", "onlineMeeting"),
    (re.compile(r"^/v1\.0/me/onlineMeetings$"), "POST", "onlineMeeting"),
)
_ACTIONS = re.compile(r"^/v1\.0/me(?:/calendar)?/(events|onlineMeetings)/[^/]+/([A-Za-z]+)$")


def write_problems(method: str, path: str, body: bytes, prefer: list[str]) -> list[str]:
    """What Graph would refuse in one recorded request (empty when it would accept it)."""
    from .timezones import graph_accepts_zone

    problems: list[str] = []
    for value in prefer:
        for zone in re.findall(r'outlook\.timezone\s*=\s*"([^"]*)"', value, flags=re.I):
            if not graph_accepts_zone(zone):
                problems.append(f"{method} {path}: Prefer outlook.timezone '{zone}' is not a zone Graph accepts")
    if method not in ("POST", "PATCH", "PUT"):
        return problems
    path = unquote(path)
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return [*problems, f"{method} {path}: the body is not JSON"]
    include = prefers_unknown_members(prefer)
    try:
        for pattern, verb, type_name in _WRITES:
            if verb == method and pattern.match(path):
                check_object(type_name, data, include_unknown=include)
                if type_name == "onlineMeeting" and method == "PATCH":
                    check_meeting_update(data)
                for dtz in _dtz_values(type_name, data):
                    if not graph_accepts_zone(dtz.get("timeZone") or "UTC"):
                        problems.append(
                            f"{method} {path}: timeZone '{dtz.get('timeZone')}' is not a zone Graph accepts"
                        )
                break
        else:
            match = _ACTIONS.match(path)
            if match and method == "POST":
                entity = "event" if match.group(1) == "events" else "onlineMeeting"
                check_action(entity, match.group(2), data)
    except FactsError as exc:
        problems.append(f"{method} {path}: {exc.code}: {exc.message}")
    return problems


def check_meeting_update(body: dict[str, Any]) -> None:
    """Only the properties the update docs list, and start and end together."""
    for key in body:
        if not key.startswith("@odata") and key not in MEETING_UPDATABLE:
            raise FactsError("BadRequest", f"The property '{key}' can't be updated on an online meeting.")
    if ("startDateTime" in body) != ("endDateTime" in body):
        raise FactsError(
            "BadRequest", "Adjusting the start or end of an online meeting requires both startDateTime and endDateTime."
        )


def _dtz_values(type_name: str, body: Any) -> list[dict[str, Any]]:
    """Every dateTimeTimeZone value directly on a write body."""
    found = []
    for key, prop in properties(type_name).items():
        if prop["type"] == "dateTimeTimeZone" and isinstance(body, dict) and isinstance(body.get(key), dict):
            found.append(body[key])
    return found
