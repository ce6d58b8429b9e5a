"""Real Microsoft is another origin. Foyer is configured only through the real-Microsoft variables and
the emulator is served on its own origin over TLS (as login.microsoftonline.com and graph.microsoft.com
are): an admin connects the service account through the sign-in page there, staff "Sign in with
Microsoft" works, and a published event gets its Teams meeting. Any CSP violation (e.g. form-action
refusing the redirect to the authority) fails the test."""

from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from app import config as foyer_config
from app import create_app
from app.extensions import db
from app.models import Role, User
from app.schema import migrate_to_latest
from app.services.microsoft import wiring
from app.services.outbox import outbox
from emulator import Emulator, EmulatorConfig, EmulatorServer
from tests.browser.conftest import LiveServer, _QuietHandler
from tests.browser.test_first_run import TITLE, _create_event, _set_up_and_sign_in
from tests.ports import free_port

SERVICE_ACCOUNT = "foyer.service@contoso.emulator.invalid"
ADELE = "adele.vance@contoso.emulator.invalid"


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory):
    emulator = Emulator(EmulatorConfig(faults="", redirect_uris=(), meeting_lookup_delay=0))
    with EmulatorServer(emulator, ca_dir=tmp_path_factory.mktemp("emulator-ca")) as server:
        yield server


@pytest.fixture(scope="module")
def live_server(tls_emulator, tmp_path_factory):
    """Foyer on http://localhost:<port>, knowing Microsoft only by its environment variables."""
    port = free_port()
    base_url = f"http://localhost:{port}"
    ends = tls_emulator.endpoints
    environ = {
        "ENTRA_AUTHORITY": ends.authority,
        "ENTRA_CLIENT_ID": tls_emulator.emulator.client_id,
        "ENTRA_CLIENT_SECRET": tls_emulator.emulator.client_secret,
        "GRAPH_BASE_URL": ends.graph_base_url,
        "ACS_CONNECTION_STRING": ends.acs_connection_string,
        "MICROSOFT_CA_BUNDLE": tls_emulator.ca_bundle_path,
    }
    url = f"sqlite:///{tmp_path_factory.mktemp('origins-db') / 'foyer.db'}"
    app = create_app(foyer_config.TestConfig, instance_path=tmp_path_factory.mktemp("origins-instance"),
                     environ=environ, SQLALCHEMY_DATABASE_URI=url)
    app.config["PUBLIC_BASE_URL"] = base_url
    assert app.extensions["microsoft"].emulator is None and not app.extensions["microsoft"].built_in
    # The app registration in the (emulated) tenant lists exactly Foyer's two callbacks.
    tls_emulator.emulator.config.redirect_uris = wiring.redirect_uris(base_url)
    migrate_to_latest(app)
    server = make_server("localhost", port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="foyer-origins", daemon=True)
    thread.start()
    yield LiveServer(app=app, base_url=base_url)
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def context_options() -> dict:
    # Chromium does not trust the emulator's private CA; real Entra's certificate would be trusted.
    return {"ignore_https_errors": True}


def worker_pass(live_server) -> int:
    with live_server.app.app_context():
        try:
            return outbox.drain()
        finally:
            db.session.remove()


def _sign_in_at_microsoft(page: Page, audit, authority: str, name: str, upn: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(authority) + r"/oauth2/v2\.0/authorize\?"))
    expect(page.get_by_role("heading", name="Sign in (Microsoft emulator)")).to_be_visible()
    audit()
    page.get_by_role("button", name=re.compile(rf"Sign in as {re.escape(name)} <{re.escape(upn)}>")).click()


def test_connect_staff_sign_in_and_provisioning_against_another_origin(page, visit, audit, live_server,
                                                                       tls_emulator):
    emulator = tls_emulator.emulator
    authority = tls_emulator.endpoints.authority
    _set_up_and_sign_in(page, visit, audit, live_server)

    visit("/admin/microsoft/")
    expect(page.get_by_text("Not connected")).to_be_visible()
    page.get_by_role("button", name="Connect", exact=True).click()
    _sign_in_at_microsoft(page, audit, authority, "Foyer Service Account", SERVICE_ACCOUNT)
    expect(page).to_have_url(re.compile(r"/admin/microsoft/\?outcome=connected$"))
    expect(page.get_by_role("status")).to_contain_text("Microsoft 365 is connected.")
    expect(page.get_by_text(SERVICE_ACCOUNT)).to_be_visible()
    audit()

    page.get_by_role("region", name="Staff sign-in with Microsoft").get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("Staff can now sign in with Microsoft.")).to_be_visible()
    audit()
    with live_server.app.app_context():
        db.session.add(User(email=ADELE, role=Role.organizer, name="Adele Vance"))
        db.session.commit()
        db.session.remove()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You have been signed out")
    page.get_by_role("button", name="Sign in with Microsoft").click()
    _sign_in_at_microsoft(page, audit, authority, "Adele Vance", ADELE)
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    audit()

    _create_event(page, audit)
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=TITLE).click()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published")
    status = page.locator(".teams-status")
    expect(status).to_contain_text("Provisioning…")
    assert worker_pass(live_server) >= 1
    expect(status).to_contain_text("Ready", timeout=15_000)
    audit()
    [calendar_event] = emulator.graph.events.values()
    assert calendar_event["subject"] == TITLE and calendar_event["isOnlineMeeting"] is True
    # Everything Foyer's server sent went over TLS to the emulator's own origin.
    assert all(r.host.startswith("127.0.0.1:") for r in emulator.requests_for("graph"))
