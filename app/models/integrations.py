"""What other tools use to reach Foyer and be reached by it: API tokens, webhook endpoints, and the
log of every webhook delivery.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import UTCDateTime, db, utcnow


class ApiScope(enum.StrEnum):
    read = "read"  #: read events and registrations
    write = "write"  #: read, and create registrations


class ApiToken(db.Model):
    """A bearer token for the REST API, issued by an admin. Only its sha256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[ApiScope] = mapped_column(Enum(ApiScope, name="api_scope", native_enum=False, length=10))
    #: sha256 of the token; the token itself is shown once, when it is created.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters, so an admin can tell tokens apart ("foyer_AbC1…").
    prefix: Mapped[str] = mapped_column(String(20))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    #: Updated at most once a minute, so busy clients do not write on every call.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: ApiScope) -> bool:
        return self.is_active and (self.scope == ApiScope.write or scope == ApiScope.read)


class WebhookEndpoint(db.Model):
    """An HTTPS address that receives signed POSTs for the kinds of events it subscribed to."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    #: Event kinds, e.g. ["registration.created", "event.published"].
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The signing secret, encrypted at rest (MultiFernet); shown once, when the endpoint is created.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    #: Disabled endpoints receive nothing new; their log stays.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  #: queued, or waiting for its next try
    delivered = "delivered"  #: the receiver answered 2xx
    failed = "failed"  #: gave up after the outbox's attempts


class WebhookDelivery(db.Model):
    """One POST of one event to one endpoint (retries included); a manual resend is a new delivery."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Sent as `Foyer-Delivery-Id`: the same on every retry of this delivery.
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    #: e.g. "registration.confirmed".
    kind: Mapped[str] = mapped_column(String(60))
    #: The announced event's id (`id` in the body): the same for a resend, so receivers can dedupe by it.
    event_key: Mapped[str] = mapped_column(String(200))
    #: The event and registration it is about (no foreign keys: the log outlives them), so the privacy
    #: purge and erasure find the personal data in `payload`.
    event_id: Mapped[int | None] = mapped_column(index=True)
    registration_id: Mapped[int | None] = mapped_column(index=True)
    #: The JSON body as it is sent (built when the event happened).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, name="webhook_delivery_status", native_enum=False, length=20),
        default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    #: The receiver's last HTTP status (None: no answer at all).
    last_status_code: Mapped[int | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The delivery this one re-sends (an admin's "resend").
    resent_from_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())

    endpoint: Mapped[WebhookEndpoint] = relationship()
