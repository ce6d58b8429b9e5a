"""The public registration form: the person, their time zone, the event's own questions, consent and a
honeypot. One form class per event, built from its questions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask import current_app
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from itsdangerous import BadData, BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from markupsafe import Markup, escape
from wtforms import BooleanField, EmailField, HiddenField, RadioField, StringField, TextAreaField
from wtforms.csrf.core import CSRF
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from app.forms.events import MultiCheckboxField
from app.forms.html_params import html_params
from app.models import Event, Question, QuestionKind
from app.services.core.errors import DomainError
from app.services.core.timezones import COMMON_ZONES, DEFAULT_ZONE, all_zones, canonical_zone, is_valid_zone, zone_error
from app.services.registration import registrations

#: Text inputs that validate inline (htmx) when the person leaves them.
INLINE_KINDS = (QuestionKind.short_text, QuestionKind.long_text)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _zone(value):
    """A typed zone in its exact IANA spelling when it names one ("europe/paris" -> "Europe/Paris")."""
    return canonical_zone(value) if isinstance(value, str) else value


#: The longest zone name anyone needs to type (the longest IANA name is about 30 characters).
ZONE_MAX = 64
#: Where every zone name is listed (a page of its own, cached by browsers: see public.time_zones_GET).
ALL_ZONES_URL = "/time-zones"


@lru_cache(maxsize=1)
def _common_zones_html() -> str:
    return "".join(f"<option>{escape(z)}</option>" for z in COMMON_ZONES if z in all_zones())


class ZoneInput:
    """A text input suggesting the common zones (a <datalist>); every other zone can be typed.

    The ~600 names are not sent with every form: they are on their own page, linked from the hint.
    """

    def __call__(self, field, **kwargs):
        kwargs.setdefault("id", field.id)
        kwargs.setdefault("type", "text")
        value = field._value() if hasattr(field, "_value") else (field.data or "")
        datalist = f"{kwargs['id']}-common"
        attrs = html_params(name=field.name, value=value, list=datalist, maxlength=ZONE_MAX, autocomplete="off",
                            spellcheck="false", autocapitalize="none", **kwargs)
        return Markup(f'<input {attrs}><datalist id="{escape(datalist)}">{_common_zones_html()}</datalist>')  # noqa: S704


@dataclass(frozen=True)
class QuestionSpec:
    """What a question's form field is built from: a plain, hashable copy of the question's columns.

    The form class is cached across requests (see `registration_form`), so its fields must not hold a
    database object from the request that built it.
    """

    id: int
    kind: QuestionKind
    label: str
    help_text: str
    required: bool
    options: tuple[str, ...]

    @classmethod
    def of(cls, question: Question) -> QuestionSpec:
        return cls(question.id, QuestionKind(question.kind), question.label, question.help_text or "",
                   bool(question.required), tuple(question.options or ()))


class AnswerRule:
    """Validate one question's answer with the same rules the service enforces."""

    def __init__(self, question: QuestionSpec) -> None:
        self.question = question
        # Marks the field required for the `field()` macro (asterisk, `required` attribute).
        self.field_flags = {"required": True} if question.required else {}

    def __call__(self, form, field) -> None:
        try:
            registrations.check_answer(self.question, field.data)
        except DomainError as exc:
            raise ValidationError(exc.message) from exc


class RegistrationForm(FlaskForm):
    first_name = StringField(_l("First name"), filters=[_strip], render_kw={"autocomplete": "given-name"},
                             validators=[DataRequired(_l("Enter your first name.")),
                                         Length(max=registrations.NAME_MAX)])
    last_name = StringField(_l("Last name"), filters=[_strip], render_kw={"autocomplete": "family-name"},
                            validators=[DataRequired(_l("Enter your last name.")), Length(max=registrations.NAME_MAX)])
    email = EmailField(
        _l("Email"), filters=[_strip], render_kw={"autocomplete": "email", "spellcheck": "false"},
        description=_l("Your confirmation and personal link are sent here."),
        validators=[DataRequired(_l("Enter your email address.")), Length(max=registrations.EMAIL_MAX),
                    Email(_l("Enter a valid email address, like name@example.org."), check_deliverability=False)],
    )
    timezone = StringField(
        _l("Your time zone"), filters=[_zone], widget=ZoneInput(), default=DEFAULT_ZONE,
        render_kw={"data-default-browser-zone": ""},
        # A lazy string renders as markup (our own text and URL, and our translators').
        description=_l("Times in your emails and on your registration page use this zone. Type a name like "
                       "Europe/Paris or choose a common one; <a href=\"%(url)s\" target=\"_blank\" "
                       "rel=\"noopener\">see all time zones (opens in a new tab)</a>.", url=ALL_ZONES_URL),
    )
    consent = BooleanField(validators=[DataRequired(_l("Please agree to the privacy notice to register."))])
    #: SMS reminders (only offered when the admin has configured an SMS sender number).
    sms_opt_in = BooleanField(_l("Also send me reminders by SMS"),
                              description=_l("Optional. Your number is used for this event's reminders only."))
    phone = StringField(_l("Mobile number"), filters=[_strip], validators=[Optional(), Length(max=40)],
                        render_kw={"autocomplete": "tel", "inputmode": "tel"},
                        description=_l("With the country code, like +44 7911 123456. Needed only for SMS reminders."))
    #: The honeypot: hidden from people (and assistive technology); bots fill it in.
    homepage = StringField(_l("Leave this field empty"), validators=[Optional()],
                           render_kw={"autocomplete": "off", "tabindex": "-1"})
    #: When the form was first shown (signed): a submission within seconds of that is a bot's.
    started = HiddenField()

    questions: list[Question]
    #: The organization's domains, shown on organization-only events.
    allowed_domains: list[str]

    def validate_timezone(self, field) -> None:
        if not is_valid_zone(field.data):
            raise ValidationError(zone_error(field.data))

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
            phone=self.phone.data or "", sms_opt_in=bool(self.sms_opt_in.data), language=str(get_locale() or ""),
        )

    def enable_inline_validation(self, url: str) -> None:
        """Ask htmx to check text fields when the person leaves them (the page works without it).

        The checks queue on the form: one field left while another's check is still on its way is checked
        after it rather than dropped, and submitting waits for the check in flight and drops the queued
        ones (the submission checks every field anyway).
        """
        names = ["first_name", "last_name", "email", "timezone"]
        names += [registrations.answer_field(q) for q in self.questions if q.kind in INLINE_KINDS]
        for name in names:
            f = self[name]
            f.render_kw = {**(f.render_kw or {}), "hx-post": f"{url}?field={name}", "hx-trigger": "blur changed",
                           "hx-target": "closest .field", "hx-swap": "outerHTML",
                           "hx-sync": "closest form:queue all"}


class OrganizationDomainsForm(FlaskForm):
    """Admin: the email domains that count as "the organization" for organization-only events."""

    domains = TextAreaField(
        _l("Organization email domains"), validators=[Length(max=5000)],
        description=_l("One per line or comma-separated, e.g. example.org. Only addresses at exactly these domains "
                       "may register for events open to the organization only."),
    )


def _question_field(question: QuestionSpec):
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


class EmbeddedFormCSRF(CSRF):
    """CSRF for the registration form in a frame on another website, where no cookie of Foyer's arrives.

    Browsers send no SameSite=Lax session cookie with a request from a cross-site frame (and block
    third-party cookies more and more), so the session-bound token of every other form cannot work
    there. This token is bound to the event instead: signed with the secret key, expiring after
    WTF_CSRF_TIME_LIMIT, and worthless for any other event or form. The route also refuses a POST whose
    Origin is not Foyer's own (docs/embedding.md explains the pair).
    """

    SALT = "foyer.embedded-registration-csrf"

    def setup_form(self, form):
        self.event_id = form.meta.csrf_context
        self.time_limit = form.meta.csrf_time_limit
        return super().setup_form(form)

    @classmethod
    def _serializer(cls) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=cls.SALT)

    def generate_csrf_token(self, csrf_token_field) -> str:
        return self._serializer().dumps({"event": self.event_id})

    def validate_csrf_token(self, form, field) -> None:
        try:
            data = self._serializer().loads(field.data or "", max_age=self.time_limit)
        except SignatureExpired as exc:
            raise ValidationError("The CSRF token has expired.") from exc
        except BadData as exc:
            raise ValidationError("The CSRF token is missing or invalid.") from exc
        if not isinstance(data, dict) or data.get("event") != self.event_id:
            raise ValidationError("The CSRF token belongs to another form.")


def embedded_form_meta(event: Event) -> dict[str, Any]:
    """Form `meta` for the registration form shown in a frame: its CSRF token is bound to the event."""
    return {"csrf_class": EmbeddedFormCSRF, "csrf_context": event.id}


#: Form classes kept for this many distinct question sets (a class is a few kilobytes).
FORM_CLASSES_KEPT = 256


@lru_cache(maxsize=FORM_CLASSES_KEPT)
def form_class_for(specs: tuple[QuestionSpec, ...]) -> type[RegistrationForm]:
    """The form class for one set of questions, built once: WTForms' class setup is most of a form's cost.

    Keyed by the questions' content, so an organizer's edit (label, options, required, order, a question
    added or removed) makes a new key and the next form is built from it; nothing has to be invalidated.
    """
    attrs = {registrations.answer_field(q.id): _question_field(q) for q in specs}
    return type("EventRegistrationForm", (RegistrationForm,), attrs)


def registration_form(event: Event, *, privacy_url: str, formdata=None, questions: Sequence[Question] | None = None,
                      **kwargs) -> RegistrationForm:
    """The registration form for this event, with a field `q_<id>` per custom question (`questions`, or
    the event's own).
    """
    questions = list(event.questions if questions is None else questions)
    form_class = form_class_for(tuple(QuestionSpec.of(q) for q in questions))
    if formdata is None:
        form = form_class(**kwargs)
    else:
        form = form_class(formdata=formdata, **kwargs)
    form.questions = questions
    if formdata is None and "data" not in kwargs and "timezone" not in kwargs and not form.is_submitted():
        # A fresh form: the event's zone until the page's script puts the device's zone in its place.
        form.timezone.data = event.timezone
        form.timezone.render_kw = {**(form.timezone.render_kw or {}), "data-default-browser-zone": "prefer"}
    form.consent.label.text = Markup(  # noqa: S704  (the URL is escaped; the rest is our own text)
        str(escape(gettext("I have read the %(link_start)sprivacy notice (opens in a new tab)%(link_end)s and "
                           "agree that my details are used to run this event.", link_start="\x00", link_end="\x01")))
        .replace("\x00", '<a href="{}" target="_blank" rel="noopener">').replace("\x01", "</a>")
    ).format(escape(privacy_url))
    return form
