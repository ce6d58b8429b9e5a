"""An event's registrations for its organizers: counts, a filtered and searched table, approve / deny /
cancel / move from the waitlist one at a time or in bulk, and the capacity (raising it promotes).

Every action is a POST. Without JavaScript it redirects back to the same view of the table with a
flash message; with htmx it answers with the refreshed table fragment, the message inside it.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.extensions import db
from app.forms.registrants import BulkActionForm, CancelForm, CapacityForm, DenyForm, RowActionForm
from app.models import Event, Registration, RegistrationState
from app.services.attendance import join_links
from app.services.core.errors import DomainError
from app.services.messaging import delivery_reports
from app.services.registration import registrations, roster
from app.web import (
    apply_domain_error,
    load_managed_event,
    redirect_to,
    render_page_or_fragment,
    require_staff,
    wants_fragment,
    writes_on_get,
)

logger = logging.getLogger(__name__)

bp = Blueprint("organizer_registrations", __name__, url_prefix="/manage/events")

require_staff(bp)


def _view(event: Event, source) -> roster.RosterView:
    """The table's filters, search, sort and page, from the query string (GET) or hidden fields (POST)."""
    return roster.clean_view(event, source)


def _list_url(event: Event, view: roster.RosterView) -> str:
    return url_for(".registrations_GET", event_id=event.id, **view.args())


def _context(event: Event, view: roster.RosterView, **extra) -> dict:
    listing = roster.list_registrations(event, view=view)
    return {
        "event": event, "listing": listing, "view": view, "counts": registrations.state_counts(event),
        "seats_left": registrations.seats_left(event), "filters": roster.STATE_FILTERS,
        "labels": roster.STATE_LABELS, "summary": roster.answers_summary,
        "options": {"sorts": roster.SORT_LABELS, "attended": roster.ATTENDED_FILTERS,
                    "questions": [(q, roster.answer_choices(q)) for q in roster.filterable_questions(event)]},
        "bulk_form": extra.pop("bulk_form", None) or BulkActionForm(formdata=None),
        "row_form": RowActionForm(formdata=None), "message": extra.pop("message", None),
        "email_problems": delivery_reports.problems_by_registration([r.id for r in listing.rows]), **extra,
    }


def _page(event: Event, view: roster.RosterView, *, status: int = 200, capacity_form: CapacityForm | None = None,
          **extra):
    ctx = _context(event, view, **extra)
    ctx["capacity_form"] = capacity_form or CapacityForm(formdata=None, data={"capacity": event.capacity})
    return render_page_or_fragment("organizer/registrations.html", "organizer/_registrations.html",
                                   "registrations_board", status=status, **ctx)


def _load_registration(event: Event, reg_id: int) -> Registration:
    reg = roster.get_registration(event, reg_id)
    if reg is None:
        abort(404)
    return reg


def _promoted(n: int) -> str:
    return ngettext("%(num)d person was promoted from the waitlist.", "%(num)d people were promoted from the waitlist.",
                    n)


def _done(action: str, n: int) -> str:
    """What an action other than approving did ("3 people were denied.")."""
    if action == "move":
        return ngettext("%(num)d person was moved from the waitlist.", "%(num)d people were moved from the waitlist.",
                        n)
    if action == "deny":
        return ngettext("%(num)d person was denied.", "%(num)d people were denied.", n)
    return ngettext("%(num)d person was cancelled.", "%(num)d people were cancelled.", n)


def _describe(result: roster.BulkResult, action: str) -> tuple[str, str]:
    """One message for what happened: changed, refused (with reasons) and promoted."""
    parts = []
    if action == "approve":
        # Approval takes a seat when one is free, else a place on the waitlist: say which.
        seated = [reg for reg in result.done if reg.state == RegistrationState.confirmed]
        waiting = [reg for reg in result.done if reg.state == RegistrationState.waitlisted]
        if seated:
            parts.append(ngettext("%(num)d person was approved.", "%(num)d people were approved.", len(seated)))
        if waiting:
            parts.append(ngettext("%(num)d person was approved onto the waitlist: the event is full.",
                                  "%(num)d people were approved onto the waitlist: the event is full.", len(waiting)))
    elif result.done:
        parts.append(_done(action, len(result.done)))
    for reg, reason in result.failed[:5]:
        parts.append(f"{reg.full_name or reg.email}: {reason}")
    if len(result.failed) > 5:
        more = len(result.failed) - 5
        parts.append(ngettext("…and %(num)d more could not be changed.", "…and %(num)d more could not be changed.",
                              more))
    if result.promoted:
        parts.append(_promoted(len(result.promoted)))
    return " ".join(parts), "success" if result.done and not result.failed else "error"


def _finish(event: Event, view: roster.RosterView, text: str, category: str):
    """After an action: the refreshed table for htmx, else a flash and a redirect to the same view."""
    if wants_fragment():
        return _page(event, view, message=(text, category))
    flash(text, category)
    return redirect_to(_list_url(event, view))


def _act(event_id: int, reg_id: int, action: str, message: str = ""):
    """Run one action on one registration and report it; refusals become a clear message."""
    event = load_managed_event(event_id)
    reg = _load_registration(event, reg_id)
    view = _view(event, request.form)
    try:
        result = roster.apply(event, reg, action, actor=current_user, message=message)
    except DomainError as exc:
        db.session.rollback()
        return _finish(load_managed_event(event_id), view, f"{reg.full_name or reg.email}: {exc.message}", "error")
    text, category = _describe(result, action)
    db.session.commit()
    return _finish(event, view, text, category)


# --- the page ----------------------------------------------------------------------------------------


@bp.get("/<int:event_id>/registrations")
def registrations_GET(event_id: int):
    """Counts, filters, search and one page of the event's registrations."""
    event = load_managed_event(event_id)
    view = _view(event, request.args)
    response = _page(event, view)
    if wants_fragment():
        # Active search and filters push the clean address of this view (no empty fields) to history.
        response.headers["HX-Push-Url"] = _list_url(event, view)
    return response


# --- one registration -----------------------------------------------------------------------------------


@bp.post("/<int:event_id>/registrations/<int:reg_id>/approve")
def registration_approve_POST(event_id: int, reg_id: int):
    """Approve a registration awaiting approval (a seat, or the waitlist when full)."""
    return _act(event_id, reg_id, "approve")


@bp.post("/<int:event_id>/registrations/<int:reg_id>/move")
def registration_move_POST(event_id: int, reg_id: int):
    """Give a waitlisted person a free seat now."""
    return _act(event_id, reg_id, "move")


def _ask(event_id: int, reg_id: int, action: str, form, args, status: int = 200):
    """The confirmation page of a deny or cancel (again, with the errors, when its form was refused)."""
    event = load_managed_event(event_id)
    return render_template("organizer/registration_action.html", event=event, reg=_load_registration(event, reg_id),
                           action=action, form=form, view=_view(event, args)), status


@bp.get("/<int:event_id>/registrations/<int:reg_id>/deny")
def registration_deny_GET(event_id: int, reg_id: int):
    """Ask before denying, with room for a message to the person."""
    return _ask(event_id, reg_id, "deny", DenyForm(formdata=None), request.args)


@bp.post("/<int:event_id>/registrations/<int:reg_id>/deny")
def registration_deny_POST(event_id: int, reg_id: int):
    """Deny a registration, with an optional message; a freed seat goes to the waitlist."""
    form = DenyForm()
    if not form.validate_on_submit():
        return _ask(event_id, reg_id, "deny", form, request.form, 422)
    return _act(event_id, reg_id, "deny", form.message.data or "")


@bp.get("/<int:event_id>/registrations/<int:reg_id>/cancel")
def registration_cancel_GET(event_id: int, reg_id: int):
    """Ask before cancelling someone's registration."""
    return _ask(event_id, reg_id, "cancel", CancelForm(formdata=None), request.args)


@bp.post("/<int:event_id>/registrations/<int:reg_id>/cancel")
def registration_cancel_POST(event_id: int, reg_id: int):
    """Cancel someone's registration, with an optional note; a freed seat goes to the waitlist."""
    form = CancelForm()
    if not form.validate_on_submit():
        return _ask(event_id, reg_id, "cancel", form, request.form, 422)
    return _act(event_id, reg_id, "cancel", form.message.data or "")


# --- many at once ------------------------------------------------------------------------------------------


@bp.post("/<int:event_id>/registrations/bulk")
def registrations_bulk_POST(event_id: int):
    """Apply one action to the ticked registrations; each refusal is reported, the rest go ahead."""
    form = BulkActionForm()
    view = _view(load_managed_event(event_id), request.form)
    if not form.validate_on_submit():
        return _page(load_managed_event(event_id), view, status=422, bulk_form=form)
    event = load_managed_event(event_id)
    try:
        result = roster.apply_bulk(event, form.ids.data, form.action.data, actor=current_user,
                                   message=form.message.data or "")
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _page(load_managed_event(event_id), view, status=422, bulk_form=form)
    text, category = _describe(result, form.action.data)
    db.session.commit()
    return _finish(event, view, text, category)


@bp.post("/<int:event_id>/registrations/capacity")
def capacity_POST(event_id: int):
    """Change the capacity; new seats go to the waitlist at once, first come first served."""
    form = CapacityForm()
    view = _view(load_managed_event(event_id), request.form)
    if not form.validate_on_submit():
        return _page(load_managed_event(event_id), view, status=422, capacity_form=form)
    event = load_managed_event(event_id)
    try:
        promoted = roster.change_capacity(event, form.capacity.data, actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _page(load_managed_event(event_id), view, status=422, capacity_form=form)
    capacity = event.capacity
    db.session.commit()
    if capacity is None:
        text = _("Capacity set to unlimited.")
    else:
        text = _("Capacity set to %(capacity)s.", capacity=capacity)
    if promoted:
        text += " " + _promoted(len(promoted))
    flash(text, "success")
    return redirect_to(_list_url(event, view))


# --- joining the call ----------------------------------------------------------------------------------------


@bp.get("/<int:event_id>/registrations/<int:reg_id>/join-link")
@writes_on_get  # a link issued when first shown is kept
def registration_join_link_GET(event_id: int, reg_id: int):
    """A confirmed attendee's personal join link, to copy, or to revoke and replace."""
    event = load_managed_event(event_id)
    reg = _load_registration(event, reg_id)
    link = join_links.join_url(reg) if reg.state.value == "confirmed" else None
    body = render_template("organizer/registration_join_link.html", event=event, reg=reg, link=link,
                           form=RowActionForm(formdata=None))
    db.session.commit()  # a link issued on first view is kept
    return body


@bp.post("/<int:event_id>/registrations/<int:reg_id>/join-link")
def registration_join_link_POST(event_id: int, reg_id: int):
    """Revoke the attendee's join link and issue a new one (emailed to them); the old one stops working."""
    form = RowActionForm()
    event = load_managed_event(event_id)
    reg = _load_registration(event, reg_id)
    if not form.validate_on_submit():
        return render_template("organizer/registration_join_link.html", event=event, reg=reg, form=form,
                               link=None), 422
    try:
        join_links.reissue(reg, actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect_to(url_for(".registration_join_link_GET", event_id=event_id, reg_id=reg_id))
    db.session.commit()
    flash(_("The old join link of %(name)s no longer works. We emailed them the new one.", name=reg.full_name),
          "success")
    return redirect_to(url_for(".registration_join_link_GET", event_id=event_id, reg_id=reg_id))


@bp.get("/<int:event_id>/in-call")
def in_call_GET(event_id: int):
    """Who is in the call now (from Foyer's join records), and how attendees enter the meeting."""
    event = load_managed_event(event_id)
    ctx = {"event": event, "people": join_links.in_call_now(event), "joined": join_links.joined_count(event),
           "window": join_links.window(event)}
    return render_page_or_fragment("organizer/in_call.html", "organizer/_in_call.html", "in_call_list", **ctx)
