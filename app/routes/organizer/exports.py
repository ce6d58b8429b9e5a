"""CSV downloads of an event's registrations and attendance (organizers of the event only)."""

from __future__ import annotations

from flask import Blueprint, Response, stream_with_context
from flask_login import current_user, login_required

from app.extensions import db
from app.routes._loaders import load_managed_event
from app.services import exports

bp = Blueprint("organizer_exports", __name__, url_prefix="/manage/events")


@bp.before_request
@login_required
def _require_login():
    """Every organizer page needs a signed-in staff user."""


def _download(event_id: int, kind: str) -> Response:
    """Audit the export, then stream the CSV (another organizer's event is a 404)."""
    event = load_managed_event(event_id)
    exports.record_export(event, kind, actor=current_user)
    db.session.commit()
    event = load_managed_event(event_id)
    chunks = exports.registrations_csv(event) if kind == "registrations" else exports.attendance_csv(event)
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(event, kind)}"'
    return response


@bp.get("/<int:event_id>/registrations.csv")
def registrations_csv_GET(event_id: int):
    """Every registration of the event with its answers, as CSV."""
    return _download(event_id, "registrations")


@bp.get("/<int:event_id>/attendance.csv")
def attendance_csv_GET(event_id: int):
    """Attendance per registration, as CSV."""
    return _download(event_id, "attendance")
