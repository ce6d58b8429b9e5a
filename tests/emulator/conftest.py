"""Fixtures for the emulator's own tests: an emulator, and a way to reach it in-process or over TLS.

Tests drive the emulator only through the real clients (MSAL, requests, the ACS SDKs). The `target`
fixture runs a test twice: once through the in-process transport and once over loopback TLS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import msal
import pytest
import requests
from azure.core.pipeline.transport import RequestsTransport

from emulator import Emulator, EmulatorConfig, EmulatorEndpoints, EmulatorServer, emulator_session

REDIRECT_URI = "http://localhost:5000/auth/microsoft/callback"
GRAPH_SCOPES = ["Calendars.ReadWrite", "OnlineMeetings.ReadWrite", "OnlineMeetingArtifact.Read.All", "User.Read"]


@dataclass
class Target:
    """One way of reaching an emulator: a session plus the base URLs that go with it."""

    mode: str
    emulator: Emulator
    session: requests.Session
    endpoints: EmulatorEndpoints
    server: EmulatorServer | None = None

    def transport(self) -> RequestsTransport:
        """An azure-core transport over this target's session (the SDKs' own sessions would leak)."""
        return RequestsTransport(session=self.session, session_owner=False)

    @property
    def graph(self) -> str:
        return self.endpoints.graph_base_url

    def msal_app(self, **kwargs) -> msal.ConfidentialClientApplication:
        """A confidential client for the emulated app registration with a fresh cache."""
        kwargs.setdefault("token_cache", msal.SerializableTokenCache())
        return msal.ConfidentialClientApplication(
            self.emulator.client_id,
            client_credential=kwargs.pop("client_credential", self.emulator.client_secret),
            authority=self.endpoints.authority,
            instance_discovery=False,
            http_client=self.session,
            **kwargs,
        )


class FormParser(HTMLParser):
    """Collects the first form's action, its hidden inputs and its submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values.get("value", "")
        elif tag == "button":
            self.buttons.append((values.get("name", ""), values.get("value", "")))


def _parse_form(page: str) -> FormParser:
    parser = FormParser()
    parser.feed(page)
    return parser


def _sign_in(
    target: Target,
    app: msal.ConfidentialClientApplication,
    scopes: list[str] | None = None,
    *,
    user: str | None = None,
    flow_hook: Callable[[dict], None] | None = None,
) -> dict:
    """Run the auth-code flow like a browser would: open the authorize page, click a user, post back."""
    flow = app.initiate_auth_code_flow(scopes or GRAPH_SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post")
    page = target.session.get(flow["auth_uri"], timeout=10)
    assert page.status_code == 200, page.text
    form = _parse_form(page.text)
    chosen = target.emulator.entra.user(user or target.emulator.service_account_upn)
    assert ("user", chosen.oid) in form.buttons
    posted = target.session.post(
        urljoin(flow["auth_uri"], form.action),
        data={**form.hidden, "user": chosen.oid},
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code == 200, posted.text
    callback = _parse_form(posted.text)
    assert callback.action == REDIRECT_URI
    if flow_hook:
        flow_hook(flow)
    return app.acquire_token_by_auth_code_flow(flow, callback.hidden)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Override in a test module (or parametrize) to tune the emulator; faults never come from the env here."""
    return EmulatorConfig(faults="")


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    emu = Emulator(emulator_config)
    yield emu
    emu.close()


@pytest.fixture
def in_process(emulator: Emulator) -> Iterator[Target]:
    session = emulator_session(emulator)
    yield Target("in-process", emulator, session, emulator.endpoints())
    session.close()


@pytest.fixture
def tls(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Target]:
    server = EmulatorServer(emulator, ca_dir=tmp_path).start()
    # This machine exports REQUESTS_CA_BUNDLE, which beats verify= inside MSAL and requests.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle_path)
    session = requests.Session()
    try:
        yield Target("tls", emulator, session, server.endpoints, server)
    finally:
        session.close()
        server.stop()


@pytest.fixture(params=["in-process", "tls"])
def target(request: pytest.FixtureRequest) -> Target:
    """The same test, once in-process and once over loopback TLS."""
    return request.getfixturevalue("in_process" if request.param == "in-process" else "tls")


@pytest.fixture
def signed_in(in_process: Target) -> dict:
    """An MSAL token result for the service account with Foyer's Graph scopes (in-process)."""
    result = _sign_in(in_process, in_process.msal_app())
    assert "access_token" in result, result
    return result


@pytest.fixture
def bearer(signed_in: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {signed_in['access_token']}"}


@pytest.fixture
def sign_in() -> Callable[..., dict]:
    """`sign_in(target, app, scopes=None, *, user=None, flow_hook=None)`: the browser part of auth-code flow."""
    return _sign_in


@pytest.fixture
def parse_form() -> Callable[[str], FormParser]:
    """Parse the first form of an HTML page (action, hidden inputs, buttons)."""
    return _parse_form


@pytest.fixture
def redirect_uri() -> str:
    return REDIRECT_URI
