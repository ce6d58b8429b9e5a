"""The organizer's view of an event's registrations: a filtered, searched, paged list, and bulk actions
that apply the registration engine's verbs one registration at a time (each in its own savepoint, so
one refusal does not undo the others).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from app.models import Event, Registration, RegistrationState, User, db
from app.services import registrations
from app.services.errors import DomainError

logger = logging.getLogger(__name__)

PER_PAGE = 50
SEARCH_MAX = 200
#: Filter values in the order the page lists them ("all" first).
STATE_FILTERS = ("all", *(state.value for state in RegistrationState))
STATE_LABELS = {
    "all": "All",
    RegistrationState.confirmed: "Confirmed",
    RegistrationState.waitlisted: "Waitlisted",
    RegistrationState.pending: "Awaiting approval",
    RegistrationState.unverified: "Address not confirmed",
    RegistrationState.cancelled: "Cancelled",
    RegistrationState.denied: "Denied",
}
#: Bulk action name -> (label, what it needs the registration to be).
BULK_ACTIONS = {
    "approve": "Approve",
    "move": "Move from the waitlist",
    "deny": "Deny",
    "cancel": "Cancel",
}


@dataclass(frozen=True)
class RosterPage:
    """One page of an event's registrations."""

    rows: list[Registration]
    page: int
    pages: int
    total: int
    state: str
    q: str

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass
class BulkResult:
    """What a bulk action did: who changed, who could not (and why), who the waitlist promoted."""

    done: list[Registration] = field(default_factory=list)
    failed: list[tuple[Registration, str]] = field(default_factory=list)
    promoted: list[Registration] = field(default_factory=list)


def clean_filters(state: str | None, q: str | None, page: str | int | None) -> tuple[str, str, int]:
    """Filter, search text and page number from a query string, made safe."""
    state = state if state in STATE_FILTERS else "all"
    q = " ".join(str(q or "").split())[:SEARCH_MAX]
    try:
        number = int(page or 1)
    except (TypeError, ValueError):
        number = 1
    return state, q, min(max(number, 1), 10**6)


def _query(event: Event, state: str, q: str) -> Select[tuple[Registration]]:
    query = select(Registration).where(Registration.event_id == event.id)
    if state != "all":
        query = query.where(Registration.state == RegistrationState(state))
    if q:
        needle = q.lower()
        full_name = func.lower(Registration.first_name + " " + Registration.last_name)
        query = query.where(or_(
            Registration.email.contains(needle, autoescape=True),
            full_name.contains(needle, autoescape=True),
            func.lower(Registration.last_name).contains(needle, autoescape=True),
        ))
    return query


def list_registrations(event: Event, *, state: str = "all", q: str = "", page: int = 1,
                       per_page: int = PER_PAGE) -> RosterPage:
    """The event's registrations, oldest first, filtered by state and searched by name or email."""
    state, q, page = clean_filters(state, q, page)
    query = _query(event, state, q)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(math.ceil(total / per_page), 1)
    page = min(page, pages)
    rows = db.session.scalars(
        query.options(selectinload(Registration.answers))
        .order_by(Registration.created_at, Registration.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return RosterPage(rows=list(rows), page=page, pages=pages, total=total, state=state, q=q)


def get_registration(event: Event, reg_id: int) -> Registration | None:
    """One registration of this event (None for another event's)."""
    reg = db.session.get(Registration, reg_id)
    return reg if reg is not None and reg.event_id == event.id else None


def answers_summary(reg: Registration, limit: int = 120) -> str:
    """'Company: Acme · Track: Dev' cut to `limit` characters."""
    parts = []
    for answer in reg.answers:
        value = answer.value
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        if value not in ("", None):
            parts.append(f"{answer.question_label}: {value}")
    text = " · ".join(parts)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _waitlisted_ids(event: Event) -> set[int]:
    return set(db.session.scalars(select(Registration.id).where(
        Registration.event_id == event.id, Registration.state == RegistrationState.waitlisted)))


def promoted_since(event: Event, waitlisted_before: set[int], *, exclude: Sequence[int] = ()) -> list[Registration]:
    """People who were waitlisted before an action and hold a seat now (the engine promoted them)."""
    candidates = waitlisted_before - set(exclude)
    if not candidates:
        return []
    return list(db.session.scalars(select(Registration).where(
        Registration.id.in_(candidates), Registration.state == RegistrationState.confirmed)
        .order_by(Registration.created_at, Registration.id)))


def _verb(action: str, *, actor: User, message: str) -> Callable[[Registration], Registration]:
    if action == "approve":
        return lambda reg: registrations.approve(reg, actor=actor)
    if action == "move":
        return lambda reg: registrations.move_from_waitlist(reg, actor=actor)
    if action == "deny":
        return lambda reg: registrations.deny(reg, actor=actor, message=message)
    if action == "cancel":
        return lambda reg: registrations.cancel(reg, actor=actor, note=message)
    raise DomainError("Choose an action.", field="action")


def apply(event: Event, reg: Registration, action: str, *, actor: User, message: str = "") -> BulkResult:
    """One action on one registration (raises the engine's DomainError when refused)."""
    before = _waitlisted_ids(event)
    _verb(action, actor=actor, message=message)(reg)
    return BulkResult(done=[reg], promoted=promoted_since(event, before, exclude=[reg.id]))


def apply_bulk(event: Event, reg_ids: Sequence[int], action: str, *, actor: User, message: str = "") -> BulkResult:
    """Apply one action to many registrations of this event, oldest first; refusals are collected."""
    verb = _verb(action, actor=actor, message=message)
    ids = sorted({int(i) for i in reg_ids})
    if not ids:
        raise DomainError("Select at least one registration.", field="ids")
    rows = list(db.session.scalars(select(Registration).where(
        Registration.event_id == event.id, Registration.id.in_(ids))
        .order_by(Registration.created_at, Registration.id)))
    if not rows:
        raise DomainError("None of the selected registrations belong to this event.", field="ids")
    before = _waitlisted_ids(event)
    result = BulkResult()
    for reg in rows:
        try:
            with db.session.begin_nested():
                verb(reg)
        except DomainError as exc:
            db.session.refresh(reg)
            result.failed.append((reg, exc.message))
        else:
            result.done.append(reg)
    result.promoted = promoted_since(event, before, exclude=[r.id for r in result.done])
    logger.info("Bulk %s on event %s by %s: %s done, %s refused", action, event.id, actor.id, len(result.done),
                len(result.failed))
    return result


def change_capacity(event: Event, capacity: int | None, *, actor: User) -> list[Registration]:
    """Set the capacity (None: unlimited); returns the people promoted into new seats."""
    return registrations.set_capacity(event, capacity, actor=actor)
