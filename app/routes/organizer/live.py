"""The organizer's live page for an event: Q&A moderation (approve, answer, pin, dismiss), the Q&A
settings, and polls (prepare, launch, close, results).

Each action is a plain form POST that redirects back to the page without JavaScript. With htmx it
answers with the section it changed: the questions list or the polls list (both poll themselves, so
several organizers moderating at once see each other's work), or the new-poll form.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, get_template_attribute, make_response, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import db
from app.forms.live import AnswerForm, PollForm, SettingsForm
from app.models import Event
from app.services.core.errors import DomainError
from app.services.live import polls, questions
from app.web import (
    apply_domain_error,
    load_managed_event,
    redirect_to,
    render_page_or_fragment,
    require_staff,
    wants_fragment,
)

logger = logging.getLogger(__name__)

bp = Blueprint("organizer_live", __name__, url_prefix="/manage/events")

PAGE = "organizer/live.html"
FRAGMENTS = "organizer/_live.html"


require_staff(bp)


def _context(event: Event, **extra) -> dict:
    settings = questions.settings_for(event)
    ctx = {
        "event": event,
        "moderation": questions.for_moderator(event),
        "poll_results": polls.for_organizer(event),
        "settings_form": SettingsForm(formdata=None, obj=settings),
        "poll_form": PollForm(formdata=None),
        "error": None,
        "error_question": None,
        "error_poll": None,
        "created": None,
    }
    ctx.update(extra)
    return ctx


def _load_question(event: Event, question_id: int):
    question = questions.find(event, question_id)
    if question is None:
        abort(404)
    return question


def _load_poll(event: Event, poll_id: int):
    poll = polls.find(event, poll_id)
    if poll is None:
        abort(404)
    return poll


@bp.get("/<int:event_id>/live")
def live_GET(event_id: int):
    """The live page: moderation, settings and polls."""
    event = load_managed_event(event_id)
    return render_page_or_fragment(PAGE, FRAGMENTS, "moderation_list", **_context(event))


@bp.get("/<int:event_id>/live/questions")
def live_questions_GET(event_id: int):
    """The questions list (htmx polls it), or the page at that list."""
    event = load_managed_event(event_id)
    if not wants_fragment():
        return redirect_to(url_for(".live_GET", event_id=event.id, _anchor="moderation"))
    return render_page_or_fragment(PAGE, FRAGMENTS, "moderation_list", **_context(event))


@bp.get("/<int:event_id>/live/polls")
def live_polls_GET(event_id: int):
    """The polls list with live results (htmx polls it), or the page at that list."""
    event = load_managed_event(event_id)
    if not wants_fragment():
        return redirect_to(url_for(".live_GET", event_id=event.id, _anchor="polls"))
    return render_page_or_fragment(PAGE, FRAGMENTS, "polls_list", **_context(event))


@bp.post("/<int:event_id>/live/settings")
def live_settings_POST(event_id: int):
    """Save the event's Q&A settings (anonymous questions, approval before display)."""
    event = load_managed_event(event_id)
    form = SettingsForm()
    questions.update_settings(event, allow_anonymous=form.allow_anonymous.data,
                              moderate_questions=form.moderate_questions.data, actor=current_user)
    db.session.commit()
    return redirect_to(url_for(".live_GET", event_id=event.id, _anchor="settings"))


def _questions_done(event: Event, *, status: int = 200, **extra):
    """After a moderation action: the fresh list for htmx, the page otherwise."""
    if wants_fragment() or status != 200:
        return render_page_or_fragment(PAGE, FRAGMENTS, "moderation_list", status=status, **_context(event, **extra))
    return redirect_to(url_for(".live_GET", event_id=event.id, _anchor="moderation"))


def _moderate(event_id: int, question_id: int, action) -> object:
    event = load_managed_event(event_id)
    question = _load_question(event, question_id)
    try:
        action(question)
    except DomainError as exc:
        db.session.rollback()
        return _questions_done(event, status=409, error=exc.message, error_question=question_id)
    db.session.commit()
    return _questions_done(event)


@bp.post("/<int:event_id>/live/questions/<int:question_id>/approve")
def question_approve_POST(event_id: int, question_id: int):
    """Show a waiting or dismissed question to attendees."""
    return _moderate(event_id, question_id, lambda q: questions.approve(q, actor=current_user))


@bp.post("/<int:event_id>/live/questions/<int:question_id>/dismiss")
def question_dismiss_POST(event_id: int, question_id: int):
    """Hide a question from attendees."""
    return _moderate(event_id, question_id, lambda q: questions.dismiss(q, actor=current_user))


@bp.post("/<int:event_id>/live/questions/<int:question_id>/pin")
def question_pin_POST(event_id: int, question_id: int):
    """Pin a question to the top of everyone's list, or unpin it (`pinned=0`)."""
    pinned = request.form.get("pinned", "1") != "0"
    return _moderate(event_id, question_id, lambda q: questions.pin(q, pinned, actor=current_user))


@bp.post("/<int:event_id>/live/questions/<int:question_id>/answer")
def question_answer_POST(event_id: int, question_id: int):
    """Answer a question in writing, or mark it answered live."""
    event = load_managed_event(event_id)
    question = _load_question(event, question_id)
    form = AnswerForm()
    if not form.validate():
        message = " ".join(map(str, form.answer.errors)) or _("Check the answer.")
        return _questions_done(event, status=422, error=message, error_question=question.id)
    try:
        questions.answer(question, form.answer.data or "", live=form.live.data, actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        return _questions_done(event, status=422, error=exc.message, error_question=question.id)
    db.session.commit()
    return _questions_done(event)


@bp.post("/<int:event_id>/live/polls")
def polls_POST(event_id: int):
    """Prepare a poll."""
    event = load_managed_event(event_id)
    form = PollForm()
    created = None
    if form.validate():
        try:
            created = polls.create_poll(event, form.prompt.data, form.option_lines(), multiple=form.multiple.data,
                                        actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
    if not wants_fragment():
        if created is not None:
            return redirect_to(url_for(".live_GET", event_id=event.id, _anchor=f"poll-{created.id}"))
        return render_page_or_fragment(PAGE, FRAGMENTS, "poll_form", status=422, **_context(event, poll_form=form))
    macro = get_template_attribute(FRAGMENTS, "poll_form")
    if created is None:
        response = make_response(macro(**_context(event, poll_form=form)), 422)
    else:
        response = make_response(macro(**_context(event, created=created)))
        response.headers["HX-Trigger"] = "foyer:polls-refresh"
    response.vary.add("HX-Request")
    return response


def _poll_action(event_id: int, poll_id: int, action):
    event = load_managed_event(event_id)
    poll = _load_poll(event, poll_id)
    status = 200
    extra = {}
    try:
        action(poll)
    except DomainError as exc:
        db.session.rollback()
        status, extra = 409, {"error": exc.message, "error_poll": poll_id}
    else:
        db.session.commit()
    if wants_fragment() or status != 200:
        return render_page_or_fragment(PAGE, FRAGMENTS, "polls_list", status=status, **_context(event, **extra))
    return redirect_to(url_for(".live_GET", event_id=event.id, _anchor="polls"))


@bp.post("/<int:event_id>/live/polls/<int:poll_id>/launch")
def poll_launch_POST(event_id: int, poll_id: int):
    """Open a prepared poll for votes."""
    return _poll_action(event_id, poll_id, lambda p: polls.launch(p, actor=current_user))


@bp.post("/<int:event_id>/live/polls/<int:poll_id>/close")
def poll_close_POST(event_id: int, poll_id: int):
    """Stop a poll taking votes."""
    return _poll_action(event_id, poll_id, lambda p: polls.close(p, actor=current_user))


@bp.post("/<int:event_id>/live/polls/<int:poll_id>/delete")
def poll_delete_POST(event_id: int, poll_id: int):
    """Remove a poll that was never launched."""
    return _poll_action(event_id, poll_id, lambda p: polls.delete_poll(p, actor=current_user))
