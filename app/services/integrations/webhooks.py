"""Webhooks: admins register HTTPS endpoints for kinds of events; each event is POSTed to each
subscribed endpoint through the outbox, signed so the receiver can verify it came from Foyer.

Services announce what happened with one call (`announce_registration`, `announce_event`); this
module decides who hears of it. Announcing writes a `WebhookDelivery` and an outbox item in the
caller's transaction, under the dedupe key `webhook:<endpoint>:<event id>`, so one event reaches one
endpoint once however often it is announced, and nothing is sent for a change that rolls back.

Delivery is at least once: the outbox retries failures with backoff, and a worker that dies after the
receiver got the POST but before the outcome was recorded leaves the item to be claimed again when its
lease ends, which POSTs the same delivery again. Every try of a delivery carries the same
`Foyer-Delivery-Id`, and every delivery of one event the same body `id`: receivers make it exactly once
by ignoring an id they have already processed.

Signature (`Foyer-Signature: t=<unix seconds>,v1=<hex>`): HMAC-SHA256 with the endpoint's secret over
`"<t>.<raw body>"`. Receivers recompute it, compare in constant time, and refuse a `t` more than five
minutes from their clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app, g, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models import (
    DeliveryStatus,
    Event,
    Registration,
    RegistrationState,
    RegistrationTransition,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    db,
    utcnow,
)
from app.models.base import begin_write
from app.services.core import audit, crypto
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.integrations.representations import iso, represent_event, represent_registration
from app.services.outbox import outbox
from app.services.registration import privacy

logger = logging.getLogger(__name__)

DELIVER_KIND = "webhooks.deliver"
SIGNATURE_HEADER = "Foyer-Signature"
DELIVERY_HEADER = "Foyer-Delivery-Id"
EVENT_HEADER = "Foyer-Event"
#: Receivers should refuse signatures older (or newer) than this.
SIGNATURE_TOLERANCE_SECONDS = 300
URL_MAX = 2000
DESCRIPTION_MAX = 200

#: The kinds of events an endpoint can subscribe to, with what the admin reads.
KINDS = {
    "registration.created": _l("Registration created"),
    "registration.confirmed": _l("Registration confirmed"),
    "registration.cancelled": _l("Registration cancelled"),
    "registration.promoted": _l("Registration promoted from the waitlist"),
    "event.published": _l("Event published"),
    "event.changed": _l("Event changed"),
    "event.cancelled": _l("Event cancelled"),
    "attendance.imported": _l("Attendance imported"),
}


# --- endpoints -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    #: The signing secret: shown to the admin once.
    secret: str


def _loopback_allowed() -> bool:
    return bool(current_app.config.get("WEBHOOK_ALLOW_HTTP_LOOPBACK"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refused_address(address: str) -> bool:
    """True for addresses a webhook must not reach: private networks, loopback, link-local (cloud metadata)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback and _loopback_allowed():
        return False
    return not ip.is_global


def check_url(raw: str) -> str:
    """An endpoint URL Foyer may POST to; DomainError(field="url") otherwise.

    HTTPS to a public host only. With WEBHOOK_ALLOW_HTTP_LOOPBACK (tests, local development) plain
    http:// is accepted for loopback hosts, and only for them.
    """
    url = (raw or "").strip()
    if not url:
        raise DomainError(_("Enter the address that should receive the events."), field="url")
    if len(url) > URL_MAX or any(c.isspace() or ord(c) < 32 for c in url):
        raise DomainError(_("Enter a web address like https://crm.example.org/hooks/foyer."), field="url")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise DomainError(_("Enter a web address like https://crm.example.org/hooks/foyer."), field="url") from None
    if parts.scheme not in ("https", "http") or not host:
        raise DomainError(_("Enter a web address like https://crm.example.org/hooks/foyer."), field="url")
    if parts.username is not None or parts.password is not None:
        raise DomainError(_("Leave user names and passwords out of the address; Foyer signs every request."),
                          field="url")
    if parts.fragment:
        raise DomainError(_("Leave the #part out of the address."), field="url")
    loopback_ok = _loopback_allowed() and _is_loopback(host)
    if parts.scheme != "https" and not loopback_ok:
        raise DomainError(_("The address must start with https:// so events travel encrypted."), field="url")
    if not loopback_ok:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".invalid")):
            raise DomainError(_("The address must be reachable on the internet, not a local name."), field="url")
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None and not literal.is_global:
            raise DomainError(_("The address must not point into a private network."), field="url")
    return url


def _check_kinds(kinds: list[str]) -> list[str]:
    chosen = [k for k in KINDS if k in set(kinds or [])]
    if not chosen or len(chosen) != len(set(kinds)):
        raise DomainError(_("Choose at least one kind of event from the list."), field="kinds")
    return chosen


def create_endpoint(url: str, kinds: list[str], *, description: str = "", actor: User) -> CreatedEndpoint:
    """Register an endpoint; its signing secret is returned once and kept encrypted."""
    if not actor.is_admin:
        raise NotAllowed(_("Only admins can manage webhooks."))
    url = check_url(url)
    chosen = _check_kinds(kinds)
    description = " ".join((description or "").split())
    if len(description) > DESCRIPTION_MAX:
        raise DomainError(_("Keep the description under %(num)s characters.", num=DESCRIPTION_MAX),
                          field="description")
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(url=url, kinds=chosen, description=description,
                               secret_encrypted=crypto.encrypt(secret), created_by_id=actor.id, created_at=utcnow())
    db.session.add(endpoint)
    db.session.flush()
    host = urlsplit(url).hostname
    audit.record("webhook.endpoint_created", actor=actor, target=("webhook_endpoint", endpoint.id),
                 summary=f"Added a webhook endpoint at {host}", details={"kinds": chosen})
    logger.info("Webhook endpoint %s (%s) added by %s", endpoint.id, host, actor.id)
    return CreatedEndpoint(endpoint, secret)


def disable_endpoint(endpoint: WebhookEndpoint, *, actor: User) -> None:
    """Stop sending to an endpoint (queued deliveries are dropped; the log stays)."""
    if not actor.is_admin:
        raise NotAllowed(_("Only admins can manage webhooks."))
    if endpoint.disabled_at is not None:
        raise Conflict(_("This endpoint is already disabled."))
    endpoint.disabled_at = utcnow()
    db.session.flush()
    audit.record("webhook.endpoint_disabled", actor=actor, target=("webhook_endpoint", endpoint.id),
                 summary=f"Disabled the webhook endpoint at {urlsplit(endpoint.url).hostname}")


def list_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.disabled_at.is_not(None),
                                                                    WebhookEndpoint.id)))


def rotate_secrets() -> int:
    """Re-encrypt every endpoint's signing secret under the newest key (`flask foyer rotate-key`)."""
    endpoints = list(db.session.scalars(select(WebhookEndpoint)))
    for endpoint in endpoints:
        endpoint.secret_encrypted = crypto.rotate(endpoint.secret_encrypted)
    return len(endpoints)


ERASED_REASON = "personal data erased before it was sent"


def _forget(query) -> int:
    """Keep that each delivery happened, not what it said; unsent ones are never sent."""
    deliveries = list(db.session.scalars(query))
    for delivery in deliveries:
        delivery.payload = {"id": delivery.event_key, "type": delivery.kind, "erased": True}
        if delivery.status == DeliveryStatus.pending:
            delivery.status = DeliveryStatus.failed
            delivery.last_error = ERASED_REASON
    return len(deliveries)


@privacy.purger("webhook_deliveries", before="registrations")
def _purge_event(event: Event) -> int:
    """Retention: webhook deliveries about the event's registrations (their bodies hold names and addresses)."""
    return forget_event(event.id)


@privacy.eraser("webhook_deliveries")
def _erase_registration(reg: Registration) -> int:
    """Erasure on request: deliveries about this registration."""
    return forget_registration(reg.id)


def forget_event(event_id: int) -> int:
    """The retention purge: empty every delivery about the event's registrations (returns how many)."""
    return _forget(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id,
                                                 WebhookDelivery.registration_id.is_not(None)))


def forget_registration(registration_id: int) -> int:
    """Erasure on request: empty every delivery about one registration (returns how many)."""
    return _forget(select(WebhookDelivery).where(WebhookDelivery.registration_id == registration_id))


def recent_deliveries(endpoint: WebhookEndpoint, limit: int = 100) -> list[WebhookDelivery]:
    return list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                                   .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                                   .limit(limit)))


# --- announcing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    """An active endpoint as read before a lock: all that queueing a delivery to it needs."""

    id: int
    kinds: tuple[str, ...]


#: Where a request keeps the subscribers it read ahead (`preload_subscribers`).
_PRELOADED = "_webhook_subscribers"


def preload_subscribers() -> None:
    """Read the active endpoints now, for the next announcement this request makes.

    A registration announces itself while it holds its event's lock; reading the endpoints before taking
    it keeps that read out of the lock. (An endpoint added at the same moment counts from the next request,
    as it would had it been saved a moment later.)
    """
    rows = db.session.execute(select(WebhookEndpoint.id, WebhookEndpoint.kinds)
                              .where(WebhookEndpoint.disabled_at.is_(None)))
    setattr(g, _PRELOADED, [Subscriber(row.id, tuple(row.kinds or ())) for row in rows])


def _subscribers(kinds: list[str]) -> dict[str, list[WebhookEndpoint | Subscriber]]:
    """The active endpoints subscribed to each of `kinds`: one query (usually there are none), or none
    for the first announcement after `preload_subscribers`, which uses what was read then.
    """
    preloaded = g.pop(_PRELOADED, None) if has_app_context() else None
    if preloaded is not None:
        active: list = preloaded
    else:
        active = list(db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.disabled_at.is_(None))))
    return {kind: [e for e in active if kind in (e.kinds or [])] for kind in kinds}


def announce(kind: str, data: dict[str, Any], *, key: str, event_id: int | None = None,
             registration_id: int | None = None,
             endpoints: list[WebhookEndpoint | Subscriber] | None = None) -> int:
    """Queue `kind` with `data` for every active endpoint subscribed to it; returns how many were queued.

    `key` identifies the event itself (e.g. "registration.confirmed:<transition id>"): it is the body's
    `id`, and a second announcement with the same key queues nothing.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown webhook kind {kind!r}")
    if endpoints is None:
        endpoints = _subscribers([kind])[kind]
    body = {"id": key, "type": kind, "created_at": iso(utcnow()), "data": data}
    queued = 0
    for endpoint in endpoints:
        if _queue(endpoint, kind, key, body, dedupe_key=f"webhook:{endpoint.id}:{key}", event_id=event_id,
                  registration_id=registration_id):
            queued += 1
    return queued


def _queue(endpoint: WebhookEndpoint | Subscriber, kind: str, key: str, body: dict[str, Any], *, dedupe_key: str,
           event_id: int | None, registration_id: int | None = None,
           resent_from: WebhookDelivery | None = None) -> WebhookDelivery | None:
    delivery_id = str(uuid.uuid4())
    item = outbox.enqueue(DELIVER_KIND, {"delivery": delivery_id}, dedupe_key=dedupe_key, event_id=event_id)
    if item is None:
        return None
    delivery = WebhookDelivery(uuid=delivery_id, endpoint_id=endpoint.id, kind=kind, event_key=key, payload=body,
                               event_id=event_id, registration_id=registration_id,
                               status=DeliveryStatus.pending, attempts=0, last_error="", created_at=utcnow(),
                               resent_from_id=resent_from.id if resent_from is not None else None)
    db.session.add(delivery)
    return delivery


def announce_registration(reg: Registration, from_state: str | None, transition: RegistrationTransition) -> int:
    """What a registration's state change means to webhooks: created, confirmed, promoted, cancelled."""
    kinds = []
    if from_state is None:
        kinds.append("registration.created")
    if reg.state == RegistrationState.confirmed:
        kinds.append("registration.promoted" if from_state == RegistrationState.waitlisted.value
                     else "registration.confirmed")
    elif reg.state == RegistrationState.cancelled:
        kinds.append("registration.cancelled")
    subscribers = _subscribers(kinds)
    if not any(subscribers.values()):
        return 0  # nothing to build
    event = reg.event
    data = {"registration": represent_registration(reg),
            "event": {"id": event.id, "slug": event.slug, "title": event.title, "starts_at": iso(event.starts_at)}}
    return sum(announce(kind, data, key=f"{kind}:{transition.id}", event_id=event.id, registration_id=reg.id,
                        endpoints=subscribers[kind]) for kind in kinds)


def announce_event(kind: str, event: Event) -> int:
    """An event was published, changed or cancelled, or its attendance was imported."""
    endpoints = _subscribers([kind])[kind]
    if not endpoints:
        return 0
    data: dict[str, Any] = {"event": represent_event(event)}
    if kind == "event.published":
        key = f"{kind}:{event.id}:{iso(event.published_at)}"
    elif kind == "event.cancelled":
        key = f"{kind}:{event.id}"
    elif kind == "attendance.imported":
        key = f"{kind}:{event.id}:{iso(event.attendance_imported_at)}"
        data["attendance"] = dict(event.attendance_summary or {})
    else:
        key = f"{kind}:{event.id}:{uuid.uuid4()}"
    return announce(kind, data, key=key, event_id=event.id, endpoints=endpoints)


def connect_receivers(signals: Any) -> None:
    """Webhook endpoints hear what the domain announces (see app/services/core/signals.py)."""
    signals.event_published.connect(_on_event_published)
    signals.event_updated.connect(_on_event_updated)
    signals.event_cancelled.connect(_on_event_cancelled)
    signals.attendance_imported.connect(_on_attendance_imported)
    signals.registration_state_changed.connect(_on_registration_state_changed)


def _on_event_published(event: Event, **_: Any) -> None:
    announce_event("event.published", event)


def _on_event_updated(event: Event, **_: Any) -> None:
    announce_event("event.changed", event)


def _on_event_cancelled(event: Event, **_: Any) -> None:
    announce_event("event.cancelled", event)


def _on_attendance_imported(event: Event, **_: Any) -> None:
    announce_event("attendance.imported", event)


def _on_registration_state_changed(reg: Registration, *, from_state: str | None,
                                   transition: RegistrationTransition) -> None:
    announce_registration(reg, from_state, transition)


def resend(delivery: WebhookDelivery, *, actor: User) -> WebhookDelivery:
    """Send a delivery's body again as a new delivery (same body `id`, new delivery id)."""
    if not actor.is_admin:
        raise NotAllowed(_("Only admins can manage webhooks."))
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        raise Conflict(_("This endpoint is disabled; nothing is sent to it."))
    if delivery.payload.get("erased"):
        raise Conflict(_("The personal data in this delivery has been erased; it cannot be sent again."))
    new_id = str(uuid.uuid4())
    again = _queue(endpoint, delivery.kind, delivery.event_key, dict(delivery.payload),
                   dedupe_key=f"webhook.resend:{new_id}", event_id=delivery.event_id,
                   registration_id=delivery.registration_id, resent_from=delivery)
    assert again is not None  # a fresh dedupe key is never taken  # noqa: S101
    db.session.flush()
    audit.record("webhook.resend", actor=actor, target=("webhook_endpoint", endpoint.id),
                 summary=f"Re-sent webhook delivery {delivery.id} ({delivery.kind})",
                 details={"delivery": delivery.id, "new_delivery": again.id})
    return again


# --- delivering -------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Foyer-Signature` header value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _check_destination(url: str) -> None:
    """Refuse to connect where the name now resolves into a private network (checked at send time too)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise outbox.RetryLater(f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        if _refused_address(str(info[4][0])):
            raise outbox.PermanentFailure(f"{parts.hostname} resolves to a private address; not sent")


def _record(delivery_id: str, *, status_code: int | None, error: str, delivered: bool) -> None:
    db.session.rollback()
    begin_write()
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.uuid == delivery_id))
    if delivery is not None:
        now = utcnow()
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = error[:2000]
        delivery.last_attempt_at = now
        if delivered:
            delivery.status = DeliveryStatus.delivered
            delivery.delivered_at = now
    db.session.commit()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), 3600.0) if value else None
    except ValueError:
        return None


def _gave_up(payload: dict[str, Any], error: str) -> None:
    """The outbox stopped retrying: the delivery is marked failed (in the outbox's settling transaction)."""
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.uuid == payload.get("delivery")))
    if delivery is not None and delivery.status != DeliveryStatus.delivered:
        delivery.status = DeliveryStatus.failed
        delivery.last_error = error[:2000]


@outbox.handler(DELIVER_KIND, on_failure=_gave_up)
def deliver(payload: dict[str, Any]) -> None:
    """POST one delivery to its endpoint, signed; a non-2xx answer or no answer is retried with backoff."""
    delivery_id = payload["delivery"]
    delivery = db.session.scalar(select(WebhookDelivery).where(WebhookDelivery.uuid == delivery_id))
    if delivery is None or delivery.status != DeliveryStatus.pending:
        db.session.commit()  # delivered already, or failed because its personal data was erased
        return
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        db.session.rollback()
        raise outbox.PermanentFailure("the endpoint is disabled")
    url, kind = endpoint.url, delivery.kind
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        secret = crypto.decrypt(endpoint.secret_encrypted)
    except crypto.SecretUnreadable as exc:
        db.session.rollback()
        raise outbox.PermanentFailure("the endpoint's secret cannot be decrypted") from exc
    db.session.commit()  # no transaction held open across the POST
    try:
        check_url(url)
    except DomainError as exc:
        raise outbox.PermanentFailure(f"the endpoint's address is no longer allowed: {exc.message}") from exc
    _check_destination(url)
    timeout = float(current_app.config.get("WEBHOOK_TIMEOUT_SECONDS") or 10)
    outbox.fence(timeout * 2 + 5)
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "Foyer-Webhooks/1", EVENT_HEADER: kind,
               DELIVERY_HEADER: delivery_id, SIGNATURE_HEADER: sign(secret, timestamp, body)}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=(timeout, timeout), allow_redirects=False)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: no answer from {urlsplit(url).hostname}"
        _record(delivery_id, status_code=None, error=error, delivered=False)
        raise outbox.RetryLater(error) from exc
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        _record(delivery_id, status_code=status, error="", delivered=True)
        logger.info("Webhook delivery %s (%s) accepted with %s", delivery_id, kind, status)
        return
    error = f"the receiver answered {status}"
    _record(delivery_id, status_code=status, error=error, delivered=False)
    if status in (429, 503):
        raise outbox.retry_transient(error, _retry_after(response))
    raise outbox.RetryLater(error)


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None,
                     tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver does (documented in docs/api.md): check the signature and its freshness."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)

