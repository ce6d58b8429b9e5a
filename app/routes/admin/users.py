"""Admin: staff users."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required

from app.services import accounts

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def _require_admin():
    """Admin pages are for admins only; others get a 404, not a hint that the page exists."""
    if not current_user.is_admin:
        abort(404)


@bp.get("/users")
def users_GET():
    """List staff accounts."""
    return render_template("admin/users.html", users=accounts.list_users())
