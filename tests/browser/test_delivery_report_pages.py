"""Browser test: ACS delivery reports reach Foyer's webhook over HTTP (as Event Grid posts them), and the
organizer sees the bounce on the event's messages and on the registration, the admin sees the outcome and
the webhook URL to subscribe — every page passes the accessibility audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, Role
from app.services.accounts import accounts
from app.services.outbox import outbox
from app.services.registration import registrations


def _event_with_people(app) -> int:
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.admin, password="a long secret pw",
                                     name="Olive Organizer")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=14)
        event = Event(title="Bounce clinic", slug="bounce-clinic", description="Hi.", timezone="Europe/Berlin",
                      starts_at=start, ends_at=start + timedelta(hours=1), status=EventStatus.published,
                      published_at=datetime.now(UTC), owner_id=owner.id)
        db.session.add(event)
        db.session.commit()
        for email in ("ada@example.org", "gone@example.net"):
            registrations.register(event, registrations.RegistrationData(
                first_name=email.split("@")[0].title(), last_name="Test", email=email, timezone="UTC"))
            db.session.commit()
        while outbox.drain(limit=200):
            pass
        return event.id


def test_a_bounce_reaches_the_organizer_and_passes_the_audit(page, visit, audit, live_server, monkeypatch):
    app = live_server.app
    emulator = app.extensions["microsoft"].emulator
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ("gone@example.net",))
    event_id = _event_with_people(app)
    # Event Grid's part: subscribe Foyer's webhook (validation handshake), then post the reports.
    emulator.acs.subscribe(f"{live_server.base_url}/webhooks/acs/events?secret={app.config['ACS_WEBHOOK_SECRET']}")
    try:
        assert emulator.acs.deliver_reports()["delivered"] == 2
    finally:
        emulator.acs.unsubscribe()
    assert requests.get(f"{live_server.base_url}/webhooks/acs/events", timeout=10).status_code == 405

    visit("/login")
    page.get_by_label("Email").fill("organizer@example.org")
    page.get_by_label("Password").fill("a long secret pw")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()

    visit(f"/manage/events/{event_id}/messages")
    problems = page.get_by_role("table", name="Failed emails of this event")
    expect(problems).to_contain_text("gone@example.net")
    expect(problems).to_contain_text("Bounced (550 5.1.1")
    visit(f"/manage/events/{event_id}/registrations")
    expect(page.get_by_role("row", name="gone@example.net")).to_contain_text("Email: Bounced")
    expect(page.get_by_role("row", name="ada@example.org")).not_to_contain_text("Email:")

    visit("/admin/messages")
    expect(page.get_by_text("Delivered", exact=True).first).to_be_visible()
    expect(page.get_by_label("Webhook URL")).to_have_value(
        f"{live_server.base_url}/webhooks/acs/events?secret={app.config['ACS_WEBHOOK_SECRET']}")
