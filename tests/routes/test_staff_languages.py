"""Staff pages, forms and emails are translatable: rendered in German (`force_locale`), their texts and form
errors are German. Staff pages still follow English (app/i18n.py); this checks the translations themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import render_template
from flask_babel import force_locale

from app.forms.admin import CreateUserForm
from app.forms.auth import LoginForm
from app.services.messaging.rendering import render_staff

pytestmark = pytest.mark.db_agnostic  # templates rendered in-process: no SQL of their own

MISMATCHED = {"name": "Bea", "email": "bea@example.org", "role": "admin", "password": "long enough 1",
              "confirm": "long enough 2"}


def _create_user_page(app) -> str:
    with app.test_request_context("/admin/users/new", method="POST", data=MISMATCHED):
        form = CreateUserForm(meta={"csrf": False})
        assert not form.validate()
        return render_template("admin/user_new.html", form=form)


def test_sign_in_and_a_form_error_in_german(app, app_ctx):
    with app.test_request_context("/login"), force_locale("de"):
        page = render_template("auth/login.html", form=LoginForm(meta={"csrf": False}), next="",
                               microsoft_sign_in=True)
    assert "Anmeldung für Mitarbeitende" in page and "Passwort vergessen?" in page and "Mit Microsoft anmelden" in page
    assert "Forgot your password?" not in page

    with force_locale("de"):
        page = _create_user_page(app)
    assert "Benutzer mit Passwort anlegen" in page and "Passwort wiederholen" in page
    assert "Die beiden Passwörter stimmen nicht überein." in page and ">Administrator</option>" in page
    assert "The two passwords differ." not in page

    page = _create_user_page(app)  # English, the default, is unchanged
    assert "Create a user with a password" in page and "The two passwords differ." in page
    assert ">Admin</option>" in page


def test_a_staff_email_in_german(app, app_ctx):
    expires = datetime(2031, 5, 20, 16, 0, tzinfo=UTC)
    with force_locale("de"):
        mail = render_staff("staff_invite", name="Bea", link="https://foyer.example/invitation/x", expires=expires,
                            role="Veranstalter")
    assert mail.subject.startswith("Sie sind zu ") and mail.subject.endswith(" eingeladen")
    assert "Hallo Bea," in mail.text and "als Veranstalter" in mail.text and "Wählen Sie Ihr Passwort" in mail.text
    assert "Der Link funktioniert einmal, bis Di., 20. Mai 2031, 16:00 (UTC)." in mail.text
    assert "Mein Passwort wählen" in mail.html

    mail = render_staff("staff_invite", name="Bea", link="https://foyer.example/invitation/x", expires=expires,
                        role="an organizer")
    assert mail.subject.startswith("You're invited to ")
    assert "The link works once, until Tuesday 20 May 2031, 16:00 (UTC)." in mail.text
