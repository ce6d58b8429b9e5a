"""Organizer pages are translatable: the registrations board, its bulk form and that form's errors read in
German. Staff pages are English for now (`app/i18n.py` chooses), so the test forces the language itself."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_babel import force_locale
from flask_login import login_user

from app.extensions import db
from app.models import Event, EventStatus, User
from app.routes.organizer.registrations import registrations_bulk_POST
from app.services.registration import registrations


def test_the_registrations_board_and_its_errors_read_in_german(app, make_user, make_event, monkeypatch):
    owner = make_user("owner@example.org")
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=10)
    with app.app_context():
        registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/Berlin"))
        db.session.commit()
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)

    # "Deny" with nobody ticked: the htmx answer is the board again, with the form's error.
    with (app.test_request_context(f"/manage/events/{event.id}/registrations/bulk", method="POST",
                                   data={"action": "deny"}, headers={"HX-Request": "true"}),
          force_locale("de")):
        login_user(db.session.get(User, owner.id))
        response = registrations_bulk_POST(event.id)
    page = response.get_data(as_text=True)

    assert response.status_code == 422
    assert "Wählen Sie mindestens eine Anmeldung aus." in page
    assert "<strong>9</strong> von 10 Plätzen frei" in page and "1 bestätigt" in page
    assert "Sammelaktion für die angehakten Anmeldungen" in page and "Mit den ausgewählten" in page
    assert ">Bestätigt</span>" in page and "Stornieren…" in page
    assert "Select at least one registration." not in page and "Bulk action" not in page
