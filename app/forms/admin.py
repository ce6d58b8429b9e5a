"""Admin forms: staff users and branding."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, ColorField, EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from app.models import Role

ROLE_CHOICES = [SelectChoice(Role.organizer.value, "Organizer"), SelectChoice(Role.admin.value, "Admin")]
HEX = r"^#[0-9a-fA-F]{6}$"
HEX_MESSAGE = "Enter a colour as # followed by six hex digits, e.g. #1f5fbf."


class InviteUserForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.organizer.value)


class CreateUserForm(InviteUserForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        "Repeat the password", validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")]
    )


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ConfirmForm(FlaskForm):
    """A button that only carries the CSRF token (deactivate, reactivate, issue a link)."""


class BrandingForm(FlaskForm):
    site_name = StringField("Site name", validators=[DataRequired(), Length(max=80)])
    accent_colour = StringField(
        "Accent colour (hex)",
        validators=[DataRequired(message=HEX_MESSAGE), Regexp(HEX, message=HEX_MESSAGE)],
        description="Six hex digits, e.g. #1f5fbf. Used for the header bar and main buttons.",
    )
    accent_picker = ColorField("Or pick the accent colour", validators=[Optional(), Regexp(HEX)])
    accent_text = SelectField(
        "Text on the accent colour",
        choices=[SelectChoice("auto", "Automatic (best contrast)"), SelectChoice("white", "White"),
                 SelectChoice("black", "Black")],
        default="auto",
    )
    logo = FileField("Logo", description="PNG, JPEG or WebP, up to 2 MB. Shown in the header, at most 800 pixels.",
                     render_kw={"data-max-bytes": 2 * 1024 * 1024})
    logo_alt = StringField(
        "Logo description (alt text)",
        validators=[Length(max=300)],
        description="What the logo shows, for screen readers. Leave empty to use the site name.",
    )
    remove_logo = BooleanField("Remove the current logo")
    footer_text = TextAreaField("Footer text", validators=[Length(max=500)])

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
        "Sender name", validators=[Length(max=100)],
        description="The name people see for Foyer's emails, e.g. your organization's events team. "
                    "Leave empty to use the site name.",
    )
    reply_to = EmailField(
        "Reply-to address", validators=[Length(max=320)], render_kw={"autocomplete": "email"},
        description="Where replies to Foyer's emails go. Leave empty and replies go to the sender address, "
                    "which usually nobody reads.",
    )


class TestEmailForm(FlaskForm):
    """Only the CSRF token: "send me a test email"."""


class PrivacyNoticeForm(FlaskForm):
    privacy_text = TextAreaField(
        "Privacy notice",
        validators=[Length(max=20000)],
        description="Markdown. Shown on registration pages; saving a changed text creates a new version.",
    )


class EmbedOriginsForm(FlaskForm):
    """Admin: the websites allowed to show the registration form in a frame."""

    origins = TextAreaField(
        "Websites that may embed registration forms", validators=[Length(max=5000)],
        description="One per line, as scheme and host with an optional port, e.g. https://www.example.org. "
        "https is required, except for http://localhost and http://127.0.0.1 while a website is being built.",
    )
