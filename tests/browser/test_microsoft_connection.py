"""Microsoft 365 in a real browser: first-run setup offers the emulated service account in one click,
a published event's Teams status turns from "Provisioning…" to "Ready" on its own (htmx polling),
and an admin re-connects through the emulated Microsoft sign-in page, which auto-posts back to Foyer."""

import re

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.services import outbox
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


def _reconnect_through_the_sign_in_page(page: Page, audit, emulator) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Microsoft 365").click()
    expect(page.get_by_role("heading", name="Microsoft 365 connection", level=1)).to_be_visible()
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    audit()
    sign_ins = len(emulator.entra.sign_ins)
    page.get_by_role("button", name="Re-connect the emulated service account").click()

    # Foyer serves the emulator's authorize page on its own origin (browsers cannot reach *.invalid).
    expect(page).to_have_url(re.compile(r"/_microsoft-emulator/[^/]+/oauth2/v2\.0/authorize\?"))
    expect(page.get_by_role("heading", name="Sign in (Microsoft emulator)")).to_be_visible()
    audit()
    choice = re.compile(rf"Sign in as Foyer Service Account <{re.escape(SERVICE_ACCOUNT)}>")
    page.get_by_role("button", name=choice).click()

    # The answer page posts itself back to Foyer's callback, which shows the outcome.
    expect(page).to_have_url(re.compile(r"/admin/microsoft/\?outcome=connected$"))
    expect(page.get_by_role("status")).to_contain_text("Microsoft 365 is connected.")
    expect(page.get_by_text(SERVICE_ACCOUNT)).to_be_visible()
    audit()
    assert len(emulator.entra.sign_ins) == sign_ins + 1


def test_connect_publish_and_reconnect_in_the_browser(page, visit, audit, live_server, emulator):
    _require_endpoints(live_server, "organizer_events.event_new_GET", "organizer_events.event_publish_POST")
    _set_up_and_sign_in(page, visit, audit)
    _connect_in_one_click(page, audit)
    _create_event(page, audit)
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=TITLE).click()
    expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    expect(page.locator(".teams-status")).to_contain_text("Not requested")
    _publish_only(page, audit)
    _teams_meeting_becomes_ready(page, live_server, emulator)
    audit()
    _reconnect_through_the_sign_in_page(page, audit, emulator)


def _publish_only(page: Page, audit) -> None:
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published")
    audit()
