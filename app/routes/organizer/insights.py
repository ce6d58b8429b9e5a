"""Dashboard actions on an event's overview page: import attendance now, the automatic follow-up, and
how long attendee data is kept. The overview itself is organizer_events.event_GET.
"""

from __future__ import annotations

from flask import Blueprint, flash, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.forms.insights import FollowupForm, RetentionForm
from app.routes.organizer.events import event_page
from app.services.after_event import followups
from app.services.attendance import attendance
from app.services.registration import privacy
from app.web import carry_out, load_managed_event, redirect_to, require_staff, submit

bp = Blueprint("organizer_insights", __name__, url_prefix="/manage/events")

require_staff(bp)


def _back(event_id: int, anchor: str):
    return redirect_to(url_for("organizer_events.event_GET", event_id=event_id, _anchor=anchor))


def _invalid(event_id: int, form, anchor: str):
    """Dashboard forms are small: report the problem at the top of the page and go back to it."""
    event = load_managed_event(event_id)
    return event_page(event, status=422, **{f"{anchor}_form": form})


@bp.post("/<int:event_id>/attendance/import")
def attendance_import_POST(event_id: int):
    """Ask the worker to import the meeting's attendance now (after the event)."""
    event = load_managed_event(event_id)
    carry_out(lambda: attendance.request_import(event, actor=current_user),
              done=_("Foyer is importing the attendance now. Refresh this page in a minute to see it."))
    return _back(event_id, "attendance")


@bp.post("/<int:event_id>/followup")
def followup_POST(event_id: int):
    """Switch the automatic follow-up on or off and set the recording link."""
    event = load_managed_event(event_id)
    form = FollowupForm()
    if submit(form, lambda: followups.update_followup(event, enabled=form.enabled.data,
                                                      recording_url=form.recording_url.data or "", actor=current_user)):
        flash(_("Follow-up settings saved."), "success")
        return _back(event_id, "followup")
    return _invalid(event_id, form, "followup")


@bp.post("/<int:event_id>/retention")
def retention_POST(event_id: int):
    """Set how long this event's attendee data is kept."""
    event = load_managed_event(event_id)
    form = RetentionForm()
    if submit(form, lambda: privacy.set_event_retention(event, form.retention_days.data, actor=current_user)):
        flash(_("Retention period saved."), "success")
        return _back(event_id, "retention")
    return _invalid(event_id, form, "retention")
