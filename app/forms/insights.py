"""Forms on the event dashboard (follow-up, retention) and the admin privacy and audit pages."""

from __future__ import annotations

from flask_babel import LazyString, format_number
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, URLField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.services.registration.privacy import MAX_RETENTION_DAYS


class FollowupForm(FlaskForm):
    enabled = BooleanField(_l("Send a follow-up automatically after the attendance import"),
                           description=_l("Attendees get “thank you”, no-shows get “sorry we missed you”."))
    recording_url = URLField(_l("Recording link (optional)"), validators=[Optional(), Length(max=2000)],
                             description=_l("Included in both emails, e.g. https://…"))


class RetentionForm(FlaskForm):
    retention_days = IntegerField(
        _l("Keep attendee data for this many days after the event"),
        validators=[Optional(), NumberRange(min=1, max=MAX_RETENTION_DAYS, message=_l(
            "Enter between 1 and %(max)s days.", max=LazyString(format_number, MAX_RETENTION_DAYS)))],
        description=_l("Leave empty to use the site's default."), render_kw={"inputmode": "numeric"},
    )


class ImportAttendanceForm(FlaskForm):
    """A button that only carries the CSRF token."""


class DefaultRetentionForm(FlaskForm):
    days = IntegerField(
        _l("Purge attendee data this many days after each event"),
        validators=[DataRequired(_l("Enter a number of days.")),
                    NumberRange(min=1, max=MAX_RETENTION_DAYS, message=_l(
                        "Enter between 1 and %(max)s days.", max=LazyString(format_number, MAX_RETENTION_DAYS)))],
        description=_l("Registrations, answers, emails and their log entries are deleted; only anonymous counts "
                       "stay. Organizers can choose a different period per event."), render_kw={"inputmode": "numeric"},
    )


class PersonLookupForm(FlaskForm):
    email = EmailField(_l("Attendee's email address"), validators=[DataRequired(_l("Enter an email address.")),
                                                                    Length(max=320)])


class PersonEraseForm(PersonLookupForm):
    confirm = BooleanField(_l("I understand this erases every registration of this address for good"),
                           validators=[DataRequired(_l("Tick the box to confirm."))])
