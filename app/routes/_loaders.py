"""Load-or-abort helpers. Organizer queries are always scoped to what the user may see:
an event the user may not manage is a 404, never a 403, so its existence is not revealed.
"""

from __future__ import annotations

from flask import abort
from flask_login import current_user
from sqlalchemy import select

from app.models import Event, EventStatus, db
from app.services.events import can_manage


def load_managed_event(event_id: int) -> Event:
    """The event with this id if the signed-in user may manage it; 404 otherwise."""
    event = db.session.get(Event, event_id)
    if event is None or not can_manage(current_user, event):
        abort(404)
    return event


def load_public_event(slug: str) -> Event:
    """A published or cancelled event by slug (drafts are invisible to the public)."""
    event = db.session.scalar(select(Event).where(Event.slug == slug))
    if event is None or event.status == EventStatus.draft:
        abort(404)
    return event
