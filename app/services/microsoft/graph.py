"""`GraphClient`: the Microsoft Graph v1.0 operations Foyer uses, named after them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

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


@dataclass(frozen=True)
class GraphEventRef:
    """What Foyer keeps of a calendar event it created."""

    id: str
    join_url: str | None
    web_link: str | None


@dataclass(frozen=True)
class OnlineMeeting:
    id: str
    join_web_url: str
    lobby_scope: str | None
    allowed_presenters: str | None


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
class EventDetails:
    """The fields Foyer sends when it creates or updates the Teams-backed calendar event."""

    subject: str
    body_html: str
    start: datetime  # aware
    end: datetime  # aware
    timezone: str  # IANA name; sent as-is (Graph accepts IANA and Windows names)
    location: str = ""
    transaction_id: str | None = None

    def as_graph(self) -> dict[str, Any]:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(self.timezone)
        fmt = "%Y-%m-%dT%H:%M:%S"
        body: dict[str, Any] = {
            "subject": self.subject,
            "body": {"contentType": "HTML", "content": self.body_html},
            "start": {"dateTime": self.start.astimezone(zone).strftime(fmt), "timeZone": self.timezone},
            "end": {"dateTime": self.end.astimezone(zone).strftime(fmt), "timeZone": self.timezone},
        }
        if self.location:
            body["location"] = {"displayName": self.location}
        return body


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
        body = details.as_graph() | {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}
        if details.transaction_id:
            # Graph's own guard against a repeated POST creating a second event.
            body["transactionId"] = details.transaction_id
        data = self._call("POST", "/me/events", json=body, headers=self._tz_header(details.timezone))
        return _event_ref(data)

    def get_event(self, event_id: str) -> GraphEventRef:
        return _event_ref(self._call("GET", f"/me/events/{quote(event_id, safe='')}"))

    def update_event(self, event_id: str, details: EventDetails) -> GraphEventRef:
        """PATCH /me/events/{id} with the subject, body and times."""
        data = self._call("PATCH", f"/me/events/{quote(event_id, safe='')}", json=details.as_graph(),
                          headers=self._tz_header(details.timezone))
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

    def update_online_meeting(self, meeting_id: str, *, lobby_scope: str | None = None,
                              allowed_presenters: str | None = None) -> OnlineMeeting:
        """PATCH /me/onlineMeetings/{id}: who bypasses the lobby, who presents."""
        body: dict[str, Any] = {}
        if lobby_scope is not None:
            body["lobbyBypassSettings"] = {"scope": lobby_scope, "isDialInBypassEnabled": False}
        if allowed_presenters is not None:
            body["allowedPresenters"] = allowed_presenters
        return _meeting(self._call("PATCH", f"/me/onlineMeetings/{quote(meeting_id, safe='')}", json=body))

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
                email=r.get("emailAddress"), display_name=identity.get("displayName"),
                identity_id=identity.get("id"), role=r.get("role"),
                total_seconds=int(r.get("totalAttendanceInSeconds") or 0),
                intervals=list(r.get("attendanceIntervals") or []),
            ))
        return records

    # --- transport --------------------------------------------------------------------------------

    @staticmethod
    def _tz_header(zone: str) -> dict[str, str]:
        return {"Prefer": f'outlook.timezone="{zone}"'}

    def _paged(self, path: str) -> Iterator[dict[str, Any]]:
        url: str | None = path
        while url:
            data = self._call("GET", url)
            yield from data.get("value") or []
            url = data.get("@odata.nextLink")

    def _call(self, method: str, path_or_url: str, **kwargs) -> dict[str, Any]:
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
                if response.status_code == 204 or not response.content:
                    return {}
                try:
                    return response.json()
                except ValueError as exc:
                    raise GraphError("Graph sent a response that is not JSON", status=response.status_code) from exc
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
              **kwargs) -> requests.Response:
        token = self._token(force_refresh=force_refresh)
        all_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})}
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
    return GraphEventRef(id=data["id"], join_url=meeting.get("joinUrl"), web_link=data.get("webLink"))


def _meeting(data: dict[str, Any]) -> OnlineMeeting:
    lobby = data.get("lobbyBypassSettings") or {}
    return OnlineMeeting(id=data["id"], join_web_url=data.get("joinWebUrl") or "", lobby_scope=lobby.get("scope"),
                         allowed_presenters=data.get("allowedPresenters"))


__all__ = ["GraphClient", "GraphError", "ReconnectRequired"]
