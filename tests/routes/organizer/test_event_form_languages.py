"""The event form is translatable: rendered in German (`force_locale`), its labels, choices and errors are
German. Staff pages still follow English (app/i18n.py); this checks the translations themselves."""

from __future__ import annotations

import pytest
from flask import render_template
from flask_babel import force_locale

from app.forms.events import EventForm

from .conftest import event_form

#: No title, and an end before the start.
INVALID = event_form(title="", ends_at="2031-05-20T17:00")


def _new_event_page(app) -> str:
    with app.test_request_context("/manage/events/new", method="POST", data=INVALID):
        form = EventForm(meta={"csrf": False})
        assert not form.validate()
        return render_template("organizer/event_form.html", event=None, form=form, can_share=False)


@pytest.mark.db_agnostic
def test_the_event_form_and_its_errors_in_german(app, app_ctx):
    with force_locale("de"):
        page = _new_event_page(app)
    assert "Neue Veranstaltung" in page and "Über die Veranstaltung" in page and "Zeitzone" in page
    assert "Beginn" in page and "Erinnerungs-E-Mails" in page and ">1 Tag</label>" in page
    assert '<optgroup label="Häufige Zeitzonen">' in page and ">Direkt hinein</option>" in page
    assert "Geben Sie der Veranstaltung einen Titel." in page and "Das Ende muss nach dem Beginn liegen." in page
    assert "Give the event a title." not in page and "About the event" not in page

    page = _new_event_page(app)  # English, the default, is unchanged
    assert "About the event" in page and '<optgroup label="Common time zones">' in page and ">1 day</label>" in page
    assert "Give the event a title." in page and "The end must be after the start." in page
