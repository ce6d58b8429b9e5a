"""Staff sign-in and sign-out, first-run setup, password change and invitation acceptance."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Blueprint, abort, current_app, flash, make_response, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm

from app import ratelimit
from app.extensions import csrf, db, limiter
from app.forms.auth import (
    AcceptInvitationForm,
    ForgotPasswordForm,
    LoginForm,
    PasswordChangeForm,
    ResetPasswordForm,
    SetupForm,
)
from app.models import User
from app.routes import microsoft_return
from app.services.accounts import accounts, auth_flows, setup_code, sso
from app.services.core.errors import DomainError
from app.services.microsoft.errors import AuthError
from app.web import own_transactions, redirect_to, safe_next, submit, unit_of_work

bp = Blueprint("auth", __name__)


def blueprints() -> list[Blueprint]:
    return [bp]


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _wait_message(seconds: int) -> str:
    if seconds < 60:
        return _("Too many wrong passwords from this device for that account. Try again in %(num)s seconds.",
                 num=seconds)
    return ngettext("Too many wrong passwords from this device for that account. Try again in %(num)d minute.",
                    "Too many wrong passwords from this device for that account. Try again in %(num)d minutes.",
                    math.ceil(seconds / 60))


#: When the session's sign-in happened (Unix time): the absolute lifetime counts from it (see app._load_user).
SIGNED_IN_AT = "signed_in_at"


def _start_session(user) -> None:
    """Sign in with a fresh session (no fixation): clear whatever the anonymous session held."""
    session.clear()
    session[SIGNED_IN_AT] = int(time.time())
    login_user(user)


@bp.get("/login")
def login_GET():
    """Show the sign-in form (or send first-time visitors to setup)."""
    if not accounts.has_any_user():
        return redirect_to(url_for("auth.setup_GET"))
    if current_user.is_authenticated:
        return redirect_to(url_for("organizer_events.events_GET"))
    return render_template("auth/login.html", form=LoginForm(), next=request.args.get("next", ""),
                           microsoft_sign_in=sso.is_enabled())


@bp.post("/login")
@limiter.limit(_login_limit, methods=["POST"])
def login_POST():
    """Check the credentials and start a session.

    Wrong passwords count per account and client (app.ratelimit): a client that keeps failing waits,
    and no one else's failures ever stand between an account's owner and a correct password.
    """
    form = LoginForm()
    target = safe_next(request.form.get("next"), url_for("organizer_events.events_GET"))
    status = 422
    if form.validate_on_submit():
        client = request.remote_addr or ""
        wait = ratelimit.sign_in_wait(form.email.data, client)
        if wait:
            form.form_errors.append(_wait_message(wait))
            status = 429
        else:
            user = accounts.authenticate(form.email.data, form.password.data)
            if user is not None:
                db.session.commit()
                ratelimit.clear_failed_sign_ins(form.email.data, client)
                _start_session(user)
                return redirect_to(target)
            db.session.commit()  # keep the audit entry of the refused attempt
            ratelimit.record_failed_sign_in(form.email.data, client)
            form.form_errors.append(_("That email and password do not match an active account."))
    return render_template("auth/login.html", form=form, next=request.form.get("next", ""),
                           microsoft_sign_in=sso.is_enabled()), status


def _sso_callback() -> str:
    return current_app.config["PUBLIC_BASE_URL"] + url_for("auth.microsoft_callback_POST")


@bp.post("/login/microsoft")
@own_transactions  # the Microsoft token cache is written on its own connection
@limiter.limit(_login_limit, methods=["POST"])
def microsoft_login_POST():
    """Start "Sign in with Microsoft" for staff."""
    try:  # CSRFProtect has already checked the token
        flow = sso.start_sign_in(_sso_callback())
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect_to(url_for("auth.login_GET"))
    except AuthError as exc:
        flash(_("Microsoft could not be reached: %(error)s", error=exc.message), "error")
        return redirect_to(url_for("auth.login_GET"))
    next_url = safe_next(request.form.get("next"), "")
    unit_of_work(lambda: auth_flows.remember("staff", flow, next_url=next_url),
                 what="keeping the Microsoft sign-in flow")
    return redirect_to(flow["auth_uri"])


@bp.post("/login/microsoft/callback")
@own_transactions  # the Microsoft token cache is written on its own connection
@csrf.exempt
@limiter.limit(_login_limit)
def microsoft_callback_POST():
    """Finish "Sign in with Microsoft": a cross-site form post, honoured only in the browser that started
    the sign-in (its session holds the single-use state; see routes/microsoft_return.py).
    """
    elsewhere = microsoft_return.check_browser("staff", retry_url=url_for("auth.login_GET"),
                                               retry_label=_("Go to the sign-in page"))
    if elsewhere is not None:
        return elsewhere
    pending = microsoft_return.take_flow("staff", what="taking the Microsoft sign-in flow")
    if pending is None:
        flash(_("That sign-in has expired. Please try again."), "error")
        return redirect_to(url_for("auth.login_GET"))
    if request.form.get("error"):
        flash(_("Microsoft sign-in was cancelled or refused."), "error")
        return redirect_to(url_for("auth.login_GET"))
    try:
        user = sso.finish_sign_in(pending.flow, request.form.to_dict())
    except (DomainError, AuthError) as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect_to(url_for("auth.login_GET"))
    db.session.commit()
    _start_session(user)
    return redirect_to(pending.next_url or url_for("organizer_events.events_GET"))


@bp.post("/logout")
def logout_POST():
    """End the session."""
    if current_user.is_authenticated:
        accounts.record_sign_out(current_user._get_current_object())
        db.session.commit()
    logout_user()
    session.clear()
    flash(_("You have been signed out."), "info")
    return redirect_to(url_for("auth.login_GET"))


@bp.get("/setup")
def setup_GET():
    """First-run setup: create the first admin. Only while no user exists."""
    if accounts.has_any_user():
        abort(404)
    return render_template("auth/setup.html", form=SetupForm())


@bp.post("/setup")
@limiter.limit(_login_limit, methods=["POST"])
def setup_POST():
    """Create the first admin and sign them in (with the one-time setup code from the server's log)."""
    if accounts.has_any_user():
        abort(404)
    form = SetupForm()

    def create() -> User:
        setup_code.check(form.setup_code.data)
        user = accounts.create_first_admin(form.email.data, form.password.data, name=form.name.data or "",
                                           min_length=current_app.config["PASSWORD_MIN_LENGTH"])
        setup_code.discard()
        return user

    if done := submit(form, create):
        _start_session(done.value)
        flash(_("Welcome to Foyer. Your admin account is ready."), "success")
        return redirect_to(url_for("organizer_events.events_GET"))
    return render_template("auth/setup.html", form=form), 422


@bp.get("/account/password")
@login_required
def password_GET():
    """Show the password change form."""
    return render_template("auth/password.html", form=PasswordChangeForm())


@bp.post("/account/password")
@login_required
@limiter.limit(_login_limit, methods=["POST"])
def password_POST():
    """Change the signed-in user's password; other sessions end."""
    form = PasswordChangeForm()
    if submit(form, lambda: accounts.change_password(current_user, form.current_password.data, form.password.data,
                                                     min_length=current_app.config["PASSWORD_MIN_LENGTH"])):
        _start_session(current_user._get_current_object())
        flash(_("Your password has been changed."), "success")
        return redirect_to(url_for("organizer_events.events_GET"))
    return render_template("auth/password.html", form=form), 422


# Invitations and password resets are both one-time links that let their holder choose a password.


def _link_holder(token: str, invalid_template: str) -> User:
    """The account a one-time password link belongs to; a used, expired or unknown link ends the request
    with `invalid_template` (404).
    """
    user = accounts.user_for_invitation(token)
    if user is None:
        abort(make_response(render_template(invalid_template), 404))
    return user


def _set_password(form: FlaskForm, verb: Callable[..., None], user: User) -> bool:
    """Validate `form` and have `verb` set its password for `user` (committed); False leaves the errors."""
    return bool(submit(form, lambda: verb(user, form.password.data,
                                          min_length=current_app.config["PASSWORD_MIN_LENGTH"])))


@bp.get("/invitation/<token>")
def invitation_GET(token: str):
    """Let an invited user choose a password."""
    user = _link_holder(token, "auth/invitation_invalid.html")
    return render_template("auth/invitation.html", form=AcceptInvitationForm(), invited=user, token=token)


@bp.post("/invitation/<token>")
@limiter.limit(_login_limit, methods=["POST"])
def invitation_POST(token: str):
    """Set the password, consume the invitation and sign in."""
    user = _link_holder(token, "auth/invitation_invalid.html")
    form = AcceptInvitationForm()
    if _set_password(form, accounts.accept_invitation, user):
        _start_session(user)
        flash(_("Your password is set. Welcome to Foyer."), "success")
        return redirect_to(url_for("organizer_events.events_GET"))
    return render_template("auth/invitation.html", form=form, invited=user, token=token), 422


def _reset_key() -> str:
    return "reset:" + (request.form.get("email") or "").strip().lower()[:320]


@bp.get("/login/forgot")
def forgot_GET():
    """Ask for a password reset link."""
    return render_template("auth/forgot.html", form=ForgotPasswordForm())


@bp.post("/login/forgot")
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_reset_key)
def forgot_POST():
    """Email a reset link if the address is a staff account's; the answer is the same either way."""
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form), 422
    accounts.request_password_reset(form.email.data)
    db.session.commit()
    return redirect_to(url_for("auth.forgot_sent_GET"))


@bp.get("/login/forgot/sent")
def forgot_sent_GET():
    """The neutral answer: never says whether the address has an account."""
    return render_template("auth/forgot_sent.html")


@bp.get("/password/reset/<token>")
def password_reset_GET(token: str):
    """Let the holder of a reset link choose a new password."""
    user = _link_holder(token, "auth/reset_invalid.html")
    return render_template("auth/reset.html", form=ResetPasswordForm(), account=user, token=token)


@bp.post("/password/reset/<token>")
@limiter.limit(_login_limit, methods=["POST"])
def password_reset_POST(token: str):
    """Set the new password; the link is used up and every session of the account ends."""
    user = _link_holder(token, "auth/reset_invalid.html")
    form = ResetPasswordForm()
    if _set_password(form, accounts.complete_password_reset, user):
        session.clear()
        logout_user()
        flash(_("Your password has been changed. Sign in with your new password."), "success")
        return redirect_to(url_for("auth.login_GET"))
    return render_template("auth/reset.html", form=form, account=user, token=token), 422
