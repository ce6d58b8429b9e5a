"""`GraphClient`: the Microsoft Graph v1.0 operations Foyer uses, named after them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests
from tzlocal.windows_tz import tz_win, win_tz

from app.services.microsoft.errors import GraphError, ReconnectRequired
from app.services.microsoft.retry import exponential_backoff, parse_retry_after

logger = logging.getLogger(__name__)

#: Outlook allows 4 concurrent requests per app per mailbox; Foyer acts for one mailbox.
MAILBOX_CONCURRENCY = 4
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
#: The longest wait spent inside a call before retrying; a longer one is handed back to the outbox.
INLINE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class GraphUser:
    id: str
    display_name: str
    user_principal_name: str
    mail: str | None


#: IANA zones CLDR's windowsZones leaves out (old aliases and POSIX-style names), with their Windows names.
EXTRA_WINDOWS_ZONES = {
    "GMT": "UTC",
    "US/East-Indiana": "US Eastern Standard Time",
    "Europe/Uzhgorod": "FLE Standard Time",
    "Europe/Zaporozhye": "FLE Standard Time",
    "EST5EDT": "Eastern Standard Time",
    "CST6CDT": "Central Standard Time",
    "MST7MDT": "Mountain Standard Time",
    "PST8PDT": "Pacific Standard Time",
}


def windows_zone(iana: str) -> str:
    """The Windows name Graph takes for an IANA zone (CLDR's windowsZones mapping, as tzlocal ships it).

    Graph refuses most IANA names (Europe/Amsterdam gets 400 TimeZoneNotSupportedException) but takes every
    Windows name. A zone with no Windows equivalent is sent as UTC: the instants stay exact, only Outlook's
    display zone differs.
    """
    return tz_win.get(iana) or EXTRA_WINDOWS_ZONES.get(iana) or "UTC"


@dataclass(frozen=True)
class GraphEventRef:
    """What Foyer keeps of a calendar event it created."""

    id: str
    join_url: str | None
    web_link: str | None
    #: Graph's createdDateTime (ISO 8601, UTC)
    created: str | None = None


@dataclass(frozen=True)
class OnlineMeeting:
    id: str
    join_web_url: str
    lobby_scope: str | None
    allowed_presenters: str | None
    #: joinMeetingIdSettings: the meeting ID and passcode people can join with instead of the URL
    join_meeting_id: str | None = None
    passcode: str | None = None


@dataclass(frozen=True)
class MeetingOptions:
    """The onlineMeeting settings Foyer owns (PATCH /me/onlineMeetings/{id}); None leaves one as it is."""

    lobby_scope: str | None = None
    allowed_presenters: str | None = None
    allow_attendee_mic: bool | None = None
    allow_attendee_camera: bool | None = None
    #: meetingChatMode: "enabled" or "disabled"
    meeting_chat: str | None = None
    #: Addresses of the people who present (the speakers); replaces the meeting's attendee list whole,
    #: as Graph takes the full list on every update.
    presenters: list[str] | None = None

    def as_graph(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.presenters is not None:
            body["participants"] = {"attendees": presenter_participants(self.presenters)}
        if self.lobby_scope is not None:
            body["lobbyBypassSettings"] = {"scope": self.lobby_scope, "isDialInBypassEnabled": False}
        if self.allowed_presenters is not None:
            body["allowedPresenters"] = self.allowed_presenters
        if self.allow_attendee_mic is not None:
            body["allowAttendeeToEnableMic"] = self.allow_attendee_mic
        if self.allow_attendee_camera is not None:
            body["allowAttendeeToEnableCamera"] = self.allow_attendee_camera
        if self.meeting_chat is not None:
            body["allowMeetingChat"] = self.meeting_chat
        return body


@dataclass(frozen=True)
class AttendanceReport:
    id: str
    total_participant_count: int
    meeting_start: str | None
    meeting_end: str | None


@dataclass(frozen=True)
class AttendanceRecord:
    email: str | None
    display_name: str | None
    identity_id: str | None
    role: str | None
    total_seconds: int
    intervals: list[dict[str, Any]]


@dataclass(frozen=True)
class CallArtifact:
    """A meeting's recording (callRecording) or transcript (callTranscript): its metadata only."""

    id: str
    meeting_id: str
    created: str | None
    ended: str | None
    #: contentCorrelationId: the same value on a recording and the transcript of the same call
    correlation_id: str | None = None


@dataclass(frozen=True)
class DownloadedContent:
    content_type: str
    size: int


class ContentTooLarge(GraphError):
    """A recording's content is larger than Foyer keeps."""


@dataclass(frozen=True)
class EventDetails:
    """The fields Foyer sends when it creates or updates the Teams-backed calendar event."""

    subject: str
    body_html: str
    start: datetime  # aware
    end: datetime  # aware
    timezone: str  # IANA name; sent as its Windows name (see windows_zone)
    location: str = ""
    transaction_id: str | None = None
    #: (address, name) of people Outlook invites: the event's speakers (sent at creation only).
    attendees: tuple[tuple[str, str], ...] = ()

    @property
    def graph_zone(self) -> str:
        return windows_zone(self.timezone)

    def as_graph(self, *, with_body: bool) -> dict[str, Any]:
        """The event fields; `with_body` only at creation (a body PATCH would drop the Teams meeting)."""
        zone_name = self.graph_zone
        # Graph reads the wall time by the Windows zone's rules: write it by those of the zone CLDR names for
        # it, so the instant is exact even where a rare IANA zone's rules differ from its Windows zone.
        zone = ZoneInfo(win_tz.get(zone_name, "UTC"))
        fmt = "%Y-%m-%dT%H:%M:%S"
        body: dict[str, Any] = {
            "subject": self.subject,
            "start": {"dateTime": self.start.astimezone(zone).strftime(fmt), "timeZone": zone_name},
            "end": {"dateTime": self.end.astimezone(zone).strftime(fmt), "timeZone": zone_name},
        }
        if with_body:
            body["body"] = {"contentType": "HTML", "content": self.body_html}
        if self.location:
            body["location"] = {"displayName": self.location}
        return body


def event_attendees(attendees: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Graph `attendee` resources (required attendees) from (address, name) pairs."""
    return [{"emailAddress": {"address": address, "name": name or address}, "type": "required"}
            for address, name in attendees]


def presenter_participants(addresses: list[str]) -> list[dict[str, Any]]:
    """`meetingParticipantInfo` entries giving each address the presenter role (needs allowedPresenters
    "roleIsPresenter" on the same meeting).
    """
    return [{"upn": address, "role": "presenter"} for address in addresses]


class GraphClient:
    """Calls Graph on behalf of the connected service account.

    Retries transient answers (429/5xx) honouring a fractional `Retry-After` of up to a second, with short
    exponential backoff when there is none, within `max_wait` in all; a longer wait raises a transient
    `GraphError` at once (with its `retry_after`) so the outbox retries later. A 401 refreshes the token
    once and retries.
    """

    def __init__(self, base_url: str, token_provider: Callable[..., str], *, session: requests.Session,
                 timeout: float = 10.0, max_attempts: int = 4, max_wait: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token_provider
        self._session = session
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._mailbox = threading.BoundedSemaphore(MAILBOX_CONCURRENCY)

    # --- operations -------------------------------------------------------------------------------

    def get_me(self) -> GraphUser:
        data = self._call("GET", "/me")
        return GraphUser(id=data["id"], display_name=data.get("displayName") or "",
                         user_principal_name=data.get("userPrincipalName") or "", mail=data.get("mail"))

    def create_event(self, details: EventDetails) -> GraphEventRef:
        """POST /me/events with a Teams meeting."""
        body = details.as_graph(with_body=True) | {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}
        if details.transaction_id:
            # Graph's own guard against a repeated POST creating a second event.
            body["transactionId"] = details.transaction_id
        if details.attendees:
            body["attendees"] = event_attendees(details.attendees)
        data = self._call("POST", "/me/events", json=body, headers=self._tz_header(details.graph_zone))
        return _event_ref(data)

    def get_event(self, event_id: str) -> GraphEventRef:
        return _event_ref(self._call("GET", f"/me/events/{quote(event_id, safe='')}"))

    def update_event(self, event_id: str, details: EventDetails) -> GraphEventRef:
        """PATCH /me/events/{id} with the subject, times and location — never the body.

        The body of a Teams event carries the meeting's join blob; replacing it makes Exchange drop the
        meeting (onlineMeeting null, or a new join URL). The returned ref has the join URL as it is now.
        """
        data = self._call("PATCH", f"/me/events/{quote(event_id, safe='')}", json=details.as_graph(with_body=False),
                          headers=self._tz_header(details.graph_zone))
        return _event_ref(data)

    def update_event_attendees(self, event_id: str, attendees: list[tuple[str, str]]) -> GraphEventRef:
        """PATCH /me/events/{id} with only the full attendee list: Outlook invites those added and
        sends a cancellation to those removed.
        """
        data = self._call("PATCH", f"/me/events/{quote(event_id, safe='')}",
                          json={"attendees": event_attendees(attendees)})
        return _event_ref(data)

    def cancel_event(self, event_id: str, comment: str = "") -> None:
        """POST /me/events/{id}/cancel: attendees get the organizer's comment."""
        self._call("POST", f"/me/events/{quote(event_id, safe='')}/cancel", json={"comment": comment})

    def delete_event(self, event_id: str) -> None:
        self._call("DELETE", f"/me/events/{quote(event_id, safe='')}")

    def get_online_meeting_by_join_url(self, join_url: str) -> OnlineMeeting:
        """GET /me/onlineMeetings?$filter=JoinWebUrl eq '…' (a one-item collection)."""
        escaped = join_url.replace("'", "''")
        data = self._call("GET", "/me/onlineMeetings", params={"$filter": f"JoinWebUrl eq '{escaped}'"})
        items = data.get("value") or []
        if not items:
            raise GraphError("No online meeting has that join URL", status=404, code="itemNotFound")
        return _meeting(items[0])

    def get_online_meeting(self, meeting_id: str) -> OnlineMeeting:
        return _meeting(self._call("GET", f"/me/onlineMeetings/{quote(meeting_id, safe='')}"))

    def update_online_meeting(self, meeting_id: str, options: MeetingOptions) -> OnlineMeeting:
        """PATCH /me/onlineMeetings/{id}: lobby, presenters, attendees' mic and camera, meeting chat."""
        return _meeting(self._call("PATCH", f"/me/onlineMeetings/{quote(meeting_id, safe='')}",
                                   json=options.as_graph()))

    def list_attendance_reports(self, meeting_id: str) -> list[AttendanceReport]:
        path = f"/me/onlineMeetings/{quote(meeting_id, safe='')}/attendanceReports"
        return [
            AttendanceReport(id=r["id"], total_participant_count=int(r.get("totalParticipantCount") or 0),
                             meeting_start=r.get("meetingStartDateTime"), meeting_end=r.get("meetingEndDateTime"))
            for r in self._paged(path)
        ]

    def list_attendance_records(self, meeting_id: str, report_id: str) -> list[AttendanceRecord]:
        path = (f"/me/onlineMeetings/{quote(meeting_id, safe='')}/attendanceReports/"
                f"{quote(report_id, safe='')}/attendanceRecords")
        records = []
        for r in self._paged(path):
            identity = r.get("identity") or {}
            records.append(AttendanceRecord(
                # ACS participants come with an empty address and an azureCommunicationServicesUserIdentity
                # whose id is the ACS user id ("8:acs:…"): they are matched by that id.
                email=r.get("emailAddress") or None, display_name=identity.get("displayName"),
                identity_id=identity.get("id"), role=r.get("role"),
                total_seconds=int(r.get("totalAttendanceInSeconds") or 0),
                intervals=list(r.get("attendanceIntervals") or []),
            ))
        return records

    # --- recordings and transcripts (delegated: only the meeting's organizer may read them) ----------

    def list_recordings(self, meeting_id: str, *, scopes: list[str]) -> list[CallArtifact]:
        """GET /me/onlineMeetings/{id}/recordings (OnlineMeetingRecording.Read.All)."""
        path = f"/me/onlineMeetings/{quote(meeting_id, safe='')}/recordings"
        return [_artifact(r) for r in self._paged(path, scopes=scopes)]

    def download_recording(self, meeting_id: str, recording_id: str, into: BinaryIO, *, scopes: list[str],
                           max_bytes: int) -> DownloadedContent:
        """GET …/recordings/{id}/content, streamed into `into` (never more than `max_bytes`)."""
        path = (f"/me/onlineMeetings/{quote(meeting_id, safe='')}/recordings/"
                f"{quote(recording_id, safe='')}/content")
        return self._download(path, into, scopes=scopes, max_bytes=max_bytes)

    def list_transcripts(self, meeting_id: str, *, scopes: list[str]) -> list[CallArtifact]:
        """GET /me/onlineMeetings/{id}/transcripts (OnlineMeetingTranscript.Read.All)."""
        path = f"/me/onlineMeetings/{quote(meeting_id, safe='')}/transcripts"
        return [_artifact(r) for r in self._paged(path, scopes=scopes)]

    def download_transcript(self, meeting_id: str, transcript_id: str, into: BinaryIO, *, scopes: list[str],
                            max_bytes: int) -> DownloadedContent:
        """GET …/transcripts/{id}/content?$format=text/vtt (WebVTT, with the speakers' names)."""
        path = (f"/me/onlineMeetings/{quote(meeting_id, safe='')}/transcripts/"
                f"{quote(transcript_id, safe='')}/content")
        return self._download(path, into, scopes=scopes, max_bytes=max_bytes, params={"$format": "text/vtt"})

    def _download(self, path: str, into: BinaryIO, *, scopes: list[str], max_bytes: int,
                  params: dict[str, str] | None = None) -> DownloadedContent:
        response = self._request("GET", path, scopes=scopes, stream=True, params=params,
                                 headers={"Accept": "*/*"})
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=1024 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise ContentTooLarge(f"The content is larger than {max_bytes:,} bytes", status=413)
                into.write(chunk)
        except requests.RequestException as exc:
            raise GraphError(f"The download from Graph broke off: {type(exc).__name__}", transient=True) from exc
        finally:
            response.close()
        content_type = (response.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip()
        return DownloadedContent(content_type=content_type, size=size)

    # --- transport --------------------------------------------------------------------------------

    @staticmethod
    def _tz_header(zone: str) -> dict[str, str]:
        return {"Prefer": f'outlook.timezone="{zone}"'}

    def _paged(self, path: str, **kwargs) -> Iterator[dict[str, Any]]:
        url: str | None = path
        while url:
            data = self._call("GET", url, **kwargs)
            yield from data.get("value") or []
            url = data.get("@odata.nextLink")

    def _call(self, method: str, path_or_url: str, **kwargs) -> dict[str, Any]:
        response = self._request(method, path_or_url, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise GraphError("Graph sent a response that is not JSON", status=response.status_code) from exc

    def _request(self, method: str, path_or_url: str, **kwargs) -> requests.Response:
        """Send with retries and one token refresh; a successful (< 400) response is returned as it is."""
        url = path_or_url if path_or_url.startswith("https://") else self.base_url + path_or_url
        refreshed = False
        force_refresh = False
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            response = self._send(method, url, force_refresh=force_refresh, **kwargs)
            force_refresh = False
            if response.status_code < 400:
                return response
            error = _graph_error(response)
            if response.status_code == 401 and not refreshed:
                refreshed = force_refresh = True
                logger.info("Graph said 401 (%s) on %s %s; refreshing the token once", error.code, method, path_or_url)
                continue
            if error.transient and attempt < self.max_attempts:
                # A wait here holds the worker and every job queued behind it. Only short waits are spent
                # in the call; a longer Retry-After goes back at once with the error (its retry_after),
                # and the outbox schedules the retry while the worker gets on with other jobs.
                if error.retry_after is not None:
                    delay = error.retry_after
                else:
                    delay = min(exponential_backoff(attempt), INLINE_WAIT_SECONDS)
                if delay <= INLINE_WAIT_SECONDS and waited + delay <= self.max_wait:
                    logger.info("Graph %s on %s %s; retrying in %.2fs", response.status_code, method, path_or_url,
                                delay)
                    self._sleep(delay)
                    waited += delay
                    continue
            raise error

    def _send(self, method: str, url: str, *, force_refresh: bool, headers: dict[str, str] | None = None,
              scopes: list[str] | None = None, **kwargs) -> requests.Response:
        token = self._token(force_refresh=force_refresh, scopes=scopes) if scopes else \
            self._token(force_refresh=force_refresh)
        all_headers = {"Accept": "application/json", **(headers or {}), "Authorization": f"Bearer {token}"}
        with self._mailbox:
            try:
                return self._session.request(method, url, headers=all_headers, timeout=self.timeout, **kwargs)
            except requests.Timeout as exc:
                raise GraphError(f"Graph did not answer within {self.timeout:g}s", transient=True) from exc
            except requests.RequestException as exc:
                raise GraphError(f"Could not reach Graph: {type(exc).__name__}", transient=True) from exc


def _graph_error(response: requests.Response) -> GraphError:
    code, message = "", response.reason or "error"
    try:
        err = response.json().get("error") or {}
        code = err.get("code") or ""
        message = err.get("message") or message
    except (ValueError, AttributeError):
        pass
    return GraphError(
        message, status=response.status_code, code=code,
        transient=response.status_code in TRANSIENT_STATUSES,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        request_id=response.headers.get("request-id", ""),
    )


def _event_ref(data: dict[str, Any]) -> GraphEventRef:
    meeting = data.get("onlineMeeting") or {}
    return GraphEventRef(id=data["id"], join_url=meeting.get("joinUrl"), web_link=data.get("webLink"),
                         created=data.get("createdDateTime"))


def _artifact(data: dict[str, Any]) -> CallArtifact:
    return CallArtifact(id=data["id"], meeting_id=data.get("meetingId") or "", created=data.get("createdDateTime"),
                        ended=data.get("endDateTime"), correlation_id=data.get("contentCorrelationId"))


def _meeting(data: dict[str, Any]) -> OnlineMeeting:
    lobby = data.get("lobbyBypassSettings") or {}
    by_id = data.get("joinMeetingIdSettings") or {}
    return OnlineMeeting(id=data["id"], join_web_url=data.get("joinWebUrl") or "", lobby_scope=lobby.get("scope"),
                         allowed_presenters=data.get("allowedPresenters"),
                         join_meeting_id=by_id.get("joinMeetingId"), passcode=by_id.get("passcode"))


__all__ = ["GraphClient", "GraphError", "ReconnectRequired"]
