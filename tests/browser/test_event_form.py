"""The new-event form in the browser: the time zone it preselects is the organizer's own (the device's),
never silently the last event's, and the form says which zone it chose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, User
from tests.browser.test_uploads import _sign_in_admin


def test_new_event_preselects_the_devices_zone_and_says_so(page, visit, audit, live_server):
    app = live_server.app
    _sign_in_admin(page, visit, app)
    with app.app_context():
        start = datetime.now(UTC) + timedelta(days=3)
        owner = db.session.query(User).one()
        db.session.add(Event(title="Tokyo talk", slug="tokyo-talk", timezone="Asia/Tokyo", starts_at=start,
                             ends_at=start + timedelta(hours=1), status=EventStatus.draft, owner_id=owner.id))
        db.session.commit()
    visit("/manage/events/new")
    zone = page.get_by_label("Time zone", exact=True)
    expect(zone).to_have_value("Europe/London")  # the browser context's zone
    expect(page.locator("#timezone-help")).to_have_text(
        "Start and end times below are in this zone. Preselected: Europe/London (this device’s time zone).")
