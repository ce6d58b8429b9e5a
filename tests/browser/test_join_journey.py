"""The join page in Debian's Chromium on http://localhost, with a fake camera and microphone.

* The embedded default (the in-process emulator): the sandbox stage, reached with the keyboard only,
  and opened by itself when the countdown reaches the join window (htmx polling, no reload).
* Foyer configured for a "real" ACS resource (the emulator served over TLS, so Foyer does not know it
  is emulated): the page loads the real call bundle, asks Foyer for a session and creates the UI
  Library's adapter with the right meeting link, user id and display name. The calling SDK cannot
  reach Teams from here, so the test then expects Foyer's fallback message, not a blank page.
* The device check, and every page audited with axe-core.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from app import config as foyer_config
from app import create_app
from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState, Role
from app.services.accounts import accounts
from app.services.attendance import join_links
from emulator import Emulator, EmulatorConfig, EmulatorServer
from tests.browser.conftest import REPO_ROOT, _QuietHandler

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_browser%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"
BUNDLE = REPO_ROOT / "app" / "static" / "build" / "join-call.js"
MAX_TABS = 40


def _seed(app, *, starts_in: timedelta, experience: str = "call_with_chat", name=("Ada", "Lovelace")) -> str:
    """A published event with a Teams meeting and one confirmed registration; returns its join token."""
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.admin, password="a long secret pw",
                                     name="Olive Organizer")
        start = datetime.now(UTC).replace(microsecond=0) + starts_in
        event = Event(title="Garden club call", slug="garden-club-call", timezone="Europe/Berlin", starts_at=start,
                      ends_at=start + timedelta(hours=1), status=EventStatus.published,
                      published_at=datetime.now(UTC), owner_id=owner.id, join_url=TEAMS_URL,
                      call_experience=experience, join_meeting_id="123456789012", join_passcode="Ab3dEf")
        db.session.add(event)
        db.session.flush()
        reg = Registration(event_id=event.id, email="ada@example.org", first_name=name[0], last_name=name[1],
                           timezone="Europe/London", manage_token_hash="0" * 64, state=RegistrationState.confirmed)
        reg.event = event
        db.session.add(reg)
        db.session.flush()
        token = join_links.join_token_for(reg)
        db.session.commit()
        return token


def _acs_user(app) -> str | None:
    with app.app_context():
        return db.session.query(Registration.acs_user_id).scalar()


def _tab_to(page: Page, name: str) -> None:
    """Press Tab until the button or link called `name` has the focus."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"{name!r} cannot be reached with Tab")


# --- the embedded default: the sandbox stage ---------------------------------------------------------------


def test_keyboard_only_join_shows_the_sandbox_stage(live_server, page: Page, visit, audit):
    token = _seed(live_server.app, starts_in=timedelta(minutes=5))
    visit(f"/j/{token}")
    expect(page.get_by_role("heading", name="The call is open")).to_be_visible()
    expect(page.get_by_role("region", name="Other ways in, and help")).to_contain_text("123456789012")
    # The embedded default never loads the call bundle: nothing can reach Teams from the emulator.
    assert page.evaluate("() => typeof window.FoyerCall") == "undefined"
    with page.expect_response(lambda r: r.url.endswith("/session") and r.request.method == "POST") as answer:
        _tab_to(page, "Join the call")
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    stage = page.get_by_role("region", name="You would be in the call now")
    expect(stage).to_be_visible()
    expect(page.get_by_text("Sandbox stage", exact=True)).to_be_visible()
    expect(stage).to_contain_text("Ada Lovelace")
    expect(stage).to_contain_text("Garden club call")
    expect(page.locator("#sandbox-expires")).to_have_text(re.compile(r"^\d\d:\d\d GMT$"))  # the zone is named
    expect(stage).to_be_focused()
    assert _acs_user(live_server.app).startswith("8:acs:")  # a real identity from the emulator
    audit()
    _tab_to(page, "Leave the sandbox stage")
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Join the call again")).to_be_focused()
    audit()


def test_a_failed_token_request_says_so_and_try_again_recovers(live_server, page: Page, visit, audit,
                                                                browser_errors):
    browser_errors.allow(r"HTTP 503 for POST http://localhost:\d+/j/[^/]+/session")
    token = _seed(live_server.app, starts_in=timedelta(minutes=5))
    emulator = live_server.app.extensions["microsoft"].emulator
    emulator.faults.add(kind="status", group="acs", path="/identities", status=503, count=20)
    try:
        visit(f"/j/{token}")
        page.get_by_role("button", name="Join the call").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("We could not connect you to the call service just now.", timeout=30_000)
        expect(alert.get_by_role("button", name="Try again")).to_be_focused()  # the message takes the focus
        audit()
    finally:
        emulator.faults.clear()
    page.keyboard.press("Enter")
    expect(page.get_by_role("region", name="You would be in the call now")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()


def test_countdown_opens_the_call_by_itself(live_server, page: Page, visit):
    # Joining opens 15 minutes before the start: here, ten seconds from now (with four, a busy machine
    # sometimes loaded the page after the call had opened, and the countdown was never seen).
    token = _seed(live_server.app, starts_in=timedelta(minutes=15, seconds=10))
    visit(f"/j/{token}")
    expect(page.get_by_role("heading", name="The call opens soon")).to_be_visible()
    expect(page.get_by_text("Opens in")).to_contain_text(" s")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    # No reload: htmx swaps in the open state and the page starts the (sandbox) call itself.
    expect(page.get_by_role("region", name="You would be in the call now")).to_be_visible(timeout=20_000)
    assert navigations == []


def test_device_check_previews_camera_and_microphone(live_server, page: Page, visit, audit):
    token = _seed(live_server.app, starts_in=timedelta(days=1))
    visit(f"/j/{token}")
    page.get_by_role("link", name="Check your camera and microphone").click()
    expect(page.get_by_role("heading", name="Check your camera and microphone")).to_be_visible()
    audit()
    page.get_by_role("button", name="Start the check").click()
    expect(page.get_by_role("status")).to_contain_text("camera on, microphone on")
    expect(page.get_by_label("Your camera preview")).to_be_visible()
    page.wait_for_function("() => document.getElementById('device-video').videoWidth > 0")
    audit()
    page.get_by_role("button", name="Stop the check").click()
    expect(page.get_by_role("status")).to_contain_text("Check stopped")


# --- a "real" ACS resource: the bundle mounts the composite ------------------------------------------------


@pytest.fixture(scope="module")
def call_server(live_server, tmp_path_factory):
    """Foyer on another localhost port, its ACS settings pointing at the emulator over TLS."""
    if not BUNDLE.exists():
        pytest.fail(f"{BUNDLE.relative_to(REPO_ROOT)} is missing: run `npm run build` (make test builds it)")
    emulator = Emulator(EmulatorConfig(faults=""))
    with EmulatorServer(emulator) as tls:
        ends = tls.endpoints
        environ = {"ENTRA_AUTHORITY": ends.authority, "ENTRA_CLIENT_ID": emulator.client_id,
                   "ENTRA_CLIENT_SECRET": emulator.client_secret, "GRAPH_BASE_URL": ends.graph_base_url,
                   "ACS_CONNECTION_STRING": ends.acs_connection_string, "MICROSOFT_CA_BUNDLE": tls.ca_bundle_path}
        app = create_app(foyer_config.TestConfig, instance_path=tmp_path_factory.mktemp("call-instance"),
                         environ=environ,
                         SQLALCHEMY_DATABASE_URI=live_server.app.config["SQLALCHEMY_DATABASE_URI"])
        assert not app.extensions["microsoft"].built_in
        server = make_server("localhost", 0, app, threaded=True, request_handler=_QuietHandler)
        app.config["PUBLIC_BASE_URL"] = f"http://localhost:{server.server_port}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield app, emulator
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_blocked_microphone_gets_help_not_a_silent_call(call_server, page: Page, audit):
    app, emulator = call_server
    # As if the person had clicked "Block" on the browser's permission prompt.
    page.add_init_script("""navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));""")
    token = _seed(app, starts_in=timedelta(minutes=5))
    page.goto(f"{app.config['PUBLIC_BASE_URL']}/j/{token}")
    page.wait_for_function("() => typeof window.FoyerCall === 'object'")
    page.get_by_role("button", name="Join the call").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Your browser blocked the microphone.")
    expect(alert.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.get_by_role("link", name="Check your camera and microphone")).to_be_visible()
    assert _acs_user(app) is None  # no token was issued for a call that could not start
    audit()


@pytest.mark.parametrize("experience", ["call_with_chat", "call_only"])
def test_bundle_mounts_the_composite_and_falls_back_when_teams_is_unreachable(call_server, page: Page, audit,
                                                                              browser_errors, experience):
    app, emulator = call_server
    # Offline, the calling SDK's own requests to Microsoft fail, and it says so on the console.
    browser_errors.allow(r"request failed: \w+ https://(?!localhost)")
    browser_errors.allow(r"console error on http://localhost:\d+/j/")
    token = _seed(app, starts_in=timedelta(minutes=5), experience=experience, name=("Grace", "Hopper"))
    base = app.config["PUBLIC_BASE_URL"]
    response = page.goto(f"{base}/j/{token}")
    assert response.ok
    csp = response.headers["content-security-policy"]
    assert "https://*.communication.azure.com" in csp and "'unsafe-inline'" not in csp and "'nonce-" in csp
    assert response.headers["cache-control"] == "no-store" and response.headers["referrer-policy"] == "no-referrer"
    audit()
    page.wait_for_function("() => typeof window.FoyerCall === 'object'")
    # The bundle announces the adapter it creates (never the token) on a DOM event: record them.
    page.evaluate("""() => { window.adapterCalls = [];
        document.addEventListener('foyer:call-adapter', e => window.adapterCalls.push(e.detail)); }""")
    with page.expect_response(lambda r: r.url.endswith("/session")) as answer:
        page.get_by_role("button", name="Join the call").click()
    session = answer.value.json()
    assert answer.value.status == 200 and emulator.acs.token_is_valid(session["token"])
    page.wait_for_function("() => window.adapterCalls.length > 0")
    [detail] = page.evaluate("() => window.adapterCalls")
    assert detail == {"phase": "creating-adapter", "userId": _acs_user(app), "displayName": "Grace Hopper",
                      "meetingLink": TEAMS_URL, "experience": experience}
    # The composite is mounted: its configuration screen with the fake camera and microphone.
    call = page.get_by_role("region", name="The call")
    expect(call.get_by_role("button", name="Start call")).to_be_visible(timeout=60_000)
    expect(call.get_by_role("combobox", name="Camera")).to_contain_text("fake_device_0")
    assert page.evaluate("() => window.FoyerCall.last.phase") == "mounted"
    audit()
    call.get_by_role("button", name="Start call").click()
    # The SDK cannot reach Teams from here: Foyer's message with a retry and "Open in Teams", not a blank page.
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible(timeout=60_000)
    expect(alert).to_contain_text("could not connect")
    expect(alert.get_by_role("button", name="Try again")).to_be_visible()
    expect(alert.get_by_role("link", name="Open in Teams instead (new tab)")).to_have_attribute("href", TEAMS_URL)
    audit()


# --- the organizer: copy, revoke and reissue, who is in the call ---------------------------------------------


def test_organizer_copies_reissues_and_sees_who_is_in_the_call(live_server, page: Page, visit, audit, context):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    token = _seed(live_server.app, starts_in=timedelta(minutes=5))
    # The attendee joins (the sandbox stage) in another tab and stays there.
    attendee = context.new_page()
    attendee.goto(f"/j/{token}")
    attendee.get_by_role("button", name="Join the call").click()
    expect(attendee.get_by_role("region", name="You would be in the call now")).to_be_visible()

    visit("/login")
    page.get_by_label("Email").fill("organizer@example.org")
    page.get_by_label("Password").fill("a long secret pw")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    with live_server.app.app_context():
        event_id = db.session.query(Event.id).scalar()
    visit(f"/manage/events/{event_id}/registrations")
    page.get_by_role("link", name="Who is in the call now").click()
    expect(page.get_by_role("heading", name="In the call now: 1")).to_be_visible()
    expect(page.get_by_role("cell", name="Ada Lovelace")).to_be_visible()
    expect(page.get_by_text("Attendees go straight in (no lobby).")).to_be_visible()
    audit()

    visit(f"/manage/events/{event_id}/registrations")
    page.get_by_role("link", name="Join link… Ada Lovelace").click()
    field = page.get_by_label("Personal join link")
    assert field.input_value().endswith(f"/j/{token}")
    audit()
    page.get_by_role("button", name="Copy join link").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == field.input_value()
    page.get_by_role("button", name="Revoke this link and issue a new one").click()
    expect(page.get_by_text("no longer works. We emailed them the new one.")).to_be_visible()
    assert not page.get_by_label("Personal join link").input_value().endswith(f"/j/{token}")
    audit()
    attendee.close()
