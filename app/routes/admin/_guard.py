"""The gate every admin blueprint installs: sign-in required, and admins only."""

from __future__ import annotations

from flask import Blueprint, abort
from flask_login import current_user, login_required


def require_admin(bp: Blueprint) -> None:
    """Anonymous visitors are sent to sign in; signed-in non-admins get a 404, not a hint the page exists."""

    @bp.before_request
    @login_required
    def _require_admin():
        if not current_user.is_admin:
            abort(404)
