"""Organizer forms: the event, its registration questions and speakers, and cancellation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from flask_babel import format_number, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from markupsafe import Markup, escape
from werkzeug.datastructures import FileStorage
from wtforms import BooleanField, Field, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields import DateField, DateTimeLocalField, EmailField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.forms.html_params import html_params
from app.i18n import language_name
from app.models import QuestionKind
from app.services.core.errors import DomainError
from app.services.core.timezones import NonexistentLocalTime, is_valid_zone, local_to_utc, zone_choices, zone_label
from app.services.core.uploads import InvalidUpload, ProcessedImage, process_image
from app.services.events import events as event_rules
from app.services.events.catalog import normalize_tags
from app.services.events.series import RepeatData
from app.services.events.sessions import SessionData

#: datetime-local inputs send "2026-03-29T10:00" (seconds only when a step asks for them).
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
INVALID_DATETIME = _l("Enter a date and time, e.g. 2026-03-29 10:00.")
YEAR_RANGE = (2000, 2100)
DATETIME_FIELDS = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")


#: Control characters (NUL breaks PostgreSQL text); tabs and line breaks are kept.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(value):
    """Drop control characters that no one types on purpose."""
    return _CONTROL.sub("", value) if isinstance(value, str) else value


def _strip(value):
    return _clean(value).strip() if isinstance(value, str) else value


def _strip_lower(value):
    return _strip(value).lower() if isinstance(value, str) else value


#: The zone list's groups (the keys of `zone_choices`) as organizers read them.
ZONE_GROUPS = {"Common time zones": _l("Common time zones"), "All time zones": _l("All time zones")}


@lru_cache(maxsize=8)
def _zone_options_html(language: str) -> str:
    """Every zone as <optgroup>/<option> markup, built once per language: the list has ~600 entries.

    An option whose label is its value leaves the value out (HTML then submits the label), which
    keeps a third of the page's weight off every event page.
    """
    parts = []
    for group, zones in zone_choices().items():
        parts.append(f'<optgroup label="{escape(str(ZONE_GROUPS.get(group, group)))}">')
        parts.extend(_option(value, label) for value, label in zones.items())
        parts.append("</optgroup>")
    return "".join(parts)


def _option(value: str, label: str, *, selected: bool = False) -> str:
    chosen = " selected" if selected else ""
    if value == label:
        return f"<option{chosen}>{escape(label)}</option>"
    return f'<option{chosen} value="{escape(value)}">{escape(label)}</option>'


class ZoneSelect:
    """Renders the zone <select> from the cached options, marking the chosen one."""

    def __call__(self, field, **kwargs):
        kwargs.setdefault("id", field.id)
        options = _zone_options_html(str(get_locale()))
        value = field.data if isinstance(field.data, str) else ""
        if value and is_valid_zone(value):
            label = zone_label(value)
            options = options.replace(_option(value, label), _option(value, label, selected=True), 1)
        return Markup(f"<select {html_params(name=field.name, **kwargs)}>{options}</select>")  # noqa: S704


class MultiCheckboxField(SelectMultipleField):
    """A group of checkboxes; templates render it as a fieldset with one label per box."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _read_local_times(form: FlaskForm, names: tuple[str, ...], zone: str, into: dict[str, datetime | None]) -> bool:
    """Read each datetime-local field in `names` as a time in `zone`, into `into` as UTC (None where blank or
    already in error). A year out of range, or a time the clocks skip that day, becomes the field's error;
    False when there was one.
    """
    ok = True
    for name in names:
        f = getattr(form, name)
        into[name] = None
        if f.data is None or f.errors:
            continue
        if not YEAR_RANGE[0] <= f.data.year <= YEAR_RANGE[1]:
            f.errors.append(_("Choose a date between the years %(first)s and %(last)s.",
                              first=YEAR_RANGE[0], last=YEAR_RANGE[1]))
            ok = False
            continue
        try:
            into[name] = local_to_utc(f.data, zone)
        except NonexistentLocalTime:
            f.errors.append(_("%(time)s does not exist on that day in %(zone)s: the clocks go forward then. "
                              "Choose another time.", time=f.data.strftime("%H:%M"), zone=zone))
            ok = False
    return ok


def _reminder_choices() -> list[SelectChoice]:
    """The preset reminder times, named in the current language (a form is built in its request)."""
    return [SelectChoice(m, event_rules.describe_offset(m)) for m in event_rules.REMINDER_PRESETS]


def _image_from(field, *, max_side: int) -> ProcessedImage | None:
    """Validate an uploaded image field; None when no file was chosen."""
    upload = field.data
    if not isinstance(upload, FileStorage) or not upload.filename:
        return None
    try:
        return process_image(upload.stream, max_side=max_side)
    except InvalidUpload as exc:
        name = upload.filename[-80:]
        raise ValidationError(_("“%(name)s” was not accepted: %(reason)s", name=name, reason=exc.message)) from exc


class EventForm(FlaskForm):
    title = StringField(_l("Title"), filters=[_strip],
                        validators=[DataRequired(_l("Give the event a title.")), Length(max=200)])
    slug = StringField(
        _l("Web address"),
        filters=[_strip_lower],
        description=_l("Lower-case letters, digits and hyphens. Leave blank to make one from the title. "
                       "Changing it breaks links already shared."),
        validators=[Optional(), Length(max=event_rules.SLUG_MAX)],
    )
    description = TextAreaField(
        _l("Description"), filters=[_clean],
        description=_l("Markdown: **bold**, *italic*, ## headings, - lists and [links](https://example.org)."),
        validators=[Length(max=20_000)],
    )
    tags = StringField(
        _l("Tags"), filters=[_strip], validators=[Length(max=500)],
        description=_l("Optional, comma-separated, e.g. “security, beginners”. People filter the event list by tag."),
    )
    timezone = SelectField(_l("Time zone"), choices=zone_choices, validate_choice=False, widget=ZoneSelect(),
                           description=_l("Start and end times below are in this zone."))
    starts_at = DateTimeLocalField(_l("Starts"), format=DATETIME_FORMATS, invalid_value_message=INVALID_DATETIME,
                                   validators=[InputRequired(_l("Choose when the event starts."))])
    ends_at = DateTimeLocalField(_l("Ends"), format=DATETIME_FORMATS, invalid_value_message=INVALID_DATETIME,
                                 validators=[InputRequired(_l("Choose when the event ends."))])
    capacity = StringField(_l("Capacity"), filters=[_strip], description=_l("Leave blank for unlimited seats."),
                           render_kw={"inputmode": "numeric"})
    registration_opens_at = DateTimeLocalField(
        _l("Registration opens"), format=DATETIME_FORMATS, invalid_value_message=INVALID_DATETIME,
        validators=[Optional()], description=_l("Optional. Blank: open as soon as the event is published."),
    )
    registration_closes_at = DateTimeLocalField(
        _l("Registration closes"), format=DATETIME_FORMATS, invalid_value_message=INVALID_DATETIME,
        validators=[Optional()], description=_l("Optional. Blank: open until the event ends."),
    )
    approval_required = BooleanField(_l("Approve each registration by hand"))
    waitlist_enabled = BooleanField(_l("Offer a waitlist when the event is full"), default=True)
    who_can_register = SelectField(
        _l("Who can register"),
        choices=[SelectChoice("everyone", _l("Anyone")),
                 SelectChoice("organization", _l("Only people with an email address at the organization's domains"))],
        default="everyone",
        description=_l("The organization's domains are set by an admin. Organization-only events always ask people "
                       "to confirm their address."),
    )
    require_email_verification = BooleanField(
        _l("Ask people to confirm their email address before their registration counts"),
        description=_l("Foyer emails a link; the place is held for 24 hours until it is clicked."),
    )
    attendee_lobby = SelectField(
        _l("How attendees enter the Teams meeting"),
        choices=[SelectChoice("bypass", _l("Straight in")),
                 SelectChoice("lobby", _l("Wait in the lobby until a presenter admits them"))],
        default="bypass",
        description=_l("Applies to people joining from their Foyer link."),
    )
    allow_attendee_mic = BooleanField(
        _l("Attendees may turn on their microphone"), default=True,
        description=_l("Untick for a talk where only the organizer speaks. Applies to everyone in the meeting "
                       "except the organizer."),
    )
    allow_attendee_camera = BooleanField(
        _l("Attendees may turn on their camera"), default=True,
        description=_l("Untick to keep attendees' video off; only the organizer is seen."),
    )
    meeting_chat = SelectField(
        _l("Meeting chat"),
        choices=[SelectChoice("enabled", _l("On: everyone in the meeting can chat")),
                 SelectChoice("disabled", _l("Off"))],
        default="enabled",
        description=_l("The chat beside the call in Teams and on the join page. Only the organizer presents "
                       "(shares a screen), whatever you choose here."),
    )
    call_experience = SelectField(
        _l("What attendees see on the join page"),
        choices=[SelectChoice("call_with_chat", _l("The call with the meeting chat")),
                 SelectChoice("call_only", _l("The call only"))],
        default="call_with_chat",
    )
    join_opens_minutes = IntegerField(
        _l("Joining opens (minutes before the start)"), default=15,
        validators=[Optional(), NumberRange(min=0, max=24 * 60, message=_l("Enter between 0 and 1440 minutes."))],
        description=_l("The join page counts down until then and opens the call by itself."),
    )
    join_grace_minutes = IntegerField(
        _l("Join link keeps working (minutes after the end)"), default=30,
        validators=[Optional(), NumberRange(min=0, max=24 * 60, message=_l("Enter between 0 and 1440 minutes."))],
        description=_l("For overruns. After that the link shows a thank-you page."),
    )
    recording_url = StringField(
        _l("Recording link"), filters=[_strip], validators=[Optional(), Length(max=2000)],
        description=_l("Optional. Shown on the join page once the event has ended."),
    )
    reminders = MultiCheckboxField(_l("Reminders"), coerce=int, choices=_reminder_choices, default=[24 * 60, 60])
    reminder_custom = StringField(
        _l("Other reminder times"), filters=[_strip], validators=[Length(max=200)],
        description=_l("Optional, comma-separated, e.g. “2 days, 30 minutes”."),
    )
    banner = FileField(_l("Banner image"), description=_l("JPEG, PNG, WebP or GIF, at most 5 MB."),
                       render_kw={"data-max-bytes": 5 * 1024 * 1024})
    banner_alt = StringField(_l("Banner description (alt text)"), filters=[_strip], validators=[Length(max=300)],
                             description=_l("Describe the image for people who cannot see it; "
                                            "leave blank if it is only decoration."))
    remove_banner = BooleanField(_l("Remove the current banner"))
    co_organizers = MultiCheckboxField(_l("Co-organizers"), coerce=int, validate_choice=False)
    notify_attendees = BooleanField(
        _l("Email registrants if the title or time changes"),
        description=_l("They get the old and new details and an updated calendar invitation."),
    )

    #: The languages this form has a title and description of their own for (see `event_form_class`).
    text_languages: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.banner_image: ProcessedImage | None = None
        self.tag_list: list[str] = []
        self.utc: dict[str, datetime | None] = {}
        self.capacity_value: int | None = None
        self.reminder_offsets: list[int] = []
        #: The saved start of the event being edited: an unchanged start may lie in the past, a new one not.
        self.saved_starts_at: datetime | None = None

    def validate_timezone(self, field):
        if not is_valid_zone(field.data):
            raise ValidationError(_("Choose a time zone from the list."))

    def validate_slug(self, field):
        if field.data:
            problem = event_rules.slug_problem(field.data)
            if problem:
                raise ValidationError(problem)

    def validate_capacity(self, field):
        self.capacity_value = None
        if not field.data:
            return
        if not re.fullmatch(r"[0-9]{1,9}", field.data):
            raise ValidationError(_("Enter a whole number of seats, or leave blank for unlimited."))
        value = int(field.data)
        if not 1 <= value <= event_rules.CAPACITY_MAX:
            raise ValidationError(_("Capacity must be between 1 and %(max)s, or blank for unlimited.",
                                    max=format_number(event_rules.CAPACITY_MAX)))
        self.capacity_value = value

    def validate_banner(self, field):
        self.banner_image = _image_from(field, max_side=2400)

    def validate_tags(self, field):
        try:
            self.tag_list = normalize_tags(field.data)
        except DomainError as exc:
            raise ValidationError(exc.message) from exc

    def validate(self, extra_validators=None) -> bool:
        """Field checks, then the times read in the chosen zone, then the schedule rules."""
        ok = super().validate(extra_validators)
        ok = self._validate_reminders() and ok
        zone = self.timezone.data
        if not is_valid_zone(zone):
            return False
        ok = _read_local_times(self, DATETIME_FIELDS, zone, self.utc) and ok
        # The schedule rules run on every time that could be read, beside any other error, so the organizer
        # sees every problem at once; a field already in error gets no second message.
        problems = event_rules.schedule_problems(*(self.utc[n] for n in DATETIME_FIELDS))
        starts = self.utc.get("starts_at")
        if starts is not None and starts != self.saved_starts_at and starts < datetime.now(UTC):
            problems.insert(0, ("starts_at", _("This time has already passed. Choose a start in the future.")))
        for name, message in problems:
            f = getattr(self, name)
            if not f.errors:
                f.errors.append(message)
            ok = False
        return ok

    def _validate_reminders(self) -> bool:
        try:
            custom = event_rules.parse_reminder_offsets(self.reminder_custom.data or "")
            self.reminder_offsets = event_rules.normalize_reminder_offsets([*(self.reminders.data or []), *custom])
        except DomainError as exc:
            self.reminder_custom.errors = [*self.reminder_custom.errors, exc.message]
            return False
        return True

    def to_data(self) -> event_rules.EventData:
        """The validated values as the service's EventData."""
        return event_rules.EventData(
            title=self.title.data,
            slug=self.slug.data or "",
            description=self.description.data or "",
            timezone=self.timezone.data,
            starts_at=self.utc["starts_at"],
            ends_at=self.utc["ends_at"],
            capacity=self.capacity_value,
            registration_opens_at=self.utc.get("registration_opens_at"),
            registration_closes_at=self.utc.get("registration_closes_at"),
            approval_required=bool(self.approval_required.data),
            waitlist_enabled=bool(self.waitlist_enabled.data),
            who_can_register=self.who_can_register.data or "everyone",
            require_email_verification=bool(self.require_email_verification.data),
            attendee_lobby=self.attendee_lobby.data or "bypass",
            allow_attendee_mic=bool(self.allow_attendee_mic.data),
            allow_attendee_camera=bool(self.allow_attendee_camera.data),
            meeting_chat=self.meeting_chat.data or "enabled",
            call_experience=self.call_experience.data or "call_with_chat",
            join_opens_minutes=15 if self.join_opens_minutes.data is None else self.join_opens_minutes.data,
            join_grace_minutes=30 if self.join_grace_minutes.data is None else self.join_grace_minutes.data,
            recording_url=self.recording_url.data or "",
            reminder_offsets=self.reminder_offsets,
            banner=self.banner_image,
            banner_alt=self.banner_alt.data or "",
            remove_banner=bool(self.remove_banner.data),
            tags=self.tag_list,
            co_organizer_ids=list(self.co_organizers.data or []) if "co_organizers" in self else None,
            notify_attendees=bool(self.notify_attendees.data),
            texts={code: event_rules.TextData(self[f"title_{code}"].data or "", self[f"description_{code}"].data or "")
                   for code in self.text_languages},
        )

    def text_fields(self) -> list[Field]:
        """The title and description fields of each of `text_languages`, in order."""
        return [self[f"{name}_{code}"] for code in self.text_languages for name in ("title", "description")]


@lru_cache(maxsize=8)
def event_form_class(languages: tuple[str, ...]) -> type[EventForm]:
    """EventForm with an optional title and description (`title_<code>`, `description_<code>`) in each of
    `languages`, the ones offered besides the default: where they are blank, readers see the main text.
    """
    fields: dict[str, Field] = {}
    for code in languages:
        name = language_name(code)
        fields[f"title_{code}"] = StringField(_l("Title (%(language)s)", language=name), filters=[_strip],
                                              validators=[Length(max=200)])
        fields[f"description_{code}"] = TextAreaField(_l("Description (%(language)s)", language=name),
                                                      filters=[_clean], validators=[Length(max=20_000)])
    return type("EventForm", (EventForm,), {"text_languages": languages, **fields})


class QuestionForm(FlaskForm):
    """A registration question; several appear on one page, so each gets a prefix.

    CSRF is checked for every POST by CSRFProtect (the token rides in the form and in the htmx header).
    """

    class Meta:
        csrf = False

    kind = SelectField(_l("Kind"), choices=[SelectChoice(k.value, k.label) for k in QuestionKind],
                       default=QuestionKind.short_text.value)
    label = StringField(_l("Question"), filters=[_strip],
                        validators=[DataRequired(_l("Write the question.")), Length(max=300)])
    help_text = StringField(_l("Help text"), filters=[_strip], validators=[Length(max=500)],
                            description=_l("Optional hint shown under the question."))
    required = BooleanField(_l("Answer required"))
    options = TextAreaField(_l("Options"), filters=[_clean], validators=[Length(max=10_000)],
                            description=_l("For choice questions: one option per line, at least two."))

    def validate_kind(self, field):
        if field.data not in {k.value for k in QuestionKind}:
            raise ValidationError(_("Choose a kind of question."))

    def validate_options(self, field):
        if self.kind.data in {k.value for k in QuestionKind}:
            try:
                event_rules.clean_options(QuestionKind(self.kind.data), self.option_lines())
            except DomainError as exc:
                raise ValidationError(exc.message) from exc

    def option_lines(self) -> list[str]:
        return (self.options.data or "").splitlines()

    def to_data(self) -> event_rules.QuestionData:
        return event_rules.QuestionData(kind=QuestionKind(self.kind.data), label=self.label.data,
                                        help_text=self.help_text.data or "", required=bool(self.required.data),
                                        options=self.option_lines())


class SpeakerForm(FlaskForm):
    """A speaker; prefixed like QuestionForm, CSRF checked globally."""

    class Meta:
        csrf = False

    name = StringField(_l("Name"), filters=[_strip],
                       validators=[DataRequired(_l("Give the speaker's name.")), Length(max=200)])
    title = StringField(_l("Role or affiliation"), filters=[_strip], validators=[Length(max=200)])
    bio = TextAreaField(_l("Bio"), filters=[_clean], validators=[Length(max=5000)])
    email = EmailField(_l("Email address"), filters=[_strip], validators=[Length(max=320)],
                       render_kw={"autocomplete": "off", "spellcheck": "false"},
                       description=_l("Optional and never shown publicly. With an address, the speaker gets the "
                                      "Teams invitation and presents in the meeting."))
    photo = FileField(_l("Photo"), description=_l("Optional. JPEG, PNG, WebP or GIF, at most 5 MB."),
                      render_kw={"data-max-bytes": 5 * 1024 * 1024})
    remove_photo = BooleanField(_l("Remove the current photo"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.photo_image: ProcessedImage | None = None

    def validate_photo(self, field):
        self.photo_image = _image_from(field, max_side=800)

    def to_data(self) -> event_rules.SpeakerData:
        return event_rules.SpeakerData(name=self.name.data, title=self.title.data or "", bio=self.bio.data or "",
                                       email=self.email.data or "",
                                       photo=self.photo_image, remove_photo=bool(self.remove_photo.data))


class MoveForm(FlaskForm):
    """Move an item up or down (the button's value)."""

    class Meta:
        csrf = False

    direction = StringField("Direction", validators=[DataRequired()])

    def validate_direction(self, field):
        if field.data not in ("up", "down"):
            raise ValidationError(_("Choose to move up or down."))


class CancelEventForm(FlaskForm):
    reason = TextAreaField(
        _l("Message to attendees (optional)"), filters=[_strip], validators=[Length(max=2000)],
        description=_l("Shown on the event page and included in the cancellation notice."),
    )


class SessionForm(FlaskForm):
    """One session of a course: its times in the event's zone and an optional name."""

    name = StringField(_l("Name (optional)"), filters=[_strip], validators=[Length(max=200)],
                       description=_l("E.g. “Week 2: Testing”. Sessions are numbered either way."))
    starts_at = DateTimeLocalField(_l("Starts"), format=DATETIME_FORMATS, invalid_value_message=INVALID_DATETIME,
                                   validators=[InputRequired(_l("Enter when the session starts."))])
    ends_at = DateTimeLocalField(_l("Ends"), format=DATETIME_FORMATS, invalid_value_message=INVALID_DATETIME,
                                 validators=[InputRequired(_l("Enter when the session ends."))])
    notify_attendees = BooleanField(
        _l("Email registrants the new schedule"), default=True,
        description=_l("Only for a published event; they get an updated calendar invitation."))

    def __init__(self, *args, zone: str = "UTC", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        self.utc: dict[str, datetime | None] = {}

    def validate(self, extra_validators=None) -> bool:
        """Field checks, then the times read in the event's zone."""
        ok = super().validate(extra_validators)
        return _read_local_times(self, ("starts_at", "ends_at"), self.zone, self.utc) and ok

    def to_data(self) -> SessionData:
        return SessionData(name=self.name.data or "", starts_at=self.utc["starts_at"], ends_at=self.utc["ends_at"],
                           notify_attendees=bool(self.notify_attendees.data))


class RemoveSessionForm(FlaskForm):
    notify_attendees = BooleanField(_l("Email registrants the new schedule"), default=True)


class RepeatForm(FlaskForm):
    """Repeat an event: how often, and how many times in all or until when."""

    frequency = SelectField(_l("Repeats"), choices=[SelectChoice("weekly", _l("Weekly")),
                                                    SelectChoice("monthly", _l("Monthly, on the same weekday"))],
                            validators=[InputRequired()])
    interval = IntegerField(_l("Every"), default=1,
                            validators=[InputRequired(_l("Enter a number.")), NumberRange(1, 12)],
                            description=_l("1 for every week (or month), 2 for every other one, and so on."))
    count = IntegerField(_l("How many times in all"), validators=[Optional(), NumberRange(2, 52)],
                         description=_l("This event included. Or leave it empty and give the last date."))
    until = DateField(_l("Or until (the last date)"), validators=[Optional()],
                      description=_l("In the event's time zone."))

    def to_data(self) -> RepeatData:
        return RepeatData(frequency=self.frequency.data, interval=self.interval.data or 1, count=self.count.data,
                          until=self.until.data)


class SeriesForm(FlaskForm):
    """The title and description of every future occurrence of a series."""

    title = StringField(_l("Title"), filters=[_strip], validators=[DataRequired(_l("Give the events a title.")),
                                                                   Length(max=200)])
    description = TextAreaField(_l("Description (Markdown)"), filters=[_clean], validators=[Length(max=20000)])
    notify_attendees = BooleanField(_l("Email registrants if the title changes"), default=True)
