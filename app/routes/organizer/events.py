"""Organizer event management under /manage/events."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from app.extensions import db
from app.models import Event
from app.services.events import managed_events_query

bp = Blueprint("organizer_events", __name__, url_prefix="/manage/events")


@bp.before_request
@login_required
def _require_login():
    """Every organizer page needs a signed-in staff user."""


@bp.get("/")
def events_GET():
    """The events this user may manage."""
    events = db.session.scalars(managed_events_query(current_user).order_by(Event.starts_at.desc())).all()
    return render_template("organizer/events.html", events=events)
