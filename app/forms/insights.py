"""Forms on the event dashboard (follow-up, retention) and the admin privacy and audit pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, URLField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.services.registration.privacy import MAX_RETENTION_DAYS


class FollowupForm(FlaskForm):
    enabled = BooleanField("Send a follow-up automatically after the attendance import",
                           description="Attendees get “thank you”, no-shows get “sorry we missed you”.")
    recording_url = URLField("Recording link (optional)", validators=[Optional(), Length(max=2000)],
                             description="Included in both emails, e.g. https://…")


class RetentionForm(FlaskForm):
    retention_days = IntegerField(
        "Keep attendee data for this many days after the event",
        validators=[Optional(), NumberRange(min=1, max=MAX_RETENTION_DAYS,
                                            message=f"Enter between 1 and {MAX_RETENTION_DAYS:,} days.")],
        description="Leave empty to use the site's default.", render_kw={"inputmode": "numeric"},
    )


class ImportAttendanceForm(FlaskForm):
    """A button that only carries the CSRF token."""


class DefaultRetentionForm(FlaskForm):
    days = IntegerField(
        "Purge attendee data this many days after each event",
        validators=[DataRequired("Enter a number of days."),
                    NumberRange(min=1, max=MAX_RETENTION_DAYS,
                                message=f"Enter between 1 and {MAX_RETENTION_DAYS:,} days.")],
        description="Registrations, answers, emails and their log entries are deleted; only anonymous counts stay. "
        "Organizers can choose a different period per event.", render_kw={"inputmode": "numeric"},
    )


class PersonLookupForm(FlaskForm):
    email = EmailField("Attendee's email address", validators=[DataRequired("Enter an email address."),
                                                                Length(max=320)])


class PersonEraseForm(PersonLookupForm):
    confirm = BooleanField("I understand this erases every registration of this address for good",
                           validators=[DataRequired("Tick the box to confirm.")])
