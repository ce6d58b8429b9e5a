"""Admin → Microsoft 365: connect the service account once, see its state, disconnect; staff sign-in switch."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, flash, render_template, request, session, url_for
from flask_login import current_user

from app.extensions import db
from app.forms.admin import ConfirmForm
from app.routes.admin._guard import require_admin
from app.services import microsoft_connection, staff_sso
from app.services.microsoft.errors import AuthError
from app.services.microsoft.wiring import browser_url, get_microsoft
from app.web import redirect_to

logger = logging.getLogger(__name__)

bp = Blueprint("admin_microsoft", __name__, url_prefix="/admin/microsoft")
require_admin(bp)

_FLOW = "microsoft_connect_flow"


def _callback_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"] + url_for("admin_microsoft.callback_GET")


@bp.get("/")
def connection_GET():
    """The connection's state, with Connect / Re-connect / Disconnect."""
    connection = microsoft_connection.get_connection()
    db.session.commit()
    return render_template("admin/microsoft.html", connection=connection, form=ConfirmForm(),
                           emulated=get_microsoft().uses_emulator, staff_sso_enabled=staff_sso.is_enabled(),
                           callback_url=_callback_url())


@bp.post("/connect")
def connect_POST():
    """Send the admin to Microsoft to sign in as the service account."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash("That form expired. Please try again.", "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    try:
        flow = microsoft_connection.start_connect(_callback_url())
    except AuthError as exc:
        flash(f"Microsoft could not be reached: {exc.message}. Please try again shortly.", "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    session[_FLOW] = flow
    return redirect_to(browser_url(flow["auth_uri"]))


@bp.get("/callback")
def callback_GET():
    """Microsoft sends the admin back here with a code (or an error)."""
    flow = session.pop(_FLOW, None)
    if flow is None:
        flash("That sign-in link has expired. Please press Connect again.", "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    if request.args.get("error"):
        reason = (request.args.get("error_description") or request.args["error"]).splitlines()[0][:300]
        flash(f"Microsoft did not connect the account: {reason}", "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    try:
        account = microsoft_connection.finish_connect(flow, request.args.to_dict(), actor=current_user)
    except AuthError as exc:
        db.session.rollback()
        flash(f"Microsoft did not connect the account: {exc.message}", "error")
        return redirect_to(url_for("admin_microsoft.connection_GET"))
    db.session.commit()
    flash(f"Connected to Microsoft 365 as {account.username}.", "success")
    return redirect_to(url_for("admin_microsoft.connection_GET"))


@bp.get("/disconnect")
def disconnect_GET():
    """Ask before forgetting the tokens."""
    return render_template("admin/microsoft_disconnect.html", connection=microsoft_connection.get_connection(),
                           form=ConfirmForm())


@bp.post("/disconnect")
def disconnect_POST():
    """Forget the service account's tokens."""
    form = ConfirmForm()
    if form.validate_on_submit():
        microsoft_connection.disconnect(actor=current_user)
        db.session.commit()
        flash("Microsoft 365 is disconnected. Teams meeting work waits until you connect again.", "success")
    return redirect_to(url_for("admin_microsoft.connection_GET"))


@bp.post("/staff-sign-in")
def staff_sign_in_POST():
    """Switch "Sign in with Microsoft" for staff on or off."""
    form = ConfirmForm()
    if form.validate_on_submit():
        enabled = request.form.get("enabled") == "1"
        staff_sso.set_enabled(enabled, actor=current_user)
        db.session.commit()
        flash("Staff can now sign in with Microsoft." if enabled else "Sign in with Microsoft is off.", "success")
    return redirect_to(url_for("admin_microsoft.connection_GET"))
