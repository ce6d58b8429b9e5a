"""Azure Communication Services: identities/tokens, email send + operation status, SMS.

Follows microsoft.md E, F and G. Every request must carry the HMAC-SHA256 signature the ACS SDKs
compute (E.3): VERB, path?query and `<x-ms-date>;<host[:port]>;<x-ms-content-sha256>` joined by newlines, keyed with the
base64-decoded access key; the content hash must match the body and the date must be recent. Anything
else is a 401. Email enforces 50 recipients, 10 MB, ACS's attachment-type allow-list and per-minute/per-hour
quotas (429 + Retry-After), records the client's `Operation-Id` (a reused one answers the existing operation
and sends nothing again; the repeat stays visible to tests) and walks each operation through
NotStarted -> Running -> Succeeded/Failed as it is polled, with `retry-after` while it is not terminal.
SMS enforces ACS's 2,048-character message and 100 recipients per request.

Delivery is reported separately, as on the real service: each accepted email recipient (and each SMS
sent with `enableDeliveryReport`) gets an Event Grid event (`Microsoft.Communication.EmailDeliveryReportReceived`
/ `SMSDeliveryReportReceived`, Event Grid schema) that is posted to the webhooks subscribed through
`subscribe()` (or `POST /_emulator/acs/event-subscriptions`), after Event Grid's validation handshake.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import math
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import requests
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ._util import iso_utc, json_response, new_guid, read_json
from .core import RequestContext
from .faults import Fault

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger(__name__)

IDENTITY_API_VERSIONS = ("2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01", "2025-06-30")
EMAIL_API_VERSIONS = ("2023-03-31", "2024-07-01-preview", "2025-09-01")
SMS_API_VERSIONS = ("2021-03-07",)
#: ACS's token scopes, exactly (CommunicationIdentityTokenScope in the Identity REST spec 2023-10-01); any
#: other value is a 400 ValidationError.
TOKEN_SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
_EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
#: Sms/stable/2021-03-07: `message` maxLength 2048, `smsRecipients` 1 to 100 items.
SMS_MAX_MESSAGE_CHARS = 2048
SMS_MAX_RECIPIENTS = 100

#: "Allowed attachment types for sending email in Azure Communication Services" (learn.microsoft.com,
#: concepts/email/email-attachment-allowed-mime-types): the MIME type strings the send operation accepts.
#: The type is compared as a whole: `text/calendar` is allowed, `text/calendar; method=REQUEST` is not.
ALLOWED_ATTACHMENT_TYPES = frozenset({
    "video/3gpp", "video/3gpp2", "application/x-7z-compressed", "audio/aac", "video/x-msvideo", "image/bmp",
    "text/csv", "application/msword", "application/vnd.ms-word.document.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/vnd.ms-fontobject",
    "application/epub+zip", "image/gif", "application/gzip", "image/vnd.microsoft.icon", "text/calendar",
    "image/jpeg", "application/json", "audio/midi", "audio/mpeg", "video/mp4", "video/mpeg", "audio/ogg",
    "video/ogg", "application/ogg", "application/onenote", "audio/opus", "font/otf", "application/pdf",
    "image/png", "application/vnd.ms-powerpoint.slideshow.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow", "application/vnd.ms-powerpoint",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation", "application/vnd.ms-publisher",
    "application/x-rar-compressed", "application/vnd.ms-outlook", "application/rtf", "image/svg+xml",
    "application/x-tar", "image/tiff", "font/ttf", "text/plain", "application/vnd.visio", "audio/wav",
    "audio/webm", "video/webm", "image/webp", "audio/x-ms-wma", "video/x-ms-wmv", "font/woff", "font/woff2",
    "application/vnd.ms-excel", "application/vnd.ms-excel.sheet.binary.macroenabled.12",
    "application/vnd.ms-excel.sheet.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/xml", "text/xml",
    "application/zip",
})
#: A documented reserved custom header: drop an invalid attachment instead of refusing the send.
SUPPRESS_INVALID_ATTACHMENT = "x-ms-acsemail-suppress-invalid-attachment"

EMAIL_DELIVERY_EVENT = "Microsoft.Communication.EmailDeliveryReportReceived"
SMS_DELIVERY_EVENT = "Microsoft.Communication.SMSDeliveryReportReceived"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


class AcsError(Exception):
    """An ACS error response (`CommunicationErrorResponse` / Azure `ErrorResponse` shape)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, *,
                 target: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.target = target


@dataclass
class AcsAccessToken:
    """A user access token issued for an ACS identity."""

    token: str = field(repr=False)
    scopes: list[str]
    issued_at: float
    expires_at: float


@dataclass
class AcsIdentity:
    """An ACS communication user."""

    id: str
    created_at: float
    deleted: bool = False
    #: tokens issued at or before this instant are revoked
    tokens_valid_from: float | None = None
    tokens: list[AcsAccessToken] = field(default_factory=list)


@dataclass
class SentEmail:
    """One accepted `emails:send` request as the resource received it."""

    operation_id: str
    #: the `Operation-Id` header the client sent, if any
    client_operation_id: str | None
    sender: str
    subject: str
    plain_text: str | None
    html: str | None
    to: list[dict[str, str]]
    cc: list[dict[str, str]]
    bcc: list[dict[str, str]]
    reply_to: list[dict[str, str]]
    attachments: list[dict[str, Any]]
    headers: dict[str, str]
    user_engagement_tracking_disabled: bool | None
    received_at: float
    size: int
    #: True when this send reused an Operation-Id already seen
    duplicate: bool = False

    @property
    def recipients(self) -> list[str]:
        """Every recipient address (to, cc, bcc)."""
        return [r["address"] for r in self.to + self.cc + self.bcc]


@dataclass
class EmailOperation:
    """The long-running operation behind a send."""

    id: str
    status: str
    created_at: float
    polls: int = 0
    error: dict[str, Any] | None = None
    fails: bool = False


@dataclass
class SmsMessage:
    """One SMS recipient result."""

    message_id: str | None
    from_: str
    to: str
    message: str
    successful: bool
    http_status_code: int
    repeatability_request_id: str | None
    enable_delivery_report: bool
    tag: str | None
    received_at: float
    error_message: str | None = None


class EventGridError(Exception):
    """An Event Grid subscription could not be created (the webhook failed the validation handshake)."""


@dataclass
class EventSubscription:
    """An Event Grid webhook subscription to the resource's delivery-report events."""

    id: str
    #: The webhook URL as configured; a secret in its query string travels with every delivery.
    endpoint: str = field(repr=False)
    #: Static delivery properties (HTTP headers Event Grid adds to each delivery).
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    event_types: tuple[str, ...] = (EMAIL_DELIVERY_EVENT, SMS_DELIVERY_EVENT)
    #: A CA bundle for an https webhook served with a private CA (None: the usual trust store).
    verify: str | bool | None = None
    delivered: int = 0
    failed: int = 0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for `/_emulator/acs/event-subscriptions` (the URL without its query)."""
        return {"id": self.id, "endpoint": self.endpoint.split("?", 1)[0], "event_types": list(self.event_types),
                "headers": sorted(self.headers), "delivered": self.delivered, "failed": self.failed,
                "last_error": self.last_error}


class AcsService:
    """Emulated ACS resource. State for tests: `identities`, `sent_emails`, `email_operations`, `sms_messages`,
    `event_subscriptions`, `pending_reports` (delivery-report events not yet posted) and `delivered_reports`.
    """

    name = "acs"

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.config = emulator.config
        self._url_map = _url_map()
        self.reset()

    def reset(self) -> None:
        """Forget identities, emails, operations, SMS and quota history."""
        self.identities: dict[str, AcsIdentity] = {}
        self.sent_emails: list[SentEmail] = []
        self.email_operations: dict[str, EmailOperation] = {}
        self.sms_messages: list[SmsMessage] = []
        self._sms_repeatability: dict[str, dict[str, Any]] = {}
        self._email_sends: deque[float] = deque()
        #: requests refused with 401 (for tests asserting that tampering was noticed)
        self.rejected_signatures: int = 0
        self.event_subscriptions: dict[str, EventSubscription] = {}
        self.pending_reports: list[dict[str, Any]] = []
        self.delivered_reports: list[dict[str, Any]] = []
        #: one delivery run at a time, so a report is never posted twice by racing runs
        self._delivering = threading.Lock()

    # --- Python control API ---

    def token_is_valid(self, token: str) -> bool:
        """Whether an ACS user access token is unexpired and not revoked (what Teams/ACS would accept)."""
        now = self._emulator.clock.time()
        with self._emulator.lock:
            for identity in self.identities.values():
                for issued in identity.tokens:
                    if issued.token == token:
                        revoked = (
                            identity.tokens_valid_from is not None and issued.issued_at <= identity.tokens_valid_from
                        )
                        return not identity.deleted and not revoked and issued.expires_at > now
        return False

    def token_scopes(self, token: str) -> list[str] | None:
        """The scopes an issued ACS user access token carries (None: never issued here)."""
        with self._emulator.lock:
            for identity in self.identities.values():
                for issued in identity.tokens:
                    if issued.token == token:
                        return list(issued.scopes)
        return None

    def record_earlier_email_sends(self, times: list[float]) -> None:
        """Count emails sent at `times` (epoch seconds, in the past) against the quota, as a resource that has
        been sending for a while does; they are not in `sent_emails`.
        """
        with self._emulator.lock:
            self._email_sends = deque(sorted([*self._email_sends, *times]))

    def duplicate_operation_ids(self) -> list[str]:
        """Operation ids the client sent more than once."""
        with self._emulator.lock:
            return sorted({e.operation_id for e in self.sent_emails if e.duplicate})

    # --- Event Grid: delivery reports ---

    def subscribe(self, endpoint: str, *, headers: dict[str, str] | None = None,
                  event_types: tuple[str, ...] | list[str] | None = None,
                  verify: str | bool | None = None) -> EventSubscription:
        """Create a webhook subscription the way Event Grid does: first the synchronous validation handshake
        (a `SubscriptionValidationEvent` the endpoint must answer with `{"validationResponse": code}`), then
        deliveries. Raises EventGridError when the endpoint does not complete the handshake.
        """
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise EventGridError("The webhook endpoint must be an absolute http(s) URL.")
        wanted = tuple(event_types or (EMAIL_DELIVERY_EVENT, SMS_DELIVERY_EVENT))
        unknown = [t for t in wanted if t not in (EMAIL_DELIVERY_EVENT, SMS_DELIVERY_EVENT)]
        if unknown:
            raise EventGridError(f"Unsupported event types: {', '.join(unknown)}.")
        subscription = EventSubscription(new_guid(), endpoint, dict(headers or {}), wanted, verify)
        code = new_guid().upper()
        validation = {
            "id": new_guid(),
            "topic": self._topic(),
            "subject": "",
            "data": {"validationCode": code},
            "eventType": VALIDATION_EVENT,
            "eventTime": iso_utc(self._emulator.clock.now()),
            "metadataVersion": "1",
            "dataVersion": "1",
        }
        try:
            response = self._post(subscription, [validation], "SubscriptionValidation")
        except requests.RequestException as exc:
            raise EventGridError(f"The webhook could not be reached: {type(exc).__name__}.") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict) or answer.get("validationResponse") != code:
            raise EventGridError(
                f"Webhook validation handshake failed: the endpoint answered {response.status_code} "
                "without the validation code."
            )
        with self._emulator.lock:
            self.event_subscriptions[subscription.id] = subscription
        logger.info("Emulator Event Grid subscription %s validated", subscription.id)
        return subscription

    def unsubscribe(self, subscription_id: str | None = None) -> bool:
        """Remove one subscription (or all); True when something was removed."""
        with self._emulator.lock:
            if subscription_id is None:
                found = bool(self.event_subscriptions)
                self.event_subscriptions.clear()
                return found
            return self.event_subscriptions.pop(subscription_id, None) is not None

    def deliver_reports(self) -> dict[str, int]:
        """Post every queued delivery report to each subscription that wants its type, one event per
        request (Event Grid's default batch size for webhooks). A report nobody could take (an endpoint
        answering non-2xx or unreachable) stays queued and is retried on the next run, as Event Grid retries.
        """
        delivered = failed = 0
        with self._delivering:
            with self._emulator.lock:
                reports = list(self.pending_reports)
                subscriptions = list(self.event_subscriptions.values())
            if not subscriptions:
                return {"delivered": 0, "failed": 0, "pending": len(reports)}
            done: list[dict[str, Any]] = []
            for event in reports:
                ok = True
                for subscription in subscriptions:
                    if event["eventType"] not in subscription.event_types:
                        continue
                    sent_to = event.setdefault("_delivered_to", [])
                    if subscription.id in sent_to:
                        continue
                    try:
                        response = self._post(subscription, [_public(event)], "Notification")
                        success = 200 <= response.status_code < 300
                        error = "" if success else f"HTTP {response.status_code}"
                    except requests.RequestException as exc:
                        success, error = False, type(exc).__name__
                    with self._emulator.lock:
                        if success:
                            subscription.delivered += 1
                            sent_to.append(subscription.id)
                        else:
                            subscription.failed += 1
                            subscription.last_error = error
                    ok &= success
                    delivered += success
                    failed += not success
                if ok:
                    done.append(event)
            with self._emulator.lock:
                for event in done:
                    if event in self.pending_reports:
                        self.pending_reports.remove(event)
                    self.delivered_reports.append(event)
                pending = len(self.pending_reports)
        return {"delivered": delivered, "failed": failed, "pending": pending}

    def _post(self, subscription: EventSubscription, events: list[dict[str, Any]], kind: str) -> requests.Response:
        headers = {
            **subscription.headers,
            "Content-Type": "application/json; charset=utf-8",
            "aeg-event-type": kind,
            "aeg-subscription-name": f"FOYER-EMULATOR-{subscription.id[:8].upper()}",
            "aeg-delivery-count": "0",
            "aeg-data-version": str(events[0].get("dataVersion", "")),
            "aeg-metadata-version": "1",
        }
        verify = subscription.verify if subscription.verify is not None else (
            os.environ.get("REQUESTS_CA_BUNDLE") or True)
        with requests.Session() as session:
            # Event Grid is its own service: no proxy from this machine's environment stands in between.
            session.trust_env = False
            return session.post(subscription.endpoint, json=events, headers=headers, verify=verify,
                                timeout=self.config.event_grid_timeout, allow_redirects=False)

    def _topic(self) -> str:
        return (f"/subscriptions/{self.config.tenant_id}/resourceGroups/foyer-emulator/providers/"
                f"microsoft.communication/communicationservices/{self.config.acs_resource_id}")

    def _queue_report(self, event_type: str, subject: str, data: dict[str, Any], event_id: str | None = None) -> None:
        """Queue one delivery-report event (caller holds the lock); post it now when so configured."""
        now = iso_utc(self._emulator.clock.now())
        self.pending_reports.append({
            "id": event_id or new_guid(),
            "topic": self._topic(),
            "subject": subject,
            "data": data,
            "eventType": event_type,
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "eventTime": now,
        })
        if self.config.auto_deliver_reports and self.event_subscriptions:
            threading.Thread(target=self.deliver_reports, name="foyer-emulator-event-grid", daemon=True).start()

    def _email_outcome(self, address: str) -> tuple[str, dict[str, str]]:
        """The delivery report's status and details for one recipient."""
        address = address.lower()
        domain = address.rsplit("@", 1)[-1]
        if self._bounces(address):
            return "Bounced", {"statusMessage": "550 5.1.1 The email account that you tried to reach does not exist.",
                               "recipientMailServerHostName": domain}
        if address in {a.lower() for a in self.config.email_suppressed_addresses} or domain in {
            d.lower() for d in self.config.email_suppressed_domains
        }:
            return "Suppressed", {"statusMessage": "The recipient is on the resource's suppression list: an earlier "
                                                   "message to this address bounced or was reported as spam."}
        return "Delivered", {"statusMessage": "No error.", "recipientMailServerHostName": f"mx.{domain}"}

    # --- WSGI dispatch ---

    def dispatch(self, request: Request, ctx: RequestContext) -> Response:
        """Verify the HMAC signature, then route."""
        try:
            self._verify_signature(request)
            adapter = self._url_map.bind_to_environ(request.environ)
            try:
                endpoint, args = adapter.match()
            except MethodNotAllowed as exc:
                raise AcsError(
                    405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not supported."
                ) from exc
            except NotFound as exc:
                raise AcsError(404, "NotFound", "The requested resource was not found.") from exc
            self._check_api_version(request, endpoint)
            response = getattr(self, f"_{endpoint}")(request, ctx, **args)
        except AcsError as exc:
            response = self._error(exc.status, exc.code, exc.message, exc.headers, target=exc.target)
        return self._stamp(request, ctx, response)

    def fault_response(self, fault: Fault, ctx: RequestContext) -> Response:
        """An injected error in ACS's error format."""
        status = int(fault.status)
        code = fault.code or {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(
            status, "InternalError"
        )
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        response = self._error(status, code, "Emulated fault.", headers)
        response.headers["x-ms-request-id"] = ctx.request_id
        return response

    def _stamp(self, request: Request, ctx: RequestContext, response: Response) -> Response:
        response.headers["x-ms-request-id"] = ctx.request_id
        response.headers["MS-CV"] = ctx.request_id
        if request.headers.get("x-ms-return-client-request-id", "").lower() == "true":
            client_id = request.headers.get("x-ms-client-request-id")
            if client_id:
                response.headers["x-ms-client-request-id"] = client_id
        return response

    @staticmethod
    def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None, *,
               target: str | None = None) -> Response:
        error = {"code": code, "message": message}
        if target:
            error["target"] = target
        response = json_response(
            {"error": error},
            status=status,
            headers={"x-ms-error-code": code, **(headers or {})},
        )
        return response

    def _check_api_version(self, request: Request, endpoint: str) -> None:
        version = request.args.get("api-version")
        if not version:
            raise AcsError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        allowed = (
            EMAIL_API_VERSIONS
            if endpoint.startswith("email")
            else SMS_API_VERSIONS
            if endpoint.startswith("sms")
            else IDENTITY_API_VERSIONS
        )
        if version not in allowed:
            raise AcsError(
                400,
                "UnsupportedApiVersion",
                f"The HTTP resource does not support the API version "
                f"'{version}'. Supported versions: {', '.join(allowed)}.",
            )

    # --- HMAC ---

    def _reject(self) -> None:
        with self._emulator.lock:
            self.rejected_signatures += 1

    def _verify_signature(self, request: Request) -> None:
        denied = AcsError(401, "Denied", "Denied by the resource provider.")
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme != "HMAC-SHA256":
            self._reject()
            raise denied
        params = dict(part.partition("=")[::2] for part in rest.split("&"))
        signed = [h.strip().lower() for h in params.get("SignedHeaders", "").split(";") if h.strip()]
        signature = params.get("Signature", "")
        if not {"host", "x-ms-content-sha256"} <= set(signed) or not ({"x-ms-date", "date"} & set(signed)):
            self._reject()
            raise denied
        body = request.get_data(cache=True)
        content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if not hmac.compare_digest(request.headers.get("x-ms-content-sha256", ""), content_hash):
            self._reject()
            raise denied
        date_value = request.headers.get("x-ms-date") or request.headers.get("date") or ""
        try:
            sent_at = parsedate_to_datetime(date_value)
        except (TypeError, ValueError):
            self._reject()
            raise denied from None
        skew = abs((self._emulator.clock.now() - sent_at).total_seconds())
        if skew > self.config.hmac_max_skew_seconds:
            self._reject()
            raise denied
        values = ";".join(request.host if name == "host" else request.headers.get(name, "") for name in signed)
        try:
            key = base64.b64decode(self.config.acs_access_key)
        except binascii.Error:  # pragma: no cover - config error
            raise denied from None
        target = _path_and_query(request)
        # The sync SDKs sign the target as sent (%3A kept); the aio ones sign it percent-decoded.
        candidates = {target, unquote(target)}
        matched = False
        for candidate in candidates:
            string_to_sign = f"{request.method.upper()}\n{candidate}\n{values}"
            digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
            matched |= hmac.compare_digest(base64.b64encode(digest).decode(), signature)
        if not matched:
            self._reject()
            logger.info("Emulator ACS rejected a bad HMAC signature for %s %s", request.method, request.path)
            raise denied

    # --- identities ---

    def _json(self, request: Request) -> dict[str, Any]:
        value, error = read_json(request)
        if error:
            raise AcsError(400, "InvalidRequest", error)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise AcsError(400, "InvalidRequest", "The request body must be a JSON object.")
        return value

    def _expires_minutes(self, body: dict[str, Any]) -> int:
        minutes = body.get("expiresInMinutes")
        if minutes is None:
            return 1440
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 60 <= minutes <= 1440:
            raise AcsError(
                400,
                "ValidationError",
                f"The expiresInMinutes value must be between 60 and 1440 minutes (was {minutes!r}).",
            )
        return minutes

    @staticmethod
    def _scopes(value: Any, field_name: str) -> list[str]:
        if not isinstance(value, list) or not value:
            raise AcsError(400, "ValidationError", f"'{field_name}' must be a non-empty list of scopes.")
        for scope in value:
            if scope not in TOKEN_SCOPES:
                raise AcsError(
                    400, "ValidationError", f"Scope '{scope}' is not valid. Valid scopes: {', '.join(TOKEN_SCOPES)}."
                )
        return list(value)

    def _issue(self, identity: AcsIdentity, scopes: list[str], minutes: int) -> dict[str, str]:
        now = self._emulator.clock.time()
        expires = now + minutes * 60
        claims = {
            "skypeid": identity.id.removeprefix("8:"),
            "scp": 1792,
            "csi": str(int(now)),
            "exp": int(expires),
            "rgn": "emea",
            "acsScope": ",".join(scopes),
            "resourceId": self.config.acs_resource_id,
            "resourceLocation": "europe",
            "iat": int(now),
        }
        token = self._emulator.entra.signer.sign(claims)
        identity.tokens.append(AcsAccessToken(token, scopes, now, expires))
        expires_on = iso_utc(self._emulator.clock.now() + timedelta(minutes=minutes), suffix="+00:00")
        return {"token": token, "expiresOn": expires_on}

    def _identity(self, identity_id: str) -> AcsIdentity:
        identity = self.identities.get(identity_id)
        if identity is None or identity.deleted:
            raise AcsError(404, "IdentityNotFound", f"Identity '{identity_id}' was not found.")
        return identity

    def _identity_create(self, request: Request, ctx: RequestContext) -> Response:
        body = self._json(request)
        scopes = body.get("createTokenWithScopes")
        minutes = self._expires_minutes(body)
        if scopes is not None:
            scopes = self._scopes(scopes, "createTokenWithScopes")
        with self._emulator.lock:
            identity = AcsIdentity(
                id=f"8:acs:{self.config.acs_resource_id}_{new_guid()}", created_at=self._emulator.clock.time()
            )
            self.identities[identity.id] = identity
            result: dict[str, Any] = {"identity": {"id": identity.id}}
            if scopes:
                result["accessToken"] = self._issue(identity, scopes, minutes)
        return json_response(result, status=201)

    def _identity_delete(self, request: Request, ctx: RequestContext, identity_id: str) -> Response:
        with self._emulator.lock:
            identity = self._identity(identity_id)
            identity.deleted = True
            identity.tokens_valid_from = self._emulator.clock.time()
        return json_response(None, status=204)

    def _token_issue(self, request: Request, ctx: RequestContext, identity_id: str) -> Response:
        body = self._json(request)
        scopes = self._scopes(body.get("scopes"), "scopes")
        minutes = self._expires_minutes(body)
        with self._emulator.lock:
            return json_response(self._issue(self._identity(identity_id), scopes, minutes))

    def _token_revoke(self, request: Request, ctx: RequestContext, identity_id: str) -> Response:
        with self._emulator.lock:
            self._identity(identity_id).tokens_valid_from = self._emulator.clock.time()
        return json_response(None, status=204)

    # --- email ---

    def _email_send(self, request: Request, ctx: RequestContext) -> Response:
        raw = request.get_data(cache=True)
        if len(raw) > self.config.email_max_request_bytes:
            raise AcsError(
                413,
                "RequestEntityTooLarge",
                f"The request size {len(raw)} exceeds the limit of {self.config.email_max_request_bytes} bytes.",
            )
        message = self._validate_email(self._json(request))
        client_operation_id = request.headers.get("Operation-Id")
        with self._emulator.lock:
            self._check_email_quota()
            operation_id = client_operation_id or new_guid()
            now = self._emulator.clock.time()
            duplicate = operation_id in self.email_operations
            recipients = [r["address"].lower() for key in ("to", "cc", "bcc") for r in message["recipients"][key]]
            sent = SentEmail(
                operation_id=operation_id,
                client_operation_id=client_operation_id,
                sender=message["senderAddress"],
                subject=message["content"]["subject"],
                plain_text=message["content"].get("plainText"),
                html=message["content"].get("html"),
                to=message["recipients"]["to"],
                cc=message["recipients"]["cc"],
                bcc=message["recipients"]["bcc"],
                reply_to=message.get("replyTo") or [],
                attachments=[
                    {
                        "name": a["name"],
                        "contentType": a["contentType"],
                        "contentId": a.get("contentId"),
                        "size": len(base64.b64decode(a["contentInBase64"])),
                    }
                    for a in message.get("attachments") or []
                ],
                headers=dict(message.get("headers") or {}),
                user_engagement_tracking_disabled=message.get("userEngagementTrackingDisabled"),
                received_at=now,
                size=len(raw),
                duplicate=duplicate,
            )
            self.sent_emails.append(sent)
            if not duplicate:
                # A reused Operation-Id answers the operation it names: nothing is sent (or counted) again.
                self._email_sends.append(now)
                fails = any(self._bounces(address) for address in recipients)
                self.email_operations[operation_id] = EmailOperation(operation_id, "NotStarted", now, fails=fails)
                self._queue_email_reports(sent, recipients)
            operation = self.email_operations[operation_id]
            terminal = operation.status in ("Succeeded", "Failed", "Canceled")
        logger.info(
            "Emulator ACS email accepted (operation %s, %d recipients%s)",
            operation_id,
            len(recipients),
            ", duplicate Operation-Id" if duplicate else "",
        )
        version = request.args["api-version"]
        headers = {
            "Operation-Location": f"{ctx.base_url}/emails/operations/{quote(operation_id, safe='')}"
            f"?api-version={version}"
        }
        if not terminal and self.config.email_retry_after is not None:
            headers["retry-after"] = str(self.config.email_retry_after)
        return json_response({"id": operation_id, "status": operation.status}, status=202, headers=headers)

    def _queue_email_reports(self, sent: SentEmail, recipients: list[str]) -> None:
        """One EmailDeliveryReportReceived per recipient; `messageId` is the send operation's id."""
        domain = sent.sender.rsplit("@", 1)[-1]
        for address in recipients:
            status, details = self._email_outcome(address)
            self._queue_report(EMAIL_DELIVERY_EVENT, f"sender/{sent.sender}/message/{sent.operation_id}", {
                "sender": sent.sender,
                "recipient": address,
                "messageId": sent.operation_id,
                "internetMessageId": f"<{new_guid()}@{domain}>",
                "status": status,
                "deliveryStatusDetails": details,
                "deliveryAttemptTimeStamp": iso_utc(self._emulator.clock.now()),
            })

    def _bounces(self, address: str) -> bool:
        domain = address.rsplit("@", 1)[-1]
        return address in {a.lower() for a in self.config.email_fail_addresses} or domain in {
            d.lower() for d in self.config.email_fail_domains
        }

    def _validate_email(self, message: dict[str, Any]) -> dict[str, Any]:
        def bad(text: str) -> AcsError:
            return AcsError(400, "BadRequest", text)

        sender = message.get("senderAddress")
        if not isinstance(sender, str) or not _EMAIL_RE.match(sender):
            raise bad("senderAddress is required and must be a valid email address.")
        allowed = self.config.email_allowed_senders
        if allowed is not None and sender.lower() not in {a.lower() for a in allowed}:
            raise AcsError(
                400, "InvalidSenderUserName", f"The sender address '{sender}' is not configured on this resource."
            )
        content = message.get("content")
        if not isinstance(content, dict) or not isinstance(content.get("subject"), str) or not content["subject"]:
            raise bad("content.subject is required.")
        if not content.get("plainText") and not content.get("html"):
            raise bad("content must contain plainText or html.")
        recipients = message.get("recipients")
        if not isinstance(recipients, dict) or not isinstance(recipients.get("to"), list) or not recipients["to"]:
            raise bad("recipients.to must contain at least one recipient.")
        normalized: dict[str, list[dict[str, str]]] = {}
        for key in ("to", "cc", "bcc"):
            entries = recipients.get(key) or []
            if not isinstance(entries, list):
                raise bad(f"recipients.{key} must be a list.")
            for entry in entries:
                address = entry.get("address") if isinstance(entry, dict) else None
                if not isinstance(address, str) or not _EMAIL_RE.match(address):
                    raise bad(f"Invalid email address in recipients.{key}: {address!r}.")
            normalized[key] = [dict(e) for e in entries]
        total = sum(len(v) for v in normalized.values())
        if total > self.config.email_max_recipients:
            raise bad(
                f"The total number of recipients ({total}) exceeds the limit of {self.config.email_max_recipients}."
            )
        custom_headers = message.get("headers") or {}
        suppress_invalid = isinstance(custom_headers, dict) and str(
            {k.lower(): v for k, v in custom_headers.items()}.get(SUPPRESS_INVALID_ATTACHMENT, "")
        ).lower() == "true"
        attachments = []
        for index, attachment in enumerate(message.get("attachments") or []):
            if not isinstance(attachment, dict) or not all(
                isinstance(attachment.get(k), str) and attachment.get(k)
                for k in ("name", "contentType", "contentInBase64")
            ):
                raise bad("Each attachment needs name, contentType and contentInBase64.")
            try:
                base64.b64decode(attachment["contentInBase64"], validate=True)
            except binascii.Error as exc:
                raise bad(f"Attachment '{attachment['name']}' is not valid base64.") from exc
            if attachment["contentType"].strip().lower() not in ALLOWED_ATTACHMENT_TYPES:
                if suppress_invalid:
                    continue
                raise AcsError(
                    400,
                    "InvalidAttachmentContentType",
                    f"Attachment '{attachment['name']}' has the content type '{attachment['contentType']}', which "
                    "is not an allowed attachment type. See the allowed attachment types for Azure Communication "
                    "Services Email.",
                    target=f"attachments[{index}].contentType",
                )
            attachments.append(attachment)
        return {**message, "recipients": normalized, "attachments": attachments}

    def _check_email_quota(self) -> None:
        now = self._emulator.clock.time()
        sends = self._email_sends
        while sends and sends[0] <= now - 3600:
            sends.popleft()
        last_minute = [t for t in sends if t > now - 60]
        wait = 0.0
        if len(last_minute) >= self.config.email_per_minute:
            wait = last_minute[-self.config.email_per_minute] + 60 - now
        if len(sends) >= self.config.email_per_hour:
            wait = max(wait, sends[-self.config.email_per_hour] + 3600 - now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise AcsError(
                429,
                "TooManyRequests",
                f"The email sending quota was exceeded. Retry after {seconds} seconds.",
                {"Retry-After": str(seconds)},
            )

    def _email_status(self, request: Request, ctx: RequestContext, operation_id: str) -> Response:
        with self._emulator.lock:
            operation = self.email_operations.get(operation_id)
            if operation is None:
                raise AcsError(404, "NotFound", f"Operation '{operation_id}' was not found.")
            if operation.status in ("NotStarted", "Running"):
                operation.polls += 1
                if operation.polls >= self.config.email_polls_to_complete:
                    operation.status = "Failed" if operation.fails else "Succeeded"
                    if operation.fails:
                        operation.error = {
                            "code": "EmailDropped",
                            "message": "Email was dropped after several attempts to deliver.",
                        }
                else:
                    operation.status = "Running"
            body: dict[str, Any] = {"id": operation.id, "status": operation.status}
            if operation.error:
                body["error"] = operation.error
            terminal = operation.status in ("Succeeded", "Failed", "Canceled")
        headers = {}
        if not terminal and self.config.email_retry_after is not None:
            headers["retry-after"] = str(self.config.email_retry_after)
        return json_response(body, headers=headers)

    # --- SMS ---

    def _sms_send(self, request: Request, ctx: RequestContext) -> Response:
        body = self._json(request)
        sender = body.get("from")
        if not isinstance(sender, str) or not _E164_RE.match(sender):
            raise AcsError(400, "BadRequest", "Invalid From phone number format.")
        message = body.get("message")
        if not isinstance(message, str) or not message:
            raise AcsError(400, "BadRequest", "The message is required.")
        if len(message) > SMS_MAX_MESSAGE_CHARS:
            raise AcsError(
                400,
                "BadRequest",
                f"The message is {len(message)} characters long; the limit is {SMS_MAX_MESSAGE_CHARS}.",
                target="message",
            )
        recipients = body.get("smsRecipients")
        if not isinstance(recipients, list) or not recipients:
            raise AcsError(400, "BadRequest", "At least one recipient is required.")
        if len(recipients) > SMS_MAX_RECIPIENTS:
            raise AcsError(
                400,
                "BadRequest",
                f"The request has {len(recipients)} recipients; the limit is {SMS_MAX_RECIPIENTS} per request.",
                target="smsRecipients",
            )
        options = body.get("smsSendOptions") or {}
        results = []
        now = self._emulator.clock.time()
        with self._emulator.lock:
            for recipient in recipients:
                to = (recipient or {}).get("to", "")
                request_id = (recipient or {}).get("repeatabilityRequestId")
                if request_id and request_id in self._sms_repeatability:
                    results.append({**self._sms_repeatability[request_id], "repeatabilityResult": "rejected"})
                    continue
                if not _E164_RE.match(str(to)):
                    item = {
                        "to": to,
                        "messageId": None,
                        "httpStatusCode": 400,
                        "successful": False,
                        "errorMessage": "Invalid To phone number format.",
                    }
                elif to in self.config.sms_fail_numbers:
                    item = {
                        "to": to,
                        "messageId": None,
                        "httpStatusCode": 400,
                        "successful": False,
                        "errorMessage": "The recipient cannot receive messages.",
                    }
                else:
                    stamp = self._emulator.clock.now().strftime("%Y%m%d%H%M%S")
                    item = {
                        "to": to,
                        "messageId": f"Outgoing_{stamp}{new_guid()}_noam",
                        "httpStatusCode": 202,
                        "successful": True,
                        "errorMessage": None,
                    }
                item["repeatabilityResult"] = "accepted"
                self.sms_messages.append(
                    SmsMessage(
                        message_id=item["messageId"],
                        from_=sender,
                        to=str(to),
                        message=message,
                        successful=item["successful"],
                        http_status_code=item["httpStatusCode"],
                        repeatability_request_id=request_id,
                        enable_delivery_report=bool(options.get("enableDeliveryReport")),
                        tag=options.get("tag"),
                        received_at=now,
                        error_message=item["errorMessage"],
                    )
                )
                if request_id:
                    self._sms_repeatability[request_id] = item
                if item["successful"] and options.get("enableDeliveryReport"):
                    self._queue_sms_report(item["messageId"], sender, str(to), options.get("tag"))
                results.append(item)
        return json_response({"value": results}, status=202)

    def _queue_sms_report(self, message_id: str, sender: str, to: str, tag: str | None) -> None:
        """An SMSDeliveryReportReceived for one accepted message (its event id is the message id)."""
        now = iso_utc(self._emulator.clock.now())
        delivered = to not in self.config.sms_undelivered_numbers
        data: dict[str, Any] = {
            "messageId": message_id,
            "from": sender.lstrip("+"),
            "to": to,
            "deliveryStatus": "Delivered" if delivered else "Failed",
            "deliveryStatusDetails": "No error." if delivered else "The carrier could not deliver the message.",
            "receivedTimestamp": now,
            "deliveryAttempts": [{"timestamp": now, "segmentsSucceeded": int(delivered),
                                  "segmentsFailed": int(not delivered)}],
        }
        if tag is not None:
            data["Tag"] = tag
        self._queue_report(SMS_DELIVERY_EVENT, f"/phonenumber/{sender.lstrip('+')}", data, event_id=message_id)


def _public(event: dict[str, Any]) -> dict[str, Any]:
    """An event as Event Grid posts it (without the emulator's own bookkeeping)."""
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _path_and_query(request: Request) -> str:
    """The request target exactly as sent (still percent-encoded), which is what the SDK signed."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        if "://" in raw:  # absolute-form request target
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        return raw
    query = request.environ.get("QUERY_STRING", "")
    path = quote(request.environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=-._~")
    return path + ("?" + query if query else "")


@functools.cache
def _url_map() -> Map:
    """The routing table, compiled once per process (werkzeug compiles each rule, ~0.1 s per map)."""
    return Map(
        [
            Rule("/identities", endpoint="identity_create", methods=["POST"]),
            Rule("/identities/<identity_id>", endpoint="identity_delete", methods=["DELETE"]),
            Rule("/identities/<identity_id>/:issueAccessToken", endpoint="token_issue", methods=["POST"]),
            Rule("/identities/<identity_id>/:revokeAccessTokens", endpoint="token_revoke", methods=["POST"]),
            Rule("/emails:send", endpoint="email_send", methods=["POST"]),
            Rule("/emails/operations/<operation_id>", endpoint="email_status", methods=["GET"]),
            Rule("/sms", endpoint="sms_send", methods=["POST"]),
        ],
        strict_slashes=False,
    )
