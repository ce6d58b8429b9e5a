"""Entra ID: discovery, the authorize page, token redemption and refresh, revocation — through MSAL."""

from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest

from emulator import EmulatorConfig


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_discovery_advertises_https_endpoints_with_the_tenant_segment(target):
    tenant = target.emulator.tenant_id
    doc = target.session.get(f"{target.endpoints.authority}/v2.0/.well-known/openid-configuration", timeout=5).json()
    base = target.endpoints.login_base_url
    assert doc["authorization_endpoint"] == f"{base}/{tenant}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{base}/{tenant}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{base}/{tenant}/v2.0"
    assert doc["jwks_uri"].startswith("https://")


def test_unknown_tenant_fails_discovery(in_process):
    response = in_process.session.get(
        "https://login.emulator.invalid/not-a-tenant/v2.0/.well-known/openid-configuration"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tenant"
    assert response.json()["error_codes"] == [90002]


def test_auth_code_flow_gives_tokens_account_and_hashed_nonce(target, sign_in):
    app = target.msal_app()
    flows = []
    result = sign_in(target, app, flow_hook=flows.append)
    assert result["token_source"] == "identity_provider"
    assert {"access_token", "refresh_token", "id_token", "client_info"} <= set(result)
    claims = result["id_token_claims"]
    # MSAL sent sha256(nonce); the id_token must echo exactly that.
    assert claims["nonce"] == hashlib.sha256(flows[0]["nonce"].encode()).hexdigest()
    assert claims["preferred_username"] == target.emulator.service_account_upn
    [account] = app.get_accounts()
    user = target.emulator.entra.user(target.emulator.service_account_upn)
    assert account["home_account_id"] == f"{user.oid}.{target.emulator.tenant_id}"
    assert account["username"] == user.upn
    assert result["expires_in"] == 3600
    assert _claims(result["access_token"])["scp"].split() == sorted(
        ["Calendars.ReadWrite", "OnlineMeetings.ReadWrite", "OnlineMeetingArtifact.Read.All", "User.Read"]
    )


def test_staff_user_can_sign_in_and_id_token_verifies_against_jwks(in_process, sign_in):
    app = in_process.msal_app()
    result = sign_in(in_process, app, ["User.Read"], user="adele.vance@contoso.emulator.invalid")
    assert result["id_token_claims"]["preferred_username"] == "adele.vance@contoso.emulator.invalid"
    jwks = in_process.session.get(
        f"https://login.emulator.invalid/{in_process.emulator.tenant_id}/discovery/v2.0/keys"
    ).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    verified = jwt.decode(result["id_token"], key, algorithms=["RS256"], audience=in_process.emulator.client_id)
    assert verified["oid"] == in_process.emulator.entra.user("adele.vance@contoso.emulator.invalid").oid
    assert in_process.emulator.entra.sign_ins[-1]["user"] == "adele.vance@contoso.emulator.invalid"


def test_authorize_page_lists_every_emulated_user(in_process, parse_form, redirect_uri):
    app = in_process.msal_app()
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=redirect_uri, response_mode="form_post")
    form = parse_form(in_process.session.get(flow["auth_uri"]).text)
    oids = {value for name, value in form.buttons if name == "user"}
    assert oids == {u.oid for u in in_process.emulator.config.users}
    assert ("action", "cancel") in form.buttons


def test_cancel_on_authorize_page_returns_access_denied(in_process, parse_form, redirect_uri):
    app = in_process.msal_app()
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=redirect_uri, response_mode="form_post")
    form = parse_form(in_process.session.get(flow["auth_uri"]).text)
    posted = in_process.session.post(
        "https://login.emulator.invalid" + form.action, data={**form.hidden, "action": "cancel"}
    )
    callback = parse_form(posted.text).hidden
    assert callback["error"] == "access_denied"
    result = app.acquire_token_by_auth_code_flow(flow, callback)
    assert result["error"] == "access_denied"


def test_query_response_mode_redirects_with_code_and_state(in_process, redirect_uri):
    emulator = in_process.emulator
    response = in_process.session.post(
        f"https://login.emulator.invalid/{emulator.tenant_id}/oauth2/v2.0/authorize",
        data={
            "client_id": emulator.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "User.Read openid",
            "state": "xyz",
            "user": emulator.entra.user(emulator.service_account_upn).oid,
        },
        allow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith(redirect_uri + "?code=")
    assert "state=xyz" in response.headers["Location"]


def test_unknown_client_id_gets_an_error_page(in_process, redirect_uri):
    response = in_process.session.get(
        f"https://login.emulator.invalid/{in_process.emulator.tenant_id}/oauth2/v2.0/authorize",
        params={"client_id": "nope", "redirect_uri": redirect_uri, "response_type": "code", "scope": "User.Read"},
    )
    assert response.status_code == 400
    assert "AADSTS700016" in response.text


def test_wrong_client_secret_is_invalid_client(in_process, sign_in):
    app = in_process.msal_app(client_credential="not-the-secret")
    result = sign_in(in_process, app)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_pkce_verifier_mismatch_is_rejected(in_process, sign_in):
    app = in_process.msal_app()

    def tamper(flow: dict) -> None:
        flow["code_verifier"] = flow["code_verifier"][::-1]

    result = sign_in(in_process, app, flow_hook=tamper)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [501481]


def test_auth_code_can_be_redeemed_only_once(in_process, redirect_uri):
    emulator = in_process.emulator
    response = in_process.session.post(
        f"https://login.emulator.invalid/{emulator.tenant_id}/oauth2/v2.0/authorize",
        data={
            "client_id": emulator.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "User.Read offline_access",
            "user": emulator.config.users[0].oid,
        },
        allow_redirects=False,
    )
    code = response.headers["Location"].split("code=")[1].split("&")[0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
    }
    token_url = f"https://login.emulator.invalid/{emulator.tenant_id}/oauth2/v2.0/token"
    first = in_process.session.post(token_url, data=form)
    second = in_process.session.post(token_url, data=form)
    assert first.status_code == 200 and "refresh_token" in first.json()
    assert second.status_code == 400
    assert second.json()["error_codes"] == [54005]


def test_silent_uses_cache_then_refresh_rotates_refresh_token(target, sign_in):
    app = target.msal_app()
    cache = app.token_cache
    first = sign_in(target, app)
    [account] = app.get_accounts()
    cached = app.acquire_token_silent(["Calendars.ReadWrite"], account=account)
    assert cached["token_source"] == "cache"
    assert cached["access_token"] == first["access_token"]
    cache.serialize()  # resets has_state_changed, as Foyer does when persisting
    refreshed = app.acquire_token_silent(["Calendars.ReadWrite"], account=account, force_refresh=True)
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    assert cache.has_state_changed
    [stored] = json.loads(cache.serialize())["RefreshToken"].values()
    assert stored["secret"] != first["refresh_token"]
    # Entra does not make refresh tokens single-use: the old one still works.
    again = target.msal_app().acquire_token_by_refresh_token(first["refresh_token"], ["Calendars.ReadWrite"])
    assert "access_token" in again, again


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults="", access_token_lifetime=120)])
def test_access_token_lifetime_is_configurable(in_process, sign_in):
    app = in_process.msal_app()
    result = sign_in(in_process, app)
    assert result["expires_in"] == 120
    assert _claims(result["access_token"])["exp"] - _claims(result["access_token"])["iat"] == 120
    # Under MSAL's 5-minute margin, so silent acquisition goes back to the token endpoint.
    [account] = app.get_accounts()
    assert app.acquire_token_silent(["User.Read"], account=account)["token_source"] == "identity_provider"


def test_revoked_refresh_token_gives_aadsts50173(target, sign_in):
    app = target.msal_app()
    sign_in(target, app)
    [account] = app.get_accounts()
    target.emulator.entra.revoke_refresh_tokens(target.emulator.service_account_upn)
    assert app.acquire_token_silent(["Calendars.ReadWrite"], account=account, force_refresh=True) is None
    error = target.msal_app(token_cache=app.token_cache).acquire_token_silent_with_error(
        ["Calendars.ReadWrite"], account=account, force_refresh=True
    )
    assert error["error"] == "invalid_grant"
    assert "AADSTS50173" in error["error_description"]
    assert error["error_codes"] == [50173]
    # Signing in again after the revocation works.
    fresh = sign_in(target, target.msal_app())
    assert "access_token" in fresh


def test_revoke_over_http_control_api(tls, sign_in):
    app = tls.msal_app()
    sign_in(tls, app)
    [account] = app.get_accounts()
    response = tls.session.post(f"{tls.server.base_url}/_emulator/entra/revoke-refresh-tokens", json={}, timeout=5)
    assert response.status_code == 204
    error = app.acquire_token_silent_with_error(["User.Read"], account=account, force_refresh=True)
    assert error["error_codes"] == [50173]


def test_refresh_with_unconsented_scope_needs_consent(in_process, sign_in):
    app = in_process.msal_app()
    sign_in(in_process, app, ["User.Read"])
    [account] = app.get_accounts()
    error = app.acquire_token_silent_with_error(["Calendars.ReadWrite"], account=account)
    assert error["error"] == "invalid_grant"
    assert error["suberror"] == "consent_required"
    assert error["error_codes"] == [65001]
