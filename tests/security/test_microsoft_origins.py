"""Foyer under real Microsoft's origins: the CSP lets the connect and sign-in forms go on to Microsoft's
sign-in page (and only those pages), a private CA bundle keeps the environment's proxies, and the
embedded default points at the emulator service."""

from __future__ import annotations

import re

import pytest

from app.config import Config
from app.services.microsoft import wiring

pytestmark = pytest.mark.db_agnostic  # configuration and CSP headers: nothing here touches SQL of its own

REAL = {
    "ENTRA_AUTHORITY": "https://login.microsoftonline.com/contoso.onmicrosoft.com",
    "ENTRA_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "ENTRA_CLIENT_SECRET": "a-secret",
    "GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0",
    "ACS_CONNECTION_STRING": "endpoint=https://foyer.communication.azure.com/;accesskey=QUJDREVGR0g=",
}


def _form_action(response) -> str:
    return re.search(r"form-action ([^;]+)", response.headers["Content-Security-Policy"]).group(1).strip()


def test_real_microsoft_sign_in_origin_is_the_authoritys(tmp_path):
    config = Config(tmp_path, dict(REAL))
    assert not config.MICROSOFT_EMULATED
    assert config.MICROSOFT_SIGN_IN_ORIGIN == "https://login.microsoftonline.com"
    assert config.MICROSOFT_CA_BUNDLE == ""


def test_embedded_default_is_the_emulator_service_and_follows_host_and_port(tmp_path):
    config = Config(tmp_path, {"HOST": "0.0.0.0", "PORT": "8080"})  # noqa: S104 - what `make run HOST=…` passes
    assert config.PUBLIC_BASE_URL == "http://localhost:8080"
    assert config.MICROSOFT_EMULATED and config.EMULATOR_PORT == 8080 + 3443
    assert config.ENTRA_AUTHORITY.startswith("https://127.0.0.1:11523/")
    assert config.GRAPH_BASE_URL == "https://127.0.0.1:11523/v1.0"
    assert config.ACS_CONNECTION_STRING.startswith("endpoint=https://127.0.0.1:11523/;")
    assert config.MICROSOFT_CA_BUNDLE == str(tmp_path / "emulator" / "emulator-ca.pem")
    assert config.MICROSOFT_SIGN_IN_ORIGIN == "http://localhost:11524"
    assert wiring.redirect_uris(config.PUBLIC_BASE_URL) == ("http://localhost:8080/admin/microsoft/callback",
                                                            "http://localhost:8080/login/microsoft/callback")
    explicit = Config(tmp_path, {"PORT": "8080", "EMULATOR_PORT": "9443", "PUBLIC_BASE_URL": "https://ev.example/"})
    assert explicit.PUBLIC_BASE_URL == "https://ev.example"
    assert explicit.GRAPH_BASE_URL == "https://127.0.0.1:9443/v1.0"


@pytest.fixture
def real_origin(app):
    app.config["MICROSOFT_SIGN_IN_ORIGIN"] = "https://login.microsoftonline.com"
    yield
    app.config["MICROSOFT_SIGN_IN_ORIGIN"] = ""


def test_connect_and_sign_in_pages_allow_their_forms_to_reach_microsoft(real_origin, client, auth):
    assert _form_action(client.get("/login")) == "'self' https://login.microsoftonline.com"
    assert _form_action(client.post("/login", data={})) == "'self' https://login.microsoftonline.com"
    auth.login_as_admin()
    assert _form_action(client.get("/admin/microsoft/")) == "'self' https://login.microsoftonline.com"
    # Every other page keeps form-action 'self'.
    for path in ("/", "/manage/events", "/admin/microsoft/disconnect"):
        response = client.get(path)
        assert _form_action(response) == "'self'", path


def test_ca_bundle_is_used_and_the_environments_proxies_still_apply(app, monkeypatch, tmp_path):
    bundle = tmp_path / "private-ca.pem"
    bundle.write_text("placeholder")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "acs.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    clients = wiring.build({**app.config, **REAL, "MICROSOFT_CA_BUNDLE": str(bundle)})
    settings = clients.session.merge_environment_settings("https://graph.microsoft.com/v1.0/me", {}, None, None, None)
    assert settings["verify"] == str(bundle)  # not REQUESTS_CA_BUNDLE
    assert settings["proxies"].get("https") == "http://proxy.internal:3128"
    direct = clients.session.merge_environment_settings("https://acs.internal/emails:send", {}, None, None, None)
    assert "https" not in direct["proxies"] and direct["verify"] == str(bundle)
    # An explicit verify= from a caller still wins.
    assert clients.session.merge_environment_settings("https://x.example/", {}, None, False, None)["verify"] is False


def test_before_the_emulator_has_made_its_ca_its_calls_are_connection_errors(app, tmp_path):
    """A process started before `flask emulator serve` wrote its CA sees Microsoft as unreachable (a
    transient error the outbox retries), not a broken installation."""
    import requests

    clients = wiring.build({**app.config, **REAL, "MICROSOFT_CA_BUNDLE": str(tmp_path / "emulator" / "ca.pem")})
    with pytest.raises(requests.exceptions.ConnectionError, match="emulator running"):
        clients.session.get("https://127.0.0.1:9/v1.0/me", timeout=1)
