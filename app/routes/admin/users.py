"""Admin: staff users — list, invite, create, re-issue links, reset passwords, roles, deactivation."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, flash, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import db
from app.forms.admin import ConfirmForm, CreateUserForm, InviteUserForm, RoleForm
from app.models import Role, User
from app.services.accounts import accounts
from app.web import redirect_to, require_admin, submit

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")
require_admin(bp)

#: Session key holding a freshly issued one-time link until the admin has seen it once.
_ISSUED_LINK = "admin_issued_link"


def _load_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _actor() -> User:
    return current_user._get_current_object()


def _show_link_once(user: User, token: str, kind: str):
    """Keep the link for exactly one display on the next page (it is never stored unhashed)."""
    path = url_for("auth.invitation_GET", token=token, _external=False)
    session[_ISSUED_LINK] = {"user_id": user.id, "url": current_app.config["PUBLIC_BASE_URL"] + path, "kind": kind}
    return redirect_to(url_for("admin.user_link_GET", user_id=user.id))


@bp.get("/")
def admin_GET():
    """The admin area starts at the user list."""
    return redirect_to(url_for("admin.users_GET"))


@bp.get("/users")
def users_GET():
    """List staff accounts."""
    return render_template("admin/users.html", users=accounts.list_users(), pending=accounts.invitation_pending)


@bp.get("/users/invite")
def user_invite_GET():
    """The form to invite an organizer or admin."""
    return render_template("admin/user_invite.html", form=InviteUserForm())


@bp.post("/users/invite")
def user_invite_POST():
    """Create a passwordless account and show its one-time invitation link."""
    form = InviteUserForm()
    if done := submit(form, lambda: accounts.invite_user(form.email.data, name=form.name.data,
                                                         role=Role(form.role.data), actor=_actor())):
        user, token = done.value
        return _show_link_once(user, token, "invitation")
    return render_template("admin/user_invite.html", form=form), 422


@bp.get("/users/new")
def user_new_GET():
    """The form to create an account with a password."""
    return render_template("admin/user_new.html", form=CreateUserForm())


@bp.post("/users/new")
def user_new_POST():
    """Create an account that can sign in at once."""
    form = CreateUserForm()
    if done := submit(form, lambda: accounts.create_user_with_password(
            form.email.data, name=form.name.data, role=Role(form.role.data), password=form.password.data,
            actor=_actor(), min_length=current_app.config["PASSWORD_MIN_LENGTH"])):
        user = done.value
        flash(_("%(email)s can now sign in with the password you chose.", email=user.email), "success")
        return redirect_to(url_for("admin.user_GET", user_id=user.id))
    return render_template("admin/user_new.html", form=form), 422


def _render_user(user: User, role_form: RoleForm | None = None, *, action_form: ConfirmForm | None = None,
                 status: int = 200):
    role_form = role_form or RoleForm(role=user.role.value)
    return render_template(
        "admin/user.html", user=user, role_form=role_form, action_form=action_form or ConfirmForm(),
        pending=accounts.invitation_pending(user),
    ), status


@bp.get("/users/<int:user_id>")
def user_GET(user_id: int):
    """One account: details, role, and what can be done with it."""
    return _render_user(_load_user(user_id))


@bp.get("/users/<int:user_id>/link")
def user_link_GET(user_id: int):
    """Show a just-issued one-time link, once."""
    user = _load_user(user_id)
    issued = session.get(_ISSUED_LINK)
    if not issued or issued.get("user_id") != user.id:
        flash(_("A one-time link is shown only once. Issue a new one if you need it again."), "info")
        return redirect_to(url_for("admin.user_GET", user_id=user.id))
    session.pop(_ISSUED_LINK)
    return render_template("admin/user_link.html", user=user, link=issued["url"], kind=issued.get("kind"),
                           expires_at=user.invite_expires_at)


@bp.post("/users/<int:user_id>/role")
def user_role_POST(user_id: int):
    """Make the user an admin or an organizer."""
    user = _load_user(user_id)
    form = RoleForm()
    if submit(form, lambda: accounts.change_role(user, Role(form.role.data), actor=_actor())):
        flash(_("%(email)s is now an admin.", email=user.email) if user.role == Role.admin
              else _("%(email)s is now an organizer.", email=user.email), "success")
        if user.id == current_user.id and user.role != Role.admin:
            return redirect_to(url_for("organizer_events.events_GET"))
        return redirect_to(url_for("admin.user_GET", user_id=user.id))
    return _render_user(user, form, status=422)


@bp.post("/users/<int:user_id>/invitation")
def user_invitation_POST(user_id: int):
    """Issue a fresh invitation link (the previous one stops working)."""
    user = _load_user(user_id)
    form = ConfirmForm()
    if done := submit(form, lambda: accounts.reissue_invitation(user, actor=_actor())):
        return _show_link_once(user, done.value, "invitation")
    return _render_user(user, action_form=form, status=422)


# --- actions that need a confirmation step ------------------------------------------------------------

CONFIRMATIONS = {
    "reset_password": {
        "title": _l("Reset password"),
        "text": _l("Their current password stops working and every session they have open ends. You get a one-time "
                   "link to pass on, with which they choose a new password."),
        "button": _l("Reset password"),
        "danger": True,
    },
    "deactivate": {
        "title": _l("Deactivate account"),
        "text": _l("They are signed out everywhere and can no longer sign in. Their events stay as they are. "
                   "You can reactivate the account later."),
        "button": _l("Deactivate"),
        "danger": True,
    },
    "reactivate": {
        "title": _l("Reactivate account"),
        "text": _l("They can sign in again with their password (or a new link if they never set one)."),
        "button": _l("Reactivate"),
        "danger": False,
    },
}


def _render_confirm(user: User, action: str, form: ConfirmForm, status: int = 200):
    return render_template(
        "admin/user_confirm.html", user=user, action=action, form=form, confirm=CONFIRMATIONS[action],
        post_url=url_for(f"admin.user_{action}_POST", user_id=user.id),
    ), status


@bp.get("/users/<int:user_id>/reset-password")
def user_reset_password_GET(user_id: int):
    """Ask before resetting a password."""
    return _render_confirm(_load_user(user_id), "reset_password", ConfirmForm())


@bp.post("/users/<int:user_id>/reset-password")
def user_reset_password_POST(user_id: int):
    """Clear the password, end the user's sessions and show a one-time link to choose a new one."""
    user = _load_user(user_id)
    form = ConfirmForm()
    if done := submit(form, lambda: accounts.reset_password(user, actor=_actor())):
        return _show_link_once(user, done.value, "reset")
    return _render_confirm(user, "reset_password", form, 422)


@bp.get("/users/<int:user_id>/deactivate")
def user_deactivate_GET(user_id: int):
    """Ask before deactivating an account."""
    return _render_confirm(_load_user(user_id), "deactivate", ConfirmForm())


@bp.post("/users/<int:user_id>/deactivate")
def user_deactivate_POST(user_id: int):
    """Deactivate the account; its sessions end at once."""
    user = _load_user(user_id)
    form = ConfirmForm()
    if submit(form, lambda: accounts.deactivate_user(user, actor=_actor())):
        flash(_("%(email)s has been deactivated.", email=user.email), "success")
        return redirect_to(url_for("admin.user_GET", user_id=user.id))
    return _render_confirm(user, "deactivate", form, 422)


@bp.get("/users/<int:user_id>/reactivate")
def user_reactivate_GET(user_id: int):
    """Ask before reactivating an account."""
    return _render_confirm(_load_user(user_id), "reactivate", ConfirmForm())


@bp.post("/users/<int:user_id>/reactivate")
def user_reactivate_POST(user_id: int):
    """Let the account sign in again."""
    user = _load_user(user_id)
    form = ConfirmForm()
    if submit(form, lambda: accounts.reactivate_user(user, actor=_actor())):
        flash(_("%(email)s has been reactivated.", email=user.email), "success")
        return redirect_to(url_for("admin.user_GET", user_id=user.id))
    return _render_confirm(user, "reactivate", form, 422)
