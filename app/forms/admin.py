"""Admin forms: staff users, branding and languages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, ColorField, EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from app.forms.events import MultiCheckboxField
from app.i18n import language_name
from app.models import Role
from app.services.core import settings

#: "Admin" the role, not the admin area (a message context of its own, as on the user pages).
ROLE_CHOICES = [SelectChoice(Role.organizer.value, lazy_pgettext("role", "Organizer")),
                SelectChoice(Role.admin.value, lazy_pgettext("role", "Admin"))]
HEX = r"^#[0-9a-fA-F]{6}$"
HEX_MESSAGE = _l("Enter a colour as # followed by six hex digits, e.g. #1f5fbf.")


class InviteUserForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default=Role.organizer.value)


class CreateUserForm(InviteUserForm):
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
    )


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)


class ConfirmForm(FlaskForm):
    """A button that only carries the CSRF token (deactivate, reactivate, issue a link)."""


class BrandingForm(FlaskForm):
    site_name = StringField(_l("Site name"), validators=[DataRequired(), Length(max=80)])
    accent_colour = StringField(
        _l("Accent colour (hex)"),
        validators=[DataRequired(message=HEX_MESSAGE), Regexp(HEX, message=HEX_MESSAGE)],
        description=_l("Six hex digits, e.g. #1f5fbf. Used for the header bar and main buttons."),
    )
    accent_picker = ColorField(_l("Or pick the accent colour"), validators=[Optional(), Regexp(HEX)])
    accent_text = SelectField(
        _l("Text on the accent colour"),
        choices=[SelectChoice("auto", _l("Automatic (best contrast)")), SelectChoice("white", _l("White")),
                 SelectChoice("black", _l("Black"))],
        default="auto",
    )
    logo = FileField(_l("Logo"),
                     description=_l("PNG, JPEG or WebP, up to 2 MB. Shown in the header, at most 800 pixels."),
                     render_kw={"data-max-bytes": 2 * 1024 * 1024})
    logo_alt = StringField(
        _l("Logo description (alt text)"),
        validators=[Length(max=300)],
        description=_l("What the logo shows, for screen readers. Leave empty to use the site name."),
    )
    remove_logo = BooleanField(_l("Remove the current logo"))
    footer_text = TextAreaField(_l("Footer text"), validators=[Length(max=500)])

    def chosen_accent(self, current: str) -> str:
        """The accent the admin meant: the text box if they edited it, else the picker if they moved it.

        Both inputs are submitted; without JavaScript they cannot mirror each other, so whichever one
        differs from the saved colour wins.
        """
        typed = (self.accent_colour.data or "").strip()
        picked = (self.accent_picker.data or "").strip()
        if typed.lower() != current.lower() or not picked:
            return typed
        return picked if picked.lower() != current.lower() else typed


class EmailSettingsForm(FlaskForm):
    sender_name = StringField(
        _l("Sender name"), validators=[Length(max=100)],
        description=_l("The name people see for Foyer's emails, e.g. your organization's events team. "
                       "Leave empty to use the site name."),
    )
    reply_to = EmailField(
        _l("Reply-to address"), validators=[Length(max=320)], render_kw={"autocomplete": "email"},
        description=_l("Where replies to Foyer's emails go. Leave empty and replies go to the sender address, "
                       "which usually nobody reads."),
    )


class TestEmailForm(FlaskForm):
    """Only the CSRF token: "send me a test email"."""


class PrivacyNoticeForm(FlaskForm):
    privacy_text = TextAreaField(
        _l("Privacy notice"),
        validators=[Length(max=20000)],
        description=_l("Markdown. Shown on registration pages; saving a changed text creates a new version."),
    )


class EmbedOriginsForm(FlaskForm):
    """Admin: the websites allowed to show the registration form in a frame."""

    origins = TextAreaField(
        _l("Websites that may embed registration forms"), validators=[Length(max=5000)],
        description=_l("One per line, as scheme and host with an optional port, e.g. https://www.example.org. "
                       "https is required, except for http://localhost and http://127.0.0.1 while a website is "
                       "being built."),
    )


class LanguagesForm(FlaskForm):
    """Admin: the languages visitors may choose among those Foyer ships, and the default one."""

    offered = MultiCheckboxField(
        _l("Languages offered"), validate_choice=False,
        description=_l("Pages and emails can be read in these. A visitor's browser language is the first guess, "
                       "and the language switcher lets them choose."),
    )
    default = SelectField(
        _l("Default language"), validate_choice=False,
        description=_l("For visitors whose browser asks for none of the languages offered. Events' main title "
                       "and description are written in it; organizers may add them in the other languages."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offered.choices = self.default.choices = [SelectChoice(code, language_name(code))
                                                       for code in settings.shipped_languages()]
