"""A recurring series in the browser: the organizer repeats a published event every other week, renames
the future dates on the series page, a visitor moves between dates from the event page, and the organizer
cancels the future dates. Every page is audited with axe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, User
from tests.browser.test_uploads import _sign_in_admin

pytestmark = pytest.mark.db_agnostic  # see tests/conftest.py


def test_organizer_repeats_an_event_and_visitors_find_the_other_dates(page, visit, audit, live_server):
    app = live_server.app
    _sign_in_admin(page, visit, app)
    first = (datetime.now(UTC) + timedelta(days=5)).replace(hour=16, minute=0, second=0, microsecond=0)
    with app.app_context():
        owner = db.session.query(User).one()
        event = Event(title="Book club", slug="book-club", timezone="UTC", starts_at=first,
                      ends_at=first + timedelta(hours=1), status=EventStatus.published, published_at=datetime.now(UTC),
                      owner_id=owner.id)
        db.session.add(event)
        db.session.commit()
        event_id = event.id

    visit(f"/manage/events/{event_id}")
    page.get_by_role("link", name="Repeat", exact=True).click()
    expect(page.get_by_role("heading", name="Repeat “Book club”", level=1)).to_be_visible()
    audit()
    page.get_by_label("Repeats").select_option("weekly")
    page.get_by_label("Every").fill("2")
    page.get_by_label("How many times in all").fill("60")
    page.get_by_role("button", name="Create the series").click()
    expect(page.get_by_label("How many times in all")).to_have_attribute("aria-invalid", "true")
    audit()
    page.get_by_label("How many times in all").fill("3")
    page.get_by_role("button", name="Create the series").click()
    expect(page.get_by_role("heading", name="Series: Every 2 weeks, 3 times", level=1)).to_be_visible()
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(4)
    audit()

    page.get_by_role("textbox", name="Title").fill("Book club: poetry")
    page.get_by_role("button", name="Change the future dates").click()
    expect(page.get_by_text("3 future occurrences changed.")).to_be_visible()

    visit("/events/book-club")
    dates = page.get_by_role("region", name="Also in this series").get_by_role("link")
    expect(dates).to_have_count(2)
    dates.first.click()
    expect(page.get_by_role("heading", name="Book club: poetry", level=1)).to_be_visible()
    audit()

    visit(f"/manage/events/{event_id}")
    page.get_by_role("link", name="Every 2 weeks, 3 times").click()
    page.get_by_role("link", name="Cancel the future dates…").click()
    expect(page.get_by_role("heading", name="Cancel the 3 future dates of this series?", level=1)).to_be_visible()
    audit()
    page.get_by_label("Message to attendees (optional)").fill("The club is closing.")
    page.get_by_role("button", name="Cancel 3 dates").click()
    expect(page.get_by_text("3 future dates cancelled.")).to_be_visible()
    audit()
