"""Admin forms for the REST API's tokens and for webhook endpoints."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.services.integrations.webhooks import KINDS


class ApiTokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)],
                       description=_l("What will use it, e.g. “CRM sync”. Shown in the audit log."))
    scope = RadioField(_l("Scope"), choices=[SelectChoice("read", _l("Read: events and registrations")),
                                             SelectChoice("write", _l("Write: read, and register people"))],
                       default="read", validators=[DataRequired(message=_l("Choose read or write."))])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WebhookEndpointForm(FlaskForm):
    url = StringField(_l("Address (https://…)"), validators=[DataRequired(), Length(max=2000)],
                      description=_l("Foyer POSTs signed JSON here."))
    description = StringField(_l("Description"), validators=[Length(max=200)],
                              description=_l("Optional, e.g. the tool that receives the events."))
    kinds = MultiCheckboxField(_l("Events to send"), choices=[SelectChoice(k, label) for k, label in KINDS.items()],
                               validators=[DataRequired(message=_l("Choose at least one kind of event."))])
