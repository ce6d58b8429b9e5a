"""How long preparing an organizer message to many recipients holds the write lock (not run in CI).

    .venv/bin/python bench/broadcast_lock.py                       # SQLite, 1,000 recipients, batches of 100
    .venv/bin/python bench/broadcast_lock.py --recipients 1000 --batch 100 --db postgresql

Seeds an event with N confirmed registrations on a fresh database, then runs the fan-out of an organizer
message (the outbox handler, in process) twice, alternately: once with BROADCAST_BATCH_SIZE=--batch and
once with a batch larger than N (one transaction, as before batching). Each run is a new message (its own
batch key), so every recipient is queued each time. Prints, per run, the number of transactions, the
longest and total time from each transaction's BEGIN IMMEDIATE (`begin_write`) to its commit: the time
the SQLite write lock was held, which every other writer waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402


def seed_people(app, slug: str, n: int) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Event
    from app.services.registration import registrations

    with app.app_context():
        event = db.session.scalar(select(Event).filter_by(slug=slug))
        for i in range(n):
            registrations.register(event, registrations.RegistrationData(
                first_name=f"P{i}", last_name="Bench", email=f"p{i}@example.org", timezone="Europe/Berlin"))
            db.session.commit()
        db.session.remove()


def timed_fanout(app, slug: str, batch_size: int, run: int) -> dict:
    from sqlalchemy import event as sa_event
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.extensions import db
    from app.models import Event
    from app.services.broadcast import fanout

    holds: list[float] = []
    opened: list[float] = []
    real_begin = fanout.begin_write

    def begin():
        real_begin()
        opened.append(time.perf_counter())

    def committed(session):
        if opened:
            holds.append(time.perf_counter() - opened.pop())

    with app.app_context():
        app.config["BROADCAST_BATCH_SIZE"] = batch_size
        event_id = db.session.scalar(select(Event.id).filter_by(slug=slug))
        payload = {"event_id": event_id, "kind": "organizer", "segment": "confirmed", "subject": f"Run {run}",
                   "body": "Room 2.", "batch": f"organizer:{event_id}:bench{run}"}
        fanout.begin_write = begin
        sa_event.listen(Session, "after_commit", committed)
        began = time.perf_counter()
        try:
            fanout.fanout(payload)
        finally:
            sa_event.remove(Session, "after_commit", committed)
            fanout.begin_write = real_begin
        wall = time.perf_counter() - began
        db.session.remove()
    return {"batch_size": batch_size, "transactions": len(holds), "longest_lock_ms": round(max(holds) * 1000, 1),
            "total_lock_ms": round(sum(holds) * 1000, 1), "wall_ms": round(wall * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    with c.temporary_directory() as tmp_name, c.fresh_database(args.db, Path(tmp_name), "foyer_bench_bcast") as url:
        environ = c.foyer_environ(url)
        c.migrate(environ)
        app = c.make_app(environ, Path(tmp_name))
        slug = c.seed_event(app, capacity=None)
        seed_people(app, slug, args.recipients)
        runs = []
        for pair in range(args.pairs):
            runs.append(timed_fanout(app, slug, args.batch, 2 * pair))
            runs.append(timed_fanout(app, slug, args.recipients + 1, 2 * pair + 1))
        print(json.dumps({"db": args.db, "recipients": args.recipients, "runs": runs,
                          "load_average_1min": round(os.getloadavg()[0], 2)}, indent=2))
        for r in runs:
            print(f"{args.db}: batch {r['batch_size']}: {r['transactions']} transaction(s), write lock held at most "
                  f"{r['longest_lock_ms']} ms at a time, {r['total_lock_ms']} ms in all, {r['wall_ms']} ms wall")
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
    batched = [r for r in runs if r["batch_size"] == args.batch]
    single = [r for r in runs if r["batch_size"] != args.batch]
    expected = -(-args.recipients // args.batch)
    ok = all(r["transactions"] == expected for r in batched)
    print(f"{'OK' if ok else 'FAIL'}: broadcast_lock {args.db}: {args.recipients} recipients, batches of "
          f"{args.batch}: lock held at most {max(r['longest_lock_ms'] for r in batched)} ms at a time "
          f"({expected} transactions expected); one transaction: "
          f"{max(r['longest_lock_ms'] for r in single)} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
