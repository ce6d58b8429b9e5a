"""Attendees in their own language: the locale comes from the switcher (kept in the session) or the
browser's Accept-Language; a registration keeps it, and every email to the registrant (also those the
worker renders with no request) is written in it. English, the default, is unchanged."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import render_template_string
from flask_babel import force_locale
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Registration
from app.services.attendance import join_links
from app.services.registration import registrations, reminders
from tests.mail import queued_emails

START = datetime(2031, 5, 20, 16, 0, tzinfo=UTC)
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def event(make_event, make_user):
    owner = make_user("owner@example.org")
    return make_event(owner, title="Kaffeerunde", status=EventStatus.published, published_at=datetime.now(UTC),
                      starts_at=START, ends_at=START + timedelta(hours=1), capacity=10, reminder_offsets=[60])


def _form(email="ada@example.org") -> dict:
    return {"first_name": "Ada", "last_name": "Lovelace", "email": email, "timezone": "Europe/Berlin",
            "consent": "y"}


def _emails(app, to: str) -> list[dict]:
    with app.app_context():
        return queued_emails(to=to)


@pytest.mark.db_agnostic
def test_the_browsers_language_is_the_first_guess(client, event):
    page = _text(client.get(f"/events/{event.slug}", headers=GERMAN))
    assert '<html lang="de">' in page
    assert "Über Sie" in page and "Vorname" in page and "Anmelden" in page and "Ihre Zeitzone" in page
    # Dates follow the language; the zone stays the IANA name.
    assert "Di., 20. Mai 2031, 18:00" in page and "(Europe/Berlin)" in page
    assert "About you" not in page and "First name" not in page


@pytest.mark.db_agnostic
def test_english_is_the_default_and_unchanged(client, event):
    page = _text(client.get(f"/events/{event.slug}"))
    assert '<html lang="en">' in page
    assert "About you" in page and "Tue 20 May 2031, 18:00" in page
    # The switcher offers every language, each named in itself.
    assert f'href="/events/{event.slug}?lang=de" lang="de" hreflang="de"' in page and ">Deutsch</a>" in page
    assert 'aria-current="true">English</a>' in page


@pytest.mark.db_agnostic
def test_the_switcher_is_remembered_for_the_visit(client, event):
    assert '<html lang="de">' in _text(client.get(f"/events/{event.slug}?lang=de"))
    assert '<html lang="de">' in _text(client.get("/"))  # no parameter: the choice holds
    assert '<html lang="en">' in _text(client.get(f"/events/{event.slug}?lang=en", headers=GERMAN))
    assert '<html lang="en">' in _text(client.get("/privacy", headers=GERMAN))  # the choice beats the browser
    assert '<html lang="en">' in _text(client.get("/?lang=xx"))  # an unknown code changes nothing


@pytest.mark.db_agnostic
def test_staff_pages_follow_the_language_too(client, auth, event):
    page = _text(client.get("/login", headers=GERMAN))
    assert '<html lang="de">' in page and "Skip to main content" not in page
    assert 'class="language-switcher"' in page
    assert auth.login("owner@example.org").status_code == 303
    client.get("/manage/events/?lang=de")  # the switcher's choice outlasts the page it was made on
    board = _text(client.get("/manage/events/"))
    assert '<html lang="de">' in board and "Your events" not in board
    # The organizer sees the event's main title (their own words), whatever the page's language.
    assert "Kaffeerunde" in _text(client.get(f"/manage/events/{event.id}"))


def test_a_registration_in_german_keeps_the_language_for_its_emails(client, app, event):
    client.get(f"/events/{event.slug}?lang=de")
    response = client.submit(f"/events/{event.slug}/register", _form(),
                             follow_redirects=True)
    page = _text(response)
    assert response.status_code == 200 and '<html lang="de">' in page
    assert "Sehen Sie in Ihr Postfach" in page and "Zurück zur Veranstaltung" in page

    with app.app_context():
        reg = db.session.scalar(select(Registration))
        assert reg.language == "de"
    [email] = _emails(app, "ada@example.org")
    assert email["subject"] == "Sie sind angemeldet: Kaffeerunde"
    for body in (email["html"], email["text"]):
        assert "Hallo Ada," in body and "Sie sind für Kaffeerunde angemeldet. Ihr Platz ist bestätigt." in body
        assert "Di., 20. Mai 2031, 18:00–19:00 (Europe/Berlin)" in body
        assert "Zeiten sind in Ihrer Zeitzone angegeben, Europe/Berlin." in body
    assert '<html lang="de">' in email["html"]
    assert "Anmeldung ansehen, ändern oder stornieren" in email["text"]
    # The join link (it is too early) says so in German.
    join = re.search(r"http://localhost(/j/[A-Za-z0-9_-]+)", email["text"]).group(1)
    join_page = _text(client.get(join))
    assert "Der Anruf öffnet bald" in join_page and "Kamera und Mikrofon prüfen" in join_page
    # The personal link leads to a German manage page, and cancelling there is German too.
    link = re.search(r"http://localhost(/r/[A-Za-z0-9_-]{43})", email["text"]).group(1)
    manage = _text(client.get(link))
    assert "Ihre Anmeldung" in manage and "Ihr Platz ist bestätigt." in manage
    assert "Meine Anmeldung stornieren…" in manage
    assert "Wann (Ihre Zeitzone)" in manage and "Di., 20. Mai 2031, 18:00–19:00 (Europe/Berlin)" in manage
    confirm = _text(client.get(f"{link}/cancel"))
    assert "Anmeldung stornieren?" in confirm and "Ja, meine Anmeldung stornieren" in confirm
    done = _text(client.submit(f"{link}/cancel", {}, follow_redirects=True))
    assert "Ihre Anmeldung ist storniert." in done and "Storniert" in done
    cancelled = _emails(app, "ada@example.org")[-1]
    assert cancelled["subject"] == "Anmeldung storniert: Kaffeerunde"
    [invite] = [a for a in email["attachments"] if a["name"].endswith(".ics")]
    ics = base64.b64decode(invite["contentInBase64"]).decode()
    assert "Veranstaltungsseite:" in ics.replace("\r\n ", "") and "beginnt in 15 Minuten" in ics


def test_the_catalogue_in_german(client, event):
    page = _text(client.get("/?q=nothing-like-this", headers=GERMAN))
    assert "Veranstaltungen suchen" in page and "Keine kommenden Veranstaltungen passen zu “nothing-like-this”." in page
    page = _text(client.get("/", headers=GERMAN))
    assert "Kaffeerunde" in page and "Noch 10 Plätze frei" in page and "Kommend" in page


@pytest.mark.db_agnostic
def test_form_errors_are_in_german(client, event):
    client.get(f"/events/{event.slug}?lang=de")
    response = client.submit(f"/events/{event.slug}/register", _form() | {"first_name": "", "email": "nope@"})
    page = _text(response)
    assert "Bitte korrigieren Sie die markierten Felder." in page
    assert "Geben Sie Ihren Vornamen ein." in page
    # WTForms' own messages are reworded to name the field, in German too.
    response = client.submit(f"/events/{event.slug}/register", _form() | {"last_name": "x" * 1234})
    assert "Nachname darf höchstens 100 Zeichen lang sein (Sie haben 1.234 eingegeben)." in _text(response)


def test_the_worker_writes_a_reminder_in_the_registrants_language(client, app, event):
    client.get(f"/events/{event.slug}?lang=de")
    client.submit(f"/events/{event.slug}/register", _form())
    other = app.test_client()  # another visitor, whose browser asks for nothing in particular
    other.submit(f"/events/{event.slug}/register", _form("bob@example.org"))

    # The sweep runs as the worker does: an application context, no request.
    with app.app_context():
        assert reminders.sweep(START - timedelta(minutes=60)).queued == 2
        db.session.commit()
    [german] = [e for e in _emails(app, "ada@example.org") if e["kind"] == "reminder"]
    assert german["subject"] == "Erinnerung: Kaffeerunde beginnt in 1 Stunde"
    assert "Zur Erinnerung: Kaffeerunde beginnt in 1 Stunde." in german["text"]
    assert "An der Veranstaltung teilnehmen" in german["text"]
    [english_email] = [e for e in _emails(app, "bob@example.org") if e["kind"] == "reminder"]
    assert english_email["subject"] == "Reminder: Kaffeerunde starts in 1 hour"
    assert "Hello Ada," in english_email["text"]
    assert "Tue 20 May 2031, 18:00–19:00 (Europe/Berlin)" in english_email["text"]


def test_outside_a_request_the_registrations_language_still_decides(app, event):
    """A registration made with no request (the API, imports) and a language writes its emails in it."""
    with app.app_context():
        row = db.session.get(Event, event.id)
        registrations.register(row, registrations.RegistrationData(
            first_name="Grete", last_name="Test", email="grete@example.org", timezone="Europe/Vienna",
            language="de"))
        db.session.commit()
        [email] = queued_emails(to="grete@example.org")
    assert email["subject"] == "Sie sind angemeldet: Kaffeerunde" and "Hallo Grete," in email["text"]


def test_the_device_check_and_the_time_zones_in_german(client, app, event):
    with app.app_context():
        reg = registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/Berlin")).registration
        token = join_links.join_token_for(reg)
        db.session.commit()
    page = _text(client.get(f"/j/{token}/device-check", headers=GERMAN))
    found = re.search(r'<script type="application/json" id="device-check-strings">(.*?)</script>', page, re.S)
    strings = json.loads(found.group(1))  # what device-check.js says, with `{name}` for what it fills in
    assert strings["working"] == "Funktioniert: {camera}, {microphone}. Sprechen Sie, dann bewegt sich der Pegel."
    assert strings["cameraOn"] == "Kamera an" and strings["stopped"].startswith("Prüfung beendet.")
    english = _text(client.get(f"/j/{token}/device-check"))
    assert '"working": "Working: {camera}, {microphone}. Speak to see the level move."' in english

    zones = client.get("/time-zones", headers=GERMAN)
    assert "<h1>Zeitzonen</h1>" in _text(zones) and "in das Feld „Ihre Zeitzone“" in _text(zones)
    # Kept a day by browsers, once per language.
    assert {"Accept-Language", "Cookie"} <= set(zones.vary)


@pytest.mark.db_agnostic
def test_calendar_files_tell_caches_they_follow_the_language(client, event):
    for response in (client.get(f"/events/{event.slug}.ics", headers=GERMAN), client.get("/events.ics")):
        # Cached publicly for a few minutes: a shared cache must keep one copy per language.
        assert {"Accept-Language", "Cookie"} <= set(response.vary)


@pytest.mark.db_agnostic
def test_templates_follow_a_forced_language_and_come_back_within_one_request(app):
    """Templates look their catalog up once per language, not per string: an email written in the
    registrant's language in the middle of a German request, and the page after it, each get their own."""
    words = ("{{ _('Register') }} | {{ pgettext('registrations', 'Cancel') }} | "
             "{% trans count=2 %}{{ count }} recipient{% pluralize %}{{ count }} recipients{% endtrans %}")
    with app.test_request_context("/", headers=GERMAN):
        before = render_template_string(words)
        with force_locale("en"):
            english = render_template_string(words)
        after = render_template_string(words)
    assert before == after == "Anmelden | Stornieren | 2 Empfänger"
    assert english == "Register | Cancel | 2 recipients"
