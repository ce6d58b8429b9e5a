"""The one Microsoft 365 service-account connection Foyer acts through."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import UTCDateTime, db


class ConnectionStatus(enum.StrEnum):
    disconnected = "disconnected"
    connected = "connected"
    #: The refresh token was refused (revoked, expired, MFA); an admin must sign in again.
    needs_reconnect = "needs_reconnect"


class MicrosoftConnection(db.Model):
    __tablename__ = "microsoft_connection"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[ConnectionStatus] = mapped_column(
        Enum(ConnectionStatus, name="connection_status", native_enum=False, length=20),
        default=ConnectionStatus.disconnected,
    )
    #: The MSAL SerializableTokenCache, encrypted with MultiFernet (never stored in plain text).
    token_cache_encrypted: Mapped[str | None] = mapped_column(Text)
    account_username: Mapped[str] = mapped_column(String(320), default="")
    account_name: Mapped[str] = mapped_column(String(200), default="")
    #: MSAL's home_account_id ("<oid>.<tid>"), to pick the account from the cache.
    home_account_id: Mapped[str] = mapped_column(String(200), default="")
    #: The service account's tenant (`tid` of its id token), kept across disconnects: the organization
    #: whose staff may use "Sign in with Microsoft" unless ENTRA_TENANT_ID says otherwise.
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connected_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: AADSTS code and description of the last token failure (no secrets).
    last_error: Mapped[str] = mapped_column(Text, default="")
    #: The delegated scopes the last connect was granted, short and lower-cased, space-separated ("" for a
    #: connection made before Foyer recorded them; see microsoft_connection.missing_recording_scopes).
    granted_scopes: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: When admins were told that a re-connect is needed (so they are told once).
    admins_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthFlow(db.Model):
    """A sign-in with Microsoft in progress, kept server-side by its `state`.

    Entra answers with a cross-site form POST (response_mode=form_post), which arrives without the
    SameSite=Lax session cookie, so the PKCE verifier and nonce cannot live in the session.
    """

    __tablename__ = "auth_flows"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: "connect" (service account) or "staff" (staff sign-in).
    purpose: Mapped[str] = mapped_column(String(20))
    #: The MSAL flow dict, encrypted (it holds the PKCE code verifier).
    flow_encrypted: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    next_url: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
