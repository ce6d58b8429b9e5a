"""Browser test: an admin saves the email sender settings and sends themself a test email, adds a
speaker with an email address, and copies the hosts' Teams join link from the event's page — every
page passes the accessibility audit, with no CSP violation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, Message, ProvisioningStatus, Role
from app.services.accounts import accounts

JOIN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"


def _admin_and_event(app) -> int:
    with app.app_context():
        owner = accounts.create_user("admin@example.org", role=Role.admin, password="a long secret pw",
                                     name="Ada Admin")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=14)
        # As the worker leaves an event whose Teams meeting is set up.
        event = Event(title="Speakers clinic", slug="speakers-clinic", description="Hi.", timezone="Europe/Berlin",
                      starts_at=start, ends_at=start + timedelta(hours=1), status=EventStatus.published,
                      published_at=datetime.now(UTC), owner_id=owner.id, join_url=JOIN_URL,
                      provisioning_status=ProvisioningStatus.ready)
        db.session.add(event)
        db.session.commit()
        return event.id


def test_email_settings_test_email_speaker_address_and_host_link(page, visit, audit, live_server):
    app = live_server.app
    event_id = _admin_and_event(app)
    visit("/login")
    page.get_by_label("Email").fill("admin@example.org")
    page.get_by_label("Password").fill("a long secret pw")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()

    visit("/admin/branding")
    page.get_by_label("Sender name").fill("Contoso Events")
    page.get_by_label("Reply-to address").fill("not an address")
    page.get_by_role("button", name="Save email settings").click()
    expect(page.get_by_text("Enter a valid email address")).to_be_visible()
    expect(page.get_by_label("Sender name")).to_have_value("Contoso Events")
    audit()
    page.get_by_label("Reply-to address").fill("events@contoso.example")
    page.get_by_role("button", name="Save email settings").click()
    expect(page.get_by_text("Email settings saved.")).to_be_visible()
    page.get_by_role("button", name="Send me a test email").click()
    expect(page.get_by_text("A test email to admin@example.org is queued")).to_be_visible()
    audit()
    with app.app_context():
        assert db.session.query(Message).filter_by(kind="test", recipient="admin@example.org").count() == 1

    visit(f"/manage/events/{event_id}/edit")
    add = page.get_by_role("form", name="Add a speaker")
    add.get_by_label("Name", exact=True).fill("Grace Hopper")
    add.get_by_label("Email address").fill("grace@example.com")
    add.get_by_role("button", name="Add speaker").click()
    expect(page.get_by_text("Presenter in Teams: grace@example.com")).to_be_visible()
    audit()

    visit(f"/manage/events/{event_id}")
    link = page.get_by_label("Teams join link for hosts and speakers")
    expect(link).to_have_value(JOIN_URL)
    page.get_by_role("button", name="Copy host link").click()
    expect(page.locator("[data-copy-status]")).not_to_be_empty()
    audit()
