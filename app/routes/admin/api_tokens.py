"""Admin → API tokens: issue a token (shown once), see when each was last used, revoke one."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import db
from app.forms.admin import ConfirmForm
from app.forms.integrations import ApiTokenForm
from app.models import ApiToken
from app.services.integrations import api_tokens
from app.web import carry_out, redirect_to, require_admin, submit

bp = Blueprint("admin_api_tokens", __name__, url_prefix="/admin/api-tokens")
require_admin(bp)


def _render(form: ApiTokenForm | None = None, *, issued: api_tokens.IssuedToken | None = None, status: int = 200):
    return render_template("admin/api_tokens.html", form=form or ApiTokenForm(formdata=None),
                           tokens=api_tokens.list_tokens(), issued=issued, confirm=ConfirmForm()), status


@bp.get("/")
def tokens_GET():
    """The tokens, and the form to issue one."""
    return _render()


@bp.post("/")
def tokens_POST():
    """Issue a token and show it, this once."""
    form = ApiTokenForm()
    if done := submit(form, lambda: api_tokens.issue(form.name.data, form.scope.data, actor=current_user)):
        return _render(issued=done.value, status=201)
    return _render(form, status=422)


@bp.post("/<int:token_id>/revoke")
def token_revoke_POST(token_id: int):
    """Revoke a token: calls with it are refused from now on."""
    form = ConfirmForm()
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    if not form.validate_on_submit():
        abort(400)
    carry_out(lambda: api_tokens.revoke(token, actor=current_user),
              done=_("The token “%(name)s” is revoked.", name=token.name))
    return redirect_to(url_for(".tokens_GET"))
