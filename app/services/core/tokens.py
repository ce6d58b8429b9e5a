"""Unguessable link tokens: only their hashes are stored, and they are compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from app.models import db


def new_token() -> str:
    """A URL-safe token carrying 256 random bits."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and hmac.compare_digest(hash_token(token), stored_hash)


def plausible(token: Any) -> bool:
    """Whether `token` could be one Foyer handed out (anything else is refused without a query)."""
    return isinstance(token, str) and 20 <= len(token) <= 100


def holder(column: InstrumentedAttribute[str | None], token: Any) -> Any:
    """The row whose `column` holds the hash of a link token; None for anything unknown (compared in
    constant time).
    """
    if not plausible(token):
        return None
    row = db.session.scalar(select(column.class_).where(column == hash_token(token)))
    if row is None or not token_matches(token, getattr(row, column.key)):
        return None
    return row
