"""Organizer forms on the registrations page: one-row and bulk actions, and the capacity."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.services.registration.roster import BULK_ACTIONS

MESSAGE_MAX = 2000
#: "Cancel" as a bulk action cancels registrations, which other languages say otherwise than leaving a form
#: (German "Stornieren", not "Abbrechen").
CANCEL_REGISTRATIONS = lazy_pgettext("registrations", "Cancel")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class RowActionForm(FlaskForm):
    """Approve / move from the waitlist: nothing to fill in, the button says it all."""


class DenyForm(FlaskForm):
    message = TextAreaField(
        _l("Message to the person (optional)"), filters=[_strip], validators=[Length(max=MESSAGE_MAX)],
        description=_l("Included in the email that tells them their registration was not accepted."),
    )


class CancelForm(FlaskForm):
    message = TextAreaField(
        _l("Note to the person (optional)"), filters=[_strip], validators=[Length(max=MESSAGE_MAX)],
        description=_l("Included in the cancellation email."),
    )


class BulkActionForm(FlaskForm):
    ids = SelectMultipleField(_l("Selected registrations"), coerce=int, validate_choice=False,
                              validators=[DataRequired(_l("Select at least one registration."))])
    # The actions' names are marked where they are defined (roster.BULK_ACTIONS) and translated here.
    action = SelectField(_l("With the selected"),
                         choices=[SelectChoice("", _l("Choose an action…")),
                                  *(SelectChoice(k, CANCEL_REGISTRATIONS if k == "cancel" else _l(v))
                                    for k, v in BULK_ACTIONS.items())],
                         validators=[DataRequired(_l("Choose an action."))])
    message = TextAreaField(
        _l("Message (optional)"), filters=[_strip], validators=[Length(max=MESSAGE_MAX)],
        description=_l("For Deny and Cancel: included in the email each person receives."),
    )

    def validate_action(self, field) -> None:
        if field.data not in BULK_ACTIONS:
            raise ValidationError(_l("Choose an action."))


class CapacityForm(FlaskForm):
    capacity = IntegerField(
        _l("Capacity"),
        validators=[Optional(), NumberRange(min=0, max=1_000_000, message=_l("Enter 0 or more seats."))],
        description=_l("Leave empty for unlimited. Raising it gives the new seats to the waitlist, first come first "
                       "served."), render_kw={"inputmode": "numeric", "min": 0},
    )
