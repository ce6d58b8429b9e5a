"""`flask worker` as a real process: configured only by environment variables, talking to the
Microsoft emulator served over loopback TLS, sharing the test database.

* `--once` provisions a published event's Teams meeting;
* a worker killed (SIGKILL) in the middle of a Graph call neither loses nor repeats the job;
* two workers draining the same queue on PostgreSQL send every email exactly once;
* SIGTERM twice stops the worker once, quietly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, OutboxItem, OutboxStatus, ProvisioningStatus, Setting
from app.services.messaging import dispatch, queueing, rendering
from tests.services.microsoft import conftest as tls_fixtures

REPO_ROOT = Path(__file__).resolve().parents[2]
DONE_LINE = re.compile(r"Outbox item (\d+) \((message\.send)\) -> done")

# The TLS emulator and an app on the test database pointed at it (see tests/services/microsoft/conftest.py).
tls_emulator = tls_fixtures.tls_emulator
tls_app = tls_fixtures.tls_app
emulator = tls_fixtures.emulator
tls_ctx = tls_fixtures.tls_ctx
connected = tls_fixtures.connected


@pytest.fixture
def worker_env(tls_app, tls_emulator, database_url):
    """The environment of a `flask worker` process: nothing but variables, as in production."""
    ends = tls_emulator.endpoints
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database_url,
        # Shared with the test app, so the token cache it stored decrypts in the worker.
        "SECRET_KEY": tls_app.config["SECRET_KEY"],
        "ENCRYPTION_KEYS": ",".join(tls_app.config["ENCRYPTION_KEYS"]),
        "PUBLIC_BASE_URL": "http://localhost",
        "ENTRA_AUTHORITY": ends.authority,
        "ENTRA_CLIENT_ID": tls_emulator.emulator.client_id,
        "ENTRA_CLIENT_SECRET": tls_emulator.emulator.client_secret,
        "GRAPH_BASE_URL": ends.graph_base_url,
        "ACS_CONNECTION_STRING": ends.acs_connection_string,
        "ACS_SENDER_ADDRESS": "events@foyer.example",
        "MICROSOFT_CA_BUNDLE": tls_emulator.ca_bundle_path,
        "LOG_LEVEL": "INFO",
    }
    return env


def start_worker(env: dict[str, str], *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *args],
        cwd=REPO_ROOT, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


#: How long a `flask worker --once` may take: a guard against a hung worker, not a measure. A pass takes a
#: few seconds; the process start alone takes 1.5–2.5 s of CPU on a slow 2-core machine.
ONCE_TIMEOUT = 90


def finish(proc: subprocess.Popen, *, timeout: float = ONCE_TIMEOUT) -> str:
    """Wait for a worker started with `start_worker` to exit cleanly; returns its log (stderr).

    A worker still running at `timeout` is killed and reaped before the test fails, so no process or pipe
    outlives the test (a leaked one would fail a later test when it is collected).
    """
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"worker still running after {timeout} s:\n{out}\n{err}") from None
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{out}\n{err}"
    return err


def run_worker_once(env: dict[str, str], **extra: str) -> str:
    """`flask worker --once`; returns its log (stderr) after checking it exited cleanly."""
    return finish(start_worker(env, "--once", **extra))


def wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def publish(client, event) -> None:
    response = client.submit(f"/manage/events/{event.id}/publish")
    assert response.status_code == 303


def fresh(model, ident):
    db.session.rollback()  # the worker wrote from another process: end this session's snapshot
    return db.session.get(model, ident)


def provision_item() -> OutboxItem:
    db.session.rollback()
    return db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "teams.provision"))


def test_worker_once_provisions_a_published_event_over_tls(connected, emulator, worker_env, client, auth,
                                                           make_event):
    organizer = auth.login_as_organizer()
    event = make_event(organizer, attendee_lobby="bypass")
    publish(client, event)
    assert fresh(Event, event.id).provisioning_status == ProvisioningStatus.pending
    assert emulator.graph.events == {}  # publishing only queued the work

    log = run_worker_once(worker_env)

    assert "teams.provision) -> done" in log
    provisioned = fresh(Event, event.id)
    assert provisioned.provisioning_status == ProvisioningStatus.ready
    assert list(emulator.graph.events) == [provisioned.graph_event_id]
    calendar_event = emulator.graph.events[provisioned.graph_event_id]
    assert calendar_event["subject"] == event.title and calendar_event["isOnlineMeeting"] is True
    assert f"http://localhost/events/{event.slug}" in calendar_event["body"]["content"]
    meeting = emulator.graph.online_meetings[provisioned.online_meeting_id]
    assert meeting["joinWebUrl"] == provisioned.join_url
    assert meeting["lobbyBypassSettings"]["scope"] == "everyone"
    # It really went over the network to the TLS server, not to an in-process emulator.
    assert all(r.host.startswith("127.0.0.1:") for r in emulator.requests_for("graph"))
    assert provision_item().status == OutboxStatus.done
    heartbeat = fresh(Setting, "worker_heartbeat")  # --once ran every scheduled job
    assert heartbeat is not None and heartbeat.value["worker"].rsplit(":", 1)[1] != str(os.getpid())


def test_worker_killed_mid_graph_call_neither_loses_nor_repeats_the_meeting(connected, emulator, worker_env, client,
                                                                           auth, make_event):
    organizer = auth.login_as_organizer()
    event = make_event(organizer)
    publish(client, event)
    # Graph creates the calendar event, then the answer never comes back: the worker is stuck
    # inside the call when it is killed, and Foyer never learns the new event's id.
    emulator.faults.add(kind="timeout", group="graph", path="/v1.0/me/events", method="POST", process=True,
                        latency=15, count=1)

    first = start_worker(worker_env, "--once", OUTBOX_LEASE_SECONDS="2")
    try:
        wait_for(lambda: len(emulator.graph.events) == 1, timeout=15, what="the worker's POST /me/events")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL

    crashed = provision_item()
    assert crashed.status == OutboxStatus.running and crashed.attempts == 1  # claimed, never settled
    assert fresh(Event, event.id).graph_event_id is None  # the id never reached Foyer
    lease_ends = crashed.locked_until.replace(tzinfo=UTC) if crashed.locked_until.tzinfo is None \
        else crashed.locked_until
    time.sleep(max(0.0, (lease_ends - datetime.now(UTC)).total_seconds()) + 0.2)

    log = run_worker_once(worker_env, OUTBOX_LEASE_SECONDS="2")

    assert "teams.provision) -> done" in log
    provisioned = fresh(Event, event.id)
    assert provisioned.provisioning_status == ProvisioningStatus.ready
    # Not lost: the item was taken over and finished. Not repeated: one calendar event, one meeting.
    item = provision_item()
    assert item.status == OutboxStatus.done and item.attempts == 2
    assert list(emulator.graph.events) == [provisioned.graph_event_id]
    assert list(emulator.graph.online_meetings) == [provisioned.online_meeting_id]
    creates = [r for r in emulator.requests_for("graph", path="/v1.0/me/events") if r.method == "POST"]
    assert len(creates) == 2  # the restart asked again …
    transaction_ids = {re.search(rb'"transactionId":\s*"([^"]+)"', r.body).group(1) for r in creates}
    assert len(transaction_ids) == 1  # … with the same transactionId, which Graph de-duplicated


def test_two_workers_on_postgresql_send_each_queued_email_exactly_once(tls_ctx, emulator, worker_env, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite deployments run a single worker; concurrent claiming is a PostgreSQL feature")
    addresses = [f"guest{n:02d}@example.org" for n in range(40)]
    # A quota that lets all 40 go at once: this is about claiming, not pacing.
    db.session.add(Setting(key=dispatch.QUOTA_SETTING, value={"per_minute": 1000, "per_hour": 10000}))
    for address in addresses:
        queueing.queue_email("admin_alert", event=None, to=address, name="", dedupe_key=f"worker-test:{address}",
                             rendered=rendering.Rendered("Your seat is confirmed", "<p>See you there.</p>",
                                                         "See you there."))
    db.session.commit()
    # Slow sends keep both workers busy at the same time.
    emulator.faults.add(kind="latency", latency=0.05, group="acs", path="/emails:send")

    workers = [start_worker(worker_env, "--once") for _ in range(2)]
    try:
        logs = [{int(m.group(1)) for m in DONE_LINE.finditer(finish(proc))} for proc in workers]
    finally:  # the first one failing leaves the second running: it is reaped too
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    first, second = logs
    assert first and second, f"both workers should have sent some: {len(first)} / {len(second)}"
    assert not first & second  # no item was performed by both
    assert len(first | second) == 40
    db.session.rollback()
    statuses = db.session.scalars(select(OutboxItem.status).where(OutboxItem.kind == "message.send")).all()
    assert statuses == [OutboxStatus.done] * 40
    sent_to = sorted(e.to[0]["address"] for e in emulator.acs.sent_emails)
    assert sent_to == addresses  # each exactly once at ACS
    assert emulator.acs.duplicate_operation_ids() == []


def test_a_second_sigterm_while_stopping_is_not_an_error(worker_env, tmp_path):
    """A service manager, or `make run` stopping its process group, may send SIGTERM twice; the worker
    stops once and quietly (no traceback from stopping a scheduler that is already stopping)."""
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:  # a file, not a pipe: nobody reads a pipe while the worker runs
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=REPO_ROOT,
            env={**worker_env, "OUTBOX_POLL_SECONDS": "0.2"}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Worker started with jobs" in log_path.read_text(), timeout=60, what="the worker to start")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker did not stop:\n{log_path.read_text()}") from None
        assert proc.returncode == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    output = log_path.read_text()
    assert "Traceback" not in output and "SchedulerNotRunningError" not in output, output
    assert output.count("Worker stopping") == 1, output
