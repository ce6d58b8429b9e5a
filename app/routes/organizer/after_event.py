"""After the event on its overview page: the meeting's recordings (look for them, watch, approve or decline
for the follow-up) and the feedback survey (its questions; results are shown on the dashboard).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, send_from_directory, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import db
from app.forms.after_event import (
    ApproveRecordingForm,
    DeclineRecordingForm,
    FeedbackSurveyForm,
    LookForRecordingsForm,
    survey_form,
)
from app.models import Event, EventRecording
from app.services.after_event import feedback, recordings
from app.services.core.errors import DomainError
from app.web import carry_out, load_managed_event, redirect_to, require_staff

bp = Blueprint("organizer_after_event", __name__, url_prefix="/manage/events")


require_staff(bp)


def page_context(event: Event, **forms: Any) -> dict[str, Any]:
    """What the overview's "after the event" sections need (forms given replace the blank ones)."""
    meetings = recordings.meetings_of(event)
    return {
        "after": {
            "recordings": recordings.recordings_of(event),
            "has_meeting": bool(meetings),
            "missing_scopes": recordings.missing_scopes() if meetings else [],
            "holds_followup": event.followup_enabled and recordings.holds_followup(event),
            "feedback": feedback.results(event),
        },
        "look_form": forms.get("look_form") or LookForRecordingsForm(formdata=None),
        "approve_form": forms.get("approve_form") or ApproveRecordingForm(formdata=None),
        "decline_form": forms.get("decline_form") or DeclineRecordingForm(formdata=None),
        "survey_form": forms.get("survey_form") or survey_form(event, formdata=None),
    }


def _back(event_id: int, anchor: str):
    return redirect_to(url_for("organizer_events.event_GET", event_id=event_id, _anchor=anchor))


def _load_recording(event: Event, recording_id: int) -> EventRecording:
    recording = db.session.get(EventRecording, recording_id)
    if recording is None or recording.event_id != event.id:
        abort(404)
    return recording


@bp.post("/<int:event_id>/recordings/import")
def recordings_import_POST(event_id: int):
    """Ask the worker to look for the meeting's recordings now (after the event)."""
    event = load_managed_event(event_id)
    carry_out(lambda: recordings.request_import(event, actor=current_user),
              done=_("Foyer is looking for the recordings now. Refresh this page in a minute to see them."))
    return _back(event_id, "recordings")


@bp.get("/<int:event_id>/recordings/<int:recording_id>/media")
def recording_media_GET(event_id: int, recording_id: int):
    """The recording itself, for the organizer to watch before deciding."""
    recording = _load_recording(load_managed_event(event_id), recording_id)
    return send_from_directory(recordings.folder(), recording.stored_name, mimetype=recording.content_type,
                               conditional=True, max_age=0)


@bp.post("/<int:event_id>/recordings/<int:recording_id>/approve")
def recording_approve_POST(event_id: int, recording_id: int):
    """Approve the recording for the follow-up (which goes out now if attendance is in)."""
    event = load_managed_event(event_id)
    recording = _load_recording(event, recording_id)
    form = ApproveRecordingForm()  # its token was checked before the view (CSRFProtect), its box cannot fail
    sending = recordings.approve(recording, share_transcript=form.share_transcript.data, actor=current_user)
    db.session.commit()
    if sending:
        then = _("The follow-up is going out with its link now.")
    elif not event.followup_enabled:
        then = _("Switch on the follow-up (under “Follow-up after the event”) to send attendees their link to it.")
    else:
        then = _("The follow-up will link to it once the attendance is imported.")
    flash(_("Recording approved.") + " " + then, "success")
    return _back(event_id, "recordings")


@bp.post("/<int:event_id>/recordings/<int:recording_id>/decline")
def recording_decline_POST(event_id: int, recording_id: int):
    """Keep the recording from attendees."""
    event = load_managed_event(event_id)
    recording = _load_recording(event, recording_id)
    recordings.decline(recording, actor=current_user)
    db.session.commit()
    flash(_("Recording declined: attendees will not see it."), "success")
    return _back(event_id, "recordings")


@bp.post("/<int:event_id>/feedback")
def feedback_POST(event_id: int):
    """Switch the feedback survey on or off and set its questions."""
    from app.routes.organizer.events import event_page  # noqa: PLC0415 — the event page renders these forms: the two import each other

    event = load_managed_event(event_id)
    form = FeedbackSurveyForm()
    if form.validate_on_submit():
        try:
            feedback.update_survey(event, enabled=form.enabled.data, questions=form.survey(), actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            form.form_errors.append(exc.message)
        else:
            db.session.commit()
            flash(_("Feedback survey saved."), "success")
            return _back(event_id, "feedback")
    event = load_managed_event(event_id)
    return event_page(event, status=422, survey_form=form)
