"""CPU per view of the pages organizers and admins use, in process (not run in CI).

    .venv/bin/python bench/staff_pages.py                       # SQLite, 60 views of each page, 3 rounds
    .venv/bin/python bench/staff_pages.py --db postgresql
    .venv/bin/python bench/staff_pages.py --profile edit --top 30 --sort tottime

Staff pages are most of what the test suite requests, and what organizers wait for. This builds the app on
a fresh database as `profile_requests.py` does, with one published event of 50 seats, 20 registrations
made through Foyer's services and an admin who signs in through the login form. Then, through Flask's test
client, it times `-n` views of each page below in CPU time of this process (`time.process_time`), `--rounds`
times, and prints each page's median ms per view and the statements one view sends; `--profile PAGE` then
prints the cProfile top of that page's views. No bar: the figures are for comparing code on one machine
(old and new alternated, as in docs/performance.md). Database server CPU is not in them.
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402  (puts the repository on sys.path)
from _profile import top  # noqa: E402

PG_DATABASE = "foyer_bench_staff"
PASSWORD = "a long bench password 42"  # noqa: S105  (the bench's own throwaway admin)
REGISTRATIONS = 20


def pages(event_id: int) -> dict[str, str]:
    """The pages timed, by short name."""
    return {
        "events": "/manage/events/",
        "event": f"/manage/events/{event_id}",
        "edit": f"/manage/events/{event_id}/edit",
        "registrations": f"/manage/events/{event_id}/registrations",
        "health": "/admin/health/",
        "messages": "/admin/messages",
        "catalogue": "/",
    }


def seed(app, slug: str) -> int:
    """An admin with a password, 20 registrations to the event; returns the event's id."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Event, Role
    from app.services.accounts import accounts
    from app.services.registration import registrations

    with app.app_context():
        accounts.create_user("admin@example.org", role=Role.admin, name="Admin", password=PASSWORD)
        event = db.session.scalar(select(Event).where(Event.slug == slug))
        for i in range(REGISTRATIONS):
            registrations.register(event, registrations.RegistrationData(
                first_name="Bench", last_name=f"Person {i}", email=f"person{i}@example.org", timezone="Europe/Berlin"))
            db.session.commit()
        event_id = event.id
        db.session.remove()
    return event_id


def signed_in_client(app):
    client = app.test_client()
    token = c.CSRF.search(client.get("/login").get_data(as_text=True))
    if token is None:
        raise SystemExit("the login page has no CSRF token")
    response = client.post("/login", data={"csrf_token": token.group(1), "email": "admin@example.org",
                                           "password": PASSWORD})
    if response.status_code != 303:
        raise SystemExit(f"signing in answered {response.status_code}")
    return client


def statements_per_view(app, client, path: str) -> int:
    from sqlalchemy import event as sa_event

    from app.extensions import db

    seen: list[str] = []

    def count(*_args) -> None:
        seen.append("")

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        client.get(path)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    c.add_in_process_arguments(parser)
    parser.add_argument("-n", type=int, default=60, help="views of each page per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    parser.add_argument("--profile", default=None, help="a page's short name: print its profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    args = parser.parse_args()

    with c.app_in_process(args, PG_DATABASE) as app:
        slug = c.seed_event(app, capacity=50)
        targets = pages(seed(app, slug))
        if args.profile is not None and args.profile not in targets:
            raise SystemExit(f"--profile takes one of: {', '.join(targets)}")
        client = signed_in_client(app)
        for name, path in targets.items():  # warm-up: template compilation, the processes' copies
            for _ in range(5):
                response = client.get(path)
                if response.status_code != 200:
                    raise SystemExit(f"{name} ({path}) answered {response.status_code}")

        timings: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, path in targets.items():
                began = time.process_time()
                for _ in range(args.n):
                    client.get(path)
                timings[name].append((time.process_time() - began) * 1000 / args.n)
        result = {
            "db": args.db, "n": args.n, "rounds": args.rounds,
            "pages": {name: {"path": path, "cpu_ms": round(statistics.median(timings[name]), 3),
                             "cpu_ms_rounds": [round(x, 2) for x in timings[name]],
                             "statements": statements_per_view(app, client, path)}
                      for name, path in targets.items()},
            "machine": c.machine(),
        }
        if args.profile:
            profile = cProfile.Profile()
            path = targets[args.profile]
            profile.enable()
            for _ in range(args.n):
                client.get(path)
            profile.disable()
            print(f"== {args.profile} ({path}, {args.db}), {args.n} views, top {args.top} by {args.sort} ==")
            print(top(profile, args.top, args.sort))
        figures = ", ".join(f"{name} {v['cpu_ms']:.2f} ms ({v['statements']} statements)"
                            for name, v in result["pages"].items())
        c.emit(result, f"OK: staff pages {args.db}, CPU per view in process (median of {args.rounds} rounds of "
                       f"{args.n}): {figures}")


if __name__ == "__main__":
    main()
