"""The Teams meeting status of an event: a self-polling fragment, and "retry" after a failure."""

from __future__ import annotations

from flask import Blueprint, flash, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import db
from app.models import ProvisioningStatus
from app.services.events import teams
from app.web import load_managed_event, redirect_to, render_page_or_fragment, require_staff

bp = Blueprint("organizer_teams", __name__, url_prefix="/manage/events")

require_staff(bp)


@bp.get("/<int:event_id>/teams")
def teams_status_GET(event_id: int):
    """The meeting's provisioning state (htmx polls this while it is pending)."""
    event = load_managed_event(event_id)
    return render_page_or_fragment("organizer/teams_status.html", "organizer/_teams_status.html", "teams_status",
                                   event=event, user=current_user)


@bp.post("/<int:event_id>/teams/retry")
def teams_retry_POST(event_id: int):
    """Try provisioning the Teams meeting again after a failure."""
    event = load_managed_event(event_id)
    if event.is_published and event.provisioning_status in (ProvisioningStatus.failed, ProvisioningStatus.pending):
        teams.retry_provisioning(event)
        db.session.commit()
        flash(_("Foyer is trying again to set up the Teams meeting."), "info")
    return redirect_to(url_for("organizer_teams.teams_status_GET", event_id=event.id))
