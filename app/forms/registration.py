"""The public registration form: the person, their time zone, the event's own questions, consent and a
honeypot. One form class per event, built from its questions.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, TimestampSigner
from markupsafe import Markup, escape
from wtforms import BooleanField, EmailField, HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from app.forms.events import MultiCheckboxField, ZoneSelect
from app.models import Event, Question, QuestionKind
from app.services import registrations
from app.services.errors import DomainError
from app.services.timezones import DEFAULT_ZONE, is_valid_zone, zone_choices

#: Text inputs that validate inline (htmx) when the person leaves them.
INLINE_KINDS = (QuestionKind.short_text, QuestionKind.long_text)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class AnswerRule:
    """Validate one question's answer with the same rules the service enforces."""

    def __init__(self, question: Question) -> None:
        self.question = question
        # Marks the field required for the `field()` macro (asterisk, `required` attribute).
        self.field_flags = {"required": True} if question.required else {}

    def __call__(self, form, field) -> None:
        try:
            registrations.check_answer(self.question, field.data)
        except DomainError as exc:
            raise ValidationError(exc.message) from exc


class RegistrationForm(FlaskForm):
    first_name = StringField("First name", filters=[_strip], render_kw={"autocomplete": "given-name"},
                             validators=[DataRequired("Enter your first name."), Length(max=registrations.NAME_MAX)])
    last_name = StringField("Last name", filters=[_strip], render_kw={"autocomplete": "family-name"},
                            validators=[DataRequired("Enter your last name."), Length(max=registrations.NAME_MAX)])
    email = EmailField(
        "Email", filters=[_strip], render_kw={"autocomplete": "email", "spellcheck": "false"},
        description="Your confirmation and personal link are sent here.",
        validators=[DataRequired("Enter your email address."), Length(max=registrations.EMAIL_MAX),
                    Email("Enter a valid email address, like name@example.org.", check_deliverability=False)],
    )
    timezone = SelectField("Your time zone", choices=zone_choices, validate_choice=False, widget=ZoneSelect(),
                           default=DEFAULT_ZONE, render_kw={"data-default-browser-zone": ""},
                           description="Times in your emails and on your registration page use this zone.")
    consent = BooleanField(validators=[DataRequired("Please agree to the privacy notice to register.")])
    #: SMS reminders (only offered when the admin has configured an SMS sender number).
    sms_opt_in = BooleanField("Also send me reminders by SMS",
                              description="Optional. Your number is used for this event's reminders only.")
    phone = StringField("Mobile number", filters=[_strip], validators=[Optional(), Length(max=40)],
                        render_kw={"autocomplete": "tel", "inputmode": "tel"},
                        description="With the country code, like +44 7911 123456. Needed only for SMS reminders.")
    #: The honeypot: hidden from people (and assistive technology); bots fill it in.
    homepage = StringField("Leave this field empty", validators=[Optional()],
                           render_kw={"autocomplete": "off", "tabindex": "-1"})
    #: When the form was first shown (signed): a submission within seconds of that is a bot's.
    started = HiddenField()

    questions: list[Question]
    #: The organization's domains, shown on organization-only events.
    allowed_domains: list[str]

    def validate_timezone(self, field) -> None:
        if not is_valid_zone(field.data):
            raise ValidationError("Choose your time zone from the list.")

    @property
    def is_bot(self) -> bool:
        """True when the honeypot was filled in."""
        return bool((self.homepage.data or "").strip())

    @staticmethod
    def _signer() -> TimestampSigner:
        return TimestampSigner(current_app.config["SECRET_KEY"], salt="foyer.registration-form-started")

    @classmethod
    def new_stamp(cls) -> str:
        """A signed "shown now" value for the hidden `started` field."""
        return cls._signer().sign(b"shown").decode()

    def stamp_start(self) -> None:
        """Mark the form as shown now (kept across re-renders, so the clock runs from the first view)."""
        self.started.data = self.new_stamp()

    def seconds_since_shown(self) -> float | None:
        """Seconds since the form was first shown, or None when the stamp is missing or forged."""
        try:
            _, signed_at = self._signer().unsign(self.started.data or "", return_timestamp=True)
        except BadSignature:
            return None
        return time.time() - signed_at.timestamp()

    def filled_too_fast(self, min_seconds: float) -> bool:
        """True when the form came back quicker than a person fills it in (or without a valid stamp)."""
        if min_seconds <= 0:
            return False
        elapsed = self.seconds_since_shown()
        return elapsed is None or elapsed < min_seconds

    def question_fields(self) -> list[tuple[Question, Any]]:
        return [(q, self[registrations.answer_field(q)]) for q in self.questions]

    def answers(self) -> dict[int, Any]:
        return {q.id: f.data for q, f in self.question_fields()}

    def to_data(self, consent_version: int | None) -> registrations.RegistrationData:
        return registrations.RegistrationData(
            first_name=self.first_name.data or "", last_name=self.last_name.data or "", email=self.email.data or "",
            timezone=self.timezone.data or DEFAULT_ZONE, answers=self.answers(), consent_version=consent_version,
            phone=self.phone.data or "", sms_opt_in=bool(self.sms_opt_in.data),
        )

    def enable_inline_validation(self, url: str) -> None:
        """Ask htmx to check text fields when the person leaves them (the page works without it)."""
        names = ["first_name", "last_name", "email", "timezone"]
        names += [registrations.answer_field(q) for q in self.questions if q.kind in INLINE_KINDS]
        for name in names:
            f = self[name]
            f.render_kw = {**(f.render_kw or {}), "hx-post": f"{url}?field={name}", "hx-trigger": "blur changed",
                           "hx-target": "closest .field", "hx-swap": "outerHTML",
                           "hx-sync": "closest form:abort"}


class OrganizationDomainsForm(FlaskForm):
    """Admin: the email domains that count as "the organization" for organization-only events."""

    domains = TextAreaField(
        "Organization email domains", validators=[Length(max=5000)],
        description="One per line or comma-separated, e.g. example.org. Only addresses at exactly these domains "
        "may register for events open to the organization only.",
    )


def _question_field(question: Question):
    rule = AnswerRule(question)
    label = question.label
    description = question.help_text or None
    if question.kind == QuestionKind.long_text:
        return TextAreaField(label, description=description, validators=[rule],
                             render_kw={"maxlength": registrations.LONG_TEXT_MAX})
    if question.kind == QuestionKind.single_choice:
        return RadioField(label, description=description, choices=[SelectChoice(o, o) for o in question.options],
                          validate_choice=False, validators=[rule])
    if question.kind == QuestionKind.multiple_choice:
        choices = [SelectChoice(o, o) for o in question.options]
        return MultiCheckboxField(label, description=description, choices=choices, validate_choice=False,
                                  validators=[rule])
    if question.kind == QuestionKind.checkbox:
        return BooleanField(label, description=description, validators=[rule])
    return StringField(label, description=description, validators=[rule],
                       render_kw={"maxlength": registrations.SHORT_TEXT_MAX})


def registration_form(event: Event, *, privacy_url: str, formdata=None, **kwargs) -> RegistrationForm:
    """The registration form for this event, with a field `q_<id>` per custom question."""
    questions = list(event.questions)
    attrs = {registrations.answer_field(q): _question_field(q) for q in questions}
    form_class = type("EventRegistrationForm", (RegistrationForm,), attrs)
    if formdata is None:
        form = form_class(**kwargs)
    else:
        form = form_class(formdata=formdata, **kwargs)
    form.questions = questions
    form.consent.label.text = Markup(  # noqa: S704  (the URL is escaped; the rest is our own text)
        'I have read the <a href="{}" target="_blank" rel="noopener">privacy notice (opens in a new tab)</a> '
        "and agree that my details are used to run this event."
    ).format(escape(privacy_url))
    return form
