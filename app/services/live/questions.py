"""Q&A beside the call: attendees ask and upvote; organizers approve, answer, pin and dismiss.

An attendee acts through their join link, only while it could join the call (the join window). Events
that moderate before display keep new questions `pending`: only their asker sees them until a moderator
approves. Anonymous questions show no name to anyone (moderators included); the registration is kept
all the same, so the asker can see their own question, and erasure and retention find it.

Text is plain: templates autoescape it, control characters are dropped and lengths are capped here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from flask_babel import format_number, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.models import (
    Event,
    LiveQuestion,
    LiveQuestionStatus,
    LiveQuestionVote,
    LiveSettings,
    Registration,
    User,
    db,
    utcnow,
)
from app.services.attendance.join_links import JoinLink
from app.services.core.errors import Conflict, DomainError
from app.services.live import require_open
from app.services.registration import exports, privacy
from app.services.registration.registrations import clean_text

logger = logging.getLogger(__name__)

QUESTION_MAX = 500
ANSWER_MAX = 2000
#: What other people see instead of an anonymous asker's name.
ANONYMOUS = _l("Anonymous")
VISIBLE = (LiveQuestionStatus.approved, LiveQuestionStatus.answered)


@dataclass(frozen=True)
class QuestionView:
    """A question as one viewer sees it: its upvotes, whether the viewer upvoted it or asked it."""

    question: LiveQuestion
    votes: int
    voted: bool = False
    mine: bool = False

    @property
    def asker(self) -> str:
        q = self.question
        return str(ANONYMOUS) if q.anonymous else q.registration.full_name


# --- settings -----------------------------------------------------------------------------------------


def settings_for(event: Event) -> LiveSettings:
    """The event's Q&A settings (the defaults, unsaved, when the organizer never changed them)."""
    row = db.session.get(LiveSettings, event.id)
    return row if row is not None else LiveSettings(event_id=event.id, allow_anonymous=False, moderate_questions=False)


def update_settings(event: Event, *, allow_anonymous: bool, moderate_questions: bool, actor: User) -> LiveSettings:
    """Save whether attendees may ask anonymously and whether questions wait for approval."""
    row = db.session.get(LiveSettings, event.id)
    if row is None:
        row = LiveSettings(event_id=event.id)
        db.session.add(row)
    row.allow_anonymous = bool(allow_anonymous)
    row.moderate_questions = bool(moderate_questions)
    db.session.flush()
    logger.info("Q&A settings of event %s changed by %s", event.id, actor.id)
    return row


# --- attendees ----------------------------------------------------------------------------------------


def _clean_question(body: str) -> str:
    text = " ".join(clean_text(body).split())
    if not text:
        raise DomainError(gettext("Type your question first."), field="body")
    if len(text) > QUESTION_MAX:
        raise DomainError(gettext("A question can be at most %(max)s characters long (yours has %(count)s).",
                                  max=QUESTION_MAX, count=format_number(len(text))), field="body")
    return text


def ask(link: JoinLink, body: str, *, anonymous: bool = False) -> LiveQuestion:
    """An attendee asks a question (pending when the event moderates first)."""
    require_open(link)
    reg = link.registration
    settings = settings_for(reg.event)
    if anonymous and not settings.allow_anonymous:
        raise DomainError(gettext("This event does not take anonymous questions."), field="anonymous")
    question = LiveQuestion(
        event_id=reg.event_id, registration_id=reg.id, body=_clean_question(body), anonymous=bool(anonymous),
        status=LiveQuestionStatus.pending if settings.moderate_questions else LiveQuestionStatus.approved,
        pinned=False, answer="", answered_live=False,
    )
    db.session.add(question)
    db.session.flush()
    logger.info("Question %s asked by registration %s (event %s)", question.id, reg.id, reg.event_id)
    return question


def find(event: Event, question_id: int) -> LiveQuestion | None:
    """The event's question with this id, or None."""
    question = db.session.get(LiveQuestion, question_id)
    return question if question is not None and question.event_id == event.id else None


def toggle_upvote(link: JoinLink, question: LiveQuestion) -> bool:
    """Upvote a question, or take the upvote back; True when it is now upvoted."""
    require_open(link)
    reg = link.registration
    if question.event_id != reg.event_id or question.status not in VISIBLE:
        raise Conflict(gettext("This question cannot be upvoted."))
    existing = db.session.get(LiveQuestionVote, (question.id, reg.id))
    if existing is not None:
        db.session.delete(existing)
        db.session.flush()
        return False
    try:
        with db.session.begin_nested():  # a double click racing itself: the primary key keeps one
            db.session.add(LiveQuestionVote(question_id=question.id, registration_id=reg.id))
    except IntegrityError:
        pass
    return True


def _votes(event: Event) -> dict[int, int]:
    rows = db.session.execute(
        select(LiveQuestionVote.question_id, func.count()).join(LiveQuestion)
        .where(LiveQuestion.event_id == event.id).group_by(LiveQuestionVote.question_id))
    return dict(rows.all())


def _ordered(views: list[QuestionView]) -> list[QuestionView]:
    """Pinned first, then open questions by upvotes (oldest first on a tie), answered ones last."""
    def key(view: QuestionView):
        q = view.question
        answered = q.status == LiveQuestionStatus.answered
        return (not q.pinned, answered, -view.votes, q.created_at, q.id)

    return sorted(views, key=key)


def for_attendee(event: Event, reg: Registration) -> list[QuestionView]:
    """What one attendee sees: approved and answered questions, plus their own waiting ones."""
    votes = _votes(event)
    mine_voted = set(db.session.scalars(
        select(LiveQuestionVote.question_id).join(LiveQuestion)
        .where(LiveQuestion.event_id == event.id, LiveQuestionVote.registration_id == reg.id)))
    rows = db.session.scalars(select(LiveQuestion).options(selectinload(LiveQuestion.registration)).where(
        LiveQuestion.event_id == event.id,
        LiveQuestion.status.in_(VISIBLE) | ((LiveQuestion.status == LiveQuestionStatus.pending)
                                            & (LiveQuestion.registration_id == reg.id))))
    return _ordered([QuestionView(q, votes.get(q.id, 0), q.id in mine_voted, q.registration_id == reg.id)
                     for q in rows])


@dataclass(frozen=True)
class ModerationView:
    pending: list[QuestionView]
    open: list[QuestionView]
    answered: list[QuestionView]
    dismissed: list[QuestionView]


def for_moderator(event: Event) -> ModerationView:
    """Every question of the event, grouped for the moderation page."""
    votes = _votes(event)
    views = _ordered([QuestionView(q, votes.get(q.id, 0))
                      for q in db.session.scalars(select(LiveQuestion).options(selectinload(LiveQuestion.registration))
                                                  .where(LiveQuestion.event_id == event.id))])
    by = {status: [v for v in views if v.question.status == status] for status in LiveQuestionStatus}
    return ModerationView(pending=by[LiveQuestionStatus.pending], open=by[LiveQuestionStatus.approved],
                          answered=by[LiveQuestionStatus.answered], dismissed=by[LiveQuestionStatus.dismissed])


# --- moderators ---------------------------------------------------------------------------------------


def approve(question: LiveQuestion, *, actor: User) -> None:
    """Show a waiting (or dismissed) question to every attendee."""
    if question.status == LiveQuestionStatus.answered:
        raise Conflict(gettext("This question has been answered already."))
    question.status = LiveQuestionStatus.approved
    db.session.flush()
    logger.info("Question %s approved by %s", question.id, actor.id)


def answer(question: LiveQuestion, text: str, *, live: bool, actor: User) -> None:
    """Answer a question in writing, or mark it answered live (with an optional note)."""
    written = clean_text(text)
    if len(written) > ANSWER_MAX:
        raise DomainError(gettext("An answer can be at most %(max)s characters long (yours has %(count)s).",
                                  max=format_number(ANSWER_MAX), count=format_number(len(written))), field="answer")
    if not written and not live:
        raise DomainError(gettext("Write an answer, or mark the question as answered live."), field="answer")
    question.answer = written
    question.answered_live = bool(live)
    question.status = LiveQuestionStatus.answered
    question.answered_by_id = actor.id
    question.answered_at = utcnow()
    question.pinned = False
    db.session.flush()
    logger.info("Question %s answered (%s) by %s", question.id, "live" if live else "in writing", actor.id)


def pin(question: LiveQuestion, pinned: bool, *, actor: User) -> None:
    """Pin a question to the top of everyone's list (an approved one: pinning shows it), or unpin it."""
    if pinned and question.status in (LiveQuestionStatus.pending, LiveQuestionStatus.dismissed):
        question.status = LiveQuestionStatus.approved
    question.pinned = bool(pinned)
    db.session.flush()
    logger.info("Question %s %s by %s", question.id, "pinned" if pinned else "unpinned", actor.id)


def dismiss(question: LiveQuestion, *, actor: User) -> None:
    """Hide a question from attendees (moderators still see it, and can approve it again)."""
    question.status = LiveQuestionStatus.dismissed
    question.pinned = False
    db.session.flush()
    logger.info("Question %s dismissed by %s", question.id, actor.id)


# --- after the event: export, erasure, retention -------------------------------------------------------


def questions_csv(event: Event) -> Iterator[str]:
    """Every question of the event as CSV (asker hidden when anonymous), with upvotes and answers."""
    view = for_moderator(event)
    header = ["Question id", "Asked (UTC)", "Asked by", "Registration id", "Question", "Status", "Pinned",
              "Upvotes", "Answer", "Answered live", "Answered (UTC)"]
    yield "\ufeff" + exports.encode_rows([header])
    rows = []
    for v in [*view.pending, *view.open, *view.answered, *view.dismissed]:
        q = v.question
        rows.append([q.id, q.created_at.isoformat(), v.asker, "" if q.anonymous else q.registration_id, q.body,
                     q.status.value, "yes" if q.pinned else "no", v.votes, q.answer,
                     "yes" if q.answered_live else "no", q.answered_at.isoformat() if q.answered_at else ""])
    yield exports.encode_rows(rows)


@privacy.exporter("questions")
def _export(reg: Registration) -> list[dict]:
    """The questions a person asked and the ones they upvoted."""
    asked = db.session.scalars(select(LiveQuestion).where(LiveQuestion.registration_id == reg.id)
                               .order_by(LiveQuestion.id))
    upvoted = db.session.scalars(select(LiveQuestion.body).join(LiveQuestionVote)
                                 .where(LiveQuestionVote.registration_id == reg.id).order_by(LiveQuestion.id))
    return [*({"asked": q.body, "anonymous": q.anonymous, "status": q.status.value, "answer": q.answer,
               "answered_live": q.answered_live, "at": q.created_at.isoformat()} for q in asked),
            *({"upvoted": body} for body in upvoted)]


@privacy.eraser("questions")
def _erase(reg: Registration) -> int:
    """A person's questions (with everyone's upvotes of them) and their upvotes go."""
    votes = db.session.execute(delete(LiveQuestionVote).where(LiveQuestionVote.registration_id == reg.id)
                               .execution_options(synchronize_session=False)).rowcount or 0
    asked = db.session.execute(delete(LiveQuestion).where(LiveQuestion.registration_id == reg.id)
                               .execution_options(synchronize_session=False)).rowcount or 0
    return votes + asked


@privacy.purger("live_questions", before="registrations")
def _purge(event: Event) -> int:
    """Every question of the event and every upvote (their text is the attendees' own)."""
    ids = select(LiveQuestion.id).where(LiveQuestion.event_id == event.id).scalar_subquery()
    votes = db.session.execute(delete(LiveQuestionVote).where(LiveQuestionVote.question_id.in_(ids))
                               .execution_options(synchronize_session=False)).rowcount or 0
    asked = db.session.execute(delete(LiveQuestion).where(LiveQuestion.event_id == event.id)
                               .execution_options(synchronize_session=False)).rowcount or 0
    return votes + asked

