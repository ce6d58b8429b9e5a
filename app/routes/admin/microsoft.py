"""Admin → Microsoft 365: connect the service account once, see its state, disconnect; staff sign-in switch."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, abort, current_app, flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import csrf, db
from app.forms.admin import ConfirmForm
from app.models import User
from app.routes import microsoft_return
from app.services.accounts import auth_flows, sso
from app.services.core.errors import DomainError
from app.services.microsoft import connection as microsoft_connection
from app.services.microsoft.errors import AuthError
from app.services.microsoft.wiring import get_microsoft
from app.web import own_transactions, redirect_to, require_admin, unit_of_work

logger = logging.getLogger(__name__)

bp = Blueprint("admin_microsoft", __name__, url_prefix="/admin/microsoft")
require_admin(bp)
#: The callback cannot sit behind the admin gate: Microsoft's form post arrives without a session.
callback_bp = Blueprint("admin_microsoft_callback", __name__)


def _callback_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"] + url_for("admin_microsoft_callback.callback_POST")


@bp.get("/")
def connection_GET():
    """The connection's state, with Connect / Re-connect / Disconnect."""
    connection = microsoft_connection.shown_connection()
    category, message = OUTCOMES.get(request.args.get("outcome", ""), (None, None))
    detail = re.sub(r"[^A-Za-z0-9_]", "", request.args.get("detail", ""))[:40]
    return render_template("admin/microsoft.html", connection=connection, form=ConfirmForm(),
                           outcome=(category, message, detail) if message else None,
                           built_in=get_microsoft().built_in,
                           one_click=get_microsoft().connects_without_sign_in, staff_sso_enabled=sso.is_enabled(),
                           callback_url=_callback_url(),
                           missing_scopes=microsoft_connection.missing_recording_scopes())


@bp.post("/connect")
@own_transactions  # the Microsoft token cache is written on its own connection
def connect_POST():
    """Send the admin to Microsoft to sign in as the service account."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(_("That form expired. Please try again."), "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    try:
        flow = microsoft_connection.start_connect(_callback_url())
    except AuthError as exc:
        flash(_("Microsoft could not be reached: %(error)s. Please try again shortly.", error=exc.message), "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    user_id = current_user.id
    unit_of_work(lambda: auth_flows.remember("connect", flow, user_id=user_id),
                 what="keeping the Microsoft connect flow")
    return redirect_to(flow["auth_uri"])


@bp.post("/connect-emulated")
@own_transactions  # the Microsoft token cache is written on its own connection
def connect_emulated_POST():
    """One click with the built-in emulator: connect its service account without the sign-in page."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(_("That form expired. Please try again."), "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    try:
        account = microsoft_connection.connect_without_sign_in(_callback_url(), actor=current_user)
    except (AuthError, DomainError) as exc:
        db.session.rollback()
        flash(_("The emulated service account could not be connected: %(error)s", error=exc.message), "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    db.session.commit()
    flash(_("Connected to the emulated Microsoft 365 as %(account)s. Published events now get Teams meetings.",
            account=account.username), "success")
    return redirect_to(url_for("organizer_events.events_GET"))


@callback_bp.post("/admin/microsoft/callback")
@own_transactions  # the Microsoft token cache is written on its own connection
@csrf.exempt
def callback_POST():
    """Microsoft posts the code (or an error) back here.

    Honoured only in the browser that pressed Connect: its session holds the single-use `state` (the
    cross-site arrival is posted again from Foyer's origin first; see routes/microsoft_return.py). The
    outcome travels to the status page as a short code.
    """
    elsewhere = microsoft_return.check_browser("connect", retry_url=url_for("admin_microsoft.connection_GET"),
                                               retry_label=_("Back to Microsoft 365"))
    if elsewhere is not None:
        return elsewhere
    pending = microsoft_return.take_flow("connect", what="taking the Microsoft connect flow")
    if pending is None:
        return _outcome("expired")
    actor = db.session.get(User, pending.user_id) if pending.user_id else None
    here = getattr(current_user, "id", None)
    if actor is None or not actor.is_active_account or not actor.is_admin or actor.id != here:
        abort(404)
    if request.form.get("error"):
        return _outcome("refused", request.form.get("error", ""))
    try:
        microsoft_connection.finish_connect(pending.flow, request.form.to_dict(), actor=actor)
    except AuthError as exc:
        db.session.rollback()
        return _outcome("failed", exc.code)
    db.session.commit()
    return _outcome("connected")


OUTCOMES = {
    "connected": ("success", _l("Microsoft 365 is connected.")),
    "expired": ("error", _l("That sign-in has expired or was already used. Please press Connect again.")),
    "refused": ("error", _l("Microsoft did not connect the account: the sign-in was cancelled or refused.")),
    "failed": ("error", _l("Microsoft did not connect the account. Please try again.")),
}


def _outcome(code: str, detail: str = ""):
    detail = re.sub(r"[^A-Za-z0-9_]", "", detail or "")[:40]
    return redirect_to(url_for("admin_microsoft.connection_GET", outcome=code, detail=detail or None))


@bp.get("/disconnect")
def disconnect_GET():
    """Ask before forgetting the tokens."""
    return render_template("admin/microsoft_disconnect.html", connection=microsoft_connection.shown_connection(),
                           form=ConfirmForm())


@bp.post("/disconnect")
def disconnect_POST():
    """Forget the service account's tokens."""
    form = ConfirmForm()
    if form.validate_on_submit():
        microsoft_connection.disconnect(actor=current_user)
        db.session.commit()
        flash(_("Microsoft 365 is disconnected. Teams meeting work waits until you connect again."), "success")
    return redirect_to(url_for("admin_microsoft.connection_GET"))


@bp.post("/staff-sign-in")
def staff_sign_in_POST():
    """Switch "Sign in with Microsoft" for staff on or off."""
    form = ConfirmForm()
    if form.validate_on_submit():
        enabled = request.form.get("enabled") == "1"
        sso.set_enabled(enabled, actor=current_user)
        db.session.commit()
        flash(_("Staff can now sign in with Microsoft.") if enabled else _("Sign in with Microsoft is off."), "success")
    return redirect_to(url_for("admin_microsoft.connection_GET"))
