"""CSV downloads of an event's registrations, attendance, questions and poll results (organizers of the
event only).
"""

from __future__ import annotations

from flask import Blueprint, Response, stream_with_context
from flask_login import current_user

from app.extensions import db
from app.services.after_event import feedback
from app.services.live import polls, questions
from app.services.registration import exports
from app.web import load_managed_event, require_staff, writes_on_get

bp = Blueprint("organizer_exports", __name__, url_prefix="/manage/events")

require_staff(bp)


def _download(event_id: int, kind: str) -> Response:
    """Audit the export, then stream the CSV (another organizer's event is a 404)."""
    event = load_managed_event(event_id)
    exports.record_export(event, kind, actor=current_user)
    db.session.commit()
    event = load_managed_event(event_id)
    producers = {"registrations": exports.registrations_csv, "attendance": exports.attendance_csv,
                 "questions": questions.questions_csv, "polls": polls.polls_csv, "feedback": feedback.feedback_csv}
    chunks = producers[kind](event)
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(event, kind)}"'
    return response


@bp.get("/<int:event_id>/registrations.csv")
@writes_on_get  # each download is recorded
def registrations_csv_GET(event_id: int):
    """Every registration of the event with its answers, as CSV."""
    return _download(event_id, "registrations")


@bp.get("/<int:event_id>/attendance.csv")
@writes_on_get  # each download is recorded
def attendance_csv_GET(event_id: int):
    """Attendance per registration, as CSV."""
    return _download(event_id, "attendance")


@bp.get("/<int:event_id>/questions.csv")
@writes_on_get  # each download is recorded
def questions_csv_GET(event_id: int):
    """The questions attendees asked beside the call, with upvotes and answers, as CSV."""
    return _download(event_id, "questions")


@bp.get("/<int:event_id>/polls.csv")
@writes_on_get  # each download is recorded
def polls_csv_GET(event_id: int):
    """Every poll's results, as CSV."""
    return _download(event_id, "polls")


@bp.get("/<int:event_id>/feedback.csv")
@writes_on_get  # each download is recorded
def feedback_csv_GET(event_id: int):
    """The feedback survey's answers, as CSV."""
    return _download(event_id, "feedback")
