"""Sign-in, first-run setup, password and invitation forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class _NewPassword:
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
    )


class SetupForm(FlaskForm, _NewPassword):
    setup_code = StringField(_l("Setup code"), validators=[DataRequired(), Length(max=64)],
                             render_kw={"autocomplete": "off", "spellcheck": "false"},
                             description=_l("Printed in Foyer's log (the terminal running it) when the server "
                                            "started."))
    name = StringField(_l("Your name"), validators=[Length(max=200)])
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class PasswordChangeForm(FlaskForm, _NewPassword):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1024)])


class AcceptInvitationForm(FlaskForm, _NewPassword):
    pass


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])


class ResetPasswordForm(FlaskForm, _NewPassword):
    pass
