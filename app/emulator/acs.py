"""Azure Communication Services: identities/tokens, email send + operation status, SMS.

Follows microsoft.md E, F and G. Every request must carry the HMAC-SHA256 signature the ACS SDKs
compute (E.3): VERB, path?query and `<x-ms-date>;<host[:port]>;<x-ms-content-sha256>` joined by newlines, keyed with the
base64-decoded access key; the content hash must match the body and the date must be recent. Anything
else is a 401. Email enforces 50 recipients, 10 MB and per-minute/per-hour quotas (429 + Retry-After),
records the client's `Operation-Id` (so duplicate sends are visible) and walks each operation through
NotStarted -> Running -> Succeeded/Failed as it is polled.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

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


class AcsError(Exception):
    """An ACS error response (`CommunicationErrorResponse` / Azure `ErrorResponse` shape)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


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


class AcsService:
    """Emulated ACS resource. State for tests: `identities`, `sent_emails`, `email_operations`, `sms_messages`."""

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

    def duplicate_operation_ids(self) -> list[str]:
        """Operation ids the client sent more than once."""
        with self._emulator.lock:
            return sorted({e.operation_id for e in self.sent_emails if e.duplicate})

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
            response = self._error(exc.status, exc.code, exc.message, exc.headers)
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
    def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        response = json_response(
            {"error": {"code": code, "message": message}},
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
            self._email_sends.append(now)
            if not duplicate:
                fails = any(self._bounces(address) for address in recipients)
                self.email_operations[operation_id] = EmailOperation(operation_id, "NotStarted", now, fails=fails)
            operation = self.email_operations[operation_id]
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
        if self.config.email_retry_after is not None:
            headers["retry-after"] = str(self.config.email_retry_after)
        return json_response({"id": operation_id, "status": operation.status}, status=202, headers=headers)

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
        for attachment in message.get("attachments") or []:
            if not isinstance(attachment, dict) or not all(
                isinstance(attachment.get(k), str) and attachment.get(k)
                for k in ("name", "contentType", "contentInBase64")
            ):
                raise bad("Each attachment needs name, contentType and contentInBase64.")
            try:
                base64.b64decode(attachment["contentInBase64"], validate=True)
            except binascii.Error as exc:
                raise bad(f"Attachment '{attachment['name']}' is not valid base64.") from exc
        return {**message, "recipients": normalized}

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
        recipients = body.get("smsRecipients")
        if not isinstance(recipients, list) or not recipients:
            raise AcsError(400, "BadRequest", "At least one recipient is required.")
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
                results.append(item)
        return json_response({"value": results}, status=202)


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
