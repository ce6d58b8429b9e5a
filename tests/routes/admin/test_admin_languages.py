"""Admin → Languages: the admin chooses which of the languages Foyer ships attendees may read it in, and
the default one; until then LANGUAGES and DEFAULT_LANGUAGE decide (in tests: English and German,
English the default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, EventStatus, Registration
from app.services.registration import reminders
from tests.mail import queued_emails

PAGE = "/admin/languages"
START = datetime(2031, 5, 20, 16, 0, tzinfo=UTC)
ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "timezone": "Europe/Berlin",
       "consent": "y"}


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def event(make_event, make_user):
    owner = make_user("owner@example.org")
    return make_event(owner, title="Kaffeerunde", status=EventStatus.published, published_at=datetime.now(UTC),
                      starts_at=START, ends_at=START + timedelta(hours=1), reminder_offsets=[60])


@pytest.mark.db_agnostic
def test_the_page_names_each_language_in_itself_with_the_environments_choice(client, auth):
    auth.login_as_admin()
    page = _text(client.get(PAGE))
    assert "<h1>Languages</h1>" in page and 'aria-current="page">Languages</a>' in page
    assert '<label for="offered-0" lang="en">English</label>' in page
    assert '<label for="offered-1" lang="de">Deutsch</label>' in page
    assert 'checked id="offered-0" name="offered" type="checkbox" value="en"' in page
    assert 'checked id="offered-1" name="offered" type="checkbox" value="de"' in page
    assert '<option selected value="en">English</option>' in page


def test_a_german_default_is_what_a_visitor_without_a_preference_sees(app, client, auth, event):
    admin = auth.login_as_admin()
    response = client.submit(PAGE, {"offered": ["en", "de"], "default": "de"}, follow_redirects=True)
    page = _text(response)
    assert response.status_code == 200
    # The admin's own browser asks for no language: the page is already in the new default.
    assert "Sprachen gespeichert. Foyer wird auf English, Deutsch angeboten; Standard ist Deutsch." in page
    assert '<option selected value="de">Deutsch</option>' in page
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.languages"))
        assert entry.actor_user_id == admin.id and entry.details == {"offered": ["en", "de"], "default": "de"}

    visitor = app.test_client()
    page = _text(visitor.get(f"/events/{event.slug}"))
    assert '<html lang="de">' in page and "Anmelden" in page
    # A browser that asks for English still gets it, on staff pages too.
    page = _text(visitor.get(f"/events/{event.slug}", headers={"Accept-Language": "en-GB,en;q=0.9"}))
    assert '<html lang="en">' in page and "Register" in page
    assert '<html lang="de">' in _text(visitor.get("/login"))
    assert '<html lang="en">' in _text(visitor.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}))


def test_a_german_only_site_offers_no_switcher_and_writes_german_emails(app, client, auth, event):
    auth.login_as_admin()
    assert client.submit(PAGE, {"offered": ["de"], "default": "de"}).status_code == 303

    visitor = app.test_client()
    page = _text(visitor.get(f"/events/{event.slug}?lang=en", headers={"Accept-Language": "en"}))
    assert '<html lang="de">' in page and 'class="language-switcher"' not in page
    visitor.submit(f"/events/{event.slug}/register", ADA)
    with app.app_context():
        assert db.session.scalar(select(Registration.language)) == "de"
        [email] = queued_emails(to="ada@example.org")
    assert email["subject"] == "Sie sind angemeldet: Kaffeerunde"


@pytest.mark.db_agnostic
def test_until_an_admin_saves_the_environment_decides(app, client, event):
    page = _text(client.get(f"/events/{event.slug}"))
    assert '<html lang="en">' in page and ">Deutsch</a>" in page


@pytest.mark.db_agnostic
@pytest.mark.parametrize(("data", "error"), [
    ({"offered": ["en"], "default": "de"}, "The default language must be one of the languages offered."),
    ({"default": "en"}, "Offer at least one language."),
    ({"offered": ["en", "xx"], "default": "en"}, "Choose languages from the list."),
])
def test_a_choice_that_does_not_hold_together_is_refused(app, client, auth, event, data, error):
    auth.login_as_admin()
    response = client.submit(PAGE, data)
    assert response.status_code == 422 and error in _text(response)
    with app.app_context():
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.languages")) is None
    # Nothing changed for visitors.
    assert ">Deutsch</a>" in _text(app.test_client().get(f"/events/{event.slug}"))


@pytest.mark.db_agnostic
def test_organizers_cannot_see_or_change_the_languages(app, client, auth, event):
    auth.login_as_organizer()
    assert client.get(PAGE).status_code == 404
    token = client.csrf_token("/account/password")
    assert client.post(PAGE, data={"csrf_token": token, "offered": ["de"], "default": "de"}).status_code == 404
    assert '<html lang="en">' in _text(app.test_client().get(f"/events/{event.slug}"))


def test_a_language_no_longer_offered_is_not_written_in(app, client, auth, event):
    """A registration made in German before the admin offered English only gets its reminder in English."""
    german = app.test_client()
    german.get(f"/events/{event.slug}?lang=de")
    german.submit(f"/events/{event.slug}/register", ADA)
    auth.login_as_admin()
    assert client.submit(PAGE, {"offered": ["en"], "default": "en"}).status_code == 303

    with app.app_context():  # the worker's reminder sweep: no request
        assert reminders.sweep(START - timedelta(minutes=60)).queued == 1
        db.session.commit()
        [reminder] = [e for e in queued_emails(to="ada@example.org") if e["kind"] == "reminder"]
    assert reminder["subject"] == "Reminder: Kaffeerunde starts in 1 hour"
    assert 'class="language-switcher"' not in _text(german.get(f"/events/{event.slug}"))
