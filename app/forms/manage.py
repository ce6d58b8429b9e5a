"""Forms behind an attendee's personal link: change details, cancel, erase. The details form is the
event's registration form without the fields that cannot change (email, consent, honeypot), so the
questions are validated by exactly the same rules as at sign-up.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import DataRequired

from app.forms.registration import RegistrationForm, registration_form
from app.models import QuestionKind, Registration
from app.services.registration import registrations

#: Registration-form fields an attendee cannot change afterwards.
FIXED_FIELDS = ("email", "consent", "homepage")


def details_form(reg: Registration, *, privacy_url: str) -> RegistrationForm:
    """The name, time zone and answers of a registration, pre-filled (request data wins on POST)."""
    data: dict[str, Any] = {"first_name": reg.first_name, "last_name": reg.last_name, "timezone": reg.timezone}
    by_question = {a.question_id: a.value for a in reg.answers if a.question_id is not None}
    for question in reg.event.questions:
        value = by_question.get(question.id)
        if value is None and question.kind == QuestionKind.multiple_choice:
            value = []
        data[registrations.answer_field(question)] = value
    form = registration_form(reg.event, privacy_url=privacy_url, data=data)
    for name in FIXED_FIELDS:
        delattr(form, name)
    form.timezone.render_kw = {k: v for k, v in (form.timezone.render_kw or {}).items()
                               if k != "data-default-browser-zone"}
    return form


class CancelRegistrationForm(FlaskForm):
    """Cancel (or leave the waitlist): the button is the confirmation."""


class EraseRegistrationForm(FlaskForm):
    """Delete my data: an explicit tick, because it cannot be undone."""

    confirm = BooleanField(
        _l("I understand that my registration and everything I entered will be deleted for good."),
        validators=[DataRequired(_l("Tick the box to confirm that you want your data deleted."))],
    )
