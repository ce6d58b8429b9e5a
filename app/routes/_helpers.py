"""Small helpers shared by route modules: safe `next` targets, form errors from domain errors, and
starting a unit of work as a writer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_wtf import FlaskForm

from app.extensions import db
from app.models.base import begin_write
from app.services.errors import DomainError


def safe_next(target: str | None, default: str) -> str:
    r"""Return `target` only when it is a local path on this site; otherwise `default`.

    Rejects scheme-relative (`//evil`), backslash (`/\\evil`), absolute and scheme-only (`https:evil`)
    forms, and control characters that browsers strip.
    """
    if not target or not isinstance(target, str):
        return default
    if any(ord(c) < 32 or c in "\\" for c in target):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def apply_domain_error(form: FlaskForm, exc: DomainError) -> None:
    """Attach a domain error to the named field, or to the form as a whole."""
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None:
        field.errors = [*field.errors, exc.message] if isinstance(field.errors, list) else [exc.message]
    else:
        form.form_errors.append(exc.message)


def start_writing() -> None:
    """End the read transaction the sign-in check opened and start a writer transaction.

    On SQLite a transaction that reads and then writes fails at once ("database is locked") when another
    process, such as the worker, wrote in between; a change that starts as a writer waits its turn instead.
    """
    db.session.rollback()
    begin_write()
