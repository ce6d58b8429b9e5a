"""Microsoft is never in the request path (not run in CI): registration throughput with the built-in
Microsoft emulator answering at once vs answering every call 500 ms late.

    .venv/bin/python bench/microsoft_latency.py                     # SQLite, 3 runs x 10 s per phase
    .venv/bin/python bench/microsoft_latency.py --db postgresql --latency 0.5 --runs 5

Two phases, each with its own fresh database, gunicorn (the repository's gunicorn.conf.py) and one
`flask worker` draining the outbox beside it (OUTBOX_DRAIN_AFTER_REQUEST=0, as in production), set up
side by side; their runs alternate (fast, slow, fast, slow, ...) so drifting load affects both alike:
  1. FOYER_EMULATOR_FAULTS empty (Microsoft at 0 ms);
  2. FOYER_EMULATOR_FAULTS="*:latency=0.5" (every Entra, Graph and ACS call 500 ms late).
In each, `wrk` posts registrations (bench/register.lua: every POST its own session cookie, CSRF token
and email) for `--runs` runs; the ratio of the median requests/s of phase 2 to phase 1 must be
>= 0.9 (docs/quality.md). The outbox's state at the end of each phase shows the worker really was talking to
a slow Microsoft (fewer items done in phase 2). `--no-worker` leaves the worker out, isolating the
request path entirely. Prints JSON, then a one-line summary; exits non-zero on errors or a missed bar.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

RATIO_BAR = 0.9


def _run_phases(args, stack: ExitStack, phases: dict[str, str]) -> dict[str, dict]:
    """Set every phase up side by side, then alternate their wrk runs so a change in the machine's load
    touches both alike.
    """
    wrk = {"seconds": args.seconds, "connections": args.connections, "threads": args.threads}
    setups = {}
    for label, faults in phases.items():
        tmp = Path(stack.enter_context(c.temporary_directory()))
        url = stack.enter_context(c.fresh_database(args.db, tmp, f"foyer_bench_microsoft_{label}"))
        # Each phase has its own emulator process (as `make run` starts it), where its faults apply.
        environ = c.foyer_environ(url, FOYER_EMULATOR_FAULTS=faults, FOYER_INSTANCE_PATH=str(tmp / "instance"),
                                  EMULATOR_PORT=str(c.free_port_pair()))
        c.migrate(environ)
        app = c.make_app(environ, tmp)
        stack.callback(c.Emulator(environ, tmp).stop)
        slug = c.seed_event(app)
        cookie_name, pairs = c.csrf_pairs(app, args.tokens or 300 * args.seconds * args.runs)
        tokens = c.TokenFile(tmp, cookie_name, pairs)
        server = c.Server(environ, tmp, workers=args.workers, name=label)
        stack.callback(server.stop)
        if not args.no_worker:
            stack.callback(c.Worker(environ, tmp).stop)
        server.wait_until_up(f"/events/{slug}")
        c.warm_registration(server.base_url, slug)
        setups[label] = {"faults": faults, "app": app, "slug": slug, "tokens": tokens, "server": server, "runs": [],
                         "before": c.count_rows(app, _model("Registration"))}
    for i in range(args.runs):
        for label, s in setups.items():
            path = f"/events/{s['slug']}/register"
            for other in setups.values():  # every server idle: nothing left over from the last run
                other["server"].settle()
            s["runs"].append(c.run_wrk(s["server"].base_url + path, script=c.BENCH / "register.lua",
                                       env=s["tokens"].wrk_env(path, f"{label}{i}", args.threads), **wrk))
    for s in setups.values():
        s["server"].settle()
    results = {}
    for label, s in setups.items():
        server_errors = s["server"].errors_in_log()
        results[label] = {
            "faults": s["faults"] or "(none)", "rps": c.median_rps(s["runs"]), "runs": s["runs"],
            "posted": sum(r["requests"] for r in s["runs"]),
            "csrf_pairs_reused": sum(r.get("token_wraps", 0) for r in s["runs"]),
            "stored": c.count_rows(s["app"], _model("Registration")) - s["before"],
            "errors": sum(c.wrk_errors(r) for r in s["runs"]), "server_log_errors": server_errors[:20],
            "outbox_during_runs": _outbox_states(s["app"]),
        }
    return results


def _model(name: str):
    import app.models

    return getattr(app.models, name)


def _outbox_states(app) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import OutboxItem

    with app.app_context():
        try:
            rows = db.session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
            return {str(status): n for status, n in rows}
        finally:
            db.session.remove()
            db.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds added to every Microsoft call")
    c.add_wrk_arguments(parser)
    parser.add_argument("--tokens", type=int, default=None, help="CSRF pairs to prepare per phase")
    parser.add_argument("--no-worker", action="store_true", help="no `flask worker` beside the web server")
    args = parser.parse_args()
    c.require_wrk()

    with ExitStack() as stack:
        phases = _run_phases(args, stack, {"fast": "", "slow": f"*:latency={args.latency}"})
    fast, slow = phases["fast"], phases["slow"]
    ratio = round(slow["rps"] / fast["rps"], 3)
    errors = fast["errors"] + slow["errors"] + len(fast["server_log_errors"]) + len(slow["server_log_errors"])
    result = {"bench": "microsoft_latency", "db": args.db, "machine": c.machine(), "runs": args.runs,
              "seconds": args.seconds, "worker": not args.no_worker,
              "workers": args.workers or "gunicorn.conf.py default", "latency_s": args.latency, "ratio": ratio,
              "bar": RATIO_BAR, "fast": fast, "slow": slow, "errors": errors}
    checks = {"ratio": ratio >= RATIO_BAR, "no errors": errors == 0,
              "every POST stored": fast["stored"] >= fast["posted"] and slow["stored"] >= slow["posted"]}
    ok = all(checks.values())
    missed = ", ".join(k for k, v in checks.items() if not v)
    c.emit(result, f"{'OK' if ok else 'FAIL'}: microsoft latency {args.db}: registrations {fast['rps']:.0f}/s with "
                   f"Microsoft at 0 ms, {slow['rps']:.0f}/s at {args.latency * 1000:.0f} ms -> {ratio:.2f}x "
                   f"(bar {RATIO_BAR}x), {errors} errors" + (f" -- missed: {missed}" if missed else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
