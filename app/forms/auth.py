"""Sign-in, first-run setup, password and invitation forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class _NewPassword:
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        "Repeat the password", validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")]
    )


class SetupForm(FlaskForm, _NewPassword):
    setup_code = StringField("Setup code", validators=[DataRequired(), Length(max=64)],
                             render_kw={"autocomplete": "off", "spellcheck": "false"},
                             description="Printed in Foyer's log (the terminal running it) when the server started.")
    name = StringField("Your name", validators=[Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class PasswordChangeForm(FlaskForm, _NewPassword):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])


class AcceptInvitationForm(FlaskForm, _NewPassword):
    pass


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])


class ResetPasswordForm(FlaskForm, _NewPassword):
    pass
