"""Fault injection: latency, 429 with fractional Retry-After, 503/504, timeouts, drops, token faults."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from azure.communication.email import EmailClient
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import HttpResponseError

from emulator import Emulator, EmulatorConfig, Fault, emulator_session, parse_spec


def test_spec_syntax():
    faults = parse_spec(
        "graph:latency=0.5; graph/v1.0/me/events*:status=429,retry_after=0.5,count=3; "
        "acs:status=503,rate=0.1,method=post; /emails:send:timeout,count=1,process=true; *:drop,skip=2"
    )
    assert [(f.kind, f.group, f.path) for f in faults] == [
        ("latency", "graph", None),
        ("status", "graph", "/v1.0/me/events*"),
        ("status", "acs", None),
        ("timeout", None, "/emails:send"),
        ("drop", None, None),
    ]
    assert faults[0].latency == 0.5
    assert (faults[1].status, faults[1].retry_after, faults[1].count) == (429, "0.5", 3)
    assert (faults[2].rate, faults[2].method) == (0.1, "POST")
    assert faults[3].process is True
    assert faults[4].skip == 2


@pytest.mark.parametrize(
    "spec", ["graph", "graph:explode", "mars:status=503", "graph:status=200", "graph:status=503,colour=red"]
)
def test_bad_spec_is_rejected(spec):
    with pytest.raises(ValueError, match="bad fault rule"):
        parse_spec(spec)


def test_env_faults_are_read_when_the_emulator_is_built(monkeypatch, sign_in):
    monkeypatch.setenv("FOYER_EMULATOR_FAULTS", "graph:status=503,count=1")
    emulator = Emulator()  # faults=None in the config means "read the environment now"
    monkeypatch.setenv("FOYER_EMULATOR_FAULTS", "graph:status=504")  # too late: already read
    session = emulator_session(emulator)
    with session:
        responses = [session.get(emulator.graph_base_url + "/me").status_code for _ in range(2)]
    assert responses == [503, 401]
    assert [f.status for f in emulator.faults] == [503]


def test_explicit_config_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("FOYER_EMULATOR_FAULTS", "graph:status=503")
    assert len(Emulator(EmulatorConfig(faults="")).faults) == 0


def test_latency_applies_only_to_its_group(in_process, bearer):
    in_process.emulator.faults.add(kind="latency", group="graph", latency=0.3)
    started = time.monotonic()
    assert in_process.session.get(in_process.graph + "/me", headers=bearer).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    in_process.session.get(f"{in_process.endpoints.authority}/v2.0/.well-known/openid-configuration")
    assert time.monotonic() - started < 0.2


def test_graph_429_with_fractional_retry_after_then_recovers(target, sign_in):
    token = sign_in(target, target.msal_app())["access_token"]
    target.emulator.faults.add(kind="status", status=429, retry_after="0.5", group="graph", path="/v1.0/me", count=1)
    headers = {"Authorization": f"Bearer {token}"}
    throttled = target.session.get(target.graph + "/me", headers=headers, timeout=5)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "0.5"
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["code"] == "429"
    assert error["innerError"]["request-id"] == throttled.headers["request-id"]
    assert target.session.get(target.graph + "/me", headers=headers, timeout=5).status_code == 200
    [fault] = target.emulator.faults
    assert (fault.hits, fault.exhausted) == (1, True)


def test_429_without_retry_after(in_process, bearer):
    in_process.emulator.faults.add(kind="status", status=429, group="graph")
    response = in_process.session.get(in_process.graph + "/me", headers=bearer)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_batch_items_can_be_throttled(in_process, bearer):
    in_process.emulator.faults.add(kind="status", status=429, retry_after="2.128", path="/v1.0/me/events", count=1)
    response = in_process.session.post(
        in_process.graph + "/$batch",
        headers=bearer,
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/me/events"},
                {"id": "2", "method": "GET", "url": "/me/events"},
            ]
        },
    )
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    assert items["1"]["status"] == 429 and items["1"]["headers"]["Retry-After"] == "2.128"
    assert items["2"]["status"] == 200


def test_acs_503_surfaces_with_retry_total_0_and_is_retried_by_default(in_process):
    emulator = in_process.emulator
    emulator.faults.add(kind="status", status=503, group="acs", count=1)
    raw = CommunicationIdentityClient.from_connection_string(
        emulator.acs_connection_string, transport=in_process.transport(), retry_total=0
    )
    with pytest.raises(HttpResponseError) as raised:
        raw.create_user()
    assert raised.value.status_code == 503
    # azure-core retries any response that carries Retry-After (microsoft.md E.2).
    emulator.faults.add(kind="status", status=429, retry_after="0.1", group="acs", count=2)
    retrying = CommunicationIdentityClient.from_connection_string(
        emulator.acs_connection_string, transport=in_process.transport(), retry_backoff_factor=0
    )
    retrying.create_user()
    assert [r.status for r in emulator.requests_for("acs")] == [503, 429, 429, 201]


def test_email_429_fault_with_retry_total_0(in_process):
    in_process.emulator.faults.add(kind="status", status=429, retry_after="1", path="/emails:send")
    client = EmailClient.from_connection_string(
        in_process.emulator.acs_connection_string, transport=in_process.transport(), retry_total=0
    )
    message = {
        "senderAddress": "DoNotReply@foyer.emulator.invalid",
        "content": {"subject": "s", "plainText": "p"},
        "recipients": {"to": [{"address": "a@example.org"}]},
    }
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(message, polling_interval=0)
    assert raised.value.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "1"
    assert not in_process.emulator.acs.sent_emails


def test_timeout_in_process_raises_read_timeout(in_process, bearer):
    in_process.emulator.faults.add(kind="timeout", group="graph", count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        in_process.session.get(in_process.graph + "/me", headers=bearer, timeout=1)
    assert in_process.session.get(in_process.graph + "/me", headers=bearer).status_code == 200


def test_timeout_over_tls_hangs_past_the_client_timeout(tls, sign_in):
    token = sign_in(tls, tls.msal_app())["access_token"]
    tls.emulator.faults.add(kind="timeout", group="graph", latency=3, count=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        tls.session.get(tls.graph + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=0.3)
    assert time.monotonic() - started < 2


def test_timeout_after_processing_leaves_the_side_effect(in_process, bearer):
    in_process.emulator.faults.add_spec("graph/v1.0/me/events:timeout,count=1,process=true,method=POST")
    body = {
        "subject": "Lost reply",
        "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
        "transactionId": str(uuid.uuid4()),
    }
    with pytest.raises(requests.exceptions.ReadTimeout):
        in_process.session.post(in_process.graph + "/me/events", json=body, headers=bearer, timeout=1)
    [event] = in_process.emulator.graph.events.values()
    # Retrying with the same transactionId does not create a second event.
    retry = in_process.session.post(in_process.graph + "/me/events", json=body, headers=bearer)
    assert retry.json()["id"] == event["id"]
    assert len(in_process.emulator.graph.events) == 1


def test_drop_in_process_and_over_tls(target):
    target.emulator.faults.add(kind="drop", group="entra", count=1)
    url = f"{target.endpoints.authority}/v2.0/.well-known/openid-configuration"
    with pytest.raises(requests.exceptions.ConnectionError):
        target.session.get(url, timeout=5)
    assert target.session.get(url, timeout=5).status_code == 200


def test_expire_tokens_fault_makes_graph_answer_401(in_process, bearer):
    in_process.emulator.faults.add(kind="expire-tokens", group="graph", path="/v1.0/me/events", count=1)
    assert in_process.session.get(in_process.graph + "/me", headers=bearer).status_code == 200
    response = in_process.session.get(in_process.graph + "/me/events", headers=bearer)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Access token has expired or is not yet valid."


def test_revoke_tokens_fault(in_process, sign_in):
    app = in_process.msal_app()
    sign_in(in_process, app)
    [account] = app.get_accounts()
    in_process.emulator.faults.add_spec("entra:revoke-tokens,count=1")
    error = app.acquire_token_silent_with_error(["User.Read"], account=account, force_refresh=True)
    assert error["error_codes"] == [50173]


def test_skip_and_rate(in_process):
    emulator = in_process.emulator
    emulator.faults.add(kind="status", status=503, group="entra", skip=2, count=1)
    url = f"{emulator.authority}/v2.0/.well-known/openid-configuration"
    assert [in_process.session.get(url).status_code for _ in range(4)] == [200, 200, 503, 200]
    emulator.faults.clear()
    emulator.faults.add(Fault(kind="status", status=503, group="entra", rate=0.5))
    codes = [in_process.session.get(url).status_code for _ in range(40)]
    assert 5 < codes.count(503) < 35


def test_faults_over_the_http_control_api(tls):
    base = tls.server.base_url
    added = tls.session.post(f"{base}/_emulator/faults", json={"spec": "entra:status=504,count=1"}, timeout=5)
    assert added.status_code == 201
    fault_id = added.json()["value"][0]["id"]
    url = f"{tls.endpoints.authority}/v2.0/.well-known/openid-configuration"
    assert tls.session.get(url, timeout=5).status_code == 504
    listed = tls.session.get(f"{base}/_emulator/faults", timeout=5).json()["value"]
    assert listed[0]["hits"] == 1
    tls.session.post(f"{base}/_emulator/faults", json={"kind": "status", "status": 503, "group": "entra"}, timeout=5)
    assert tls.session.get(url, timeout=5).status_code == 503
    assert tls.session.delete(f"{base}/_emulator/faults/{fault_id}", timeout=5).status_code == 204
    assert tls.session.delete(f"{base}/_emulator/faults", timeout=5).status_code == 204
    assert tls.session.get(url, timeout=5).status_code == 200
    assert tls.session.post(f"{base}/_emulator/faults", json={"kind": "nope"}, timeout=5).status_code == 400
