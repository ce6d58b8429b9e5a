"""After the event, on the attendee's personal link: the recordings the organizer approved
(`/r/<token>/recording`: one, or a course's one per session) and the feedback survey (`/r/<token>/feedback`).

As on the manage page, the token is the only credential and anything unknown gets the same 404; pages are
never cached and never send the link on in a Referer.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, send_from_directory, url_for

from app.extensions import db
from app.forms.after_event import feedback_form
from app.models import EventRecording, Registration
from app.services.after_event import feedback, recordings
from app.services.core.errors import DomainError
from app.services.registration import registrations
from app.web import apply_domain_error, personal_link_headers, redirect_to

bp = Blueprint("public_after_event", __name__, url_prefix="/r")


bp.after_request(personal_link_headers)


def _load(token: str) -> Registration:
    reg = registrations.by_manage_token(token)
    if reg is None:
        abort(404)
    return reg


def _watchable(token: str) -> tuple[Registration, list[EventRecording]]:
    reg = _load(token)
    approved = recordings.approved_recordings(reg.event) if recordings.may_watch(reg) else []
    if not approved:
        abort(404)
    return reg, approved


def _one(token: str, recording_id: int | None) -> EventRecording:
    """One of the recordings the attendee may watch (without an id, the first)."""
    _reg, approved = _watchable(token)
    if recording_id is None:
        return approved[0]
    recording = next((r for r in approved if r.id == recording_id), None)
    if recording is None:
        abort(404)
    return recording


@bp.errorhandler(404)
def _missing(_exc):
    db.session.rollback()
    return render_template("public/manage_missing.html"), 404


@bp.get("/<token>/recording")
def recording_GET(token: str):
    """The approved recordings, each with its transcript as captions when the organizer shared it."""
    reg, approved = _watchable(token)
    return render_template("public/recording.html", reg=reg, event=reg.event, recordings=approved, token=token)


@bp.get("/<token>/recording/media")
@bp.get("/<token>/recording/<int:recording_id>/media")
def recording_media_GET(token: str, recording_id: int | None = None):
    """A recording's file (range requests for seeking)."""
    recording = _one(token, recording_id)
    return send_from_directory(recordings.folder(), recording.stored_name, mimetype=recording.content_type,
                               conditional=True, max_age=0)


@bp.get("/<token>/recording/captions.vtt")
@bp.get("/<token>/recording/<int:recording_id>/captions.vtt")
def recording_captions_GET(token: str, recording_id: int | None = None):
    """A transcript as WebVTT, only when the organizer chose to share it."""
    recording = _one(token, recording_id)
    if not (recording.share_transcript and recording.transcript_stored_name):
        abort(404)
    return send_from_directory(recordings.folder(), recording.transcript_stored_name, mimetype="text/vtt",
                               max_age=0)


def _feedback_page(reg: Registration, token: str, form=None, *, status: int = 200):
    answered = feedback.response_of(reg)
    allowed = feedback.may_answer(reg)
    body = render_template("public/feedback.html", reg=reg, event=reg.event, token=token, answered=answered,
                           allowed=allowed, form=form if form is not None else (
                               feedback_form(reg.event, formdata=None) if allowed and not answered else None))
    return body, status


@bp.get("/<token>/feedback")
def feedback_GET(token: str):
    """The survey (or thanks, once answered)."""
    return _feedback_page(_load(token), token)


@bp.post("/<token>/feedback")
def feedback_POST(token: str):
    """Send the answer: once per registration."""
    reg = _load(token)
    if not feedback.may_answer(reg) or feedback.response_of(reg) is not None:
        return _feedback_page(reg, token, status=409 if feedback.response_of(reg) else 403)
    form = feedback_form(reg.event, formdata=request.form)
    if form.validate():
        try:
            feedback.submit(reg, rating=form.rating.data, answers=form.answers())
        except DomainError as exc:
            db.session.rollback()
            reg = _load(token)
            if isinstance(exc, feedback.AlreadyAnswered):
                return _feedback_page(reg, token, status=409)
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            return redirect_to(url_for(".feedback_GET", token=token))
    return _feedback_page(reg, token, form, status=422)
