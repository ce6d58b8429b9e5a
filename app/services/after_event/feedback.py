"""The optional feedback survey after an event: a 1–5 rating and up to MAX_QUESTIONS questions of the
registration question kinds, linked from the "thank you for joining" follow-up.

Attendees answer on a page keyed by their personal manage token, once per registration (a unique
index holds under any double submit). Results are on the event's dashboard and in its exports; the
answers are personal data, so the attendee's own export carries them, erasure deletes them and the
retention purge deletes them all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.models import Event, FeedbackResponse, Question, QuestionKind, Registration, User, db
from app.services.core import audit, links
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.events.events import clean_options
from app.services.registration import exports, privacy, registrations
from app.services.registration.registrations import check_answer

logger = logging.getLogger(__name__)

MAX_QUESTIONS = 3
RATINGS = (1, 2, 3, 4, 5)
RATING_LABELS = {1: _l("1 – Poor"), 2: _l("2 – Fair"), 3: _l("3 – Good"), 4: _l("4 – Very good"),
                 5: _l("5 – Excellent")}
#: Text answers shown per question on the dashboard (the export has them all).
TEXT_ANSWERS_SHOWN = 20


@dataclass
class SurveyQuestion:
    kind: str
    label: str
    options: list[str]
    required: bool = False


class AlreadyAnswered(Conflict):
    """This registration has answered the survey already."""


def survey_questions(event: Event) -> list[Question]:
    """The survey's questions as (unsaved) Question objects, ids 1…n, for the registration form fields and
    answer checks they share.
    """
    questions = []
    for index, raw in enumerate(event.feedback_questions or [], start=1):
        question = Question(kind=QuestionKind(raw["kind"]), label=raw["label"], help_text="",
                            required=bool(raw.get("required")), options=list(raw.get("options") or []))
        question.id = index
        questions.append(question)
    return questions


def update_survey(event: Event, *, enabled: bool, questions: list[SurveyQuestion], actor: User) -> None:
    """Switch the survey on or off and set its questions (blank labels are left out)."""
    cleaned: list[dict[str, Any]] = []
    for number, item in enumerate(questions, start=1):
        label = " ".join((item.label or "").split())
        if not label:
            continue
        if len(label) > 300:
            raise DomainError(gettext("Keep question %(number)s under 300 characters.", number=number),
                              field="questions")
        try:
            kind = QuestionKind(item.kind)
        except ValueError as exc:
            raise DomainError(gettext("Choose a kind for question %(number)s.", number=number),
                              field="questions") from exc
        try:
            options = clean_options(kind, item.options)
        except DomainError as exc:
            raise DomainError(gettext("Question %(number)s: %(problem)s", number=number, problem=exc.message),
                              field="questions") from exc
        cleaned.append({"label": label, "kind": kind.value, "options": options, "required": bool(item.required)})
    if len(cleaned) > MAX_QUESTIONS:
        raise DomainError(gettext("Ask at most %(max)s questions besides the rating.", max=MAX_QUESTIONS),
                          field="questions")
    answered = response_count(event)
    if answered and cleaned != (event.feedback_questions or []):
        raise Conflict(gettext("%(count)s attendee(s) have answered already, so the questions can no longer change.",
                               count=answered))
    event.feedback_enabled = bool(enabled)
    event.feedback_questions = cleaned
    db.session.flush()
    state = "on" if enabled else "off"
    audit.record("event.feedback", actor=actor, target=event,
                 summary=f"Feedback survey {state} ({len(cleaned)} question(s) besides the rating)")


def attendee_url(reg: Registration) -> str:
    return links.public_url("public_after_event.feedback_GET", token=registrations.manage_token_for(reg))


def may_answer(reg: Registration) -> bool:
    """Only people who attended are asked, while the survey is on and the data is kept."""
    event = reg.event
    return bool(event.feedback_enabled and reg.attended and event.personal_data_purged_at is None)


def response_of(reg: Registration) -> FeedbackResponse | None:
    return db.session.scalar(select(FeedbackResponse).where(FeedbackResponse.registration_id == reg.id))


def submit(reg: Registration, *, rating: Any, answers: dict[int, Any]) -> FeedbackResponse:
    """Record the attendee's answer, once (flushes); AlreadyAnswered on a second one."""
    if not may_answer(reg):
        raise NotAllowed(gettext("This event is not asking for feedback from you."))
    try:
        value = int(rating)
    except (TypeError, ValueError):
        value = 0
    if value not in RATINGS:
        raise DomainError(gettext("Choose a rating from 1 to 5."), field="rating")
    stored = []
    for question in survey_questions(reg.event):
        stored.append({"label": question.label, "kind": question.kind.value,
                       "value": check_answer(question, answers.get(question.id))})
    if response_of(reg) is not None:
        raise AlreadyAnswered("You have already sent your feedback. Thank you!")
    response = FeedbackResponse(event_id=reg.event_id, registration_id=reg.id, rating=value, answers=stored)
    try:
        with db.session.begin_nested():
            db.session.add(response)
    except IntegrityError as exc:  # a double submit that raced this one
        raise AlreadyAnswered("You have already sent your feedback. Thank you!") from exc
    audit.record("feedback.submit", actor_kind="attendee", target=("registration", reg.id), event=reg.event,
                 summary="Feedback sent")
    return response


def response_count(event: Event) -> int:
    return db.session.scalar(select(func.count()).select_from(FeedbackResponse)
                             .where(FeedbackResponse.event_id == event.id)) or 0


def results(event: Event) -> dict[str, Any]:
    """What the dashboard shows: count, average, the rating distribution and each question's answers."""
    rows = list(db.session.scalars(select(FeedbackResponse).where(FeedbackResponse.event_id == event.id)
                                   .order_by(FeedbackResponse.created_at.desc(), FeedbackResponse.id.desc())))
    ratings = Counter(r.rating for r in rows)
    summary: dict[str, Any] = {
        "count": len(rows),
        "average": round(sum(r.rating for r in rows) / len(rows), 1) if rows else None,
        "distribution": [(value, ratings.get(value, 0)) for value in RATINGS],
        "questions": [],
    }
    for index, question in enumerate(survey_questions(event)):
        values = [r.answers[index]["value"] for r in rows if len(r.answers) > index]
        entry: dict[str, Any] = {"label": question.label, "kind": question.kind.value}
        if question.kind.has_options:
            counts = Counter(v for value in values for v in (value if isinstance(value, list) else [value]) if v)
            entry["counts"] = [(option, counts.get(option, 0)) for option in question.options]
        elif question.kind == QuestionKind.checkbox:
            entry["counts"] = [("Yes", sum(1 for v in values if v)), ("No", sum(1 for v in values if not v))]
        else:
            texts = [v for v in values if v]
            entry["texts"] = texts[:TEXT_ANSWERS_SHOWN]
            entry["more"] = max(0, len(texts) - TEXT_ANSWERS_SHOWN)
        summary["questions"].append(entry)
    return summary


def export_rows(event: Event) -> list[list[Any]]:
    """Header and one row per response (with the registrant's address), for the event's export."""
    labels = [q.label for q in survey_questions(event)]
    rows: list[list[Any]] = [["registration_id", "email", "submitted_at", "rating", *labels]]
    query = (select(FeedbackResponse, Registration.email).join(Registration)
             .where(FeedbackResponse.event_id == event.id).order_by(FeedbackResponse.id))
    for response, email in db.session.execute(query):
        answers = [a.get("value") for a in response.answers]
        rows.append([response.registration_id, email, response.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                     response.rating, *answers])
    return rows


def feedback_csv(event: Event) -> Iterator[str]:
    """The feedback survey's answers as CSV: rating and each question, per registration."""
    rows = export_rows(event)
    header, body = rows[0], rows[1:]
    header = ["Registration id", "Email", "Submitted (UTC)", "Rating", *header[4:]]
    yield "\ufeff" + exports.encode_rows([header])
    yield exports.encode_rows([[*row[:4], *[exports.answer_text(value) for value in row[4:]]] for row in body])


@privacy.exporter("feedback")
def export_for(reg: Registration) -> dict[str, Any] | None:
    """The attendee's own answer, for their data download."""
    response = response_of(reg)
    if response is None:
        return None
    return {"rating": response.rating, "answers": response.answers,
            "submitted_at": response.created_at.isoformat()}


@privacy.eraser("feedback")
def erase(reg: Registration) -> int:
    """Delete the registration's answer (erasure on request)."""
    return db.session.execute(delete(FeedbackResponse).where(FeedbackResponse.registration_id == reg.id)).rowcount


@privacy.purger("feedback", before="registrations")
def purge(event: Event) -> int:
    """Delete every answer of the event (retention)."""
    return db.session.execute(delete(FeedbackResponse).where(FeedbackResponse.event_id == event.id)).rowcount or 0
