"""Admin → Languages: which of the languages Foyer ships attendees may choose, and the default one.

Until an admin saves here, LANGUAGES and DEFAULT_LANGUAGE from the environment decide.
"""

from __future__ import annotations

from flask import Blueprint, flash, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.forms.admin import LanguagesForm
from app.i18n import language_name
from app.services.core import settings
from app.web import redirect_to, require_admin, submit

bp = Blueprint("admin_languages", __name__, url_prefix="/admin/languages")
require_admin(bp)


def _render(form: LanguagesForm | None = None, status: int = 200):
    if form is None:
        languages = settings.get_languages()
        form = LanguagesForm(formdata=None, data={"offered": list(languages.offered), "default": languages.default})
    return render_template("admin/languages.html", form=form), status


@bp.get("")
def languages_GET():
    """The languages offered and the default."""
    return _render()


@bp.post("")
def languages_POST():
    """Save the languages offered and the default; the default must be one of them."""
    form = LanguagesForm()
    if done := submit(form, lambda: settings.update_languages(form.offered.data or [], form.default.data or "",
                                                              actor=current_user._get_current_object())):
        flash(_("Languages saved. Foyer is offered in %(languages)s; the default is %(default)s.",
                languages=", ".join(language_name(code) for code in done.value.offered),
                default=language_name(done.value.default)), "success")
        return redirect_to(url_for(".languages_GET"))
    return _render(form, status=422)
