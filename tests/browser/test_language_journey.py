"""An attendee whose browser asks for German registers, opens their personal link and cancels, all in
German, with the keyboard; every page is audited (axe). The language switcher then brings English back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Registration
from tests.browser.test_registration_journey import SLUG, TITLE, _published_event, tab_to
from tests.mail import queued_emails


def _type_into(page: Page, target, text: str) -> None:
    tab_to(page, target)
    page.keyboard.type(text)


@pytest.mark.parametrize("context_options", [{"locale": "de-DE"}], ids=["de"])
def test_register_manage_and_cancel_in_german(page, visit, audit, live_server):
    app = live_server.app
    event_id = _published_event(app)
    visit(f"/events/{SLUG}")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Anmelden", level=2)).to_be_visible()

    form = page.locator("#register-form")
    _type_into(page, form.get_by_label("Vorname"), "Ada")
    _type_into(page, form.get_by_label("Nachname"), "Lovelace")
    _type_into(page, form.get_by_label("E-Mail", exact=True), "ada@example.org")
    _type_into(page, form.get_by_label("Organization"), "Analytical Engines")  # the organizer's own words
    tab_to(page, form.get_by_role("radio", name="Morning"))
    page.keyboard.press("Space")
    consent = form.get_by_role("checkbox", name=re.compile("Ich habe die"))
    tab_to(page, consent)
    page.keyboard.press("Space")
    tab_to(page, form.get_by_role("button", name="Anmelden"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sehen Sie in Ihr Postfach")).to_be_visible()
    audit()

    with app.app_context():
        reg = db.session.scalar(select(Registration).where(Registration.event_id == event_id))
        assert reg.language == "de"
        (confirmation,) = queued_emails()
    assert confirmation["subject"] == f"Sie sind angemeldet: {TITLE}"
    assert "Hallo Ada," in confirmation["text"]
    link = re.search(r"(http://localhost:\d+/r/\S+)", confirmation["text"]).group(1)

    visit(link.removeprefix(live_server.base_url))
    expect(page.get_by_role("heading", name="Ihre Anmeldung", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Sie sind angemeldet", level=2)).to_be_visible()
    tab_to(page, page.get_by_role("link", name="Meine Anmeldung stornieren…"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Anmeldung stornieren?")).to_be_visible()
    audit()
    tab_to(page, page.get_by_role("button", name="Ja, meine Anmeldung stornieren"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Ihre Anmeldung ist storniert.")
    expect(page.get_by_role("heading", name="Storniert", level=2)).to_be_visible()
    audit()

    # The switcher, in the footer's language navigation, brings English back for the rest of the visit.
    switcher = page.get_by_role("navigation", name="Sprache")
    tab_to(page, switcher.get_by_role("link", name="English"))
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Cancelled", level=2)).to_be_visible()
    audit()


def test_local_times_follow_the_page_language_not_only_the_browsers(page, visit, live_server):
    """An English (en-GB) browser on a page chosen in German writes the visitor's local time in German;
    on an English page it keeps its own English variant."""
    _published_event(live_server.app)
    visit(f"/events/{SLUG}?lang=de")
    local = page.locator("[data-local-time]").first
    expect(local).to_have_text(re.compile(r"^(Mo|Di|Mi|Do|Fr|Sa|So)\., \d{1,2}\. \w+"))
    visit(f"/events/{SLUG}?lang=en")
    # en-GB's day before the month ("Sun, 20 Dec 2026"), not the "en" page language's US order.
    expect(local).to_have_text(re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4}"))
