"""Speakers on an event's edit page: add, edit (with a photo), remove, reorder.

Each action is a plain form POST. With htmx the same view answers with the speakers section only
(the `speakers_section` macro), so the page never reloads; without JavaScript it redirects back to
the edit page at the speakers anchor.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, request, url_for
from flask_login import current_user, login_required
from werkzeug.datastructures import CombinedMultiDict

from app.extensions import db
from app.forms.events import MoveForm
from app.models import Event, Speaker
from app.routes._helpers import apply_domain_error
from app.routes._loaders import load_managed_event
from app.routes.organizer.events import edit_page, speaker_form, speakers_context
from app.services import events
from app.services.errors import DomainError
from app.web import redirect_to, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("organizer_speakers", __name__, url_prefix="/manage/events")


@bp.before_request
@login_required
def _require_login():
    """Every organizer page needs a signed-in staff user."""


def _submitted() -> CombinedMultiDict:
    """Fields and files together, as Flask-WTF would pass them (the photo is a file)."""
    return CombinedMultiDict((request.files, request.form))


def _load_speaker(event: Event, speaker_id: int) -> Speaker:
    speaker = db.session.get(Speaker, speaker_id)
    if speaker is None or speaker.event_id != event.id:
        abort(404)
    return speaker


def _done(event: Event):
    """After a change: the fresh section for htmx, a redirect to the section otherwise."""
    if wants_fragment():
        db.session.refresh(event)
        return edit_page(event, section="speakers")
    return redirect_to(url_for("organizer_events.event_edit_GET", event_id=event.id, _anchor="speakers"))


@bp.get("/<int:event_id>/speakers")
def speakers_GET(event_id: int):
    """The speakers section (htmx) or the edit page at that section."""
    event = load_managed_event(event_id)
    if wants_fragment():
        return edit_page(event, section="speakers")
    return redirect_to(url_for("organizer_events.event_edit_GET", event_id=event.id, _anchor="speakers"))


@bp.post("/<int:event_id>/speakers")
def speakers_POST(event_id: int):
    """Add a speaker."""
    event = load_managed_event(event_id)
    form = speaker_form(formdata=_submitted())
    if form.validate():
        try:
            events.add_speaker(event, form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            return _done(event)
    return edit_page(event, status=422, section="speakers", speakers=speakers_context(event, add_form=form))


@bp.post("/<int:event_id>/speakers/<int:speaker_id>")
def speaker_POST(event_id: int, speaker_id: int):
    """Save changes to a speaker."""
    event = load_managed_event(event_id)
    speaker = _load_speaker(event, speaker_id)
    form = speaker_form(speaker, formdata=_submitted())
    if form.validate():
        try:
            events.update_speaker(speaker, form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            return _done(event)
    db.session.rollback()
    return edit_page(event, status=422, section="speakers",
                     speakers=speakers_context(event, failed=(speaker_id, form)))


@bp.post("/<int:event_id>/speakers/<int:speaker_id>/delete")
def speaker_delete_POST(event_id: int, speaker_id: int):
    """Remove a speaker and their photo (the page asked for confirmation first)."""
    event = load_managed_event(event_id)
    speaker = _load_speaker(event, speaker_id)
    try:
        events.remove_speaker(speaker, actor=current_user)
    except DomainError:
        db.session.rollback()
        return edit_page(event, status=409, section="speakers")
    db.session.commit()
    return _done(event)


@bp.post("/<int:event_id>/speakers/<int:speaker_id>/move")
def speaker_move_POST(event_id: int, speaker_id: int):
    """Move a speaker one place up or down."""
    event = load_managed_event(event_id)
    speaker = _load_speaker(event, speaker_id)
    form = MoveForm(formdata=request.form)
    if not form.validate():
        return edit_page(event, status=422, section="speakers")
    try:
        events.move_speaker(speaker, form.direction.data, actor=current_user)
    except DomainError:
        db.session.rollback()
        return edit_page(event, status=409, section="speakers")
    db.session.commit()
    return _done(event)
