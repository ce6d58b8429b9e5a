"""Registration rush benchmark (not run in CI): many simultaneous sign-ups over HTTP for few seats.

    .venv/bin/python bench/registration_rush.py --db sqlite
    .venv/bin/python bench/registration_rush.py --db postgresql --clients 1000 --capacity 100

Foyer is served on 127.0.0.1 as in production, by gunicorn sync workers (`--workers`, default 4), or
with `--server werkzeug` by one threaded development server; either way with its own fresh database
(a temporary SQLite file, or a PostgreSQL database created and dropped through FOYER_BENCH_PG_DSN,
default postgresql://postgres@127.0.0.1:5432/postgres). Every client has its own session and CSRF token;
10 % of them re-use another client's address. Prints the outcome as JSON, then a one-line summary,
and exits non-zero unless exactly `capacity` were confirmed with no duplicates and no errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from app import create_app  # noqa: E402
from app.config import Config  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Event, EventStatus, OutboxItem, Registration, RegistrationState, Role  # noqa: E402
from app.services import accounts  # noqa: E402
from app.services.crypto import generate_key  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PG_DATABASE = "foyer_bench_rush"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


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


def _setup(app, capacity: int) -> str:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        owner = accounts.create_user("bench@example.org", role=Role.organizer, password=None,
                                     name="Bench")
        now = datetime.now(UTC)
        event = Event(title="Rush", slug="rush", timezone="Europe/Berlin", starts_at=now + timedelta(days=7),
                      ends_at=now + timedelta(days=7, hours=1), status=EventStatus.published, published_at=now,
                      capacity=capacity, waitlist_enabled=True, owner=owner)
        db.session.add(event)
        db.session.commit()
        return event.slug


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(base_url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            requests.get(base_url + "/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def _serve(args, app, environ: dict[str, str], instance: Path):
    """Start the server; returns (base URL, a function that stops it)."""
    if args.server == "werkzeug":
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return f"http://127.0.0.1:{server.server_port}", server.shutdown
    port = _free_port()
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
               "--backlog", "4096", "--timeout", "300", "--log-level", "warning",
               f"app:create_app(instance_path={str(instance)!r})"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **environ})  # noqa: S603
    base_url = f"http://127.0.0.1:{port}"
    _wait_until_up(base_url, process)

    def stop() -> None:
        process.terminate()
        process.wait(timeout=30)

    return base_url, stop


def _client(base_url: str, slug: str, index: int, email: str, start: threading.Event) -> str:
    with requests.Session() as http:
        try:
            page = http.get(f"{base_url}/events/{slug}/register", timeout=120)
            token = CSRF.search(page.text)
            start.wait()
            if token is None:
                return "errors"
            response = http.post(f"{base_url}/events/{slug}/register", timeout=300, data={
                "csrf_token": token.group(1), "first_name": f"Person{index}", "last_name": "Bench", "email": email,
                "timezone": "Europe/Berlin", "consent": "y",
            })
        except requests.RequestException:
            return "errors"
    if response.status_code >= 500:
        return "errors"
    # Every accepted sign-up reads "check your inbox" (the page never reveals a repeat); the database and
    # the outbox tell the outcomes apart afterwards.
    return "accepted" if response.status_code == 200 and "Check your inbox" in response.text else "errors"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=500, help="client threads in flight at once")
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = _database_url(args.db, tmp)
        environ = {"DATABASE_URL": url, "OUTBOX_DRAIN_AFTER_REQUEST": "0", "LOG_LEVEL": "WARNING",
                   "REGISTRATION_RATE_LIMIT": "1000000 per minute", "PUBLIC_BASE_URL": "http://127.0.0.1",
                   "REGISTRATION_MIN_FILL_SECONDS": "0",
                   "SECRET_KEY": "bench-" + generate_key(), "ENCRYPTION_KEYS": generate_key()}
        instance = tmp / "instance"
        app = create_app(Config, instance_path=instance, environ=environ)
        try:
            slug = _setup(app, args.capacity)
            base_url, stop = _serve(args, app, environ, instance)

            repeats = int(args.clients * args.duplicate_share)
            unique = [f"person{i}@example.org" for i in range(args.clients - repeats)]
            emails = unique + [unique[i % len(unique)].upper() for i in range(repeats)]
            start = threading.Event()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                futures = [pool.submit(_client, base_url, slug, i, email, start) for i, email in enumerate(emails)]
                time.sleep(0.5)  # let the first wave fetch their forms
                began = time.perf_counter()
                start.set()
                outcomes = Counter(f.result() for f in futures)
                seconds = time.perf_counter() - began
            stop()

            with app.app_context():
                rows = dict(db.session.execute(select(Registration.state, func.count()).group_by(
                    Registration.state)).all())
                distinct = db.session.scalar(select(func.count(func.distinct(Registration.email))))
                total = db.session.scalar(select(func.count()).select_from(Registration))
                seat_counter = db.session.scalar(select(Event.confirmed_count))
                resent = db.session.scalar(select(func.count()).select_from(OutboxItem).where(
                    OutboxItem.dedupe_key.like("%:resend:%")))
                db.session.remove()
                db.engine.dispose()
        finally:
            if args.db == "postgresql":
                _drop_postgres()

    result = {
        "db": args.db, "server": args.server, "clients": args.clients, "capacity": args.capacity,
        "confirmed": rows.get(RegistrationState.confirmed, 0), "waitlisted": rows.get(RegistrationState.waitlisted, 0),
        "duplicates": resent, "accepted": outcomes.get("accepted", 0), "errors": outcomes.get("errors", 0),
        "seconds": round(seconds, 2),
        "stored": {"confirmed": rows.get(RegistrationState.confirmed, 0),
                   "waitlisted": rows.get(RegistrationState.waitlisted, 0),
                   "rows": total, "distinct_emails": distinct, "seat_counter": seat_counter},
        "duplicate_rows": total - distinct,
    }
    print(json.dumps(result, indent=2))
    ok = (result["confirmed"] == args.capacity == seat_counter
          and result["errors"] == 0 and result["duplicate_rows"] == 0
          and result["duplicates"] == repeats)
    print(f"{'OK' if ok else 'FAIL'}: {args.db} {args.clients} sign-ups for {args.capacity} seats -> "
          f"{result['confirmed']} confirmed, {result['waitlisted']} waitlisted, {result['duplicates']} duplicates, "
          f"{result['errors']} errors in {result['seconds']} s ({args.clients / seconds:.0f}/s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
