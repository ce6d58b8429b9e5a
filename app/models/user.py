"""Staff accounts: admins and organizers."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Enum, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import UTCDateTime, db, utcnow


class Role(enum.StrEnum):
    admin = "admin"
    organizer = "organizer"


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Normalised (lower-cased) address; unique per user.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role", native_enum=False, length=20))
    #: argon2id hash, or NULL while an invitation has not been accepted.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active_account: Mapped[bool] = mapped_column(default=True)
    #: Entra ID object id and tenant id (`oid` + `tid` of the id token), for optional "Sign in with
    #: Microsoft": a sign-in matches on both (Microsoft's guidance), never on the mutable username.
    entra_object_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    entra_tenant_id: Mapped[str | None] = mapped_column(String(64))
    #: Hash of a one-time invitation / password-reset token, with its expiry.
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Bumped on password change or deactivation so that old sessions stop working.
    session_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    @property
    def is_active(self) -> bool:  # Flask-Login asks this on every request
        return self.is_active_account

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"
