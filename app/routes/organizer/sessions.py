"""A course's sessions under /manage/events/<id>/sessions: list, add, change and remove sessions."""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import db
from app.forms.events import RemoveSessionForm, SessionForm
from app.models import Event, EventSession
from app.services.core.errors import DomainError
from app.services.core.timezones import utc_to_local
from app.services.events import sessions
from app.web import apply_domain_error, load_managed_event, redirect_to, require_staff

bp = Blueprint("organizer_sessions", __name__, url_prefix="/manage/events")

require_staff(bp)


def _load_session(event: Event, session_id: int) -> EventSession:
    session = db.session.get(EventSession, session_id)
    if session is None or session.event_id != event.id:
        abort(404)
    return session


def _page(event: Event, *, form: SessionForm | None = None, status: int = 200):
    form = form or SessionForm(formdata=None, zone=event.timezone, prefix="new-session")
    return render_template("organizer/sessions.html", event=event, form=form,
                           remove_form=RemoveSessionForm(formdata=None)), status


@bp.get("/<int:event_id>/sessions")
def sessions_GET(event_id: int):
    """The event's sessions and the form to add one."""
    return _page(load_managed_event(event_id))


@bp.post("/<int:event_id>/sessions")
def sessions_POST(event_id: int):
    """Add a session (the first one turns the event into a course)."""
    event = load_managed_event(event_id)
    form = SessionForm(zone=event.timezone, prefix="new-session")
    if not form.validate():
        return _page(event, form=form, status=422)
    try:
        session = sessions.add_session(event, form.to_data(), actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _page(load_managed_event(event_id), form=form, status=422)
    label = session.label
    db.session.commit()
    flash(_("%(session)s added.", session=label), "success")
    return redirect_to(url_for(".sessions_GET", event_id=event_id))


def _edit_page(event: Event, session: EventSession, form: SessionForm, status: int = 200):
    return render_template("organizer/session_form.html", event=event, session=session, form=form), status


@bp.get("/<int:event_id>/sessions/<int:session_id>/edit")
def session_edit_GET(event_id: int, session_id: int):
    """The form to change one session."""
    event = load_managed_event(event_id)
    session = _load_session(event, session_id)
    form = SessionForm(formdata=None, zone=event.timezone, data={
        "name": session.name, "starts_at": utc_to_local(session.starts_at, event.timezone),
        "ends_at": utc_to_local(session.ends_at, event.timezone), "notify_attendees": True})
    return _edit_page(event, session, form)


@bp.post("/<int:event_id>/sessions/<int:session_id>/edit")
def session_edit_POST(event_id: int, session_id: int):
    """Change one session's name or times."""
    event = load_managed_event(event_id)
    session = _load_session(event, session_id)
    form = SessionForm(zone=event.timezone)
    if not form.validate():
        return _edit_page(event, session, form, 422)
    try:
        sessions.update_session(session, form.to_data(), actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        event = load_managed_event(event_id)
        return _edit_page(event, _load_session(event, session_id), form, 422)
    db.session.commit()
    flash(_("Session saved."), "success")
    return redirect_to(url_for(".sessions_GET", event_id=event_id))


@bp.post("/<int:event_id>/sessions/<int:session_id>/remove")
def session_remove_POST(event_id: int, session_id: int):
    """Remove one session (its Teams meeting is cancelled)."""
    event = load_managed_event(event_id)
    session = _load_session(event, session_id)
    form = RemoveSessionForm()
    if not form.validate():
        abort(400)
    try:
        sessions.remove_session(session, actor=current_user, notify_attendees=bool(form.notify_attendees.data))
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect_to(url_for(".sessions_GET", event_id=event_id))
    db.session.commit()
    flash(_("Session removed."), "success")
    return redirect_to(url_for(".sessions_GET", event_id=event_id))
