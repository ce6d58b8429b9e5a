"""Event management verbs: create, edit, clone, publish, unpublish, cancel, and who may do so."""

from __future__ import annotations

import logging

from sqlalchemy import Select, or_, select

from app.models import Event, EventOrganizer, User

logger = logging.getLogger(__name__)


def can_manage(user, event: Event) -> bool:
    """Admins manage every event; organizers their own and those shared with them."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_admin or event.owner_id == user.id:
        return True
    return any(co.id == user.id for co in event.co_organizers)


def managed_events_query(user: User) -> Select[tuple[Event]]:
    """A select of the events this user may manage."""
    query = select(Event)
    if not user.is_admin:
        shared = select(EventOrganizer.event_id).where(EventOrganizer.user_id == user.id)
        query = query.where(or_(Event.owner_id == user.id, Event.id.in_(shared)))
    return query
