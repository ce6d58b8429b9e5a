"""Thin wrappers over the Azure Communication Services SDKs: identity, email and SMS.

They use the same `requests.Session` as the other clients (`RequestsTransport(session=…)`), so the
emulator, a custom CA bundle and timeouts apply alike. Errors become `AcsError`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from app.services.microsoft.errors import AcsError
from app.services.microsoft.retry import parse_retry_after

if TYPE_CHECKING:
    from azure.communication.email import EmailClient
    from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
    from azure.communication.sms import SmsClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcsSettings:
    endpoint: str
    access_key: str

    @classmethod
    def from_connection_string(cls, connection_string: str) -> AcsSettings:
        parts = {}
        for piece in connection_string.split(";"):
            if "=" in piece:
                key, _, value = piece.partition("=")
                parts[key.strip().lower()] = value.strip()
        if not parts.get("endpoint") or not parts.get("accesskey"):
            raise ValueError("ACS_CONNECTION_STRING needs endpoint=…;accesskey=…")
        return cls(endpoint=parts["endpoint"].rstrip("/"), access_key=parts["accesskey"])


def _client_kwargs(session: requests.Session, verify: bool | str, timeout: float, retry_total: int) -> dict[str, Any]:
    return {
        "transport": RequestsTransport(session=session, session_owner=False, connection_verify=verify),
        "connection_verify": verify,
        "connection_timeout": timeout,
        "read_timeout": timeout,
        "retry_total": retry_total,
    }


def _acs_error(exc: AzureError, action: str) -> AcsError:
    if isinstance(exc, HttpResponseError):
        response = exc.response
        status = exc.status_code
        code = getattr(exc, "error", None) and getattr(exc.error, "code", "") or ""
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        return AcsError(f"{action} failed: {exc.reason or 'error'}", status=status, code=code or "",
                        transient=status in (408, 429, 500, 502, 503, 504), retry_after=retry_after)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return AcsError(f"{action} failed: ACS could not be reached", transient=True)
    return AcsError(f"{action} failed: {type(exc).__name__}", transient=True)


@dataclass(frozen=True)
class IssuedToken:
    user_id: str
    token: str
    expires_on: datetime


class AcsIdentityClient:
    def __init__(self, settings: AcsSettings, *, session: requests.Session, verify: bool | str = True,
                 timeout: float = 10.0, retry_total: int = 3) -> None:
        self._settings = settings
        self._client_kwargs = _client_kwargs(session, verify, timeout, retry_total)

    @cached_property
    def _client(self) -> CommunicationIdentityClient:
        """The SDK's client, built for the first call: a process that opens no call never loads it."""
        from azure.communication.identity import CommunicationIdentityClient  # noqa: PLC0415 — the identity SDK (~70 ms of every process's start) loads only where calls are opened

        return CommunicationIdentityClient(self._settings.endpoint, AzureKeyCredential(self._settings.access_key),
                                           **self._client_kwargs)

    def create_user(self) -> str:
        try:
            return self._client.create_user().properties["id"]
        except AzureError as exc:
            raise _acs_error(exc, "Creating an ACS identity") from exc

    def issue_token(self, user_id: str, *, scopes: list[str], minutes: int = 60) -> IssuedToken:
        """A token for `scopes`, valid 60–1440 minutes (the service refuses other lifetimes)."""
        minutes = max(60, min(1440, minutes))
        try:
            token = self._client.get_token(_identifier(user_id), scopes,
                                           token_expires_in=timedelta(minutes=minutes))
        except AzureError as exc:
            raise _acs_error(exc, "Issuing an ACS token") from exc
        expires = token.expires_on
        if isinstance(expires, str):  # identity 1.5 returns the raw ISO string
            expires = _parse_iso(expires)
        elif isinstance(expires, int | float):
            expires = datetime.fromtimestamp(expires, UTC)
        return IssuedToken(user_id=user_id, token=token.token, expires_on=expires)

    def revoke_tokens(self, user_id: str) -> None:
        try:
            self._client.revoke_tokens(_identifier(user_id))
        except AzureError as exc:
            raise _acs_error(exc, "Revoking ACS tokens") from exc

    def delete_user(self, user_id: str) -> None:
        try:
            self._client.delete_user(_identifier(user_id))
        except AzureError as exc:
            raise _acs_error(exc, "Deleting an ACS identity") from exc


def _identifier(user_id: str) -> CommunicationUserIdentifier:
    from azure.communication.identity import CommunicationUserIdentifier  # noqa: PLC0415 — see AcsIdentityClient._client

    return CommunicationUserIdentifier(user_id)


def _parse_iso(value: str) -> datetime:
    """ACS sends 7-digit fractions ('…39.3244584+00:00'); Python takes at most 6."""
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EmailMessage:
    to: list[tuple[str, str]]  # (address, display name)
    subject: str
    plain_text: str
    html: str
    reply_to: list[tuple[str, str]] | None = None
    attachments: list[dict[str, str]] | None = None  # name, contentType, contentInBase64


@dataclass(frozen=True)
class SendResult:
    operation_id: str
    status: str
    error: str = ""


class AcsEmailClient:
    def __init__(self, settings: AcsSettings, sender_address: str, *, session: requests.Session,
                 verify: bool | str = True, timeout: float = 10.0, retry_total: int = 0) -> None:
        self.sender_address = sender_address
        self._settings = settings
        self._client_kwargs = _client_kwargs(session, verify, timeout, retry_total)

    @cached_property
    def _client(self) -> EmailClient:
        """The SDK's client, built for the first send: web workers, which only queue emails, never load it."""
        from azure.communication.email import EmailClient  # noqa: PLC0415 — the email SDK (with SMS, ~2.7 MB per process) loads only where emails are sent

        return EmailClient(self._settings.endpoint, AzureKeyCredential(self._settings.access_key),
                           **self._client_kwargs)

    def _body(self, message: EmailMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "senderAddress": self.sender_address,
            "content": {"subject": message.subject, "plainText": message.plain_text, "html": message.html},
            "recipients": {"to": [{"address": a, "displayName": n} for a, n in message.to]},
            "userEngagementTrackingDisabled": True,
        }
        if message.reply_to:
            body["replyTo"] = [{"address": a, "displayName": n} for a, n in message.reply_to]
        if message.attachments:
            body["attachments"] = message.attachments
        return body

    def submit(self, message: EmailMessage, *, operation_id: str) -> SendResult:
        """Hand a message to ACS without waiting for the operation (202 Accepted = "sent").

        The operation's final status is read later with `operation_status`; the Operation-Id is ours,
        so a repeated submit after a crash can be recognised first.
        """
        try:
            poller = self._client.begin_send(self._body(message), operation_id=operation_id, polling=False)
            result = poller.result()
        except AzureError as exc:
            raise _acs_error(exc, "Sending email") from exc
        result = result or {}
        return SendResult(operation_id=result.get("id") or operation_id, status=result.get("status") or "Running")

    def operation_status(self, operation_id: str) -> SendResult | None:
        """The status of an email operation (GET /emails/operations/{id}); None when ACS never saw it."""
        api_version = getattr(self._client._config, "api_version", "2025-09-01")
        api_version = getattr(api_version, "value", api_version)  # the SDK keeps an enum
        request = HttpRequest("GET", f"/emails/operations/{quote(operation_id, safe='')}",
                              params={"api-version": api_version})
        try:
            response = self._client.send_request(request)
        except AzureError as exc:
            raise _acs_error(exc, "Reading an email operation") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            exc = HttpResponseError(response=response)
            raise _acs_error(exc, "Reading an email operation")
        data = response.json() or {}
        error = data.get("error") or {}
        return SendResult(operation_id=data.get("id") or operation_id, status=data.get("status") or "",
                          error=(f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
                                 if isinstance(error, dict) else str(error)))


@dataclass(frozen=True)
class SmsResult:
    to: str
    message_id: str | None
    successful: bool
    error: str


class AcsSmsClient:
    def __init__(self, settings: AcsSettings, sender_number: str, *, session: requests.Session,
                 verify: bool | str = True, timeout: float = 10.0, retry_total: int = 0) -> None:
        self.sender_number = sender_number
        self._settings = settings
        self._client_kwargs = _client_kwargs(session, verify, timeout, retry_total)

    @cached_property
    def _client(self) -> SmsClient:
        """The SDK's client, built for the first text message (see `AcsEmailClient._client`)."""
        from azure.communication.sms import SmsClient  # noqa: PLC0415 — loaded only where text messages are sent

        return SmsClient(self._settings.endpoint, AzureKeyCredential(self._settings.access_key),
                         **self._client_kwargs)

    def send(self, to: list[str], message: str, *, tag: str | None = None) -> list[SmsResult]:
        try:
            results = self._client.send(from_=self.sender_number, to=to, message=message,
                                        enable_delivery_report=True, tag=tag)
        except AzureError as exc:
            raise _acs_error(exc, "Sending SMS") from exc
        return [SmsResult(to=r.to, message_id=r.message_id, successful=bool(r.successful),
                          error=r.error_message or "") for r in results]
