"""Microsoft 365 in a real browser: first-run setup offers the emulated service account in one click,
and a published event's Teams status turns from "Provisioning…" to "Ready" on its own (htmx polling).
Connecting through Microsoft's sign-in page, on Microsoft's own origin, is in test_microsoft_origins.py."""


import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.services.outbox import outbox
from tests.browser.test_first_run import TITLE, _create_event, _require_endpoints, _set_up_and_sign_in

SERVICE_ACCOUNT = "foyer.service@contoso.emulator.invalid"


@pytest.fixture
def emulator(live_server):
    """The live server's in-process emulator, fresh for this test (it outlives single tests)."""
    microsoft = live_server.app.extensions["microsoft"]
    microsoft.emulator.reset()
    microsoft.entra.reset_cache()
    yield microsoft.emulator
    microsoft.emulator.reset()
    microsoft.entra.reset_cache()


def worker_pass(live_server) -> int:
    """What `flask worker` does every few seconds, here in the test's thread."""
    with live_server.app.app_context():
        try:
            return outbox.drain()
        finally:
            db.session.remove()


def _connect_in_one_click(page: Page, audit) -> None:
    prompt = page.get_by_role("region", name="Connect Microsoft 365")
    expect(prompt).to_be_visible()
    prompt.get_by_role("button", name="Connect the emulated service account").click()
    expect(page.get_by_role("status")).to_contain_text(f"Connected to the emulated Microsoft 365 as {SERVICE_ACCOUNT}")
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Connect the emulated service account")).to_have_count(0)
    audit()


def _teams_meeting_becomes_ready(page: Page, live_server, emulator) -> None:
    status = page.locator(".teams-status")
    expect(status).to_contain_text("Provisioning…")
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page were reloaded
    assert worker_pass(live_server) >= 1
    expect(status).to_contain_text("Ready", timeout=10_000)  # the fragment polls every 2 s
    expect(status).not_to_contain_text("Provisioning…")
    assert page.evaluate("() => window.__sameDocument === true"), "the status changed by reloading the page"
    [calendar_event] = emulator.graph.events.values()
    assert calendar_event["subject"] == TITLE and calendar_event["isOnlineMeeting"] is True
    assert len(emulator.graph.online_meetings) == 1


def test_connect_and_publish_in_the_browser(page, visit, audit, live_server, emulator):
    _require_endpoints(live_server, "organizer_events.event_new_GET", "organizer_events.event_publish_POST")
    _set_up_and_sign_in(page, visit, audit, live_server)
    _connect_in_one_click(page, audit)
    _create_event(page, audit)
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=TITLE).click()
    expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    expect(page.locator(".teams-status")).to_contain_text("Not requested")
    _publish_only(page, audit)
    _teams_meeting_becomes_ready(page, live_server, emulator)
    audit()


def _publish_only(page: Page, audit) -> None:
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published")
    audit()
