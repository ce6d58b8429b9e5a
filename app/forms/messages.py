"""Forms for messages: the admin's email quota, an organizer's message to a segment, and per-event
wording overrides. Domain checks (lengths, segments) live in services/messaging/ and
services/broadcast/.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional


class QuotaForm(FlaskForm):
    per_minute = IntegerField(_l("Emails per minute"), validators=[DataRequired(message=_l("Enter a whole number.")),
                                                                   NumberRange(min=1, max=1_000_000)],
                              description=_l("ACS default: 30 on a custom domain, 5 on an Azure-managed domain."))
    per_hour = IntegerField(_l("Emails per hour"), validators=[DataRequired(message=_l("Enter a whole number.")),
                                                               NumberRange(min=1, max=1_000_000)],
                            description=_l("ACS default: 100 on a custom domain, 10 on an Azure-managed domain."))


class ComposeForm(FlaskForm):
    segment = SelectField(_l("Send to"), choices=[])
    subject = StringField(_l("Subject"), validators=[DataRequired(message=_l("Enter a subject.")), Length(max=200)])
    body = TextAreaField(_l("Message"),
                         validators=[DataRequired(message=_l("Write the message.")), Length(max=20_000)],
                         description=_l("Markdown: **bold**, *italic*, [links](https://example.org), lists. "
                                        "The event's date, time and each person's own link are added below it."))


class OverrideForm(FlaskForm):
    subject = StringField(_l("Subject"), validators=[Optional(), Length(max=200)],
                          description=_l("Leave empty for Foyer's subject. {title} is replaced by the event title."))
    intro = TextAreaField(_l("Opening paragraph"), validators=[Optional(), Length(max=5_000)],
                          description=_l("Markdown. Leave empty for Foyer's wording."))


class EmptyForm(FlaskForm):
    """CSRF only (retry buttons)."""
