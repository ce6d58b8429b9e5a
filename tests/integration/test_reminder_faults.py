"""Reminders through real `flask worker` processes when things go wrong (quality bars 3 and 4).

* Exactly one reminder: three workers on PostgreSQL while 100 registrants × 2 reminders come due; during
  each reminder's sweep the worker holding the sweep lock is killed (SIGKILL) at a seeded random moment
  and another takes over. ACS receives every reminder exactly once.
* Downtime catch-up: the worker is stopped while 100 reminders fall due and another event starts; after
  the restart every reminder still useful goes out once, within the quota, and the started event's
  reminders are recorded as not sent, with the reason.

The "simulated day" is compressed: Foyer computes its schedule from the stored times and the clock, so
moving an event's start makes its next reminder fall due two seconds later (instead of waiting out the
minute between the two reminders), and a 30-minute outage is what the database looks like when the stored
times have moved 30 minutes into the past.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, insert, select, update

from app.extensions import db
from app.models import (
    Event,
    EventSeat,
    EventStatus,
    Message,
    MessageStatus,
    Registration,
    RegistrationState,
    Role,
    Setting,
    User,
)
from app.services.core import crypto, tokens
from app.services.messaging import dispatch
from tests.integration import test_worker_process as worker_process
from tests.integration.test_worker_process import REPO_ROOT, wait_for
from tests.services.microsoft import conftest as tls_fixtures

tls_emulator = tls_fixtures.tls_emulator
tls_app = tls_fixtures.tls_app
emulator = tls_fixtures.emulator
tls_ctx = tls_fixtures.tls_ctx
worker_env = worker_process.worker_env

SWEEP_LINE = re.compile(r"Reminder sweep: (\d+) queued, (\d+) recorded as not sent")
#: Fast enough that a take-over or a catch-up happens within a second or two.
FAST = {"REMINDER_SWEEP_SECONDS": "1", "OUTBOX_POLL_SECONDS": "0.5",
        # The delivery-status polls are not what these tests are about; they would only add load.
        "ACS_STATUS_POLL_SECONDS": "3600"}
#: A killed worker's claims are taken over after this long (the default lease is five minutes). A claim
#: renewed for a Microsoft call lasts four call timeouts (40 s by default), so those are short too: the
#: emulator answers in milliseconds.
SHORT_LEASE = {"OUTBOX_LEASE_SECONDS": "3", "MICROSOFT_TIMEOUT": "2"}


# --- worker processes with their logs in files (a pipe nobody reads would block a busy worker) ---------


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def started(self) -> bool:
        return "Worker started with jobs" in self.log()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def spawn_worker(env: dict[str, str], name: str, log_dir: Path, *args: str, **extra: str) -> Worker:
    """A `flask worker` process; on PostgreSQL its connections carry `name` as application_name."""
    env = {**env, **extra}
    if env["DATABASE_URL"].startswith("postgresql"):
        env["DATABASE_URL"] += f"?application_name={name}"
    log_path = log_dir / f"{name}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *args],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    return Worker(name, proc, log_path)


def stop_all(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


# --- data ------------------------------------------------------------------------------------------------


def make_event(owner_id: int, slug: str, *, starts_at: datetime, offsets: list[int], people: int,
               prefix: str) -> int:
    """A published event with `people` confirmed registrants, inserted in bulk as registering stores them
    (with their manage-link token) but without their confirmation emails."""
    event = Event(slug=slug, title=slug.replace("-", " ").title(), timezone="Europe/Berlin", starts_at=starts_at,
                  ends_at=starts_at + timedelta(hours=1), status=EventStatus.published,
                  published_at=datetime.now(UTC) - timedelta(days=7), owner_id=owner_id,
                  reminder_offsets=offsets)
    db.session.add(event)
    db.session.flush()
    earlier = datetime.now(UTC) - timedelta(days=2)
    manage_tokens = [tokens.new_token() for _ in range(people)]
    db.session.execute(insert(Registration), [{
        "event_id": event.id, "state": RegistrationState.confirmed, "email": f"{prefix}{n:03d}@example.org",
        "first_name": "Guest", "last_name": f"{n:03d}", "timezone": "UTC", "ics_sequence": 0,
        "manage_token_hash": tokens.hash_token(token), "manage_token_encrypted": crypto.encrypt(token),
        "created_at": earlier, "updated_at": earlier, "confirmed_at": earlier,
    } for n, token in enumerate(manage_tokens)])
    db.session.execute(insert(EventSeat), [{"event_id": event.id, "taken": True}] * people)  # their seats
    db.session.commit()
    return event.id


def make_owner() -> int:
    owner = User(email="owner@example.org", name="Owner", role=Role.organizer)
    db.session.add(owner)
    db.session.commit()
    return owner.id


def set_quota(per_minute: int, per_hour: int) -> None:
    db.session.merge(Setting(key=dispatch.QUOTA_SETTING, value={"per_minute": per_minute, "per_hour": per_hour}))
    db.session.commit()


def reminder_rows() -> list[Message]:
    db.session.rollback()  # the workers wrote from other processes
    return list(db.session.scalars(select(Message).where(Message.kind == "reminder").order_by(Message.id)))


def count_reminders(**filters) -> int:
    db.session.rollback()
    query = select(func.count(Message.id)).where(Message.kind == "reminder")
    for column, value in filters.items():
        query = query.where(getattr(Message, column) == value)
    return db.session.scalar(query) or 0


def accepted_sends(emulator) -> list:
    """Every email send request ACS accepted (a repeat counts again, whatever its Operation-Id)."""
    return list(emulator.acs.sent_emails)


def refused_sends(emulator) -> list:
    return [r for r in emulator.requests_for("acs", path="/emails:send") if r.status != 202]


def sends_per_reminder(emulator, rows: list[Message]) -> Counter:
    """(recipient, event, offset) -> how many send requests ACS accepted for it.

    The reminder is recognised by the Operation-Id Foyer chose for it; a send ACS accepted that belongs
    to no reminder is counted under its recipient with offset None (and fails the test).
    """
    by_operation = {m.operation_id: m for m in rows if m.operation_id}
    counts: Counter = Counter()
    for sent in accepted_sends(emulator):
        message = by_operation.get(sent.operation_id)
        recipient = sent.to[0]["address"]
        if message is None or message.recipient != recipient:
            counts[(recipient, None, None)] += 1
            continue
        _, event_id, offset, _ = message.dedupe_key.split(":")
        counts[(recipient, int(event_id), int(offset))] += 1
    return counts


def busiest_window(times: list[float], seconds: float) -> int:
    """The most timestamps in any window of `seconds` (a sliding window over the sorted times)."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


# --- bar 3 -----------------------------------------------------------------------------------------------

PEOPLE = 100
#: Minutes before the start; one minute apart, the shortest gap a reminder schedule allows.
OFFSETS = (61, 60)
WORKERS = 3
#: The kill lands this long (at most) after the sweep lock was taken; a sweep of 100 reminders lasts longer.
KILL_WINDOW = 0.4


def sweep_lock_holder(conn: psycopg.Connection) -> str | None:
    """application_name of the worker whose transaction holds the reminder sweep's advisory lock."""
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid::bigint = %s "
        "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (dispatch.SWEEP_LOCK_KEY,)).fetchone()
    return row[0] if row else None


def pg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_sweeping_worker_killed_at_random_each_reminder_reaches_acs_exactly_once(tls_ctx, emulator, worker_env,
                                                                                 database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite deployments run a single worker; several sweeping workers are a PostgreSQL feature")
    seed = int(os.environ.get("FOYER_FAULT_SEED") or random.SystemRandom().randrange(1_000_000))
    print(f"fault seed {seed} (set FOYER_FAULT_SEED={seed} to repeat this run)")
    rng = random.Random(seed)
    set_quota(1000, 10000)  # the emulator's quota in these tests: pacing is the quota test's subject
    event_id = make_event(make_owner(), "exactly-once", starts_at=datetime.now(UTC) + timedelta(days=3),
                          offsets=list(OFFSETS), people=PEOPLE, prefix="guest")
    emulator.faults.add(kind="latency", latency=0.02, group="acs", path="/emails:send")  # a real network's pace

    workers = [spawn_worker(worker_env, f"foyer-worker-{n}", tmp_path, **FAST, **SHORT_LEASE)
               for n in range(1, WORKERS + 1)]
    kills: list[dict] = []
    try:
        wait_for(lambda: all(w.started() for w in workers), timeout=60, what="three workers to start")
        by_name = {w.name: w for w in workers}
        with psycopg.connect(pg_dsn(database_url), autocommit=True) as conn:
            for offset in OFFSETS:
                # Time passes: the event now starts so that this reminder falls due in two seconds (the
                # earlier one, already queued, is overdue and must not be queued again).
                start = datetime.now(UTC) + timedelta(minutes=offset, seconds=2)
                db.session.execute(update(Event).where(Event.id == event_id).values(
                    starts_at=start, ends_at=start + timedelta(hours=1)))
                db.session.commit()
                due = start - timedelta(minutes=offset)
                holder = None
                deadline = time.monotonic() + (due - datetime.now(UTC)).total_seconds() + 30
                while holder is None or datetime.now(UTC) < due - timedelta(seconds=1):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"no worker took the sweep lock for the {offset}-minute reminder")
                    holder = sweep_lock_holder(conn)
                    time.sleep(0.002)
                delay = rng.uniform(0, KILL_WINDOW)
                time.sleep(delay)
                still_sweeping = sweep_lock_holder(conn) == holder
                killed_at = datetime.now(UTC)
                by_name[holder].kill()
                kills.append({"offset": offset, "worker": holder, "delay": round(delay, 3),
                              "lock_held_just_before": still_sweeping, "at": killed_at})
                print(f"killed {holder} {delay:.3f} s into the {offset}-minute reminder's sweep "
                      f"(lock still held just before: {still_sweeping})")
                # The next reminder is only looked at once this one is fully queued again.
                wait_for(lambda o=offset: count_reminders() >= PEOPLE * (OFFSETS.index(o) + 1), timeout=30,
                         what=f"the {offset}-minute reminders to be queued by another worker")
        # A guard, not a measure: a killed worker's items wait out their lease before a survivor sends them,
        # which on a slow, loaded 2-core machine can take more than a minute.
        wait_for(lambda: count_reminders(status=MessageStatus.sent) == PEOPLE * len(OFFSETS), timeout=120,
                 what="every reminder to be sent")
        time.sleep(3)  # the survivor keeps sweeping and draining: nothing more may go out
    finally:
        stop_all(workers)

    rows = reminder_rows()
    # 0 missed: every registrant has both reminders, each sent (none recorded as not sent).
    assert Counter(m.status for m in rows) == {MessageStatus.sent: PEOPLE * len(OFFSETS)}
    expected = {(f"guest{n:03d}@example.org", event_id, offset) for n in range(PEOPLE) for offset in OFFSETS}
    # 0 duplicates: ACS accepted exactly one send request per recipient and reminder, and nothing else.
    assert sends_per_reminder(emulator, rows) == dict.fromkeys(expected, 1)
    assert refused_sends(emulator) == [] and emulator.acs.duplicate_operation_ids() == []
    # What the killed worker had committed stayed; the rest of its batch was queued after it died, so by
    # another worker (with a batch this size, a sweep commits once: all or nothing).
    for kill in kills:
        batch = [m for m in rows if m.dedupe_key.startswith(f"reminder:{event_id}:{kill['offset']}:")]
        kill["queued_before_kill"] = sum(m.created_at.replace(tzinfo=UTC) < kill["at"] for m in batch)
    print("kills:", kills)


# --- bar 4 -----------------------------------------------------------------------------------------------

CATCH_UP = 100
STARTED = 10
OUTAGE = timedelta(minutes=30)
NOT_SENT_REASON = "Not sent: the event had already started when the reminder was due to go out."


def pass_time(delta: timedelta) -> None:
    """Move every stored event and registration time `delta` into the past: what the schedule looks like
    after `delta` of wall-clock time (Foyer reads it from these times and the clock)."""
    for model, columns in ((Event, ("starts_at", "ends_at", "published_at", "created_at")),
                           (Registration, ("created_at", "confirmed_at"))):
        for row in db.session.scalars(select(model)):
            for column in columns:
                if getattr(row, column) is not None:
                    setattr(row, column, getattr(row, column) - delta)
    db.session.commit()


def test_worker_down_while_reminders_fall_due_catches_up_once_within_quota(tls_ctx, emulator, worker_env,
                                                                          monkeypatch, tmp_path):
    # The quota the admin set is the resource's own: ACS refuses anything above it.
    set_quota(CATCH_UP, 10 * CATCH_UP)
    monkeypatch.setattr(emulator.config, "email_per_minute", CATCH_UP)
    monkeypatch.setattr(emulator.config, "email_per_hour", 10 * CATCH_UP)
    owner = make_owner()
    now = datetime.now(UTC)
    # Due in 10 minutes; after the outage 20 minutes overdue, with the event 40 minutes away: still useful.
    useful = make_event(owner, "still-ahead", starts_at=now + timedelta(minutes=70), offsets=[60],
                        people=CATCH_UP, prefix="ahead")
    # Due in 5 minutes, starting in 20: after the outage it started 10 minutes ago.
    started = make_event(owner, "already-started", starts_at=now + timedelta(minutes=20), offsets=[15],
                         people=STARTED, prefix="started")

    running = spawn_worker(worker_env, "foyer-worker-before", tmp_path, **FAST)
    try:
        wait_for(running.started, timeout=60, what="the worker to start")
        time.sleep(2.5)  # it sweeps every second: nothing is due yet
    finally:
        assert running.stop() == 0  # a clean stop on SIGTERM
    assert count_reminders() == 0 and accepted_sends(emulator) == []

    pass_time(OUTAGE)  # the worker stays down for thirty minutes

    restarted = spawn_worker(worker_env, "foyer-worker-after", tmp_path, **FAST)
    try:
        wait_for(lambda: count_reminders(status=MessageStatus.sent) == CATCH_UP, timeout=60,
                 what="the overdue reminders to be sent")
        time.sleep(2.5)  # more sweeps and drains: nothing more may happen
    finally:
        assert restarted.stop() == 0
    sweeps = [tuple(map(int, m.groups())) for m in SWEEP_LINE.finditer(restarted.log())]
    assert sweeps == [(CATCH_UP, STARTED)]  # one catch-up sweep did it all
    # A second restart finds nothing left to do.
    again = spawn_worker(worker_env, "foyer-worker-again", tmp_path, "--once", **FAST)
    assert again.proc.wait(timeout=60) == 0, again.log()
    assert not SWEEP_LINE.search(again.log())

    rows = reminder_rows()
    sent = [m for m in rows if m.event_id == useful]
    assert Counter(m.status for m in sent) == {MessageStatus.sent: CATCH_UP}
    # Worded from the moment it went out, not from when it was due.
    assert all("starts in 40 minutes" in m.subject for m in sent), {m.subject for m in sent}
    skipped = [m for m in rows if m.event_id == started]
    assert Counter(m.status for m in skipped) == {MessageStatus.suppressed: STARTED}
    assert {m.last_error for m in skipped} == {NOT_SENT_REASON}
    assert sorted(m.recipient for m in skipped) == [f"started{n:03d}@example.org" for n in range(STARTED)]

    expected = {(f"ahead{n:03d}@example.org", useful, 60) for n in range(CATCH_UP)}
    assert sends_per_reminder(emulator, rows) == dict.fromkeys(expected, 1)  # all of them, each once, no others
    assert refused_sends(emulator) == [] and emulator.acs.duplicate_operation_ids() == []
    assert busiest_window([s.received_at for s in accepted_sends(emulator)], 60) <= CATCH_UP
