"""The emulator as one service per installation: registered redirect URIs only, a strict sign-in page
on its own listener, and state that survives a restart and is shared by every Foyer process."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from app import create_app
from app.config import Config
from app.services.microsoft.acs import AcsEmailClient, AcsSettings, EmailMessage
from emulator import Emulator, EmulatorConfig, EmulatorServer
from tests.emulator.conftest import GRAPH_SCOPES, REDIRECT_URI, Target
from tests.ports import free_port

AUTHORIZE = "/{tenant}/oauth2/v2.0/authorize"


def _authorize_url(base: str, emulator: Emulator, redirect_uri: str) -> str:
    query = urlencode({"client_id": emulator.client_id, "redirect_uri": redirect_uri, "response_type": "code",
                       "scope": "openid User.Read", "response_mode": "form_post", "state": "s1"})
    return base + AUTHORIZE.format(tenant=emulator.tenant_id) + "?" + query


# --- redirect URIs ------------------------------------------------------------------------------


@pytest.mark.parametrize("redirect_uri", [
    "javascript:alert(document.cookie)",
    "https://evil.example/admin/microsoft/callback",
    "data:text/html,<script>alert(1)</script>",
    "http://localhost.evil.example:5000/cb",
])
def test_unregistered_scheme_or_host_gets_aadsts50011_and_no_redirect(in_process, redirect_uri):
    url = _authorize_url("https://login.emulator.invalid", in_process.emulator, redirect_uri)
    for response in (in_process.session.get(url, allow_redirects=False, timeout=5),
                     in_process.session.post(url.split("?")[0], data={
                         **dict(p.split("=", 1) for p in urlsplit(url).query.split("&")), "user":
                         in_process.emulator.config.users[0].oid}, allow_redirects=False, timeout=5)):
        assert response.status_code == 400
        assert "AADSTS50011" in response.text
        assert "Location" not in response.headers
        assert "<form" not in response.text and "<script" not in response.text


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults="", redirect_uris=(REDIRECT_URI,))])
def test_registered_redirect_uris_are_the_only_ones_accepted(in_process):
    emulator = in_process.emulator
    wrong_path = REDIRECT_URI.replace("/callback", "/elsewhere")
    refused = in_process.session.get(_authorize_url("https://login.emulator.invalid", emulator, wrong_path), timeout=5)
    assert refused.status_code == 400 and "AADSTS50011" in refused.text
    accepted = in_process.session.get(_authorize_url("https://login.emulator.invalid", emulator, REDIRECT_URI),
                                      timeout=5)
    assert accepted.status_code == 200 and "Sign in (Microsoft emulator)" in accepted.text


def test_foyers_in_process_emulator_registers_only_its_two_callbacks(app):
    """Foyer's own wiring registers the connect and staff sign-in callbacks under PUBLIC_BASE_URL."""
    clients = app.extensions["microsoft"]
    base = app.config["PUBLIC_BASE_URL"]
    assert clients.emulator.config.redirect_uris == (f"{base}/admin/microsoft/callback",
                                                     f"{base}/login/microsoft/callback")
    with app.test_request_context():
        from flask import url_for

        assert url_for("admin_microsoft_callback.callback_POST") == "/admin/microsoft/callback"
        assert url_for("auth.microsoft_callback_POST") == "/login/microsoft/callback"
    for uri in (f"{base}/admin/microsoft/elsewhere", f"{base}:8080/admin/microsoft/callback"):
        page = clients.session.get(_authorize_url("https://login.emulator.invalid", clients.emulator, uri), timeout=5)
        assert page.status_code == 400 and "AADSTS50011" in page.text


def test_logout_redirects_only_to_the_apps_own_origin(in_process):
    tenant = in_process.emulator.tenant_id
    base = f"https://login.emulator.invalid/{tenant}/oauth2/v2.0/logout"
    foreign = in_process.session.get(base, params={"post_logout_redirect_uri": "https://evil.example/"},
                                     allow_redirects=False, timeout=5)
    assert foreign.status_code == 200 and "Location" not in foreign.headers
    own = in_process.session.get(base, params={"post_logout_redirect_uri": "http://localhost:5000/"},
                                 allow_redirects=False, timeout=5)
    assert own.status_code == 302 and own.headers["Location"] == "http://localhost:5000/"


# --- the sign-in page -------------------------------------------------------------------------


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults="", redirect_uris=(REDIRECT_URI,))])
def test_sign_in_page_has_a_strict_csp_and_no_inline_script(in_process, parse_form):
    emulator = in_process.emulator
    page = in_process.session.get(_authorize_url("https://login.emulator.invalid", emulator, REDIRECT_URI), timeout=5)
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy
    assert re.search(r"form-action 'self' http://localhost:5000(;|$)", policy), policy
    assert "script-src" not in policy and "<script" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    form = parse_form(page.text)
    answer = in_process.session.post("https://login.emulator.invalid" + form.action,
                                     data={**form.hidden, "user": emulator.config.users[0].oid}, timeout=5)
    # The answer page posts itself to the registered callback: exactly that script, exactly that origin.
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "form-action http://localhost:5000;" in policy
    script = re.search(r"<script>(.*?)</script>", answer.text).group(1)
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert parse_form(answer.text).action == REDIRECT_URI


def test_sign_in_listener_serves_only_the_authorize_page(emulator, tmp_path, monkeypatch, sign_in):
    server = EmulatorServer(emulator, ca_dir=tmp_path, sign_in_port=0).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle_path)
    try:
        browser = server.sign_in_base_url
        assert browser.startswith("http://localhost:")
        target = Target("tls", emulator, requests.Session(), server.endpoints, server)
        app = target.msal_app()
        # MSAL takes the authorize endpoint from discovery: the sign-in listener, another origin.
        flow = app.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI, response_mode="form_post")
        assert flow["auth_uri"].startswith(browser + f"/{emulator.tenant_id}/oauth2/v2.0/authorize?")
        result = sign_in(target, app)
        assert "access_token" in result, result
        plain = requests.Session()
        tenant = emulator.tenant_id
        for path in ("/_emulator/", "/_emulator/faults", "/v1.0/me", f"/{tenant}/oauth2/v2.0/token",
                     f"/{tenant}/v2.0/.well-known/openid-configuration", "/identities", "/emails:send"):
            assert plain.get(browser + path, timeout=5).status_code == 404, path
            assert plain.post(browser + path, timeout=5).status_code == 404, path
    finally:
        server.stop()


# --- persistence ------------------------------------------------------------------------------


def _graph(session, target: Target, token: str, method: str, path: str, **kwargs):
    return session.request(method, target.graph + path, headers={"Authorization": f"Bearer {token}"},
                           timeout=10, **kwargs)


def test_state_survives_an_emulator_restart(tmp_path, monkeypatch, sign_in):
    state = tmp_path / "state.pickle"
    first = Emulator(EmulatorConfig(faults=""), state_path=state)
    server = EmulatorServer(first, ca_dir=tmp_path).start()
    ca = (tmp_path / "emulator-ca.pem").read_bytes()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle_path)
    session = requests.Session()
    target = Target("tls", first, session, server.endpoints, server)
    result = sign_in(target, target.msal_app())
    token, refresh = result["access_token"], result["refresh_token"]
    created = _graph(session, target, token, "POST", "/me/events", json={
        "subject": "Kept", "start": {"dateTime": "2030-03-14T18:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-14T19:00:00", "timeZone": "UTC"},
        "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}).json()
    acs = AcsSettings.from_connection_string(server.endpoints.acs_connection_string)
    email = AcsEmailClient(acs, "DoNotReply@foyer.example", session=session, verify=server.ca_bundle_path)
    operation = str(uuid.uuid4())
    email.submit(EmailMessage(to=[("ada@example.org", "Ada")], subject="Your seat", plain_text="See you",
                              html="<p>See you</p>"), operation_id=operation)
    kid = first.entra.signer.kid
    port = server.port
    server.stop()

    second = Emulator(EmulatorConfig(faults=""), state_path=state)
    server = EmulatorServer(second, port=port, ca_dir=tmp_path).start()
    try:
        assert (tmp_path / "emulator-ca.pem").read_bytes() == ca  # clients keep trusting it
        assert second.entra.signer.kid == kid
        me = _graph(session, target, token, "GET", "/me")
        assert me.status_code == 200, me.text  # the access token is still valid
        again = _graph(session, target, token, "GET", f"/me/events/{created['id']}")
        assert again.status_code == 200 and again.json()["onlineMeeting"]["joinUrl"] == created["onlineMeeting"][
            "joinUrl"]
        renewed = target.msal_app().acquire_token_by_refresh_token(refresh, GRAPH_SCOPES)
        assert "access_token" in renewed, renewed
        assert email.operation_status(operation) is not None
        [kept] = second.acs.sent_emails
        assert kept.subject == "Your seat" and kept.html == "<p>See you</p>"
    finally:
        server.stop()


def test_mailbox_keeps_only_the_newest_bodies(tmp_path, in_process):
    emulator = Emulator(EmulatorConfig(faults="", mailbox_bodies_kept=2), state_path=tmp_path / "state.pickle")
    from emulator.transport import emulator_session

    session = emulator_session(emulator)
    acs = AcsSettings.from_connection_string(emulator.acs_connection_string)
    email = AcsEmailClient(acs, "DoNotReply@foyer.example", session=session)
    for n in range(4):
        email.submit(EmailMessage(to=[("ada@example.org", "Ada")], subject=f"Mail {n}", plain_text=f"Body {n}",
                                  html=f"<p>Body {n}</p>"), operation_id=str(uuid.uuid4()))
    restored = Emulator(EmulatorConfig(faults=""), state_path=tmp_path / "state.pickle")
    assert [e.subject for e in restored.acs.sent_emails] == ["Mail 0", "Mail 1", "Mail 2", "Mail 3"]
    assert [e.plain_text for e in restored.acs.sent_emails] == [None, None, "Body 2", "Body 3"]


def test_every_foyer_process_reaches_the_same_emulator_service(tmp_path, monkeypatch):
    """Two apps built from the embedded default (as the web server and the worker are) share one
    emulator: what one process created, the other can use."""
    instance = tmp_path / "instance"
    directory = instance / "emulator"
    port = free_port()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    emulator = Emulator(EmulatorConfig(faults=""), state_path=directory / "state.pickle")
    server = EmulatorServer(emulator, port=port, ca_dir=directory).start()
    environ = {"EMULATOR_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'foyer.db'}",
               "LOG_LEVEL": "WARNING"}
    try:
        web, worker = (create_app(Config, instance_path=instance, environ=dict(environ)) for _ in range(2))
        for app in (web, worker):
            clients = app.extensions["microsoft"]
            assert clients.emulator is None and clients.built_in  # a service, not in-process
            assert app.config["GRAPH_BASE_URL"] == f"https://127.0.0.1:{port}/v1.0"
            assert app.config["MICROSOFT_CA_BUNDLE"] == str(directory / "emulator-ca.pem")
        operation = str(uuid.uuid4())
        message = EmailMessage(to=[("ada@example.org", "Ada")], subject="Hello", plain_text="Hi", html="<p>Hi</p>")
        with web.app_context():
            web.extensions["microsoft"].acs_email.submit(message, operation_id=operation)
            user = web.extensions["microsoft"].acs_identity.create_user()
        with worker.app_context():
            assert worker.extensions["microsoft"].acs_email.operation_status(operation) is not None
            issued = worker.extensions["microsoft"].acs_identity.issue_token(user, scopes=["voip"])
            assert issued.token
    finally:
        server.stop()
