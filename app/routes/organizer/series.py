"""Recurring events: repeat an event (/manage/events/<id>/repeat) and manage its series
(/manage/series/<id>: the occurrences, and the title and description of the future ones;
/manage/series/<id>/cancel: cancel the future ones).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.extensions import db
from app.forms.events import CancelEventForm, RepeatForm, SeriesForm
from app.models import Event, EventSeries, utcnow
from app.services.core.errors import DomainError
from app.services.events import events, series
from app.web import apply_domain_error, load_managed_event, redirect_to, require_staff

bp = Blueprint("organizer_series", __name__, url_prefix="/manage")

require_staff(bp)


def _repeat_page(event: Event, form: RepeatForm, status: int = 200):
    return render_template("organizer/repeat.html", event=event, form=form), status


@bp.get("/events/<int:event_id>/repeat")
def repeat_GET(event_id: int):
    """The form to repeat an event as a series."""
    event = load_managed_event(event_id)
    if event.series_id is not None:
        return redirect_to(url_for(".series_GET", series_id=event.series_id))
    return _repeat_page(event, RepeatForm(formdata=None))


@bp.post("/events/<int:event_id>/repeat")
def repeat_POST(event_id: int):
    """Create the series: the event is its first occurrence."""
    event = load_managed_event(event_id)
    form = RepeatForm()
    if not form.validate():
        return _repeat_page(event, form, 422)
    try:
        created = series.repeat_event(event, form.to_data(), actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _repeat_page(load_managed_event(event_id), form, 422)
    series_id, text = created.id, created.description
    db.session.commit()
    flash(_("Series created: %(description)s.", description=text), "success")
    return redirect_to(url_for(".series_GET", series_id=series_id))


def _load_series(series_id: int) -> tuple[EventSeries, list[Event]]:
    """The series and its occurrences, if the signed-in user may manage one of them; 404 otherwise."""
    found = db.session.get(EventSeries, series_id)
    if found is None:
        abort(404)
    rows = series.occurrences(found.id)
    if not any(events.can_manage(current_user, e) for e in rows):
        abort(404)
    return found, rows


def _series_page(found: EventSeries, rows: list[Event], form: SeriesForm, status: int = 200):
    now = utcnow()
    return render_template("organizer/series.html", series=found, occurrences=rows, form=form, now=now,
                           future=[e for e in rows if e.starts_at > now and not e.is_cancelled]), status


@bp.get("/series/<int:series_id>")
def series_GET(series_id: int):
    """The series' occurrences, and the form for the future ones' title and description."""
    found, rows = _load_series(series_id)
    now = utcnow()
    model = next((e for e in rows if e.starts_at > now and not e.is_cancelled), rows[-1] if rows else None)
    data = {"title": model.title, "description": model.description, "notify_attendees": True} if model else {}
    return _series_page(found, rows, SeriesForm(formdata=None, data=data))


@bp.post("/series/<int:series_id>")
def series_POST(series_id: int):
    """Change the title and description of every occurrence that has not started."""
    found, rows = _load_series(series_id)
    form = SeriesForm()
    if not form.validate():
        return _series_page(found, rows, form, 422)
    try:
        changed = series.update_future(found, title=form.title.data, description=form.description.data or "",
                                       actor=current_user, notify_attendees=bool(form.notify_attendees.data))
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        found, rows = _load_series(series_id)
        return _series_page(found, rows, form, 422)
    db.session.commit()
    flash(ngettext("%(num)d future occurrence changed.", "%(num)d future occurrences changed.", changed), "success")
    return redirect_to(url_for(".series_GET", series_id=series_id))


def _cancel_page(found: EventSeries, form: CancelEventForm, status: int = 200):
    preview = series.cancel_preview(found, actor=current_user)
    if not preview.occurrences:
        flash(_("Nothing to cancel: every date of this series has started or is cancelled."), "info")
        return redirect_to(url_for(".series_GET", series_id=found.id))
    return render_template("organizer/series_cancel.html", series=found, preview=preview, form=form), status


@bp.get("/series/<int:series_id>/cancel")
def series_cancel_GET(series_id: int):
    """Ask for confirmation (and an optional message) before cancelling every future date."""
    found = _load_series(series_id)[0]
    return _cancel_page(found, CancelEventForm(formdata=None))


@bp.post("/series/<int:series_id>/cancel")
def series_cancel_POST(series_id: int):
    """Cancel every date that has not started, each as a single event is cancelled."""
    found = _load_series(series_id)[0]
    form = CancelEventForm()
    if not form.validate():
        return _cancel_page(found, form, 422)
    try:
        cancelled = series.cancel_future(found, actor=current_user, reason=form.reason.data or "")
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        found = _load_series(series_id)[0]
        return _cancel_page(found, form, 422)
    db.session.commit()
    if cancelled:
        flash(ngettext("%(num)d future date cancelled. Their public pages now say so.",
                       "%(num)d future dates cancelled. Their public pages now say so.", cancelled), "success")
    else:
        flash(_("Nothing more to cancel: every date of this series has started or is cancelled."), "info")
    return redirect_to(url_for(".series_GET", series_id=series_id))
