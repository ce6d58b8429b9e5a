"""Sign-ups while a crowd joins the call (not run in CI): how long a registration takes while attendees
open the embedded call at the start of an event and ACS answers slowly.

    .venv/bin/python bench/join_surge.py                        # SQLite, 60 attendees, ACS 300 ms late
    .venv/bin/python bench/join_surge.py --db postgresql --attendees 100 --acs-latency 0.5

A fresh database and gunicorn (the repository's gunicorn.conf.py) with FOYER_EMULATOR_FAULTS="acs:latency=…",
so every ACS call of a join (a new identity, then its token) is that late. An event that started five
minutes ago with a Teams meeting, and `--attendees` confirmed registrations with their join links, made
through Foyer's services. Then every attendee asks for a call session at once (GET the join page for its
CSRF token, POST /j/<token>/session), and while they do, `--registrations` people sign up for another
event, one every 0.2 s (GET the form, POST it). Prints the joins' wall time and failures and the sign-ups'
seconds (median, max) and failures, as JSON and a one-line summary.

A join holds one web worker for its ACS calls whatever happens; what this shows is whether it holds up
anyone else too (on SQLite: the write lock).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

#: The join page carries its CSRF token in <body hx-headers>, for htmx and its script alike.
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_bench%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"


def seed_attendees(app, slug: str, n: int) -> list[str]:
    """Move the event to five minutes ago with a Teams meeting and register `n` people; their join tokens."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Event
    from app.services.attendance import join_links
    from app.services.registration import registrations

    with app.app_context():
        event = db.session.scalar(select(Event).where(Event.slug == slug))
        event.starts_at = datetime.now(UTC) - timedelta(minutes=5)
        event.ends_at = event.starts_at + timedelta(hours=1)
        event.join_url = TEAMS_URL
        db.session.commit()
        found = []
        for i in range(n):
            outcome = registrations.register(event, registrations.RegistrationData(
                first_name=f"Attendee{i}", last_name="Bench", email=f"attendee{i}@example.org",
                timezone="Europe/Berlin"))
            found.append(join_links.join_token_for(outcome.registration))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return found


def join(base_url: str, token: str, start: threading.Barrier) -> tuple[str, float]:
    """One attendee opens the call: its outcome and when it had its answer (time.monotonic)."""
    try:
        return _join(base_url, token, start)
    except requests.RequestException as exc:  # e.g. a worker killed by gunicorn's timeout mid-request
        return f"no answer ({type(exc).__name__})", time.monotonic()


def _join(base_url: str, token: str, start: threading.Barrier) -> tuple[str, float]:
    with requests.Session() as http:
        page = http.get(f"{base_url}/j/{token}", timeout=120)
        found = CSRF_HEADER.search(page.text)
        start.wait()
        if found is None:
            return f"no token ({page.status_code})", time.monotonic()
        response = http.post(f"{base_url}/j/{token}/session", headers={"X-CSRFToken": found.group(1)}, timeout=120)
        if response.status_code == 200 and "token" in response.json():
            return "ok", time.monotonic()
        return f"{response.status_code} {response.text[:150]}", time.monotonic()


def sign_up(base_url: str, slug: str, i: int) -> tuple[str, float]:
    """One person signs up for the other event: the outcome and the POST's seconds."""
    began = time.monotonic()
    try:
        return _sign_up(base_url, slug, i)
    except requests.RequestException as exc:
        return f"no answer ({type(exc).__name__})", time.monotonic() - began


def _sign_up(base_url: str, slug: str, i: int) -> tuple[str, float]:
    with requests.Session() as http:
        page = http.get(f"{base_url}/events/{slug}/register", timeout=120)
        token = c.CSRF.search(page.text)
        began = time.monotonic()
        response = http.post(f"{base_url}/events/{slug}/register", allow_redirects=False, timeout=120, data={
            "csrf_token": token.group(1) if token else "", "first_name": "Sign", "last_name": f"Up{i}",
            "email": f"signup{i}@example.org", "timezone": "Europe/Berlin", "consent": "y"})
        return ("ok" if response.status_code == 303 else str(response.status_code)), time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--attendees", type=int, default=60)
    parser.add_argument("--registrations", type=int, default=20)
    parser.add_argument("--acs-latency", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per gunicorn worker (default: gunicorn.conf.py's; above 1 is gthread)")
    args = parser.parse_args()

    with c.temporary_directory() as tmp_name:
        tmp = Path(tmp_name)
        with c.fresh_database(args.db, tmp, "foyer_bench_join_surge") as url:
            environ = c.foyer_environ(url, FOYER_EMULATOR_FAULTS=f"acs:latency={args.acs_latency}",
                                      JOIN_SESSION_RATE_LIMIT="100000000 per minute",
                                      FOYER_INSTANCE_PATH=str(tmp / "instance"), EMULATOR_PORT=str(c.free_port_pair()))
            c.migrate(environ)
            app = c.make_app(environ, tmp)
            emulator = c.Emulator(environ, tmp)
            joined_slug = c.seed_event(app, slug="started", title="Started event")
            signup_slug = c.seed_event(app, slug="next", title="Next event")
            tokens = seed_attendees(app, joined_slug, args.attendees)
            server = c.Server(environ, tmp, workers=args.workers, threads=args.threads)
            try:
                server.wait_until_up(f"/events/{signup_slug}")
                c.warm_registration(server.base_url, signup_slug)
                start = threading.Barrier(args.attendees + 1, timeout=300)
                with ThreadPoolExecutor(max_workers=args.attendees) as pool:
                    joins = [pool.submit(join, server.base_url, t, start) for t in tokens]
                    start.wait()
                    began = time.monotonic()
                    signups = []
                    for i in range(args.registrations):
                        signups.append(sign_up(server.base_url, signup_slug, i))
                        time.sleep(0.2)
                    answers = [f.result() for f in joins]
                    outcomes = [outcome for outcome, _ in answers]
                    joins_seconds = max(at for _, at in answers) - began
            finally:
                server.stop()
                emulator.stop()
    seconds = sorted(s for _, s in signups)
    result = {
        "db": args.db, "attendees": args.attendees, "acs_latency_s": args.acs_latency,
        "workers": args.workers or "gunicorn.conf.py", "threads": args.threads or "gunicorn.conf.py",
        "joins_ok": outcomes.count("ok"), "join_failures": sorted(set(outcomes) - {"ok"}),
        "joins_wall_s": round(joins_seconds, 2),
        "signups": len(signups), "signups_ok": sum(1 for o, _ in signups if o == "ok"),
        "signup_median_s": round(statistics.median(seconds), 3), "signup_max_s": round(seconds[-1], 3),
        "machine": c.machine(),
    }
    c.emit(result, f"{args.db}: {result['joins_ok']}/{args.attendees} joins in {result['joins_wall_s']} s with ACS "
                   f"{args.acs_latency} s late; {result['signups_ok']}/{len(signups)} sign-ups meanwhile, median "
                   f"{result['signup_median_s']} s, max {result['signup_max_s']} s")


if __name__ == "__main__":
    main()
