"""Per-event join settings on the organizer's event form: call experience, join window, grace period
and recording link — defaults, saving, validation (422 with the field's message), and the join page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event

from .conftest import event_form

NEW = "/manage/events/new"


def _event(app) -> Event:
    with app.app_context():
        event = db.session.scalars(select(Event)).one()
        db.session.expunge(event)
        return event


def test_defaults_are_call_with_chat_15_minutes_and_30_minutes_grace(app, client, auth):
    auth.login_as_organizer()
    page = client.get(NEW).get_data(as_text=True)
    assert '<option selected value="call_with_chat">' in page or 'value="call_with_chat" selected' in page
    assert client.submit(NEW, event_form()).status_code == 303
    event = _event(app)
    assert (event.call_experience, event.join_opens_minutes, event.join_grace_minutes, event.recording_url) == (
        "call_with_chat", 15, 30, "")


def test_settings_are_saved_and_shown_again(app, client, auth):
    auth.login_as_organizer()
    response = client.submit(NEW, event_form(call_experience="call_only", join_opens_minutes="30",
                                             join_grace_minutes="0", recording_url="https://example.org/rec?id=1"))
    assert response.status_code == 303
    event = _event(app)
    assert (event.call_experience, event.join_opens_minutes, event.join_grace_minutes, event.recording_url) == (
        "call_only", 30, 0, "https://example.org/rec?id=1")
    page = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    assert 'value="https://example.org/rec?id=1"' in page and 'value="30"' in page


@pytest.mark.db_agnostic
def test_bad_settings_get_a_clear_message_and_nothing_is_saved(app, client, auth):
    auth.login_as_organizer()
    for field, value, message in [
        ("recording_url", "javascript:alert(1)", "Enter a web address starting with https://."),
        ("join_opens_minutes", "-5", "Enter between 0 and 1440 minutes."),
        ("join_grace_minutes", "99999", "Enter between 0 and 1440 minutes."),
        ("join_opens_minutes", "soon", "Not a valid integer value."),
        ("call_experience", "hologram", "Not a valid choice."),
    ]:
        response = client.submit(NEW, event_form(**{field: value}))
        assert response.status_code == 422, (field, value)
        assert message in response.get_data(as_text=True), (field, value)
    with app.app_context():
        assert db.session.scalars(select(Event)).first() is None
