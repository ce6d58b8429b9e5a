"""The faster attribute rendering gives exactly WTForms' own output, and the app's forms use it."""

from __future__ import annotations

import pytest
from markupsafe import Markup

from app.forms import html_params as fast
from app.forms.registration import RegistrationForm

pytestmark = pytest.mark.db_agnostic

CASES = [
    {},
    {"name": "email", "id": "email", "type": "email", "required": True, "readonly": False},
    {"class_": "a b", "for_": "x", "data_max_bytes": 10, "aria_describedby": "x-help x-error"},
    {"value": 'say "hi" <script>&amp;</script>', "title": "l'apostrophe"},
    {"value": Markup('already "safe" <b>markup</b>'), "data_x": Markup("&lt;")},
    {"value": None, "maxlength": 0, "step": 1.5, "hx-post": "/e/x/register/validate?field=q_1&a=b"},
    {"weird key\"<": "v", "checked": True, "disabled": False},
]


@pytest.mark.parametrize("attrs", CASES)
def test_same_output_as_wtforms(attrs):
    ours = fast.html_params(**attrs)
    theirs = fast.original_html_params(**attrs)
    assert ours == theirs and isinstance(ours, Markup)


def test_installed_for_fields_and_labels(app):
    from wtforms.fields import core as fields_core
    from wtforms.widgets import core as widgets_core

    assert widgets_core.html_params is fast.html_params and fields_core.widgets.html_params is fast.html_params
    assert widgets_core.Input.html_params is fast.html_params
    with app.test_request_context("/"):
        form = RegistrationForm(meta={"csrf": False})
        assert str(form.first_name(**{"aria-invalid": "true", "required": True})) == (
            '<input aria-invalid="true" autocomplete="given-name" id="first_name" maxlength="100" '
            'name="first_name" required '
            'type="text" value="">')
        assert str(form.first_name.label()) == '<label for="first_name">First name</label>'
