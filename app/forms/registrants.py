"""Organizer forms on the registrations page: one-row and bulk actions, and the capacity."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.services.registration.roster import BULK_ACTIONS

MESSAGE_MAX = 2000


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class RowActionForm(FlaskForm):
    """Approve / move from the waitlist: nothing to fill in, the button says it all."""


class DenyForm(FlaskForm):
    message = TextAreaField(
        "Message to the person (optional)", filters=[_strip], validators=[Length(max=MESSAGE_MAX)],
        description="Included in the email that tells them their registration was not accepted.",
    )


class CancelForm(FlaskForm):
    message = TextAreaField(
        "Note to the person (optional)", filters=[_strip], validators=[Length(max=MESSAGE_MAX)],
        description="Included in the cancellation email.",
    )


class BulkActionForm(FlaskForm):
    ids = SelectMultipleField("Selected registrations", coerce=int, validate_choice=False,
                              validators=[DataRequired("Select at least one registration.")])
    action = SelectField("With the selected", choices=[SelectChoice("", "Choose an action…"),
                                                          *(SelectChoice(k, v) for k, v in BULK_ACTIONS.items())],
                         validators=[DataRequired("Choose an action.")])
    message = TextAreaField(
        "Message (optional)", filters=[_strip], validators=[Length(max=MESSAGE_MAX)],
        description="For Deny and Cancel: included in the email each person receives.",
    )

    def validate_action(self, field) -> None:
        if field.data not in BULK_ACTIONS:
            raise ValidationError("Choose an action.")


class CapacityForm(FlaskForm):
    capacity = IntegerField(
        "Capacity", validators=[Optional(), NumberRange(min=0, max=1_000_000, message="Enter 0 or more seats.")],
        description="Leave empty for unlimited. Raising it gives the new seats to the waitlist, first come first "
        "served.", render_kw={"inputmode": "numeric", "min": 0},
    )
