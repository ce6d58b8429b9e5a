"""Admin → Privacy: how long attendee data is kept, and one person's data across events (export as
JSON, or erase). Lookups are POSTs so that addresses never appear in URLs or access logs.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, flash, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.forms.insights import DefaultRetentionForm, PersonEraseForm, PersonLookupForm
from app.services.registration import privacy
from app.web import redirect_to, require_admin, submit

bp = Blueprint("admin_privacy", __name__, url_prefix="/admin/privacy")
require_admin(bp)


def _render(*, retention_form=None, lookup_form=None, erase_form=None, found=None, status: int = 200):
    retention_form = retention_form or DefaultRetentionForm(formdata=None,
                                                            data={"days": privacy.default_retention_days()})
    return render_template("admin/privacy.html", retention_form=retention_form,
                           lookup_form=lookup_form or PersonLookupForm(formdata=None), erase_form=erase_form,
                           found=found), status


@bp.get("/")
def privacy_GET():
    """The retention default and the per-person lookup."""
    return _render()


@bp.post("/retention")
def retention_POST():
    """Set the default number of days attendee data is kept after an event."""
    form = DefaultRetentionForm()
    if done := submit(form, lambda: privacy.set_default_retention(form.days.data, actor=current_user)):
        flash(_("Attendee data is now purged %(days)s days after each event (unless an event says otherwise).",
                days=done.value), "success")
        return redirect_to(url_for(".privacy_GET"))
    return _render(retention_form=form, status=422)


@bp.post("/person")
def person_POST():
    """Show what Foyer holds for one address, with export and erase."""
    form = PersonLookupForm()
    if not form.validate_on_submit():
        return _render(lookup_form=form, status=422)
    found = privacy.find_person(form.email.data)
    erase_form = PersonEraseForm(formdata=None, data={"email": form.email.data}) if found else None
    return _render(lookup_form=form, erase_form=erase_form, found=found)


@bp.post("/person/export")
def person_export_POST():
    """Download everything held for one address as JSON (audited)."""
    form = PersonLookupForm()
    if done := submit(form, lambda: privacy.export_person(form.email.data, actor=current_user)):
        response = Response(json.dumps(done.value, ensure_ascii=False, indent=2),
                            content_type="application/json; charset=utf-8")
        response.headers["Content-Disposition"] = 'attachment; filename="foyer-personal-data.json"'
        return response
    return _render(lookup_form=form, status=422)


@bp.post("/person/erase")
def person_erase_POST():
    """Erase every registration of one address (audited); seats go to the waitlist as after a cancel."""
    form = PersonEraseForm()
    if done := submit(form, lambda: privacy.erase_person(form.email.data, actor=current_user)):
        count = done.value
        flash(ngettext("Erased %(num)d registration. Only anonymous counts remain.",
                       "Erased %(num)d registrations. Only anonymous counts remain.", count), "success")
        return redirect_to(url_for(".privacy_GET"))
    lookup = PersonLookupForm(formdata=None, data={"email": form.email.data})
    return _render(lookup_form=lookup, erase_form=form, found=privacy.find_person(form.email.data or ""), status=422)
