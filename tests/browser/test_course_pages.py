"""A course in the browser: the organizer turns an event into a course on its Sessions page (adds two
sessions, sees a clear error for an overlapping one, renames one), and an attendee's pages — the public
event page, their manage page and their join page — list the sessions. Every page is audited with axe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, User
from app.services.attendance import join_links
from app.services.registration import registrations
from tests.browser.test_uploads import _sign_in_admin

pytestmark = pytest.mark.db_agnostic  # see tests/conftest.py


def _local(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M")


def test_organizer_builds_a_course_and_attendee_pages_list_its_sessions(page, visit, audit, live_server):
    app = live_server.app
    _sign_in_admin(page, visit, app)
    first = (datetime.now(UTC) + timedelta(days=10)).replace(hour=17, minute=0, second=0, microsecond=0)
    with app.app_context():
        owner = db.session.query(User).one()
        event = Event(title="Data course", slug="data-course", timezone="UTC", starts_at=first,
                      ends_at=first + timedelta(hours=1), status=EventStatus.draft, owner_id=owner.id)
        db.session.add(event)
        db.session.commit()
        event_id = event.id

    visit(f"/manage/events/{event_id}")
    page.get_by_role("link", name="Sessions", exact=True).click()
    expect(page.get_by_role("heading", name="Sessions of “Data course”", level=1)).to_be_visible()
    audit()
    for week, name in ((1, "Cleaning"), (2, "Charts")):
        starts = first + timedelta(weeks=week)
        page.get_by_label("Name (optional)").fill(name)
        page.get_by_label("Starts").fill(_local(starts))
        page.get_by_label("Ends").fill(_local(starts + timedelta(hours=1)))
        page.get_by_role("button", name="Add the session").click()
        expect(page.get_by_text(f"Session {week + 1}: {name} added.")).to_be_visible()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(4)  # the header and three sessions
    audit()

    # An overlapping session is refused with a message tied to the field.
    page.get_by_label("Starts").fill(_local(first + timedelta(minutes=30)))
    page.get_by_label("Ends").fill(_local(first + timedelta(hours=2)))
    page.get_by_role("button", name="Add the session").click()
    starts_field = page.get_by_label("Starts")
    expect(starts_field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("This overlaps Session 1. Sessions of a course follow one another.")).to_be_visible()
    audit()

    page.get_by_role("link", name="Change Session 3: Charts").click()
    expect(page.get_by_role("heading", name="Change Session 3: Charts", level=1)).to_be_visible()
    audit()
    page.get_by_label("Name (optional)").fill("Charts and maps")
    page.get_by_role("button", name="Save the session").click()
    expect(page.get_by_role("row", name="Session 3: Charts and maps")).to_be_visible()

    page.get_by_role("link", name="Back to the event").click()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published", exact=True).first).to_be_visible()

    with app.app_context():
        row = db.session.get(Event, event_id)
        outcome = registrations.register(row, registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="UTC"))
        join_token = join_links.join_token_for(outcome.registration)
        manage_token = outcome.manage_token
        db.session.commit()

    visit("/events/data-course")
    sessions = page.locator("ol.session-list li")
    expect(sessions).to_have_count(3)
    expect(sessions.nth(2)).to_contain_text("Charts and maps")
    expect(page.get_by_text("3 sessions; one registration covers them all.")).to_be_visible()

    visit(f"/r/{manage_token}")
    expect(page.get_by_text("Sessions (your time zone)")).to_be_visible()
    expect(page.locator("ol.session-list li")).to_have_count(3)

    visit(f"/j/{join_token}")
    expect(page.get_by_text("Session 1 of 3")).to_be_visible()
