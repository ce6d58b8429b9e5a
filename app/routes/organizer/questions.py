"""Registration questions on an event's edit page: add, edit, remove, reorder.

Each action is a plain form POST. With htmx the same view answers with the questions section only
(the `questions_section` macro), so the page never reloads; without JavaScript it redirects back to
the edit page at the questions anchor.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, request, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.forms.events import MoveForm
from app.models import Event, Question
from app.routes._helpers import apply_domain_error
from app.routes._loaders import load_managed_event
from app.routes.organizer.events import edit_page, question_form, questions_context
from app.services import events
from app.services.errors import DomainError
from app.web import redirect_to, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("organizer_questions", __name__, url_prefix="/manage/events")


@bp.before_request
@login_required
def _require_login():
    """Every organizer page needs a signed-in staff user."""


def _load_question(event: Event, question_id: int) -> Question:
    question = db.session.get(Question, question_id)
    if question is None or question.event_id != event.id:
        abort(404)
    return question


def _done(event: Event):
    """After a change: the fresh section for htmx, a redirect to the section otherwise."""
    if wants_fragment():
        db.session.refresh(event)
        return edit_page(event, section="questions")
    return redirect_to(url_for("organizer_events.event_edit_GET", event_id=event.id, _anchor="questions"))


@bp.get("/<int:event_id>/questions")
def questions_GET(event_id: int):
    """The questions section (htmx) or the edit page at that section."""
    event = load_managed_event(event_id)
    if wants_fragment():
        return edit_page(event, section="questions")
    return redirect_to(url_for("organizer_events.event_edit_GET", event_id=event.id, _anchor="questions"))


@bp.post("/<int:event_id>/questions")
def questions_POST(event_id: int):
    """Add a registration question."""
    event = load_managed_event(event_id)
    form = question_form(formdata=request.form)
    if form.validate():
        try:
            events.add_question(event, form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            return _done(event)
    return edit_page(event, status=422, section="questions", questions=questions_context(event, add_form=form))


@bp.post("/<int:event_id>/questions/<int:question_id>")
def question_POST(event_id: int, question_id: int):
    """Save changes to a registration question."""
    event = load_managed_event(event_id)
    question = _load_question(event, question_id)
    form = question_form(question, formdata=request.form)
    if form.validate():
        try:
            events.update_question(question, form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            return _done(event)
    db.session.rollback()
    return edit_page(event, status=422, section="questions",
                     questions=questions_context(event, failed=(question_id, form)))


@bp.post("/<int:event_id>/questions/<int:question_id>/delete")
def question_delete_POST(event_id: int, question_id: int):
    """Remove a registration question (the page asked for confirmation first)."""
    event = load_managed_event(event_id)
    question = _load_question(event, question_id)
    try:
        events.remove_question(question, actor=current_user)
    except DomainError:
        db.session.rollback()
        return edit_page(event, status=409, section="questions")
    db.session.commit()
    return _done(event)


@bp.post("/<int:event_id>/questions/<int:question_id>/move")
def question_move_POST(event_id: int, question_id: int):
    """Move a registration question one place up or down."""
    event = load_managed_event(event_id)
    question = _load_question(event, question_id)
    form = MoveForm(formdata=request.form)
    if not form.validate():
        return edit_page(event, status=422, section="questions")
    try:
        events.move_question(question, form.direction.data, actor=current_user)
    except DomainError:
        db.session.rollback()
        return edit_page(event, status=409, section="questions")
    db.session.commit()
    return _done(event)
