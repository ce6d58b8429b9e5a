"""Organizer insights and admin tools in the browser, audited on every page: the event dashboard with
its chart and data table, the registrant table sorted by a column heading and filtered by attendance
and by an answer (htmx swaps the table and the address follows), the admin's audit log filtered, and
the privacy page's per-person lookup."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Registration, Role
from app.services.accounts import accounts
from app.services.registration import registrations
from tests.browser.conftest import htmx_settled

PASSWORD = "a long secret pw"


def _event_with_people(app) -> int:
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.admin, password=PASSWORD, name="Olive")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=14)
        event = Event(title="Insight clinic", slug="insight-clinic", timezone="Europe/Berlin", starts_at=start,
                      ends_at=start + timedelta(hours=1), status=EventStatus.published,
                      published_at=datetime.now(UTC), capacity=10, owner_id=owner.id)
        event.questions = [Question(position=0, kind=QuestionKind.single_choice, label="Track",
                                    options=["Design", "Code"])]
        db.session.add(event)
        db.session.commit()
        for i, (first, last, track) in enumerate([("Ada", "Lovelace", "Code"), ("Bob", "Babbage", "Design"),
                                                  ("Cleo", "Curie", "Code")]):
            outcome = registrations.register(event, registrations.RegistrationData(
                first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="UTC",
                answers={event.questions[0].id: track}))
            db.session.commit()
            reg = db.session.get(Registration, outcome.registration.id)
            reg.created_at = datetime.now(UTC) - timedelta(days=3 - i)
            reg.attended = i != 1
            reg.attendance_seconds = 1200 * (i + 1) if i != 1 else 0
            db.session.commit()
        return event.id


def _sign_in(page, visit):
    visit("/login")
    page.get_by_label("Email").fill("organizer@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()


def test_dashboard_table_and_admin_tools(page, visit, audit, live_server):
    app = live_server.app
    event_id = _event_with_people(app)
    _sign_in(page, visit)

    visit(f"/manage/events/{event_id}")
    expect(page.get_by_role("heading", name="How it is going")).to_be_visible()
    expect(page.get_by_role("img", name="Registrations over time")).to_be_visible()
    expect(page.locator("circle.chart-point")).to_have_count(3)
    page.get_by_text("Show the chart’s data as a table").click()
    expect(page.get_by_role("table", name="Registrations per day")).to_be_visible()
    audit()

    visit(f"/manage/events/{event_id}/registrations")
    table = page.locator("table.registrations-table")
    page.get_by_role("link", name=re.compile(r"^Name\s*, sort ascending")).click()
    expect(page.get_by_role("columnheader", name=re.compile(r"^Name.*sort descending"))).to_have_attribute(
        "aria-sort", "ascending")
    expect(table.locator("tbody tr").first).to_contain_text("bob@example.org")  # Babbage first
    audit()

    page.get_by_label("Attendance").select_option("yes")
    expect(table).not_to_contain_text("bob@example.org")
    expect(page).to_have_url(live_server.url(f"/manage/events/{event_id}/registrations?sort=name&attended=yes"))
    htmx_settled(page)
    page.get_by_label("Track").select_option("Code")
    expect(page).to_have_url(re.compile(r"attended=yes&answer_\d+=Code$"))  # the swap has landed
    expect(table.locator("tbody tr")).to_have_count(2)
    htmx_settled(page)  # the search box is part of what the Track swap replaced
    page.get_by_label("Search by name or email").fill("cleo")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_label("Search by name or email")).to_be_focused()  # typing carries on after the swap
    audit()

    visit("/admin/audit/")
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    page.get_by_label("Kind of action").select_option("auth")
    expect(page.locator("#audit-results")).to_contain_text("Signed in with a password")
    audit()

    visit("/admin/privacy/")
    page.get_by_label("Attendee's email address").fill("ada@example.org")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("table")).to_contain_text("Insight clinic")
    expect(page.get_by_role("button", name="Erase this person’s data")).to_be_visible()
    audit()
