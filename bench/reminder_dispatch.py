"""Reminder dispatch benchmark (not run in CI): N confirmed registrants, one reminder due, the ACS
emulator (over loopback TLS) enforcing a quota of Q emails per minute; real `flask worker` processes
sweep and send.

    .venv/bin/python bench/reminder_dispatch.py                      # 2,000 registrants, Q = 400/min, SQLite
    .venv/bin/python bench/reminder_dispatch.py --db postgresql --workers 2 --quota 400

Foyer is told the same quota as the emulator enforces (Admin → Messages). Prints the figures as JSON
and a one-line summary: messages sent, duplicates, 429s seen, the most the emulator saw in any 60 s,
elapsed time, and the achieved rate as a fraction of Q. The rate counts the last minute as a whole
window (N sent over the time from the first send to one minute after the last one), so sending in
bursts of Q at the start of each minute counts as 1.0 and not more. Exits non-zero on any duplicate,
any 429, or a rate below 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from app import create_app  # noqa: E402
from app.config import Config  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    Event,
    EventSeat,
    EventStatus,
    Message,
    MessageStatus,
    Registration,
    RegistrationState,
    Role,
    Setting,
)
from app.schema import migrate_to_latest  # noqa: E402
from app.services.accounts import accounts  # noqa: E402
from app.services.core import tokens  # noqa: E402
from app.services.core.crypto import generate_key  # noqa: E402
from app.services.messaging import dispatch  # noqa: E402
from emulator import Emulator, EmulatorConfig, EmulatorServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "foyer_bench_reminders"


def _database_url(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    dsn = os.environ.get("FOYER_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    host = dsn.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+psycopg://{host}/{PG_DATABASE}"


def _drop_postgres() -> None:
    dsn = os.environ.get("FOYER_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def _setup(app, registrants: int, quota: int, per_hour: int) -> int:
    """An event starting in 50 minutes with a 1-hour reminder and `registrants` people confirmed yesterday."""
    migrate_to_latest(app)

    with app.app_context():
        owner = accounts.create_user("bench@example.org", role=Role.organizer, password=None, name="Bench")
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=50)
        event = Event(slug="reminder-bench", title="Reminder bench", timezone="Europe/Berlin", starts_at=start,
                      ends_at=start + timedelta(hours=1), status=EventStatus.published,
                      published_at=datetime.now(UTC), owner_id=owner.id, reminder_offsets=[60])
        db.session.add(event)
        db.session.add(Setting(key=dispatch.QUOTA_SETTING, value={"per_minute": quota, "per_hour": per_hour}))
        db.session.flush()
        yesterday = datetime.now(UTC) - timedelta(days=1)
        rows = [{"event_id": event.id, "state": RegistrationState.confirmed, "email": f"guest{n:05d}@example.org",
                 "first_name": "Guest", "last_name": f"{n:05d}", "timezone": "Europe/Berlin",
                 "manage_token_hash": tokens.hash_token(tokens.new_token()), "created_at": yesterday,
                 "updated_at": yesterday, "confirmed_at": yesterday, "ics_sequence": 0, "sms_opt_in": False}
                for n in range(registrants)]
        db.session.execute(insert(Registration), rows)
        db.session.execute(insert(EventSeat), [{"event_id": event.id, "taken": True}] * registrants)  # their seats
        db.session.commit()
        return event.id


def _sent(app) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count(Message.id)).where(
                Message.kind == "reminder", Message.status == MessageStatus.sent)) or 0
        finally:
            db.session.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--registrants", type=int, default=2000)
    parser.add_argument("--quota", type=int, default=400, help="emails per minute (Q), at the emulator and in Foyer")
    parser.add_argument("--per-hour", type=int, default=0, help="emails per hour (default: 60 × Q)")
    parser.add_argument("--workers", type=int, default=1, help="flask worker processes (PostgreSQL for more than 1)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep-logs", action="store_true", help="print the end of each worker's log")
    args = parser.parse_args()
    per_hour = args.per_hour or args.quota * 60

    emulator = Emulator(EmulatorConfig(email_per_minute=args.quota, email_per_hour=per_hour, faults=""))
    with tempfile.TemporaryDirectory() as tmp_name, EmulatorServer(emulator) as server:
        tmp = Path(tmp_name)
        url = _database_url(args.db, tmp)
        ends = server.endpoints
        environ = {
            "DATABASE_URL": url, "SECRET_KEY": "bench-" + generate_key(), "ENCRYPTION_KEYS": generate_key(),
            "PUBLIC_BASE_URL": "https://events.example.org", "ENTRA_AUTHORITY": ends.authority,
            "ENTRA_CLIENT_ID": emulator.client_id, "ENTRA_CLIENT_SECRET": emulator.client_secret,
            "GRAPH_BASE_URL": ends.graph_base_url, "ACS_CONNECTION_STRING": ends.acs_connection_string,
            "ACS_SENDER_ADDRESS": "events@foyer.example", "MICROSOFT_CA_BUNDLE": server.ca_bundle_path,
        }
        app = create_app(Config, instance_path=tmp / "instance", environ=environ)
        event_id = _setup(app, args.registrants, args.quota, per_hour)
        worker_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
                      "LANG": "C.UTF-8", **environ, "REMINDER_SWEEP_SECONDS": "15", "OUTBOX_POLL_SECONDS": "1",
                      "OUTBOX_BATCH": "200", "ACS_STATUS_POLL_SECONDS": "30", "LOG_LEVEL": "WARNING",
                      "OUTBOX_DRAIN_AFTER_REQUEST": "false"}
        started = time.monotonic()
        # Worker logs go to files (a pipe nobody reads would fill up and stall the worker).
        logs = [open(tmp / f"worker-{n}.log", "w") for n in range(args.workers)]  # noqa: SIM115
        procs = [subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=worker_env,
            stdout=subprocess.DEVNULL, stderr=log) for log in logs]
        try:
            while _sent(app) < args.registrants and time.monotonic() - started < args.timeout:
                time.sleep(1)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for log in logs:
                log.close()
            if args.keep_logs:
                for n in range(args.workers):
                    print((tmp / f"worker-{n}.log").read_text()[-5000:], file=sys.stderr)
        reminders = [e for e in emulator.acs.sent_emails if e.subject.startswith("Reminder")]
        per_recipient = Counter(e.to[0]["address"] for e in reminders)
        duplicates = sum(n - 1 for n in per_recipient.values() if n > 1) + len(emulator.acs.duplicate_operation_ids())
        throttled = len([r for r in emulator.requests_for("acs") if r.status == 429])
        times = sorted(e.received_at for e in emulator.acs.sent_emails)
        busiest = max((sum(1 for t in times[i:] if t < start + 60) for i, start in enumerate(times)), default=0)
        first, last = (times[0], times[-1]) if times else (0.0, 0.0)
        window_minutes = (last - first + 60) / 60 if times else 0
        rate = len(times) / window_minutes if window_minutes else 0.0
        with app.app_context():
            recorded = Counter(m.status.value for m in db.session.scalars(select(Message).where(
                Message.event_id == event_id, Message.kind == "reminder")))
            db.session.remove()
            db.engine.dispose()
        result = {
            "database": args.db, "workers": args.workers, "registrants": args.registrants,
            "quota_per_minute": args.quota, "quota_per_hour": per_hour, "reminders_sent": len(reminders),
            "distinct_recipients": len(per_recipient), "duplicates": duplicates, "http_429": throttled,
            "max_in_any_60s": busiest, "elapsed_seconds": round(time.monotonic() - started, 1),
            "first_to_last_send_seconds": round(last - first, 1), "achieved_per_minute": round(rate, 1),
            "fraction_of_quota": round(rate / args.quota, 3), "messages_recorded": dict(recorded),
        }
        if args.db == "postgresql":
            _drop_postgres()
    print(json.dumps(result, indent=2))
    print(f"sent {result['reminders_sent']}/{args.registrants}, duplicates {duplicates}, 429s {throttled}, "
          f"max {busiest} in any 60 s (Q={args.quota}), elapsed {result['elapsed_seconds']} s, "
          f"rate {result['fraction_of_quota']:.3f} of Q")
    ok = (duplicates == 0 and throttled == 0 and result["reminders_sent"] == args.registrants
          and result["fraction_of_quota"] >= 0.9)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
