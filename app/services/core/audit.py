"""The audit log: every organizer and admin action, with actor, time and target, written in the same
transaction as the change it describes (so a rolled-back change leaves no entry).

Entries never hold secrets: detail keys that look like credentials are dropped before writing, and
callers describe attendees by registration id only, never by name or address.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select

from app.models import AuditEntry, Event, Registration, User, db
from app.services.core.paging import Page, page_of

logger = logging.getLogger(__name__)

PER_PAGE = 50
#: Detail keys whose values are never stored (tokens, passwords, keys, cookies...).
SECRET_KEY = re.compile(r"token|secret|password|passwd|credential|cookie|authorization|api[_-]?key|access[_-]?key"
                        r"|connection[_-]?string|hash", re.IGNORECASE)
REDACTED = "[redacted]"
#: Categories the admin can filter by (the prefix of `action`).
CATEGORIES = {
    "auth": _l("Sign-ins"),
    "event": _l("Events"),
    "registration": _l("Registrations"),
    "export": _l("Exports"),
    "message": _l("Messages and email wording"),
    "privacy": _l("Privacy (erasure, purge)"),
    "attendance": _l("Attendance"),
    "user": _l("Users"),
    "settings": _l("Settings"),
    "microsoft": _l("Microsoft 365"),
    "api": _l("API (tokens and calls)"),
    "webhook": _l("Webhooks"),
}


def _scrub(value: Any, depth: int = 0) -> Any:
    """Drop credential-like keys, recursively; cap size so a log entry stays small."""
    if depth > 4:
        return "…"
    if isinstance(value, dict):
        return {str(k)[:60]: (REDACTED if SECRET_KEY.search(str(k)) else _scrub(v, depth + 1))
                for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple | set):
        items = list(value)
        return [_scrub(v, depth + 1) for v in items[:200]] + (["…"] if len(items) > 200 else [])
    if isinstance(value, str):
        return value[:500]
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)[:200]


def _target_of(target: Any) -> tuple[str, str, int | None]:
    if isinstance(target, Event):
        return "event", str(target.id), target.id
    if isinstance(target, Registration):
        return "registration", str(target.id), target.event_id
    if isinstance(target, User):
        return "user", str(target.id), None
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), str(ident), None
    return "", "", None


def record(action: str, *, actor: User | None = None, actor_kind: str = "system", target: Any = None,
           event: Event | int | None = None, summary: str = "", details: dict[str, Any] | None = None) -> AuditEntry:
    """Add an audit entry to the current transaction.

    `actor` is the staff member; without one, `actor_kind` says who acted ("attendee", "system",
    "anonymous"). `target` is a model object or a ("kind", id) pair.
    """
    target_type, target_id, event_id = _target_of(target)
    if isinstance(event, Event):
        event_id = event.id
    elif isinstance(event, int):
        event_id = event
    ip = ""
    if has_request_context():
        ip = (request.remote_addr or "")[:64]
    entry = AuditEntry(
        action=action[:60], actor_user_id=actor.id if actor is not None else None,
        actor_label=(actor.email if actor is not None else actor_kind)[:320],
        target_type=target_type[:40], target_id=target_id[:100], event_id=event_id,
        summary=(summary or "")[:1000], details=_scrub(details or {}), ip=ip,
    )
    db.session.add(entry)
    logger.info("Audit: %s by %s on %s %s", entry.action, entry.actor_label, target_type or "-", target_id or "-")
    return entry


# --- viewing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    category: str = ""
    actor: str = ""
    event_id: int | None = None
    since: date | None = None
    until: date | None = None
    q: str = ""
    page: int = 1

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string arguments for this view (empty ones left out), with some changed."""
        values = {"category": self.category, "actor": self.actor, "event": self.event_id,
                  "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else "",
                  "q": self.q, "page": self.page}
        values.update(changes)
        return {k: v for k, v in values.items() if v not in ("", None, 1)}


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def clean_filters(args: Any) -> AuditFilters:
    """Filters from a query string, each checked against what is allowed (bad values are dropped)."""
    category = args.get("category", "")
    category = category if category in CATEGORIES else ""
    actor = " ".join(str(args.get("actor", "")).split())[:320]
    try:
        event_id = int(args.get("event") or 0) or None
    except (TypeError, ValueError):
        event_id = None
    if event_id is not None and not 0 < event_id < 2**31:
        event_id = None
    try:
        page = min(max(int(args.get("page") or 1), 1), 10**6)
    except (TypeError, ValueError):
        page = 1
    q = " ".join(str(args.get("q", "")).split())[:200]
    return AuditFilters(category=category, actor=actor, event_id=event_id, since=_date(args.get("since")),
                        until=_date(args.get("until")), q=q, page=page)


def _query(f: AuditFilters) -> Select[tuple[AuditEntry]]:
    query = select(AuditEntry)
    if f.category:
        query = query.where(AuditEntry.action.startswith(f.category + ".", autoescape=True))
    if f.actor:
        query = query.where(func.lower(AuditEntry.actor_label).contains(f.actor.lower(), autoescape=True))
    if f.event_id:
        query = query.where(AuditEntry.event_id == f.event_id)
    if f.since:
        query = query.where(AuditEntry.at >= datetime.combine(f.since, time.min, tzinfo=UTC))
    if f.until:
        query = query.where(AuditEntry.at < datetime.combine(f.until, time.min, tzinfo=UTC) + timedelta(days=1))
    if f.q:
        query = query.where(or_(AuditEntry.summary.contains(f.q, autoescape=True),
                                AuditEntry.action.contains(f.q, autoescape=True)))
    return query


def list_entries(f: AuditFilters, *, per_page: int = PER_PAGE) -> Page[AuditEntry]:
    """One page of entries, newest first."""
    return page_of(_query(f), page=f.page, per_page=per_page, order_by=(AuditEntry.at.desc(), AuditEntry.id.desc()))
