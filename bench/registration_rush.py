"""Registration rush benchmark (not run in CI): many simultaneous sign-ups over HTTP for few seats.

    .venv/bin/python bench/registration_rush.py --db sqlite
    .venv/bin/python bench/registration_rush.py --db postgresql --clients 1000 --capacity 100

Foyer is served on 127.0.0.1 as in production, by gunicorn with the repository's gunicorn.conf.py
(`--workers` sync workers, default 4, a deeper backlog and a longer timeout for the burst), or with
`--server werkzeug` by one threaded development server; either way with its own fresh database
(a temporary SQLite file, or a PostgreSQL database created and dropped through FOYER_BENCH_PG_DSN,
default postgresql://postgres@127.0.0.1:5432/postgres) migrated with `flask db upgrade`, and the event
created and published through Foyer's services (see bench/_common.py). Every client has its own session
and CSRF token; 10 % of them re-use another client's address. Prints the outcome as JSON, then a
one-line summary, and exits non-zero unless exactly `capacity` were confirmed with no duplicates and no
errors. A second line holds the wall time against issue 16's target (`--target-seconds`, 3 s for 1,000
sign-ups for 100 seats): met, or the gap, after the profile of a registration POST
(bench/_profile.py); the JSON carries the 1-minute load average before and after,
as the machine is shared. With gunicorn it also prints the CPU the server and the client threads used
within the timed window: both run on the same cores, so the client's share is time the server did not get.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402  (puts the repository on sys.path)
import _profile  # noqa: E402

from app.extensions import db  # noqa: E402
from app.models import Event, OutboxItem, Registration, RegistrationState  # noqa: E402

CSRF = c.CSRF
PG_DATABASE = "foyer_bench_rush"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


def _serve(args, app, environ: dict[str, str], tmp: Path):
    """Start the server; returns (base URL, a function that stops it, a function that gives its CPU
    seconds so far, or None when it runs in this process beside the clients).
    """
    if args.server == "werkzeug":
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return f"http://127.0.0.1:{server.server_port}", server.shutdown, None
    # gunicorn.conf.py, with a deeper backlog and a longer timeout: every client connects at once, and a
    # sign-up may wait its turn for SQLite's write lock for longer than the production timeout.
    server = c.Server(environ, tmp, workers=args.workers, extra_args=["--backlog", "4096", "--timeout", "300"])
    server.wait_until_up("/")
    return server.base_url, server.stop, server.cpu_seconds


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
    parser.add_argument("--target-seconds", type=float, default=3.0, help="wall-time target of the rush")
    args = parser.parse_args()

    with c.temporary_directory() as tmpdir, c.fresh_database(args.db, Path(tmpdir), PG_DATABASE) as url:
        tmp = Path(tmpdir)
        environ = c.foyer_environ(url)
        c.migrate(environ)
        app = c.make_app(environ, tmp)
        slug = c.seed_event(app, slug="rush", title="Rush", capacity=args.capacity, waitlist=True)
        base_url, stop, server_cpu = _serve(args, app, environ, tmp)

        repeats = int(args.clients * args.duplicate_share)
        unique = [f"person{i}@example.org" for i in range(args.clients - repeats)]
        emails = unique + [unique[i % len(unique)].upper() for i in range(repeats)]
        start = threading.Event()
        load_before = os.getloadavg()[0]
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            futures = [pool.submit(_client, base_url, slug, i, email, start) for i, email in enumerate(emails)]
            time.sleep(0.5)  # let the first wave fetch their forms
            cpu_before = (server_cpu() if server_cpu else 0.0, time.process_time())
            began = time.perf_counter()
            start.set()
            outcomes = Counter(f.result() for f in futures)
            seconds = time.perf_counter() - began
            # Within the timed window: the server's CPU, and this process's (the client threads, which
            # share the machine's cores with it; for the in-process server, both together).
            server_seconds = server_cpu() - cpu_before[0] if server_cpu else None
            client_seconds = time.process_time() - cpu_before[1]
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

    result = {
        "db": args.db, "server": args.server, "clients": args.clients, "capacity": args.capacity,
        "confirmed": rows.get(RegistrationState.confirmed, 0), "waitlisted": rows.get(RegistrationState.waitlisted, 0),
        "duplicates": resent, "accepted": outcomes.get("accepted", 0), "errors": outcomes.get("errors", 0),
        "seconds": round(seconds, 2), "target_seconds": args.target_seconds,
        "cpu_seconds": {"server": round(server_seconds, 2) if server_seconds is not None else None,
                        "client": round(client_seconds, 2)},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
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
    if server_seconds is not None:
        print(f"CPU in those {result['seconds']} s: the server {server_seconds:.2f} s "
              f"({server_seconds * 1000 / args.clients:.2f} ms per sign-up, with the second wave's form pages), "
              f"the client threads {client_seconds:.2f} s, on {os.cpu_count()} cores")
    if seconds <= args.target_seconds:
        print(f"TARGET MET: {result['seconds']} s <= {args.target_seconds} s")
    else:
        _profile.print_gap_profiles(args.db, ["registration POST"])
        print(f"TARGET MISSED: {result['seconds']} s against {args.target_seconds} s "
              f"(gap {seconds - args.target_seconds:.1f} s, {seconds / args.target_seconds:.1f}x; "
              f"1-minute load average {load_before:.1f} before)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
