"""The JSON shape of events and registrations, shared by the REST API and webhook bodies (one shape,
described once in the OpenAPI document). Times are UTC, ISO 8601.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app

from app.models import Event, Registration


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def event_url(event: Event) -> str:
    """The event's public page on PUBLIC_BASE_URL (works without a request, e.g. in the worker)."""
    path = current_app.url_map.bind("localhost").build("public.event_GET", {"slug": event.slug})
    return current_app.config["PUBLIC_BASE_URL"] + path


def represent_event(event: Event) -> dict[str, Any]:
    """An event and its schedule: `starts_at`–`ends_at`, or for a course the span of its `sessions`; an
    occurrence of a recurring series names it (`series_id`).
    """
    seats_left = None if event.capacity is None else max(event.capacity - (event.confirmed_count or 0), 0)
    return {
        "id": event.id,
        "slug": event.slug,
        "title": event.title,
        "description": event.description or "",
        "status": event.status.value,
        "url": event_url(event),
        "timezone": event.timezone,
        "starts_at": iso(event.starts_at),
        "ends_at": iso(event.ends_at),
        "registration_opens_at": iso(event.registration_opens_at),
        "registration_closes_at": iso(event.registration_closes_at),
        "capacity": event.capacity,
        "confirmed_count": event.confirmed_count or 0,
        "seats_left": seats_left,
        "waitlist_enabled": bool(event.waitlist_enabled),
        "approval_required": bool(event.approval_required),
        "questions": [
            {"id": q.id, "kind": q.kind.value, "label": q.label, "required": bool(q.required),
             "options": list(q.options or [])}
            for q in event.questions
        ],
        "sessions": [{"id": s.id, "name": s.name, "starts_at": iso(s.starts_at), "ends_at": iso(s.ends_at)}
                     for s in event.sessions],
        "series_id": event.series_id,
        "published_at": iso(event.published_at),
        "cancelled_at": iso(event.cancelled_at),
        "updated_at": iso(event.updated_at),
    }


def represent_registration(reg: Registration) -> dict[str, Any]:
    """A registration with its answers (personal data: only for API tokens and the admin's webhooks)."""
    return {
        "id": reg.id,
        "event_id": reg.event_id,
        "state": reg.state.value,
        "email": reg.email,
        "first_name": reg.first_name,
        "last_name": reg.last_name,
        "timezone": reg.timezone,
        "answers": [
            {"question_id": a.question_id, "label": a.question_label, "value": a.value} for a in reg.answers
        ],
        "attended": reg.attended,
        "created_at": iso(reg.created_at),
        "confirmed_at": iso(reg.confirmed_at),
        "cancelled_at": iso(reg.cancelled_at),
    }
