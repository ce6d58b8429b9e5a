"""Messages and reminders through real `flask worker` processes and the emulator over TLS:

* a worker killed (SIGKILL) while ACS is accepting a send, then restarted: every message exactly once;
* two workers on one PostgreSQL database sweeping and draining the same reminders: no duplicates;
* ACS throttling at its quota (429 + Retry-After) while the worker believes in a larger quota: all
  sent, none twice.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Event,
    EventStatus,
    Message,
    MessageStatus,
    OutboxItem,
    Registration,
    RegistrationState,
    Role,
    Setting,
    User,
)
from app.services.messaging import dispatch
from app.services.registration import registrations
from tests.integration import test_worker_process as worker_process
from tests.integration.test_worker_process import finish, run_worker_once, start_worker, wait_for
from tests.services.microsoft import conftest as tls_fixtures

tls_emulator = tls_fixtures.tls_emulator
tls_app = tls_fixtures.tls_app
emulator = tls_fixtures.emulator
tls_ctx = tls_fixtures.tls_ctx
worker_env = worker_process.worker_env


def _event(*, starts_in: timedelta, offsets: list[int], people: int) -> int:
    owner = User(email="owner@example.org", name="Owner", role=Role.organizer)
    db.session.add(owner)
    db.session.flush()
    start = datetime.now(UTC).replace(microsecond=0) + starts_in
    event = Event(slug="worker-reminders", title="Worker reminders", timezone="Europe/Berlin", starts_at=start,
                  ends_at=start + timedelta(hours=1), status=EventStatus.published, published_at=datetime.now(UTC),
                  owner_id=owner.id, reminder_offsets=offsets)
    db.session.add(event)
    db.session.commit()
    for n in range(people):
        registrations.register(event, registrations.RegistrationData(
            first_name="Guest", last_name=f"{n:03d}", email=f"guest{n:03d}@example.org", timezone="UTC"))
    db.session.commit()
    return event.id


def _backdate_confirmations(event_id: int) -> None:
    """Registrations made 'yesterday', so today's reminder is theirs."""
    for reg in db.session.scalars(select(Registration).where(Registration.event_id == event_id)):
        reg.confirmed_at = datetime.now(UTC) - timedelta(days=1)
    db.session.commit()


def _statuses(kind: str | None = None) -> dict[str, int]:
    db.session.rollback()
    query = select(Message)
    if kind:
        query = query.where(Message.kind == kind)
    counts: dict[str, int] = {}
    for message in db.session.scalars(query):
        counts[message.status.value] = counts.get(message.status.value, 0) + 1
    return counts


def _sent_to(emulator, subject_start: str) -> list[str]:
    return sorted(e.to[0]["address"] for e in emulator.acs.sent_emails if e.subject.startswith(subject_start))


def test_worker_killed_while_acs_accepts_a_send_sends_every_message_exactly_once(tls_ctx, emulator, worker_env):
    _event(starts_in=timedelta(days=5), offsets=[], people=12)  # twelve confirmation emails queued
    # The fifth send is accepted by ACS, then the answer hangs: the worker is inside that call when killed.
    emulator.faults.add(kind="timeout", group="acs", path="/emails:send", process=True, latency=15, skip=4,
                        count=1)
    # Before each send the worker renews its claim to cover the call (4 × MICROSOFT_TIMEOUT = 4 s here).
    first = start_worker(worker_env, "--once", OUTBOX_LEASE_SECONDS="2", ACS_STATUS_POLL_SECONDS="0",
                         MICROSOFT_TIMEOUT="1")
    try:
        wait_for(lambda: len(emulator.acs.sent_emails) >= 5, timeout=45, what="five sends at ACS")
        time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    before = _statuses()
    assert before.get("sending", 0) == 1  # the one in flight: accepted by ACS, never recorded
    time.sleep(4.5)  # its claim, renewed for the call, runs out

    for _ in range(3):
        run_worker_once(worker_env, OUTBOX_LEASE_SECONDS="2", ACS_STATUS_POLL_SECONDS="0")
        if _statuses().get("sent") == 12:
            break

    assert _statuses() == {"sent": 12}
    assert _sent_to(emulator, "You're registered") == [f"guest{n:03d}@example.org" for n in range(12)]
    assert emulator.acs.duplicate_operation_ids() == []
    checks = [r for r in emulator.requests_for("acs") if r.method == "GET" and "/emails/operations/" in r.path]
    assert checks  # the restarted worker asked ACS about the lost send instead of sending it again


def test_two_workers_on_postgresql_send_each_reminder_once(tls_ctx, emulator, worker_env, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite deployments run a single worker; concurrent sweeping is a PostgreSQL feature")
    event_id = _event(starts_in=timedelta(minutes=50), offsets=[60], people=30)
    _backdate_confirmations(event_id)
    # The resource's quota is larger than these sixty emails (thirty confirmations, thirty reminders).
    db.session.add(Setting(key=dispatch.QUOTA_SETTING, value={"per_minute": 1000, "per_hour": 10000}))
    db.session.commit()
    emulator.faults.add(kind="latency", latency=0.03, group="acs", path="/emails:send")

    workers = [start_worker(worker_env, "--once", ACS_STATUS_POLL_SECONDS="0", OUTBOX_BATCH="200")
               for _ in range(2)]
    performed = []
    for proc in workers:
        performed.append({int(m) for m in re.findall(r"Outbox item (\d+) \(message\.send\) -> done", finish(proc))})
    assert performed[0] and performed[1], "both workers should have sent some"
    assert not performed[0] & performed[1]  # no item was performed by both
    for _ in range(3):
        if _statuses("reminder").get("sent") == 30:
            break
        run_worker_once(worker_env, ACS_STATUS_POLL_SECONDS="0")

    assert _statuses("reminder") == {"sent": 30}
    assert _sent_to(emulator, "Reminder:") == [f"guest{n:03d}@example.org" for n in range(30)]
    assert emulator.acs.duplicate_operation_ids() == []
    db.session.rollback()
    keys = db.session.scalars(select(Message.dedupe_key).where(Message.kind == "reminder")).all()
    assert len(set(keys)) == 30 and all(k.startswith(f"reminder:{event_id}:60:") for k in keys)


def test_acs_throttling_storm_delays_but_never_duplicates(tls_ctx, emulator, worker_env):
    _event(starts_in=timedelta(days=5), offsets=[], people=6)
    # The first sends are refused with 429 and a short Retry-After, the next with 503: nothing may be lost or
    # doubled. Refused every time, not by chance: a 1-in-2 refusal once let a whole run through unrefused.
    emulator.faults.add(kind="status", status=429, retry_after="1", group="acs", path="/emails:send", count=4)
    emulator.faults.add(kind="status", status=503, group="acs", path="/emails:send", count=2)
    deadline = time.monotonic() + 60
    while _statuses().get("sent", 0) < 6 and time.monotonic() < deadline:
        run_worker_once(worker_env, ACS_STATUS_POLL_SECONDS="0")
        db.session.rollback()
        # Backoff after a 503 would wait seconds; bring due items forward so the test stays short.
        for item in db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "message.send")):
            if item.status.value == "pending":
                item.next_attempt_at = min(item.next_attempt_at, datetime.now(UTC) + timedelta(seconds=1))
        db.session.commit()
        time.sleep(1)
    assert _statuses() == {"sent": 6}
    assert len(emulator.acs.sent_emails) == 6 and emulator.acs.duplicate_operation_ids() == []
    refused = Counter(r.status for r in emulator.requests_for("acs") if r.status in (429, 503))
    assert refused == {429: 4, 503: 2}  # the storm happened
    db.session.rollback()
    assert all(m.status == MessageStatus.sent for m in db.session.scalars(select(Message)))
    assert db.session.scalar(select(Registration.state).limit(1)) == RegistrationState.confirmed
