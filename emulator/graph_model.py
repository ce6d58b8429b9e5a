"""Graph resource shapes and parsing helpers shared by the emulated Graph endpoints (graph.py)."""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request

from ._util import iso_utc, new_guid
from .core import EmulatedUser
from .timezones import resolve_zone

ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

SCOPES_ME = ("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All")
SCOPES_CAL_READ = ("Calendars.Read", "Calendars.ReadWrite")
SCOPES_CAL_WRITE = ("Calendars.ReadWrite",)
SCOPES_MEETING_READ = ("OnlineMeetings.Read", "OnlineMeetings.ReadWrite")
SCOPES_MEETING_WRITE = ("OnlineMeetings.ReadWrite",)
SCOPES_ATTENDANCE = ("OnlineMeetingArtifact.Read.All",)

FILTER_RE = re.compile(r"^\s*([A-Za-z][\w/]*)\s+eq\s+'((?:[^']|'')*)'\s*$")
NO_TIME = "0001-01-01T00:00:00Z"


class GraphError(Exception):
    """A Graph error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def new_online_meeting(
    organizer: EmulatedUser,
    *,
    tenant_id: str,
    teams_base_url: str,
    subject: str,
    start: datetime,
    end: datetime,
    attendees: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """A new onlineMeeting resource as Graph creates it for a Teams calendar event."""
    thread = "19:meeting_" + base64.b64encode(str(uuid.uuid4()).encode()).decode() + "@thread.v2"
    meeting_id = base64.urlsafe_b64encode(f"1*{organizer.oid}*0**{thread}".encode()).decode().rstrip("=")
    tid = tenant_id
    context = json.dumps({"Tid": tid, "Oid": organizer.oid}, separators=(",", ":"))
    # Teams writes lower-case escapes (%3a, %40, %22); Foyer must store this string verbatim.
    join_url = f"{teams_base_url}/l/meetup-join/{teams_quote(thread)}/0?context={teams_quote(context)}"
    conference_id = str(secrets.randbelow(10**9)).zfill(9)
    meeting = {
        "id": meeting_id,
        "creationDateTime": iso_utc(now),
        "startDateTime": iso_utc(start),
        "endDateTime": iso_utc(end),
        "joinWebUrl": join_url,
        "subject": subject or None,
        "isBroadcast": False,
        "isEntryExitAnnounced": True,
        # Tenants' default meeting policy: everyone presents, unless the organizer changes it.
        "allowedPresenters": "everyone",
        "allowMeetingChat": "enabled",
        "shareMeetingChatHistoryDefault": "none",
        "allowTeamworkReactions": True,
        "allowAttendeeToEnableMic": True,
        "allowAttendeeToEnableCamera": True,
        "allowParticipantsToChangeName": False,
        "allowRecording": True,
        "allowTranscription": True,
        "recordAutomatically": False,
        "videoTeleconferenceId": None,
        "externalId": None,
        "broadcastSettings": None,
        "watermarkProtection": None,
        "chatRestrictions": None,
        "audioConferencing": {
            "conferenceId": conference_id,
            "tollNumber": "+1 555-0100",
            "tollFreeNumber": None,
            "tollNumbers": ["+1 555-0100"],
            "tollFreeNumbers": [],
            "dialinUrl": f"https://dialin.teams.microsoft.com/{uuid.uuid4()}?id={conference_id}",
        },
        "participants": {
            "organizer": {
                "upn": organizer.upn,
                "role": "presenter",
                "identity": {
                    "application": None,
                    "device": None,
                    "user": {"id": organizer.oid, "displayName": None, "tenantId": tid, "identityProvider": "AAD"},
                },
            },
            "attendees": [
                {
                    "upn": a["emailAddress"]["address"],
                    "role": "attendee",
                    "identity": {
                        "user": {
                            "id": None,
                            "displayName": a["emailAddress"].get("name"),
                            "tenantId": None,
                            "identityProvider": "AAD",
                        }
                    },
                }
                for a in attendees
            ],
        },
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "joinMeetingIdSettings": {
            "isPasscodeRequired": True,
            "joinMeetingId": str(secrets.randbelow(10**12)).zfill(12),
            "passcode": secrets.token_urlsafe(6)[:6],
        },
        "chatInfo": {"threadId": thread, "messageId": "0", "replyChainMessageId": None},
        "joinInformation": {
            "content": "data:text/html," + quote(join_block(join_url, "html")),
            "contentType": "html",
        },
    }
    return meeting


ACS_IDENTITY_TYPE = "#microsoft.graph.azureCommunicationServicesUserIdentity"
TEAMS_IDENTITY_TYPE = "#microsoft.graph.communicationsUserIdentity"


def build_attendance_record(
    raw: dict[str, Any], *, acs_resource_id: str | None = None, allowed_presenters: str = "everyone"
) -> dict[str, Any]:
    """Fill in a Graph attendanceRecord from a possibly minimal dict (durations computed).

    Participants who joined as ACS users (ids "8:acs:…", or `"acs": True`) appear as Microsoft's
    attendanceRecord-list example shows them: an `azureCommunicationServicesUserIdentity` with the ACS
    resource id, an empty email address, a record id of its own, and role "Presenter" when the meeting lets
    everyone present (else "Attendee"). Teams users get a `communicationsUserIdentity`.
    """
    intervals = []
    for interval in raw.get("attendanceIntervals") or raw.get("intervals") or []:
        if isinstance(interval, dict):
            join, leave = interval.get("joinDateTime"), interval.get("leaveDateTime")
        else:
            join, leave = interval
        join_dt, leave_dt = parse_utc(join), parse_utc(leave)
        intervals.append(
            {
                "joinDateTime": as_utc_string(join_dt),
                "leaveDateTime": as_utc_string(leave_dt),
                "durationInSeconds": int((leave_dt - join_dt).total_seconds()),
            }
        )
    user_id = raw.get("userId") or (raw.get("identity") or {}).get("id") or new_guid()
    is_acs = bool(raw.get("acs")) or str(user_id).startswith("8:acs:")
    identity = raw.get("identity") or (
        {
            "@odata.type": ACS_IDENTITY_TYPE,
            "id": user_id,
            "displayName": raw.get("displayName"),
            "azureCommunicationServicesResourceId": acs_resource_id,
        }
        if is_acs
        else {
            "@odata.type": TEAMS_IDENTITY_TYPE,
            "id": user_id,
            "displayName": raw.get("displayName"),
            "tenantId": raw.get("tenantId"),
        }
    )
    acs_role = "Presenter" if allowed_presenters == "everyone" else "Attendee"
    return {
        "id": raw.get("id") or (new_guid() if is_acs else identity.get("id")) or new_guid(),
        "emailAddress": "" if is_acs else raw.get("emailAddress"),
        "totalAttendanceInSeconds": raw.get("totalAttendanceInSeconds", sum(i["durationInSeconds"] for i in intervals)),
        "role": raw.get("role", acs_role if is_acs else "Attendee"),
        "identity": identity,
        "attendanceIntervals": intervals,
    }


def parse_prefer(request: Request) -> dict[str, str]:
    """Parse `Prefer` headers: `outlook.timezone="Pacific Standard Time", odata.maxpagesize=5`."""
    values: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for part in re.findall(r'[^,"]+(?:"[^"]*")?', header):
            key, _, value = part.strip().partition("=")
            if key:
                values[key.strip().lower()] = value.strip().strip('"')
    return values


def teams_quote(value: str) -> str:
    """Percent-encode like Teams join URLs do: everything reserved, with lower-case hex."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(value, safe=""))


def parse_dtz(value: Any, field: str) -> tuple[datetime, str]:
    """Parse a Graph dateTimeTimeZone into an aware UTC datetime and the zone name given."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise GraphError(400, "BadRequest", f"Property '{field}' must be a dateTimeTimeZone with a 'dateTime'.")
    zone_name = value.get("timeZone") or "UTC"
    zone = resolve_zone(zone_name)
    if zone is None:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'.",
        )
    try:
        naive = parse_naive(value["dateTime"])
    except ValueError as exc:
        raise GraphError(
            400, "BadRequest", f"Cannot convert the literal '{value['dateTime']}' to the expected type 'Edm.DateTime'."
        ) from exc
    return naive.replace(tzinfo=zone).astimezone(UTC), zone_name


def parse_naive(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1]
    if "." in text:  # Graph sends 7 fractional digits; Python takes at most 6
        head, _, frac = text.partition(".")
        text = f"{head}.{frac[:6]}"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed.astimezone(UTC).replace(tzinfo=None)


def parse_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise TypeError("expected an ISO-8601 string")
    text = value.strip()
    if re.search(r"[+-]\d\d:\d\d$", text):
        head, _, frac = text[:-6].partition(".")
        parsed = datetime.fromisoformat((f"{head}.{frac[:6]}" if frac else head) + text[-6:])
        return parsed.astimezone(UTC)
    return parse_naive(text).replace(tzinfo=UTC)


def as_utc_string(value: datetime | str) -> str:
    return iso_utc(parse_utc(value))


def utc_dtz(moment: datetime) -> dict[str, str]:
    return {"dateTime": iso_utc(moment, suffix=""), "timeZone": "UTC"}


def zoned_dtz(moment: datetime, zone: Any, zone_name: str) -> dict[str, str]:
    local = moment.astimezone(zone)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}0", "timeZone": zone_name}


def location_resource(value: Any) -> dict[str, Any]:
    base = {"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}}
    if isinstance(value, dict):
        base.update(value)
    return base


def attendee_resources(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise GraphError(400, "BadRequest", "Property 'attendees' must be a collection.")
    result = []
    for attendee in value:
        address = (attendee or {}).get("emailAddress", {}).get("address") if isinstance(attendee, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient isn't valid. A recipient's e-mail address is missing or malformed.",
            )
        kind = attendee.get("type", "required")
        if kind not in ("required", "optional", "resource"):
            raise GraphError(400, "BadRequest", f"Requested value '{kind}' was not found.")
        result.append(
            {
                "type": kind,
                "status": {"response": "none", "time": NO_TIME},
                "emailAddress": {"name": attendee["emailAddress"].get("name", address), "address": address},
            }
        )
    return result


#: onlineMeetingRole members; those after unknownFutureValue need `Prefer: include-unknown-enum-members`.
MEETING_ROLES = ("attendee", "presenter")
MEETING_ROLES_EVOLVED = ("producer", "coorganizer")
PARTICIPANT_INFO_PROPERTIES = frozenset({"identity", "role", "upn", "@odata.type"})


def check_participants(value: Any, *, include_unknown: bool) -> None:
    """Refuse a `meetingParticipants` that is not one: unknown properties, roles outside the enum."""
    if not isinstance(value, dict) or set(value) - {"attendees", "organizer", "@odata.type"}:
        raise GraphError(400, "BadRequest", "Invalid participants: only 'attendees' and 'organizer' exist.")
    attendees = value.get("attendees")
    if attendees is not None and not isinstance(attendees, list):
        raise GraphError(400, "BadRequest", "Property 'attendees' must be a collection.")
    for info in attendees or []:
        if not isinstance(info, dict):
            raise GraphError(400, "BadRequest", "Each attendee must be a meetingParticipantInfo.")
        unknown = set(info) - PARTICIPANT_INFO_PROPERTIES
        if unknown:
            raise GraphError(
                400,
                "BadRequest",
                f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.meetingParticipantInfo'.",
            )
        role = info.get("role")
        allowed = MEETING_ROLES + (MEETING_ROLES_EVOLVED if include_unknown else ())
        if role is not None and role not in allowed:
            raise GraphError(
                400, "BadRequest", f"Cannot convert the literal '{role}' to the expected type "
                "'microsoft.graph.onlineMeetingRole'."
            )
        if not isinstance(info.get("upn"), str) and not isinstance((info.get("identity") or {}).get("user"), dict):
            raise GraphError(400, "BadRequest", "A participant needs a upn or an identity.")


def participant_resources(attendees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored meetingParticipantInfo entries for a (checked) attendee list."""
    result = []
    for info in attendees:
        user = (info.get("identity") or {}).get("user") or {}
        result.append(
            {
                "upn": info.get("upn") or user.get("userPrincipalName"),
                "role": info.get("role") or "attendee",
                "identity": {
                    "user": {
                        "id": user.get("id"),
                        "displayName": user.get("displayName"),
                        "tenantId": user.get("tenantId"),
                        "identityProvider": "AAD",
                    }
                },
            }
        )
    return result


def sync_meeting_attendees(meeting: dict[str, Any], attendees: list[dict[str, Any]]) -> None:
    """A calendar event's attendee change reaches its meeting: new invitees join as attendees, removed
    ones leave, everyone kept keeps their role.
    """
    current = {(p.get("upn") or "").lower(): p for p in meeting["participants"]["attendees"]}
    synced = []
    for attendee in attendees:
        address = attendee["emailAddress"]["address"]
        kept = current.get(address.lower())
        synced.append(
            kept
            or {
                "upn": address,
                "role": "attendee",
                "identity": {
                    "user": {
                        "id": None,
                        "displayName": attendee["emailAddress"].get("name"),
                        "tenantId": None,
                        "identityProvider": "AAD",
                    }
                },
            }
        )
    meeting["participants"]["attendees"] = synced


def join_block(join_url: str, content_type: str) -> str:
    if content_type == "text":
        return f"\n\n________________________________________\nMicrosoft Teams meeting\nJoin: {join_url}\n"
    return (
        '<div style="width:100%"><span style="white-space:nowrap">________________________________</span></div>'
        '<div class="me-email-text"><div style="margin-bottom:24px"><span class="me-email-text" '
        'style="font-size:24px;font-weight:700">Microsoft Teams meeting</span></div>'
        f'<a class="me-email-headline" href="{join_url}" target="_blank" rel="noreferrer noopener">Join the meeting '
        "now</a></div>"
    )


def body_preview(body: dict[str, str]) -> str:
    text = (
        re.sub(r"<[^>]+>", " ", body.get("content", ""))
        if body.get("contentType") == "html"
        else body.get("content", "")
    )
    return " ".join(text.split())[:255]
