"""Encryption of secrets at rest (MSAL token cache, keys) with MultiFernet.

Keys come from `ENCRYPTION_KEYS` (comma-separated Fernet keys, newest first) or, by default, from a
key generated once in `instance/encryption_key`. Rotation: put a new key first; old keys keep
decrypting until `flask foyer rotate-key` has re-encrypted everything with the new one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _fernet() -> MultiFernet:
    app = current_app._get_current_object()
    cached = app.extensions.get("foyer_fernet")
    if cached is None:
        keys = [k.strip() for k in app.config["ENCRYPTION_KEYS"] if k.strip()]
        cached = MultiFernet([Fernet(k) for k in keys])
        app.extensions["foyer_fernet"] = cached
    return cached


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with the configured keys") from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored secret under the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with the configured keys") from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()
