"""The plumbing: inspection API, request log, reset, transport mounting, time zones, the TLS entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from emulator import EmulatorAdapter, EmulatorServer
from emulator.timezones import WINDOWS_TO_IANA, resolve_zone


def test_index_on_any_host_shows_credentials_and_endpoints(target):
    base = target.server.base_url if target.server else "https://graph.emulator.invalid"
    index = target.session.get(f"{base}/_emulator/", timeout=5).json()
    assert index["client_id"] == target.emulator.client_id
    assert index["endpoints"]["authority"] == target.endpoints.authority
    assert index["endpoints"]["acs_connection_string"] == target.endpoints.acs_connection_string
    assert index["service_account_upn"] in index["users"]


def test_request_log_redacts_credentials(in_process, bearer):
    in_process.session.get(in_process.graph + "/me", headers=bearer)
    record = in_process.emulator.requests_for("graph", path="/v1.0/me")[-1]
    assert record.headers["Authorization"] == "Bearer <redacted>"
    assert record.status == 200
    logged = in_process.session.get("https://acs.emulator.invalid/_emulator/requests?limit=1").json()["value"]
    assert logged[0]["path"] == "/v1.0/me"
    assert bearer["Authorization"].split()[1] not in str(logged)


def test_reset_forgets_everything(in_process, bearer):
    emulator = in_process.emulator
    emulator.faults.add(kind="latency", latency=0.01)
    emulator.clock.advance(10)
    in_process.session.post(
        in_process.graph + "/me/events",
        headers=bearer,
        json={
            "subject": "x",
            "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
        },
    )
    assert emulator.graph.events
    assert in_process.session.post("https://login.emulator.invalid/_emulator/reset").status_code == 204
    assert not emulator.graph.events and not emulator.requests_for("graph") and not len(emulator.faults)
    assert abs(emulator.clock.time() - time.time()) < 1
    # Tokens were forgotten too.
    assert in_process.session.get(in_process.graph + "/me", headers=bearer).status_code == 401


def test_only_emulator_hosts_are_mounted(in_process):
    session = in_process.session
    assert isinstance(session.get_adapter("https://graph.emulator.invalid/v1.0/me"), EmulatorAdapter)
    assert isinstance(session.get_adapter("https://ACS.emulator.invalid/identities"), EmulatorAdapter)
    assert not isinstance(session.get_adapter("https://graph.microsoft.com/v1.0/me"), EmulatorAdapter)
    assert not isinstance(session.get_adapter("https://graph.emulator.invalid.example.com/"), EmulatorAdapter)


def test_streamed_responses_work_in_process(in_process):
    response = in_process.session.get(
        f"{in_process.endpoints.authority}/v2.0/.well-known/openid-configuration", stream=True
    )
    body = b"".join(response.iter_content(7))
    assert json.loads(body)["token_endpoint"].endswith("/oauth2/v2.0/token")


def test_loopback_routes_by_path(tls):
    assert tls.endpoints.graph_base_url == f"{tls.server.base_url}/v1.0"
    assert tls.endpoints.acs_connection_string.startswith(f"endpoint={tls.server.base_url}/;accesskey=")
    unsigned = tls.session.post(f"{tls.server.base_url}/identities?api-version=2023-10-01", json={}, timeout=5)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "Denied"
    graph = tls.session.get(f"{tls.server.base_url}/v1.0/me", timeout=5)
    assert graph.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_server_refuses_untrusted_clients(emulator, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with EmulatorServer(emulator) as server, requests.Session() as session:
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"{server.base_url}/_emulator/", timeout=5)
        assert session.get(f"{server.base_url}/_emulator/", timeout=5, verify=server.ca_bundle_path).ok


@pytest.mark.parametrize("name", sorted(WINDOWS_TO_IANA))
def test_every_windows_zone_resolves(name):
    assert isinstance(resolve_zone(name), ZoneInfo)


def test_zone_names_graph_would_reject():
    assert resolve_zone("Mars Standard Time") is None
    assert resolve_zone("Not/AZone") is None
    assert resolve_zone("utc") is not None and resolve_zone("Europe/Berlin") is not None


def test_module_entry_point_serves_tls(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "FOYER_EMULATOR_FAULTS": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--ca-dir", str(tmp_path)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("Microsoft emulator on https://127.0.0.1:"), first
        base = first.split(" on ", 1)[1].strip()
        with requests.Session() as session:
            index = session.get(f"{base}/_emulator/", verify=str(tmp_path / "emulator-ca.pem"), timeout=10).json()
        assert index["endpoints"]["authority"].startswith(base + "/")
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_concurrent_clients_over_tls_are_all_served(tls, sign_in):
    token = sign_in(tls, tls.msal_app())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "subject": "Rush",
        "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
        "isOnlineMeeting": True,
    }

    def create(i: int) -> str:
        with requests.Session() as session:
            response = session.post(
                tls.graph + "/me/events", json={**body, "subject": f"Rush {i}"}, headers=headers, timeout=10
            )
            assert response.status_code == 201, response.text
            return response.json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(24)))
    assert len(set(ids)) == 24
    assert len(tls.emulator.graph.events) == 24
    assert len({m["joinWebUrl"] for m in tls.emulator.graph.online_meetings.values()}) == 24
