"""Admin: branding (site name, colours, logo, footer), email sender settings and a test email, the
versioned privacy notice, and the websites that may embed registration forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, current_app, flash, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import Field

from app.extensions import db
from app.forms.admin import BrandingForm, EmailSettingsForm, EmbedOriginsForm, PrivacyNoticeForm, TestEmailForm
from app.forms.registration import OrganizationDomainsForm
from app.services.core import settings
from app.services.messaging import staff
from app.services.registration import registrations
from app.web import redirect_to, require_admin, submit

logger = logging.getLogger(__name__)

bp = Blueprint("admin_branding", __name__, url_prefix="/admin/branding")
require_admin(bp)


def _render(branding_form: BrandingForm | None = None, privacy_form: PrivacyNoticeForm | None = None,
            status: int = 200, domains_form: OrganizationDomainsForm | None = None,
            email_form: EmailSettingsForm | None = None, embed_form: EmbedOriginsForm | None = None):
    branding = settings.get_branding()
    sender = settings.get_email_settings()
    if email_form is None:
        email_form = EmailSettingsForm(sender_name=sender.sender_name, reply_to=sender.reply_to)
    notice = settings.get_privacy_notice()
    if branding_form is None:
        branding_form = BrandingForm(
            site_name=branding.site_name, accent_colour=branding.accent_colour,
            accent_picker=branding.accent_colour, accent_text=branding.accent_text,
            logo_alt=branding.logo_alt, footer_text=branding.footer_text,
        )
    if privacy_form is None:
        privacy_form = PrivacyNoticeForm(privacy_text=notice.text)
    domains = registrations.organization_domains()
    if domains_form is None:
        domains_form = OrganizationDomainsForm(domains="\n".join(domains))
    origins = settings.embed_origins()
    if embed_form is None:
        embed_form = EmbedOriginsForm(origins="\n".join(origins))
    return render_template(
        "admin/branding.html", embed_form=embed_form, embed_origins=origins,
        form=branding_form, privacy_form=privacy_form, saved=branding, notice=notice,
        domains_form=domains_form, domains=domains, email_form=email_form, sender=sender,
        test_form=TestEmailForm(), sender_address=current_app.config.get("ACS_SENDER_ADDRESS", ""),
    ), status


@bp.get("")
def branding_GET():
    """The branding and privacy notice forms."""
    return _render()


@bp.post("")
def branding_POST():
    """Save the branding; a new logo is checked and re-encoded."""
    form = BrandingForm()

    def save() -> None:
        upload = form.logo.data
        settings.update_branding(
            actor=current_user._get_current_object(),
            site_name=form.site_name.data,
            accent_colour=form.chosen_accent(settings.get_branding().accent_colour),
            accent_text=form.accent_text.data,
            footer_text=form.footer_text.data,
            logo_alt=form.logo_alt.data,
            logo=upload.stream if upload and upload.filename else None,
            remove_logo=form.remove_logo.data,
        )

    if submit(form, save):
        flash(_("Branding saved."), "success")
        return redirect_to(url_for("admin_branding.branding_GET"))
    return _render(branding_form=form, status=422)


@bp.post("/privacy")
def privacy_POST():
    """Save the privacy notice; a changed text becomes a new version."""
    form = PrivacyNoticeForm()
    if form.validate_on_submit():
        before = settings.get_privacy_notice().version
        notice = settings.update_privacy_notice(form.privacy_text.data, actor=current_user._get_current_object())
        db.session.commit()
        if notice.version != before:
            flash(_("Privacy notice saved as version %(version)s.", version=notice.version), "success")
        else:
            flash(_("The privacy notice is unchanged; it stays at version %(version)s.", version=notice.version),
                  "info")
        return redirect_to(url_for("admin_branding.branding_GET", _anchor="privacy"))
    return _render(privacy_form=form, status=422)


def _save_list(form: FlaskForm, field: Field, parse: Callable[[str], list[str]], save: Callable[..., object], *,
               saved: Callable[[str], str], cleared: str, anchor: str, form_key: str):
    """A setting that is a list typed one per line (organization domains, embedding websites): parse it,
    save it, say what it now holds (or that it is empty), or show the form again with the reason.
    """

    def parse_and_save() -> list[str]:
        values = parse(field.data or "")
        save(values, actor=current_user._get_current_object())
        return values

    if done := submit(form, parse_and_save):
        flash(saved(", ".join(done.value)) if done.value else cleared, "success")
        return redirect_to(url_for("admin_branding.branding_GET", _anchor=anchor))
    return _render(**{form_key: form}, status=422)


@bp.post("/organization")
def organization_POST():
    """Save the organization's email domains (who may register for organization-only events)."""
    form = OrganizationDomainsForm()
    return _save_list(form, form.domains, registrations.parse_domains, registrations.save_organization_domains,
                      saved=lambda domains: _("Organization domains saved: %(domains)s.", domains=domains),
                      cleared=_("Organization domains cleared: organization-only events accept no one."),
                      anchor="organization", form_key="domains_form")


@bp.post("/email")
def email_POST():
    """Save the sender name and reply-to address every email goes out with."""
    form = EmailSettingsForm()
    if submit(form, lambda: settings.update_email_settings(actor=current_user._get_current_object(),
                                                           sender_name=form.sender_name.data or "",
                                                           reply_to=form.reply_to.data or "")):
        flash(_("Email settings saved."), "success")
        return redirect_to(url_for("admin_branding.branding_GET", _anchor="email"))
    return _render(email_form=form, status=422)


@bp.post("/email/test")
def email_test_POST():
    """Queue a test email to the signed-in admin through the one message pipeline."""
    form = TestEmailForm()
    if not form.validate_on_submit():
        return _render(status=422)
    actor = current_user._get_current_object()
    message = staff.queue_test_email(actor=actor)
    db.session.commit()
    if message is None:
        flash(_("A test email was already queued this minute; see Messages for how it went."), "info")
    else:
        flash(_("A test email to %(email)s is queued; Messages shows when it is sent.", email=actor.email), "success")
    return redirect_to(url_for("admin_branding.branding_GET", _anchor="email"))


@bp.post("/embedding")
def embedding_POST():
    """Save the websites allowed to show registration forms in a frame (their frame-ancestors)."""
    form = EmbedOriginsForm()
    return _save_list(form, form.origins, settings.parse_embed_origins, settings.save_embed_origins,
                      saved=lambda origins: _("Websites that may embed registration forms: %(origins)s.",
                                              origins=origins),
                      cleared=_("No website may embed registration forms now."),
                      anchor="embedding", form_key="embed_form")
