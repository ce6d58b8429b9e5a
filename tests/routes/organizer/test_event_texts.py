"""An event's title and description in other languages: the organizer writes them on the event form (one
pair per language offered besides the default), and attendees reading Foyer in that language see them
on the pages, in their emails and calendar files; everyone else, and every blank, gets the main text."""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventText
from tests.mail import queued_emails
from tests.worker import drain

from .conftest import event_form

NEW = "/manage/events/new"
GERMAN_TITLE = "Frühjahrstreffen"
GERMAN_DESCRIPTION = "Kommen Sie **vorbei**."


def _text(response) -> str:
    return response.get_data(as_text=True)


def _published_event(client, app, **texts) -> Event:
    """An event created through the form, with `texts` as extra form fields, then published."""
    response = client.submit(NEW, event_form(**texts))
    assert response.status_code == 303, _text(response)
    with app.app_context():
        event = db.session.scalar(select(Event))
        db.session.expunge(event)
    overview = f"/manage/events/{event.id}"
    assert client.submit(f"{overview}/publish", {}).status_code == 303
    return event


@pytest.mark.db_agnostic
def test_the_form_offers_each_other_language_in_a_collapsed_section(client, auth):
    auth.login_as_organizer()
    page = _text(client.get(NEW))
    assert '<details class="other-languages">' in page and "<summary>Other languages</summary>" in page
    assert '<label for="title_de">Title (Deutsch)</label>' in page
    assert '<label for="description_de">Description (Deutsch)</label>' in page
    assert 'id="title_en"' not in page  # the default language has the main fields


def test_attendees_reading_german_see_the_german_text(app, client, auth):
    auth.login_as_organizer()
    event = _published_event(client, app, title_de=GERMAN_TITLE, description_de=GERMAN_DESCRIPTION)
    with app.app_context():
        [row] = db.session.scalars(select(EventText)).all()
        assert (row.event_id, row.language, row.title, row.description) == (
            event.id, "de", GERMAN_TITLE, GERMAN_DESCRIPTION)

    german = app.test_client()
    page = _text(german.get(f"/events/{event.slug}?lang=de"))
    assert f"<h1>{GERMAN_TITLE}</h1>" in page and "Kommen Sie <strong>vorbei</strong>." in page
    assert f'<meta property="og:title" content="{GERMAN_TITLE}">' in page
    assert '"name": "Fr\\u00fchjahrstreffen"' in page and "Spring meetup" not in page  # the JSON-LD too
    catalogue = _text(german.get("/"))
    assert GERMAN_TITLE in catalogue and "Kommen Sie vorbei." in catalogue and "Spring meetup" not in catalogue
    assert GERMAN_TITLE in _text(german.get(f"/events/{event.slug}/register"))
    assert GERMAN_TITLE in _text(german.get(f"/embed/events/{event.slug}/register"))

    english = app.test_client()
    page = _text(english.get(f"/events/{event.slug}"))
    assert "<h1>Spring meetup</h1>" in page and "Come <strong>along</strong>." in page and GERMAN_TITLE not in page
    assert "Spring meetup" in _text(english.get("/")) and GERMAN_TITLE not in _text(english.get("/"))
    # Staff see the main text.
    assert GERMAN_TITLE not in _text(client.get(f"/manage/events/{event.id}"))


def test_a_german_registrant_gets_the_german_title_in_emails_and_the_calendar_file(app, client, auth):
    auth.login_as_organizer()
    event = _published_event(client, app, title_de=GERMAN_TITLE, description_de=GERMAN_DESCRIPTION)
    drain(app)  # the Teams meeting, as the worker would

    german = app.test_client()
    german.get(f"/events/{event.slug}?lang=de")
    response = german.submit(f"/events/{event.slug}/register",
                             {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
                              "timezone": "Europe/Berlin", "consent": "y"}, follow_redirects=True)
    assert f"<strong>{GERMAN_TITLE}</strong>" in _text(response)
    with app.app_context():
        [email] = queued_emails(to="ada@example.org")
    assert email["subject"] == f"Sie sind angemeldet: {GERMAN_TITLE}"
    assert f"Sie sind für {GERMAN_TITLE} angemeldet." in email["text"] and "Spring meetup" not in email["text"]
    assert GERMAN_TITLE in email["html"] and "Spring meetup" not in email["html"]
    [invite] = [a for a in email["attachments"] if a["name"].endswith(".ics")]
    ics = base64.b64decode(invite["contentInBase64"]).decode().replace("\r\n ", "")
    assert f"SUMMARY:{GERMAN_TITLE}" in ics and "Kommen Sie vorbei." in ics and "Spring meetup" not in ics

    manage = re.search(r"http://localhost(/r/[A-Za-z0-9_-]{43})", email["text"]).group(1)
    assert GERMAN_TITLE in _text(german.get(manage))
    join = re.search(r"http://localhost(/j/[A-Za-z0-9_-]+)", email["text"]).group(1)
    assert GERMAN_TITLE in _text(german.get(join))


def test_an_english_registrant_keeps_the_main_title(app, client, auth):
    auth.login_as_organizer()
    event = _published_event(client, app, title_de=GERMAN_TITLE)
    app.test_client().submit(f"/events/{event.slug}/register",
                             {"first_name": "Bob", "last_name": "B", "email": "bob@example.org",
                              "timezone": "Europe/Berlin", "consent": "y"})
    with app.app_context():
        [email] = queued_emails(to="bob@example.org")
    assert email["subject"] == "You're registered: Spring meetup" and GERMAN_TITLE not in email["text"]


def test_blanks_fall_back_to_the_main_text_and_clearing_both_removes_the_text(app, client, auth):
    auth.login_as_organizer()
    event = _published_event(client, app, title_de=GERMAN_TITLE)
    german = app.test_client()
    page = _text(german.get(f"/events/{event.slug}?lang=de"))
    assert f"<h1>{GERMAN_TITLE}</h1>" in page and "Come <strong>along</strong>." in page  # no German description

    edit = _text(client.get(f"/manage/events/{event.id}/edit"))
    assert f'id="title_de" maxlength="200" name="title_de" type="text" value="{GERMAN_TITLE}"' in edit
    renamed = event_form(title_de="Neuer Titel", description_de="")
    assert client.submit(f"/manage/events/{event.id}/edit", renamed).status_code == 303
    # The page cache keeps one page per language and forgets them when a text changes.
    assert "<h1>Neuer Titel</h1>" in _text(german.get(f"/events/{event.slug}"))

    cleared = event_form(title_de=" ", description_de="")
    assert client.submit(f"/manage/events/{event.id}/edit", cleared).status_code == 303
    with app.app_context():
        assert db.session.scalars(select(EventText)).all() == []
    assert "<h1>Spring meetup</h1>" in _text(german.get(f"/events/{event.slug}"))


@pytest.mark.db_agnostic
def test_a_german_title_too_long_is_refused_beside_its_field(app, client, auth):
    auth.login_as_organizer()
    response = client.submit(NEW, event_form(title_de="x" * 201))
    page = _text(response)
    assert response.status_code == 422
    assert '<details class="other-languages" open>' in page
    assert "Title (Deutsch) can be at most 200 characters long (you entered 201)." in page


def test_the_catalogue_search_finds_words_of_the_german_text(app, client, auth):
    auth.login_as_organizer()
    _published_event(client, app, title_de=GERMAN_TITLE)
    assert GERMAN_TITLE in _text(app.test_client().get("/?q=frühjahr&lang=de"))
    assert "Spring meetup" in _text(app.test_client().get("/?q=frühjahr"))


def test_in_the_default_language_the_main_text_is_shown(app, client, auth):
    """A German default makes the main text the German one: an older German text is not shown over it."""
    auth.login_as_organizer()
    event = _published_event(client, app, title_de=GERMAN_TITLE)
    auth.login_as_admin()
    assert client.submit("/admin/languages", {"offered": ["en", "de"], "default": "de"}).status_code == 303
    assert "<h1>Spring meetup</h1>" in _text(app.test_client().get(f"/events/{event.slug}"))


def test_a_copy_keeps_the_texts_in_other_languages(app, client, auth):
    auth.login_as_organizer()
    event = _published_event(client, app, title_de=GERMAN_TITLE, description_de=GERMAN_DESCRIPTION)
    overview = f"/manage/events/{event.id}"
    assert client.submit(f"{overview}/clone", {}).status_code == 303
    with app.app_context():
        rows = db.session.scalars(select(EventText).order_by(EventText.event_id)).all()
        assert [(r.title, r.description) for r in rows] == [(GERMAN_TITLE, GERMAN_DESCRIPTION)] * 2
