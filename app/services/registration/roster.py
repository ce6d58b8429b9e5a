"""The organizer's view of an event's registrations: a filtered, searched, paged list, and bulk actions
that apply the registration engine's verbs one registration at a time (each in its own savepoint, so
one refusal does not undo the others).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, Text, cast, func, or_, select
from sqlalchemy.orm import selectinload

from app.models import (
    Event,
    Question,
    QuestionKind,
    Registration,
    RegistrationAnswer,
    RegistrationState,
    User,
    db,
)
from app.services.core import audit
from app.services.core.errors import DomainError
from app.services.core.paging import Page, page_of
from app.services.messaging.kinds import N_
from app.services.registration import registrations

logger = logging.getLogger(__name__)

PER_PAGE = 50
SEARCH_MAX = 200
#: Filter values in the order the page lists them ("all" first).
STATE_FILTERS = ("all", *(state.value for state in RegistrationState))
STATE_LABELS = {
    "all": _l("All"),
    RegistrationState.confirmed: _l("Confirmed"),
    RegistrationState.waitlisted: _l("Waitlisted"),
    RegistrationState.pending: _l("Awaiting approval"),
    RegistrationState.unverified: _l("Address not confirmed"),
    RegistrationState.cancelled: _l("Cancelled"),
    RegistrationState.denied: _l("Denied"),
}
#: Bulk action name -> its label (English in the audit log; the form translates it).
BULK_ACTIONS = {
    "approve": N_("Approve"),
    "move": N_("Move from the waitlist"),
    "deny": N_("Deny"),
    "cancel": N_("Cancel"),
}


#: Sort keys offered to organizers (anything else falls back to "registered").
SORT_LABELS = {
    "registered": "Registered",
    "name": "Name",
    "email": "Email",
    "state": "State",
    "attendance": "Minutes present",
}
DIRECTIONS = ("asc", "desc")
ATTENDED_FILTERS = {"": _l("Anyone"), "yes": _l("Attended"), "no": _l("Did not attend"), "unknown": _l("Not known yet")}
#: Question kinds whose answers can be filtered on (a fixed set of values).
FILTERABLE_KINDS = (QuestionKind.single_choice, QuestionKind.multiple_choice, QuestionKind.checkbox)
ANSWER_PREFIX = "answer_"


@dataclass(frozen=True)
class RosterView:
    """What the organizer asked to see: every value already checked against its allow-list."""

    state: str = "all"
    q: str = ""
    page: int = 1
    sort: str = "registered"
    dir: str = "asc"
    attended: str = ""
    #: (question id, wanted value) pairs; the value is an option, or "yes"/"no" for a checkbox.
    answers: tuple[tuple[int, str], ...] = ()

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string arguments for this view with some values changed; defaults are left out."""
        values: dict[str, Any] = {"state": self.state, "q": self.q, "sort": self.sort, "dir": self.dir,
                                  "attended": self.attended, "page": self.page}
        values.update({f"{ANSWER_PREFIX}{qid}": value for qid, value in self.answers})
        values.update(changes)
        defaults = {"state": "all", "q": "", "sort": "registered", "dir": "asc", "attended": "", "page": 1}
        return {k: v for k, v in values.items() if v not in ("", None) and defaults.get(k, object()) != v}

    def answer(self, question_id: int) -> str:
        return dict(self.answers).get(question_id, "")

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.state != "all" or self.attended or self.answers)


@dataclass
class BulkResult:
    """What a bulk action did: who changed, who could not (and why), who the waitlist promoted."""

    done: list[Registration] = field(default_factory=list)
    failed: list[tuple[Registration, str]] = field(default_factory=list)
    promoted: list[Registration] = field(default_factory=list)


def _page_number(page: Any) -> int:
    try:
        number = int(page or 1)
    except (TypeError, ValueError):
        number = 1
    return min(max(number, 1), 10**6)


def _search_text(q: Any) -> str:
    # Control characters and runs of spaces go; the length is capped so a hostile string stays cheap.
    text = "".join(ch for ch in str(q or "")[: SEARCH_MAX * 4] if ch >= " " and ch != "\x7f")
    return " ".join(text.split())[:SEARCH_MAX]


def clean_filters(state: str | None, q: str | None, page: str | int | None) -> tuple[str, str, int]:
    """Filter, search text and page number from a query string, made safe."""
    state = state if state in STATE_FILTERS else "all"
    return state, _search_text(q), _page_number(page)


def filterable_questions(event: Event) -> list[Question]:
    """The event's questions whose answers can be filtered on."""
    return [q for q in event.questions if q.kind in FILTERABLE_KINDS]


def answer_choices(question: Question) -> list[str]:
    return ["yes", "no"] if question.kind == QuestionKind.checkbox else list(question.options or [])


def clean_view(event: Event, source: Any) -> RosterView:
    """The view from a query string (GET) or hidden fields (POST); unknown values fall back to defaults."""
    state, q, page = clean_filters(source.get("state"), source.get("q"), source.get("page"))
    sort = source.get("sort")
    sort = sort if sort in SORT_LABELS else "registered"
    direction = source.get("dir")
    direction = direction if direction in DIRECTIONS else "asc"
    attended = source.get("attended") or ""
    attended = attended if attended in ATTENDED_FILTERS else ""
    answers = []
    for question in filterable_questions(event):
        wanted = source.get(f"{ANSWER_PREFIX}{question.id}") or ""
        if wanted and wanted in answer_choices(question):
            answers.append((question.id, wanted))
    return RosterView(state=state, q=q, page=page, sort=sort, dir=direction, attended=attended,
                      answers=tuple(answers))


def _answer_condition(question: Question, wanted: str):
    """SQL for "the registration's answer to `question` is / includes `wanted`".

    Answers are JSON; their text form is compared with the JSON text of the wanted value, which is
    the same on SQLite and PostgreSQL because both keep what SQLAlchemy's json.dumps wrote.
    """
    as_text = cast(RegistrationAnswer.value, Text)
    # IN (one scan of this question's answers) rather than a correlated EXISTS per registration.
    answered = select(RegistrationAnswer.registration_id).where(RegistrationAnswer.question_id == question.id)
    if question.kind == QuestionKind.checkbox:
        ticked = Registration.id.in_(answered.where(as_text == "true"))
        return ticked if wanted == "yes" else ~ticked
    return Registration.id.in_(answered.where(as_text.contains(json.dumps(wanted), autoescape=True)))


def _query(event: Event, state: str, q: str, view: RosterView | None = None) -> Select[tuple[Registration]]:
    query = select(Registration).where(Registration.event_id == event.id)
    if state != "all":
        query = query.where(Registration.state == RegistrationState(state))
    if q:
        needle = q.lower()
        full_name = func.lower(Registration.first_name + " " + Registration.last_name)
        query = query.where(or_(Registration.email.contains(needle, autoescape=True),
                                full_name.contains(needle, autoescape=True)))
    if view is not None:
        if view.attended == "yes":
            query = query.where(Registration.attended.is_(True))
        elif view.attended == "no":
            query = query.where(Registration.attended.is_(False))
        elif view.attended == "unknown":
            query = query.where(Registration.attended.is_(None))
        questions = {question.id: question for question in event.questions}
        for question_id, wanted in view.answers:
            if question_id in questions:
                query = query.where(_answer_condition(questions[question_id], wanted))
    return query


def _order(view: RosterView | None) -> list:
    sort = view.sort if view is not None else "registered"
    descending = view is not None and view.dir == "desc"
    columns = {
        "registered": [Registration.created_at],
        # Plain columns (not lower()) so the (event, last name, first name) index serves the sort on both
        # databases; names are stored as people typed them, almost always capitalised.
        "name": [Registration.last_name, Registration.first_name],
        "email": [Registration.email],
        "state": [Registration.state, Registration.created_at],
        "attendance": [func.coalesce(Registration.attendance_seconds, -1)],
    }[sort] + [Registration.id]
    return [c.desc() for c in columns] if descending else [c.asc() for c in columns]


def list_registrations(event: Event, *, state: str = "all", q: str = "", page: int = 1,
                       per_page: int = PER_PAGE, view: RosterView | None = None) -> Page[Registration]:
    """The event's registrations filtered by state, attendance and answers, searched by name or email,
    sorted by an allowed key, one page at a time (answers loaded in one extra query, not per row).
    """
    if view is not None:
        state, q, page = view.state, view.q, view.page
    state, q, page = clean_filters(state, q, page)
    query = _query(event, state, q, view)
    # Two cheap queries rather than one window count: the count reads only ids (an index, or the
    # materialised answer filter), and the page walks the sort's index and stops after one page.
    return page_of(query, page=page, per_page=per_page, order_by=_order(view),
                   options=[selectinload(Registration.answers)], counted=query.with_only_columns(Registration.id))


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
            value = gettext("yes") if value else gettext("no")
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
    raise DomainError(gettext("Choose an action."), field="action")


def apply(event: Event, reg: Registration, action: str, *, actor: User, message: str = "") -> BulkResult:
    """One action on one registration (raises the engine's DomainError when refused)."""
    before = _waitlisted_ids(event)
    _verb(action, actor=actor, message=message)(reg)
    result = BulkResult(done=[reg], promoted=promoted_since(event, before, exclude=[reg.id]))
    audit.record(f"registration.{action}", actor=actor, target=reg,
                 summary=f"{BULK_ACTIONS[action]}: registration {reg.id}",
                 details={"promoted_ids": [r.id for r in result.promoted], "with_message": bool(message)})
    return result


def apply_bulk(event: Event, reg_ids: Sequence[int], action: str, *, actor: User, message: str = "") -> BulkResult:
    """Apply one action to many registrations of this event, oldest first; refusals are collected."""
    verb = _verb(action, actor=actor, message=message)
    ids = sorted({int(i) for i in reg_ids})
    if not ids:
        raise DomainError(gettext("Select at least one registration."), field="ids")
    rows = list(db.session.scalars(select(Registration).where(
        Registration.event_id == event.id, Registration.id.in_(ids))
        .order_by(Registration.created_at, Registration.id)))
    if not rows:
        raise DomainError(gettext("None of the selected registrations belong to this event."), field="ids")
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
    audit.record(f"registration.bulk_{action}", actor=actor, target=event,
                 summary=f"{BULK_ACTIONS[action]} on {len(result.done)} registration(s), {len(result.failed)} refused",
                 details={"done_ids": [r.id for r in result.done], "refused_ids": [r.id for r, _ in result.failed],
                          "promoted_ids": [r.id for r in result.promoted], "with_message": bool(message)})
    logger.info("Bulk %s on event %s by %s: %s done, %s refused", action, event.id, actor.id, len(result.done),
                len(result.failed))
    return result


def change_capacity(event: Event, capacity: int | None, *, actor: User) -> list[Registration]:
    """Set the capacity (None: unlimited); returns the people promoted into new seats."""
    before = event.capacity
    promoted = registrations.set_capacity(event, capacity, actor=actor)
    audit.record("event.capacity", actor=actor, target=event,
                 summary=f"Capacity {before if before is not None else 'unlimited'} → "
                         f"{capacity if capacity is not None else 'unlimited'}",
                 details={"promoted_ids": [r.id for r in promoted]})
    return promoted
