"""Microsoft Graph v1.0: /me, calendar events with Teams meetings, onlineMeetings, attendance, $batch.

Follows microsoft.md A.1, A.2, A.5, B.6 and C: Graph's error JSON with innerError and request ids,
401 `InvalidAuthenticationToken` for missing/expired/unknown bearer tokens, 403 for a missing scope,
`@odata.nextLink` paging, `Prefer: outlook.timezone` (Windows or IANA names), join URLs with
Teams' lower-case %-escapes, `$filter=JoinWebUrl eq '…'` decoded once and compared literally, and
`$batch` with at most 20 requests dispatched through the same fault layer as ordinary requests.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from werkzeug.datastructures import Headers
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from ._util import iso_utc, json_response, new_guid, read_json
from .core import IN_PROCESS_KEY, EmulatedUser, RequestContext
from .faults import Fault
from .graph_facts import FactsError, check_action, check_meeting_update, check_object, mask_evolvable
from .graph_model import (
    FILTER_RE,
    NO_TIME,
    ODATA_JSON,
    SCOPES_ATTENDANCE,
    SCOPES_CAL_READ,
    SCOPES_CAL_WRITE,
    SCOPES_ME,
    SCOPES_MEETING_READ,
    SCOPES_MEETING_WRITE,
    GraphError,
    as_utc_string,
    attendee_resources,
    body_preview,
    build_attendance_record,
    check_participants,
    join_block,
    location_resource,
    new_online_meeting,
    parse_dtz,
    parse_prefer,
    parse_utc,
    participant_resources,
    sync_meeting_attendees,
    utc_dtz,
    zoned_dtz,
)
from .graph_recordings import RULES as RECORDING_RULES
from .graph_recordings import RecordingsMixin
from .timezones import resolve_zone

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger(__name__)


def _prefers_unknown_members(call: _Call) -> bool:
    """`Prefer: include-unknown-enum-members` unlocks evolvable enum members (producer, coorganizer …)."""
    return "include-unknown-enum-members" in parse_prefer(call.request)


@dataclass
class _EventMeta:
    owner_oid: str
    start: datetime
    end: datetime
    online_meeting_id: str | None


@dataclass
class _Call:
    """One authenticated Graph call: who is calling and how they want times rendered."""

    request: Request
    ctx: RequestContext
    user: EmulatedUser
    version: str
    zone_name: str | None
    #: granted delegated scopes, lower-cased
    scopes: frozenset[str]
    #: `Prefer: include-unknown-enum-members`: enum members after unknownFutureValue may be sent and shown
    include_unknown: bool = False


class GraphService(RecordingsMixin):
    """Emulated Graph. State is public for tests: `events`, `online_meetings`, `attendance_reports`, ..."""

    name = "graph"

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.config = emulator.config
        self._url_map = _url_map()
        self.reset()

    def reset(self) -> None:
        """Forget every event, meeting, report and cancellation."""
        #: event id -> Graph event resource (start/end stored in UTC)
        self.events: dict[str, dict[str, Any]] = {}
        #: events cancelled or deleted (they left the calendar), by id
        self.deleted_events: dict[str, dict[str, Any]] = {}
        #: meeting id -> Graph onlineMeeting resource
        self.online_meetings: dict[str, dict[str, Any]] = {}
        #: meeting id -> reports, each with its "attendanceRecords"
        self.attendance_reports: dict[str, list[dict[str, Any]]] = {}
        #: cancellation notices Graph would have sent to attendees (cancel and organizer delete)
        self.cancellations: list[dict[str, Any]] = []
        self._meta: dict[str, _EventMeta] = {}
        #: meetings that a body PATCH took off their event (their join URLs no longer work)
        self.dropped_meetings: dict[str, dict[str, Any] | None] = {}
        #: meeting id -> emulator time from which `$filter=JoinWebUrl eq` finds it
        self._findable_at: dict[str, float] = {}
        self._reset_recordings()

    # --- Python control API ---

    def meeting_by_join_url(self, join_url: str) -> dict[str, Any] | None:
        """The stored meeting whose joinWebUrl equals `join_url` exactly."""
        with self._emulator.lock:
            return next((m for m in self.online_meetings.values() if m["joinWebUrl"] == join_url), None)

    def renew_meeting(self, event_id: str) -> dict[str, Any]:
        """Give a Teams event a new meeting and join URL (the other outcome users report after edits)."""
        with self._emulator.lock:
            event, meta = self.events[event_id], self._meta[event_id]
            old = self.online_meetings.pop(meta.online_meeting_id, None) if meta.online_meeting_id else None
            if old is not None:
                self.dropped_meetings[old["id"]] = old
            organizer = self._emulator.entra.users[meta.owner_oid]
            meeting = self._create_meeting(organizer, event["subject"], meta.start, meta.end, event["attendees"])
            meta.online_meeting_id = meeting["id"]
            event["onlineMeeting"] = {
                "joinUrl": meeting["joinWebUrl"],
                "conferenceId": meeting["audioConferencing"]["conferenceId"],
                "tollNumber": meeting["audioConferencing"]["tollNumber"],
            }
            return meeting

    def add_attendance_report(
        self,
        meeting_id: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        records: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Seed an attendance report for a meeting (what Teams produces after a meeting ends).

        Each record may be Graph-shaped or minimal, e.g. `{"emailAddress": "a@x", "displayName": "A",
        "intervals": [("2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z")]}`; durations are computed.
        """
        with self._emulator.lock:
            meeting = self.online_meetings.get(meeting_id)
            if meeting is None:
                raise KeyError(meeting_id)
            start_s = as_utc_string(start or meeting["startDateTime"])
            end_s = as_utc_string(end or meeting["endDateTime"])
            built = [
                build_attendance_record(
                    r, acs_resource_id=self.config.acs_resource_id, allowed_presenters=meeting["allowedPresenters"]
                )
                for r in (records or [])
            ]
            report = {
                "id": new_guid(),
                "totalParticipantCount": len(built),
                "meetingStartDateTime": start_s,
                "meetingEndDateTime": end_s,
                "attendanceRecords": built,
            }
            self.attendance_reports.setdefault(meeting_id, []).append(report)
            return report

    # --- WSGI dispatch ---

    def dispatch(self, request: Request, ctx: RequestContext) -> Response:
        """Route a Graph request, turning GraphError into Graph's error JSON."""
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            try:
                endpoint, args = adapter.match()
            except MethodNotAllowed as exc:
                raise GraphError(
                    405, "Request_BadRequest", f"The HTTP method '{request.method}' is not allowed for this resource."
                ) from exc
            except NotFound as exc:
                segment = request.path.rstrip("/").rsplit("/", 1)[-1]
                raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.") from exc
            version = args.pop("version")
            if endpoint == "batch":
                response = self._batch(request, ctx, version)
            else:
                call = self._authenticate(request, ctx, version)
                response = getattr(self, f"_{endpoint}_{request.method.lower()}")(call, **args)
        except GraphError as exc:
            response = self._error_response(request, ctx, exc.status, exc.code, exc.message)
            for key, value in exc.headers.items():
                response.headers[key] = value
        self._stamp(request, ctx, response)
        return response

    def fault_response(self, fault: Fault, ctx: RequestContext) -> Response:
        """An injected error in Graph's format (429 as in microsoft.md C)."""
        status = int(fault.status)
        code, message = {
            429: ("TooManyRequests", "Please retry again later."),
            503: ("serviceNotAvailable", "Service Unavailable"),
            504: ("gatewayTimeout", "The gateway did not receive a timely response."),
        }.get(status, ("generalException", "An emulated fault occurred."))
        body = self._error_body(ctx, fault.code or code, message, None)
        if status == 429:
            body["error"]["innerError"].update({"code": "429", "message": "Please retry after", "status": "429"})
        response = json_response(body, status=status, content_type="application/json")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        response.headers["request-id"] = ctx.request_id
        response.headers["client-request-id"] = ctx.request_id
        return response

    def _stamp(self, request: Request, ctx: RequestContext, response: Response) -> None:
        response.headers["request-id"] = ctx.request_id
        response.headers["client-request-id"] = request.headers.get("client-request-id") or ctx.request_id
        response.headers["x-ms-ags-diagnostic"] = json.dumps({"ServerInfo": {"DataCenter": "Emulator"}})

    def _error_body(self, ctx: RequestContext, code: str, message: str, client_request_id: str | None) -> dict:
        return {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": self._emulator.clock.now().strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": ctx.request_id,
                    "client-request-id": client_request_id or ctx.request_id,
                },
            }
        }

    def _error_response(self, request: Request, ctx: RequestContext, status: int, code: str, message: str) -> Response:
        body = self._error_body(ctx, code, message, request.headers.get("client-request-id"))
        return json_response(body, status=status, content_type="application/json")

    # --- authentication and common request parsing ---

    def _authenticate(self, request: Request, ctx: RequestContext, version: str) -> _Call:
        challenge = {
            "WWW-Authenticate": f'Bearer realm="", authorization_uri="https://{self.config.login_host}/common/'
            'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
        }
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        record = self._emulator.entra.lookup_access_token(token)
        if record is None:
            message = (
                "Access token validation failure."
                if token.count(".") == 2
                else "CompactToken parsing failed with error code: 80049217"
            )
            raise GraphError(401, "InvalidAuthenticationToken", message, challenge)
        if record.expires_at <= self._emulator.clock.time():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.", challenge
            )
        user = self._emulator.entra.users[record.user_oid]
        zone_name = None
        prefer = parse_prefer(request)
        if "outlook.timezone" in prefer:
            zone_name = prefer["outlook.timezone"]
            if resolve_zone(zone_name) is None:
                raise GraphError(
                    400,
                    "TimeZoneNotSupportedException",
                    f"A valid TimeZone value must be specified. The following TimeZone value is not supported: "
                    f"'{zone_name}'.",
                )
        include_unknown = "include-unknown-enum-members" in prefer
        return _Call(
            request, ctx, user, version, zone_name, frozenset(s.lower() for s in record.scopes), include_unknown
        )

    def _require(self, call: _Call, allowed: tuple[str, ...], code: str, message: str) -> None:
        if not self.config.enforce_scopes:
            return
        if not any(scope.lower() in call.scopes for scope in allowed):
            raise GraphError(403, code, message)

    def _json_body(self, call: _Call, *, required: bool = True) -> dict[str, Any]:
        if call.request.get_data(cache=True) and call.request.mimetype != "application/json":
            # Graph's answer to a write without a JSON Content-Type (seen in msgraph sample issue #22).
            raise GraphError(400, "BadRequest", "Entity only allows writes with a JSON Content-Type header.")
        value, error = read_json(call.request)
        if error:
            raise GraphError(400, "BadRequest", error)
        if value is None:
            if required:
                raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
            return {}
        if not isinstance(value, dict):
            raise GraphError(400, "BadRequest", "Invalid request body: a JSON object is expected.")
        return value

    def _ok(self, call: _Call, body: Any, status: int = 200) -> Response:
        response = json_response(body, status=status, content_type=ODATA_JSON if body is not None else None)
        if call.zone_name:
            response.headers["Preference-Applied"] = f'outlook.timezone="{call.zone_name}"'
        return response

    def _page(self, call: _Call, items: list[dict[str, Any]], context: str, *, paging: str = "skip") -> dict[str, Any]:
        """Slice a collection by $top/$skip (or $skiptoken) and add @odata.nextLink if more remain."""
        args = call.request.args
        size = self.config.graph_page_size
        prefer = parse_prefer(call.request)
        if "odata.maxpagesize" in prefer:
            try:
                size = max(1, int(prefer["odata.maxpagesize"]))
            except ValueError:
                pass
        if "$top" in args:
            try:
                size = int(args["$top"])
            except ValueError:
                size = -1
            if not 1 <= size <= 1000:
                raise GraphError(400, "BadRequest", f"Invalid value '{args['$top']}' for $top query option.")
        offset = 0
        try:
            if "$skip" in args:
                offset = int(args["$skip"])
            elif "$skiptoken" in args:
                offset = int(base64.urlsafe_b64decode(args["$skiptoken"] + "==").decode("ascii"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise GraphError(400, "BadRequest", "Invalid paging token.") from exc
        if offset < 0:
            raise GraphError(400, "BadRequest", "Invalid value for $skip query option.")
        result: dict[str, Any] = {
            "@odata.context": f"{call.ctx.base_url}/{call.version}/$metadata#{context}",
            "value": items[offset : offset + size],
        }
        if offset + size < len(items):
            params = {k: v for k, v in args.items() if k not in ("$skip", "$skiptoken")}
            if paging == "skip":
                params["$skip"] = str(offset + size)
            else:
                params["$skiptoken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode().rstrip("=")
            if "$top" in args:
                params["$top"] = args["$top"]
            result["@odata.nextLink"] = f"{call.ctx.base_url}{call.request.path}?{urlencode(params, safe='$/')}"
        return result

    # --- /me ---

    def _me_get(self, call: _Call) -> Response:
        self._require(
            call, SCOPES_ME, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
        user = call.user
        return self._ok(
            call,
            {
                "@odata.context": f"{call.ctx.base_url}/{call.version}/$metadata#users/$entity",
                "businessPhones": [],
                "displayName": user.display_name,
                "givenName": user.given_name,
                "jobTitle": user.job_title,
                "mail": user.mail,
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": "en-US",
                "surname": user.surname,
                "userPrincipalName": user.upn,
                "id": user.oid,
            },
        )

    def _calendar_get(self, call: _Call) -> Response:
        self._require(call, SCOPES_CAL_READ, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return self._ok(
            call,
            {
                "@odata.context": f"{call.ctx.base_url}/{call.version}/$metadata#users('{call.user.oid}')/calendar/"
                "$entity",
                "id": "AAMkAGCalendar" + call.user.oid.replace("-", ""),
                "name": "Calendar",
                "color": "auto",
                "isDefaultCalendar": True,
                "canShare": True,
                "canViewPrivateItems": True,
                "canEdit": True,
                "allowedOnlineMeetingProviders": ["teamsForBusiness"],
                "defaultOnlineMeetingProvider": "teamsForBusiness",
                "isTallyingResponses": True,
                "isRemovable": False,
                "owner": {"name": call.user.display_name, "address": call.user.upn},
            },
        )

    # --- events ---

    def _events_get(self, call: _Call) -> Response:
        self._require(call, SCOPES_CAL_READ, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        with self._emulator.lock:
            mine = [
                self._render_event(call, e) for i, e in self.events.items() if self._meta[i].owner_oid == call.user.oid
            ]
        return self._ok(call, self._page(call, mine, f"users('{call.user.oid}')/events"))

    def _events_post(self, call: _Call) -> Response:
        self._require(call, SCOPES_CAL_WRITE, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        body = self._json_body(call)
        self._check_facts("event", body, call)
        with self._emulator.lock:
            transaction_id = body.get("transactionId")
            if transaction_id:
                for event_id, event in self.events.items():
                    if event.get("transactionId") == transaction_id and self._meta[event_id].owner_oid == call.user.oid:
                        # Graph's documented guard against duplicate creates on client retries.
                        return self._ok(call, self._render_event(call, event, single=True), status=201)
            event = self._create_event(call, body)
        logger.info("Emulator Graph event %s created for %s", event["id"], call.user.upn)
        return self._ok(call, self._render_event(call, event, single=True), status=201)

    def _event_get(self, call: _Call, event_id: str) -> Response:
        self._require(call, SCOPES_CAL_READ, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        with self._emulator.lock:
            event = self._owned_event(call, event_id)
            return self._ok(call, self._render_event(call, event, single=True))

    def _event_patch(self, call: _Call, event_id: str) -> Response:
        self._require(call, SCOPES_CAL_WRITE, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        body = self._json_body(call)
        self._check_facts("event", body, call)
        with self._emulator.lock:
            event = self._owned_event(call, event_id)
            if_match = call.request.headers.get("If-Match")
            if if_match and if_match not in ("*", event["@odata.etag"]):
                raise GraphError(
                    412,
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be "
                    "performed because the change key passed in the request does not match the current "
                    "change key for the item.",
                )
            self._update_event(call, event, body)
            return self._ok(call, self._render_event(call, event, single=True))

    def _event_delete(self, call: _Call, event_id: str) -> Response:
        self._require(call, SCOPES_CAL_WRITE, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        with self._emulator.lock:
            event = self._owned_event(call, event_id)
            self._remove_event(event, kind="delete", comment=None)
        return self._ok(call, None, status=204)

    def _event_cancel_post(self, call: _Call, event_id: str) -> Response:
        self._require(call, SCOPES_CAL_WRITE, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        body = self._json_body(call, required=False)
        try:
            check_action("event", "cancel", body)
        except FactsError as exc:
            raise GraphError(400, exc.code, exc.message) from exc
        comment = body.get("comment", body.get("Comment"))
        with self._emulator.lock:
            event = self._owned_event(call, event_id)
            if not event["isOrganizer"]:
                raise GraphError(
                    400,
                    "ErrorAccessDenied",
                    "Your request can't be completed. You need to be an organizer to cancel a meeting.",
                )
            self._remove_event(event, kind="cancel", comment=comment)
        return self._ok(call, None, status=202)

    def _owned_event(self, call: _Call, event_id: str) -> dict[str, Any]:
        event = self.events.get(event_id)
        if event is None or self._meta[event_id].owner_oid != call.user.oid:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return event

    def _remove_event(self, event: dict[str, Any], *, kind: str, comment: str | None) -> None:
        event_id = event["id"]
        self.deleted_events[event_id] = self.events.pop(event_id)
        if event["attendees"] and event["isOrganizer"]:
            self.cancellations.append(
                {
                    "kind": kind,
                    "event_id": event_id,
                    "subject": event["subject"],
                    "comment": comment,
                    "attendees": [a["emailAddress"]["address"] for a in event["attendees"]],
                    "at": self._emulator.clock.time(),
                }
            )
        logger.info("Emulator Graph event %s removed (%s)", event_id, kind)

    @staticmethod
    def _check_facts(type_name: str, body: dict[str, Any], call: _Call) -> None:
        """Refuse what Graph's v1.0 metadata refuses: unknown properties, wrong types, hidden enum members."""
        try:
            check_object(type_name, body, include_unknown=call.include_unknown)
        except FactsError as exc:
            raise GraphError(400, exc.code, exc.message) from exc

    def _create_event(self, call: _Call, body: dict[str, Any]) -> dict[str, Any]:
        now = self._emulator.clock.now()
        if "start" not in body or "end" not in body:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. An event must have a start and an end time.",
            )
        start, start_zone = parse_dtz(body["start"], "start")
        end, end_zone = parse_dtz(body["end"], "end")
        if end < start:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. The end time of the event must be after its start time.",
            )
        event_id = "AAMkAG" + base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
        change_key = base64.b64encode(secrets.token_bytes(12)).decode()
        organizer = call.user
        uid = "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper()
        event: dict[str, Any] = {
            "@odata.etag": f'W/"{change_key}"',
            "id": event_id,
            "createdDateTime": iso_utc(now),
            "lastModifiedDateTime": iso_utc(now),
            "changeKey": change_key,
            "categories": [],
            "transactionId": None,
            "originalStartTimeZone": start_zone,
            "originalEndTimeZone": end_zone,
            "iCalUId": uid,
            "uid": uid,
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": True,
            "hasAttachments": False,
            "subject": "",
            "bodyPreview": "",
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": False,
            "isCancelled": False,
            "isOrganizer": True,
            "responseRequested": True,
            "seriesMasterId": None,
            "showAs": "busy",
            "type": "singleInstance",
            "webLink": f"https://outlook.office365.com/owa/?itemid={quote(event_id, safe='')}&exvsurl=1&path=/calendar/"
            "item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": False,
            "onlineMeetingProvider": "unknown",
            "allowNewTimeProposals": True,
            "occurrenceId": None,
            "isDraft": False,
            "hideAttendees": False,
            "responseStatus": {"response": "organizer", "time": NO_TIME},
            "body": {"contentType": "html", "content": ""},
            "start": utc_dtz(start),
            "end": utc_dtz(end),
            "location": location_resource(None),
            "locations": [],
            "recurrence": None,
            "attendees": [],
            "organizer": {"emailAddress": {"name": organizer.display_name, "address": organizer.upn}},
            "onlineMeeting": None,
        }
        self.events[event_id] = event
        self._meta[event_id] = _EventMeta(organizer.oid, start, end, None)
        try:
            self._apply_event_fields(call, event, body, creating=True)
        except GraphError:
            del self.events[event_id], self._meta[event_id]
            raise
        return event

    def _update_event(self, call: _Call, event: dict[str, Any], body: dict[str, Any]) -> None:
        self._apply_event_fields(call, event, body, creating=False)
        change_key = base64.b64encode(secrets.token_bytes(12)).decode()
        event["changeKey"] = change_key
        event["@odata.etag"] = f'W/"{change_key}"'
        event["lastModifiedDateTime"] = iso_utc(self._emulator.clock.now())

    def _apply_event_fields(self, call: _Call, event: dict[str, Any], body: dict[str, Any], *, creating: bool) -> None:
        meta = self._meta[event["id"]]
        # Validate everything before mutating, so a 400 leaves the event untouched.
        start, end = meta.start, meta.end
        start_zone, end_zone = event["originalStartTimeZone"], event["originalEndTimeZone"]
        if "start" in body and not creating:
            start, start_zone = parse_dtz(body["start"], "start")
        if "end" in body and not creating:
            end, end_zone = parse_dtz(body["end"], "end")
        if end < start:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Your request can't be completed. The end time of the event must be after its start time.",
            )
        attendees = event["attendees"]
        if "attendees" in body:
            attendees = attendee_resources(body["attendees"])
        wants_online = body.get("isOnlineMeeting", event["isOnlineMeeting"])
        provider = body.get("onlineMeetingProvider")
        if not isinstance(wants_online, bool):
            raise GraphError(400, "BadRequest", "Cannot convert the literal value to the expected type 'Edm.Boolean'.")
        if provider is not None and provider not in (
            "teamsForBusiness",
            "skypeForBusiness",
            "skypeForConsumer",
            "unknown",
        ):
            raise GraphError(400, "BadRequest", f"Requested value '{provider}' was not found.")
        if event["isOnlineMeeting"]:
            if wants_online is False:
                raise GraphError(
                    400,
                    "ErrorInvalidRequest",
                    "Your request can't be completed. An online meeting can't be turned back into a regular event.",
                )
            if provider not in (None, event["onlineMeetingProvider"]):
                raise GraphError(
                    400,
                    "ErrorInvalidRequest",
                    "Your request can't be completed. The online meeting "
                    "provider can't be changed once the event is an online meeting.",
                )
        elif wants_online and (provider or "teamsForBusiness") != "teamsForBusiness":
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                f"Your request can't be completed. The online meeting "
                f"provider '{provider}' isn't allowed for this calendar.",
            )
        # Apply.
        meta.start, meta.end = start, end
        event["start"], event["end"] = utc_dtz(start), utc_dtz(end)
        event["originalStartTimeZone"], event["originalEndTimeZone"] = start_zone, end_zone
        event["attendees"] = attendees
        for key in (
            "subject",
            "categories",
            "importance",
            "sensitivity",
            "showAs",
            "isReminderOn",
            "reminderMinutesBeforeStart",
            "allowNewTimeProposals",
            "responseRequested",
            "hideAttendees",
            "transactionId",
            "isAllDay",
            "recurrence",
            "locations",
        ):
            if key in body:
                event[key] = body[key]
        if "location" in body:
            event["location"] = location_resource(body["location"])
        if "body" in body:
            content = body["body"] or {}
            event["body"] = {
                "contentType": str(content.get("contentType", "html")).lower(),
                "content": content.get("content") or "",
            }
            online = event["onlineMeeting"]
            if not creating and online and online["joinUrl"] not in event["body"]["content"]:
                # What users report after PATCHing the body of a Teams event without its meeting blob: the
                # meeting is gone (onlineMeeting null, the old join URL dead) while isOnlineMeeting stays.
                self._drop_meeting(event, meta)
        if wants_online and not event["isOnlineMeeting"]:
            meeting = self._create_meeting(call.user, event["subject"], start, end, attendees)
            meta.online_meeting_id = meeting["id"]
            event["isOnlineMeeting"] = True
            event["onlineMeetingProvider"] = "teamsForBusiness"
            event["onlineMeeting"] = {
                "joinUrl": meeting["joinWebUrl"],
                "conferenceId": meeting["audioConferencing"]["conferenceId"],
                "tollNumber": meeting["audioConferencing"]["tollNumber"],
            }
        if meta.online_meeting_id:
            meeting = self.online_meetings.get(meta.online_meeting_id)
            if meeting is not None:
                meeting["subject"] = event["subject"]
                meeting["startDateTime"], meeting["endDateTime"] = iso_utc(start), iso_utc(end)
            if meeting is not None and "attendees" in body:
                sync_meeting_attendees(meeting, attendees)
            join_url = event["onlineMeeting"]["joinUrl"]
            if join_url not in event["body"]["content"]:
                event["body"]["content"] += join_block(join_url, event["body"]["contentType"])
        event["bodyPreview"] = body_preview(event["body"])

    def _drop_meeting(self, event: dict[str, Any], meta: _EventMeta) -> None:
        logger.info("Emulator Graph event %s: body replaced without the meeting blob; meeting dropped", event["id"])
        if meta.online_meeting_id:
            self.dropped_meetings[meta.online_meeting_id] = self.online_meetings.pop(meta.online_meeting_id, None)
        meta.online_meeting_id = None
        event["onlineMeeting"] = None
        event["onlineMeetingUrl"] = None

    def _render_event(self, call: _Call, event: dict[str, Any], *, single: bool = False) -> dict[str, Any]:
        meta = self._meta[event["id"]]
        rendered = copy.deepcopy(event)
        if call.zone_name:
            zone = resolve_zone(call.zone_name)
            rendered["start"] = zoned_dtz(meta.start, zone, call.zone_name)
            rendered["end"] = zoned_dtz(meta.end, zone, call.zone_name)
        rendered = mask_evolvable("event", rendered, include_unknown=call.include_unknown)
        select = call.request.args.get("$select")
        if select:
            keep = {s.strip() for s in select.split(",")} | {"id", "@odata.etag"}
            rendered = {k: v for k, v in rendered.items() if k in keep}
        if single:
            rendered = {
                "@odata.context": f"{call.ctx.base_url}/{call.version}/$metadata#users('{call.user.oid}')/events/"
                "$entity",
                **rendered,
            }
        return rendered

    # --- online meetings ---

    def _create_meeting(
        self, organizer: EmulatedUser, subject: str, start: datetime, end: datetime, attendees: list[dict[str, Any]]
    ) -> dict[str, Any]:
        meeting = new_online_meeting(
            organizer,
            tenant_id=self.config.tenant_id,
            teams_base_url=self.config.teams_base_url,
            subject=subject,
            start=start,
            end=end,
            attendees=attendees,
            now=self._emulator.clock.now(),
        )
        self.online_meetings[meeting["id"]] = meeting
        # Teams takes a moment to set a new meeting up: the JoinWebUrl lookup finds it only afterwards.
        self._findable_at[meeting["id"]] = self._emulator.clock.time() + self.config.meeting_lookup_delay
        return meeting

    def _owned_meeting(self, call: _Call, meeting_id: str) -> dict[str, Any]:
        meeting = self.online_meetings.get(meeting_id)
        if meeting is None or meeting["participants"]["organizer"]["identity"]["user"]["id"] != call.user.oid:
            raise GraphError(404, "NotFound", "The requested online meeting was not found.")
        return meeting

    def _meetings_get(self, call: _Call) -> Response:
        self._require(
            call, SCOPES_MEETING_READ, "Forbidden", "Application does not have permission to read online meetings."
        )
        raw_filter = call.request.args.get("$filter")  # werkzeug has decoded the query string exactly once
        if not raw_filter:
            raise GraphError(
                400, "BadRequest", "This request requires a $filter query option, e.g. JoinWebUrl eq '{joinWebUrl}'."
            )
        match = FILTER_RE.match(raw_filter)
        if not match:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {raw_filter}")
        prop, value = match.group(1).lower(), match.group(2).replace("''", "'")
        getters = {
            "joinweburl": lambda m: m["joinWebUrl"],
            "joinmeetingidsettings/joinmeetingid": lambda m: m["joinMeetingIdSettings"]["joinMeetingId"],
            "videoteleconferenceid": lambda m: m["videoTeleconferenceId"],
        }
        if prop not in getters:
            raise GraphError(400, "BadRequest", f"Filter on property '{match.group(1)}' is not supported.")
        now = self._emulator.clock.time()
        with self._emulator.lock:
            found = [
                self._meeting_view(call, copy.deepcopy(m))
                for m in self.online_meetings.values()
                if getters[prop](m) == value
                and m["participants"]["organizer"]["identity"]["user"]["id"] == call.user.oid
                and self._findable_at.get(m["id"], 0.0) <= now
            ]
        return self._ok(
            call,
            {
                "@odata.context": f"{call.ctx.base_url}/{call.version}/$metadata#users('{call.user.oid}')/"
                "onlineMeetings",
                "value": found,
            },
        )

    def _meeting_get(self, call: _Call, meeting_id: str) -> Response:
        self._require(
            call, SCOPES_MEETING_READ, "Forbidden", "Application does not have permission to read online meetings."
        )
        with self._emulator.lock:
            meeting = copy.deepcopy(self._owned_meeting(call, meeting_id))
        return self._ok(call, self._meeting_entity(call, meeting))

    def _meeting_patch(self, call: _Call, meeting_id: str) -> Response:
        self._require(
            call, SCOPES_MEETING_WRITE, "Forbidden", "Application does not have permission to update online meetings."
        )
        body = self._json_body(call)
        self._check_facts("onlineMeeting", body, call)
        try:
            check_meeting_update(body)
        except FactsError as exc:
            raise GraphError(400, exc.code, exc.message) from exc
        if "participants" in body:
            check_participants(body["participants"], include_unknown=_prefers_unknown_members(call))
        with self._emulator.lock:
            meeting = self._owned_meeting(call, meeting_id)
            allowed = body.get("allowedPresenters", meeting["allowedPresenters"])
            roles = {p.get("role") for p in (body.get("participants") or {}).get("attendees") or []}
            if "presenter" in roles and allowed != "roleIsPresenter":
                # "To set the presenter role … allowedPresenters must also be set to roleIsPresenter."
                raise GraphError(
                    400,
                    "BadRequest",
                    "The presenter role can only be given when allowedPresenters is set to roleIsPresenter.",
                )
            for key, value in body.items():
                if key.startswith("@odata"):
                    continue
                if key == "lobbyBypassSettings":
                    given = {k: v for k, v in (value or {}).items() if not k.startswith("@odata")}
                    meeting[key] = {**meeting[key], **given}
                elif key in ("startDateTime", "endDateTime"):
                    meeting[key] = iso_utc(parse_utc(value))
                elif key == "participants":
                    # The attendee list is replaced whole (Graph wants the full list); the organizer stays.
                    if "attendees" in value:
                        meeting["participants"]["attendees"] = participant_resources(value["attendees"] or [])
                else:
                    meeting[key] = value
            result = copy.deepcopy(meeting)
        return self._ok(call, self._meeting_entity(call, result))

    def _meeting_entity(self, call: _Call, meeting: dict[str, Any]) -> dict[str, Any]:
        context = f"{call.ctx.base_url}/{call.version}/$metadata#users('{call.user.oid}')/onlineMeetings/$entity"
        return {"@odata.context": context, **self._meeting_view(call, meeting)}

    @staticmethod
    def _meeting_view(call: _Call, meeting: dict[str, Any]) -> dict[str, Any]:
        """Members after unknownFutureValue read `unknownFutureValue` unless the client sent the Prefer header."""
        return mask_evolvable("onlineMeeting", meeting, include_unknown=call.include_unknown)

    # --- attendance ---

    def _reports_get(self, call: _Call, meeting_id: str) -> Response:
        self._require(
            call, SCOPES_ATTENDANCE, "Forbidden", "Application does not have permission to read meeting artifacts."
        )
        with self._emulator.lock:
            self._owned_meeting(call, meeting_id)
            reports = sorted(
                self.attendance_reports.get(meeting_id, []), key=lambda r: r["meetingStartDateTime"], reverse=True
            )[:50]
            items = [{k: v for k, v in r.items() if k != "attendanceRecords"} for r in copy.deepcopy(reports)]
        context = f"users('{call.user.oid}')/onlineMeetings('{meeting_id}')/attendanceReports"
        return self._ok(call, self._page(call, items, context, paging="skiptoken"))

    def _report(self, call: _Call, meeting_id: str, report_id: str) -> dict[str, Any]:
        self._owned_meeting(call, meeting_id)
        for report in self.attendance_reports.get(meeting_id, []):
            if report["id"] == report_id:
                return copy.deepcopy(report)
        raise GraphError(404, "NotFound", "The attendance report was not found.")

    def _report_get(self, call: _Call, meeting_id: str, report_id: str) -> Response:
        self._require(
            call, SCOPES_ATTENDANCE, "Forbidden", "Application does not have permission to read meeting artifacts."
        )
        with self._emulator.lock:
            report = self._report(call, meeting_id, report_id)
        if "attendancerecords" not in call.request.args.get("$expand", "").lower():
            report.pop("attendanceRecords")
        context = f"{call.ctx.base_url}/{call.version}/$metadata#users('{call.user.oid}')/onlineMeetings('{meeting_id}'"
        return self._ok(call, {"@odata.context": context + ")/attendanceReports/$entity", **report})

    def _records_get(self, call: _Call, meeting_id: str, report_id: str) -> Response:
        self._require(
            call, SCOPES_ATTENDANCE, "Forbidden", "Application does not have permission to read meeting artifacts."
        )
        with self._emulator.lock:
            records = self._report(call, meeting_id, report_id)["attendanceRecords"]
        context = (
            f"users('{call.user.oid}')/onlineMeetings('{meeting_id}')/attendanceReports('{report_id}')/"
            "attendanceRecords"
        )
        return self._ok(call, self._page(call, records, context, paging="skiptoken"))

    # --- $batch ---

    def _batch(self, request: Request, ctx: RequestContext, version: str) -> Response:
        value, error = read_json(request)
        if error or not isinstance(value, dict) or not isinstance(value.get("requests"), list):
            raise GraphError(400, "BadRequest", error or "Invalid batch payload format.")
        items = value["requests"]
        if len(items) > self.config.graph_max_batch:
            raise GraphError(
                400,
                "BadRequest",
                "Number of requests inside batch exceed the limit.",
            )
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Each batch request needs a unique, non-empty string 'id'.")
        for item in items:
            for dep in item.get("dependsOn") or []:
                if dep not in ids or ids.index(dep) >= ids.index(item["id"]):
                    raise GraphError(
                        400,
                        "BadRequest",
                        f"Request '{item['id']}' depends on '{dep}', which is not an earlier request in this batch.",
                    )
            headers = {k.lower() for k in (item.get("headers") or {})}
            if item.get("body") is not None and "content-type" not in headers:
                # A batch-level validation failure: none of the requests run.
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Content-Type header is required for request '{item['id']}' because it has a body.",
                )
        statuses: dict[str, int] = {}
        responses = []
        for item in items:
            result = self._batch_item(request, ctx, version, item, statuses)
            statuses[item["id"]] = result["status"]
            responses.append(result)
        response = json_response({"responses": responses}, content_type=ODATA_JSON)
        return response

    def _batch_item(
        self, request: Request, ctx: RequestContext, version: str, item: dict[str, Any], statuses: dict[str, int]
    ) -> dict[str, Any]:
        item_id = item["id"]

        def item_error(status: int, code: str, message: str) -> dict[str, Any]:
            body = self._error_body(ctx, code, message, request.headers.get("client-request-id"))
            return {"id": item_id, "status": status, "headers": {"Content-Type": "application/json"}, "body": body}

        failed = [dep for dep in item.get("dependsOn") or [] if statuses.get(dep, 200) >= 400]
        if failed:
            return item_error(424, "FailedDependency", f"Request depends on failed request '{failed[0]}'.")
        method, url = str(item.get("method", "")).upper(), item.get("url")
        if method not in ("GET", "POST", "PATCH", "PUT", "DELETE") or not isinstance(url, str) or "://" in url:
            return item_error(
                400, "BadRequest", "Invalid method or URL; batch URLs must be relative, e.g. '/me/events'."
            )
        if url.startswith(("/v1.0/", "/beta/", "v1.0/", "beta/")):
            return item_error(400, "BadRequest", "Batch request URLs must not include the version segment.")
        path, _, query = ("/" + url.lstrip("/")).partition("?")
        headers = Headers({k: str(v) for k, v in (item.get("headers") or {}).items()})
        data = None
        if "body" in item and item["body"] is not None:
            data = json.dumps(item["body"]).encode()
        for key in ("Authorization", "client-request-id"):
            if key in request.headers:
                headers[key] = request.headers[key]
        builder = EnvironBuilder(
            path=f"/{version}{path}",
            base_url=ctx.base_url,
            query_string=query,
            method=method,
            headers=headers,
            data=data,
            environ_overrides={IN_PROCESS_KEY: ctx.in_process},
        )
        try:
            sub_request = Request(builder.get_environ())
        finally:
            builder.close()
        sub_response = self._emulator.handle("graph", sub_request, nested=True)
        raw = sub_response.get_data()
        result: dict[str, Any] = {
            "id": item_id,
            "status": sub_response.status_code,
            "headers": {
                k: v
                for k, v in sub_response.headers.items()
                if k.lower() in ("content-type", "retry-after", "location", "preference-applied", "etag")
            },
        }
        if raw:
            result["body"] = json.loads(raw)
        return result


@functools.cache
def _url_map() -> Map:
    """The routing table, compiled once per process (werkzeug compiles each rule, ~0.1 s per map)."""
    prefix = "/<any('v1.0', 'beta'):version>"
    rules = [
        ("/me", "me", ["GET"]),
        ("/me/calendar", "calendar", ["GET"]),
        ("/me/events", "events", ["GET", "POST"]),
        ("/me/calendar/events", "events", ["GET", "POST"]),
        ("/me/events/<event_id>", "event", ["GET", "PATCH", "DELETE"]),
        ("/me/calendar/events/<event_id>", "event", ["GET", "PATCH", "DELETE"]),
        ("/me/events/<event_id>/cancel", "event_cancel", ["POST"]),
        ("/me/onlineMeetings", "meetings", ["GET"]),
        ("/me/onlineMeetings/<meeting_id>", "meeting", ["GET", "PATCH"]),
        ("/me/onlineMeetings/<meeting_id>/attendanceReports", "reports", ["GET"]),
        ("/me/onlineMeetings/<meeting_id>/attendanceReports/<report_id>", "report", ["GET"]),
        ("/me/onlineMeetings/<meeting_id>/attendanceReports/<report_id>/attendanceRecords", "records", ["GET"]),
        ("/$batch", "batch", ["POST"]),
        *RECORDING_RULES,
    ]
    return Map(
        [Rule(prefix + path, endpoint=endpoint, methods=methods) for path, endpoint, methods in rules],
        strict_slashes=False,
    )
