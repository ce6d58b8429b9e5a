"""An attendee's personal link `/r/<token>`: see the registration, change details, cancel or leave the
waitlist, take the invitation to a calendar, download or delete their data.

The token is the only credential: looked up by its hash and compared in constant time
(`registrations.by_manage_token`). Anything unknown gets the same friendly 404, whatever the reason.
Pages are never cached and never leak the link in a Referer.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, flash, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from app.extensions import compress, db
from app.forms.manage import CancelRegistrationForm, EraseRegistrationForm, details_form
from app.models import Registration, RegistrationState, utcnow
from app.services.attendance import join_links
from app.services.core.errors import DomainError
from app.services.events import ics
from app.services.registration import emails, privacy, registrations
from app.web import apply_domain_error, personal_link_headers, redirect_to, writes_on_get

logger = logging.getLogger(__name__)

bp = Blueprint("public_registration_manage", __name__, url_prefix="/r")

#: What each state means, in the attendee's words: (heading, explanation).
STATE_TEXT = {
    RegistrationState.confirmed: (_l("You’re registered"), _l("Your seat is confirmed.")),
    RegistrationState.waitlisted: (
        _l("You’re on the waitlist"),
        _l("The event is fully booked. If a seat frees up it goes to the next person in line automatically, "
        "and we will email you."),
    ),
    RegistrationState.pending: (
        _l("Awaiting approval"),
        _l("The organizer approves each registration by hand. We will email you as soon as they decide."),
    ),
    RegistrationState.unverified: (
        _l("Awaiting email confirmation"),
        _l("Please follow the link in the email we sent you to confirm your address; until then your place is held."),
    ),
    RegistrationState.cancelled: (_l("Cancelled"),
                                  _l("This registration has been cancelled. You no longer have a place.")),
    RegistrationState.denied: (_l("Not accepted"), _l("The organizer did not accept this registration.")),
}
#: What the page says first when the event itself decides: its state outranks the registration's.
EVENT_CANCELLED_TEXT = (
    _l("This event has been cancelled"),
    _l("The organizer cancelled the event, so there is no call to join and nothing to change here."),
)
EVENT_ENDED_TEXT = (_l("This event has ended"),
                    _l("Thank you for registering. Your registration can no longer be changed."))


def _state_text(reg: Registration, ended: bool) -> tuple[str, str]:
    if reg.event.is_cancelled:
        return EVENT_CANCELLED_TEXT
    if ended and reg.is_active:
        return EVENT_ENDED_TEXT
    return STATE_TEXT[reg.state]


def _changeable(reg: Registration) -> bool:
    """Details can change only on an active registration of an event that is still to come."""
    return reg.is_active and not reg.event.is_cancelled and reg.event.ends_at > utcnow()


bp.after_request(personal_link_headers)


class _Missing(Exception):
    """No registration behind this link."""


def _load(token: str) -> Registration:
    reg = registrations.by_manage_token(token)
    if reg is None:
        raise _Missing
    return reg


@bp.errorhandler(_Missing)
def _missing(_exc: _Missing):
    db.session.rollback()
    return render_template("public/manage_missing.html"), 404


def _privacy_url() -> str:
    return url_for("public.privacy_GET")


def _page(reg: Registration, token: str, *, form=None, status: int = 200) -> tuple[str, int]:
    """The manage page: state, times in both zones, calendar links, details form, data actions."""
    event = reg.event
    link = url_for(".manage_GET", token=token, _external=False)
    changeable = _changeable(reg)
    ended = event.ends_at <= utcnow()
    invite = reg.state == RegistrationState.confirmed and not event.is_cancelled
    join_link = join_links.join_url(reg) if invite else None
    body = render_template(
        "public/manage.html", reg=reg, event=event, token=token, link=link,
        state_text=_state_text(reg, ended),
        position=registrations.waitlist_position(reg) if changeable else None,
        form=form if form is not None else (details_form(reg, privacy_url=_privacy_url()) if changeable else None),
        calendar_links=ics.add_to_calendar_links(reg, link=join_link) if invite else None, join_link=join_link,
        has_invite=invite, ended=ended, zones_differ=reg.timezone != event.timezone,
        when_attendee=registrations.describe_when(event, reg.timezone),
        when_event=registrations.describe_when(event, event.timezone),
        sessions_attendee=[(s.label, registrations.describe_when(s, reg.timezone), s.starts_at)
                           for s in event.sessions],
    )
    db.session.commit()  # a join link issued on first view is kept
    return body, status


@bp.get("/<token>")
@writes_on_get  # a join link issued when first shown is kept
@compress.compressed()  # echoes nothing from the request (see COMPRESS_REGISTER)
def manage_GET(token: str):
    """The attendee's registration, in their own zone and the event's."""
    return _page(_load(token), token)


@bp.post("/<token>/details")
def details_POST(token: str):
    """Change name, time zone and answers (never the email); invalid input re-renders with errors."""
    reg = _load(token)
    if not _changeable(reg):
        flash(gettext("A cancelled registration cannot be changed.") if not reg.is_active
              else gettext("%(state)s: your registration can no longer be changed.", state=_state_text(reg, True)[0]),
              "error")
        return redirect_to(url_for(".manage_GET", token=token))
    form = details_form(reg, privacy_url=_privacy_url())
    if not form.validate_on_submit():
        return _page(reg, token, form=form, status=422)
    try:
        registrations.update_details(reg, first_name=form.first_name.data or "", last_name=form.last_name.data or "",
                                     answers=form.answers(), timezone=form.timezone.data or "")
    except DomainError as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _page(_load(token), token, form=form, status=422)
    db.session.commit()
    flash(gettext("Your details are saved."), "success")
    return redirect_to(url_for(".manage_GET", token=token))


@bp.get("/<token>/cancel")
def cancel_GET(token: str):
    """Ask before cancelling (or leaving the waitlist)."""
    reg = _load(token)
    if not reg.is_active:
        flash(gettext("This registration is already cancelled."), "info")
        return redirect_to(url_for(".manage_GET", token=token))
    if reg.event.is_cancelled:
        flash(gettext("The organizer has cancelled this event: there is nothing for you to cancel."), "info")
        return redirect_to(url_for(".manage_GET", token=token))
    return render_template("public/manage_cancel.html", reg=reg, event=reg.event, token=token,
                           form=CancelRegistrationForm())


@bp.post("/<token>/cancel")
def cancel_POST(token: str):
    """Cancel the registration or leave the waitlist; a freed seat goes to the next in line."""
    reg = _load(token)
    form = CancelRegistrationForm()
    if not form.validate_on_submit():
        return render_template("public/manage_cancel.html", reg=reg, event=reg.event, token=token, form=form), 422
    was_waitlisted = reg.state == RegistrationState.waitlisted
    try:
        registrations.cancel(reg, actor=None)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect_to(url_for(".manage_GET", token=token))
    db.session.commit()
    flash(gettext("You have left the waitlist.") if was_waitlisted
          else gettext("Your registration is cancelled. We have emailed you a confirmation."), "success")
    return redirect_to(url_for(".manage_GET", token=token))


@bp.get("/<token>/invite.ics")
@writes_on_get  # a join link issued for the invitation is kept
def invite_GET(token: str):
    """The personal calendar invitation; its cancellation once the place is gone."""
    reg = _load(token)
    if reg.state == RegistrationState.confirmed and not reg.event.is_cancelled:
        method = "REQUEST"
    elif reg.state in (RegistrationState.cancelled, RegistrationState.denied) or reg.event.is_cancelled:
        method = "CANCEL"
    else:
        flash(gettext("Your calendar invitation is ready as soon as your seat is confirmed."), "info")
        return redirect_to(url_for(".manage_GET", token=token))
    body = emails.registration_invite(reg, method)
    db.session.commit()  # a join link issued for the invite is kept
    response = Response(body, content_type=f"text/calendar; charset=utf-8; method={method}")
    name = "cancel" if method == "CANCEL" else "invite"
    response.headers["Content-Disposition"] = f'attachment; filename="{reg.event.slug}-{name}.ics"'
    return response


@bp.get("/<token>/data.json")
@writes_on_get  # each download is recorded
def data_GET(token: str):
    """Everything Foyer holds about this registration, as a JSON download."""
    reg = _load(token)
    body = json.dumps(privacy.export_registration(reg), ensure_ascii=False, indent=2)
    privacy.record_self_export(reg)
    db.session.commit()
    response = Response(body, content_type="application/json; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{reg.event.slug}-my-data.json"'
    return response


@bp.get("/<token>/erase")
def erase_GET(token: str):
    """Ask before deleting the person's data for good."""
    reg = _load(token)
    return render_template("public/manage_erase.html", reg=reg, event=reg.event, token=token,
                           form=EraseRegistrationForm())


@bp.post("/<token>/erase")
def erase_POST(token: str):
    """Delete the registration and everything about the person; the seat goes to the next in line."""
    reg = _load(token)
    form = EraseRegistrationForm()
    if not form.validate_on_submit():
        return render_template("public/manage_erase.html", reg=reg, event=reg.event, token=token, form=form), 422
    try:
        event = privacy.erase_registration(reg, actor=None)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect_to(url_for(".manage_GET", token=token))
    logger.info("Attendee erased their registration for event %s", event.id)
    db.session.commit()
    return redirect_to(url_for(".erased_GET"))


@bp.get("/erased")
def erased_GET():
    """After erasure: what happened, and nothing about whom."""
    return render_template("public/manage_erased.html")
