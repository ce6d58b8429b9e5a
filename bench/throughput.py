"""Throughput against the physical limit (not run in CI): bare Flask hello world vs Foyer's public event
page (reused for a second, as by default, and rendered fresh for every view with
`PUBLIC_PAGE_CACHE_SECONDS=0`) vs the registration POST, each served by gunicorn with the repository's
gunicorn.conf.py on 127.0.0.1.

    .venv/bin/python bench/throughput.py                      # SQLite, 3 runs x 10 s each
    .venv/bin/python bench/throughput.py --db postgresql --runs 5 --seconds 20

Method: `wrk` (Debian package) for all three with the same threads, connections and duration; the
median requests/s of `--runs` runs each, and the ratios to hello world. Every registration POST carries
its own session cookie and CSRF token (made beforehand with the app's own serializer, see
bench/register.lua) and a unique email, so each is a real new sign-up; REGISTRATION_RATE_LIMIT is raised
so the limiter counts (in the database, the default store) but never throttles. Bars (docs/quality.md):
event page >= 0.6x, registration >= 0.4x hello, and a web worker's peak RSS <= 150 MB (VmHWM of every
gunicorn worker seen during the runs, sampled every 0.5 s since workers are recycled after max_requests).
Targets of the registration performance work, printed beside them: the fresh page >= 0.3x hello, the reused
page >= 0.8x, a web worker <= 120 MB; a missed page target prints that page's profile first (bench/_profile.py).
Before each run the bench waits for the server to go idle, so a run never starts behind the
requests the previous one left in flight. Prints JSON, then a one-line summary; exits non-zero on any
error response or a missed bar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import _profile  # noqa: E402

EVENT_PAGE_BAR = 0.6
REGISTRATION_BAR = 0.4
RSS_BAR_MB = 150
#: The registration performance targets: the page rendered fresh for every view, the reused page, memory.
FRESH_PAGE_TARGET = 0.3
REUSED_PAGE_TARGET = 0.8
RSS_TARGET_MB = 120


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    c.add_wrk_arguments(parser)
    parser.add_argument("--tokens", type=int, default=None,
                        help="CSRF pairs to prepare (default: enough for 300 registrations/s; any re-use is reported)")
    args = parser.parse_args()
    c.require_wrk()
    wrk = {"seconds": args.seconds, "connections": args.connections, "threads": args.threads}

    with c.temporary_directory() as tmpdir:
        tmp = Path(tmpdir)
        with c.fresh_database(args.db, tmp, "foyer_bench_throughput") as url:
            environ = c.foyer_environ(url)
            c.migrate(environ)
            app = c.make_app(environ, tmp)
            slug = c.seed_event(app)
            cookie_name, pairs = c.csrf_pairs(app, args.tokens or 300 * args.seconds * args.runs)
            tokens = c.TokenFile(tmp, cookie_name, pairs)

            # 1. The baseline: hello world under the same gunicorn settings.
            hello = c.Server(environ, tmp, app_uri="bench.hello_app:app", workers=args.workers, name="hello")
            try:
                hello.wait_until_up("/")
                hello_runs = [_settled(hello, c.run_wrk, hello.base_url + "/", **wrk) for _ in range(args.runs)]
            finally:
                hello.stop()

            # 2 and 3. Foyer, one server for the page views and the registrations.
            foyer = c.Server(environ, tmp, workers=args.workers)
            try:
                foyer.wait_until_up(f"/events/{slug}")
                foyer.start_sampling()
                c.check_csrf_pair_over_http(foyer.base_url, slug)
                c.warm_registration(foyer.base_url, slug)
                page_runs = [_settled(foyer, c.run_wrk, f"{foyer.base_url}/events/{slug}", **wrk)
                             for _ in range(args.runs)]
                before = c.count_rows(app, _registration())
                register = f"/events/{slug}/register"
                register_runs = [
                    _settled(foyer, c.run_wrk, foyer.base_url + register, script=c.BENCH / "register.lua",
                             env=tokens.wrk_env(register, f"t{i}", args.threads), **wrk)
                    for i in range(args.runs)
                ]
                foyer.settle()
                memory = foyer.memory_report()
                server_errors = foyer.errors_in_log()
            finally:
                foyer.stop()
            stored = c.count_rows(app, _registration()) - before

            # 4. The same page rendered for every view: what a view costs without the reuse.
            fresh = c.Server({**environ, "PUBLIC_PAGE_CACHE_SECONDS": "0"}, tmp, workers=args.workers, name="fresh")
            try:
                fresh.wait_until_up(f"/events/{slug}")
                fresh.start_sampling()
                fresh_runs = [_settled(fresh, c.run_wrk, f"{fresh.base_url}/events/{slug}", **wrk)
                              for _ in range(args.runs)]
                fresh.settle()
                fresh_memory = fresh.memory_report()
                server_errors += fresh.errors_in_log()
            finally:
                fresh.stop()

    hello_rps, page_rps, register_rps, fresh_rps = (
        c.median_rps(r) for r in (hello_runs, page_runs, register_runs, fresh_runs))
    posted = sum(r["requests"] for r in register_runs)
    errors = sum(c.wrk_errors(r) for r in hello_runs + page_runs + register_runs + fresh_runs)
    peak_rss = max(memory["peak_rss_mb_any_worker"], fresh_memory["peak_rss_mb_any_worker"])
    result = {
        "bench": "throughput", "db": args.db, "machine": c.machine(), "wrk": wrk, "runs": args.runs,
        "workers": args.workers or "gunicorn.conf.py default",
        "hello_rps": hello_rps, "event_page_rps": page_rps, "registration_rps": register_rps,
        "fresh_event_page_rps": fresh_rps,
        "event_page_ratio": round(page_rps / hello_rps, 3), "registration_ratio": round(register_rps / hello_rps, 3),
        "fresh_event_page_ratio": round(fresh_rps / hello_rps, 3),
        "bars": {"event_page_ratio": EVENT_PAGE_BAR, "registration_ratio": REGISTRATION_BAR, "rss_mb": RSS_BAR_MB},
        "targets": {"fresh_event_page_ratio": FRESH_PAGE_TARGET, "event_page_ratio": REUSED_PAGE_TARGET,
                    "rss_mb": RSS_TARGET_MB},
        "memory": memory, "fresh_page_memory": fresh_memory,
        # A POST after the prepared pairs ran out re-uses one (still a valid token, a new email): raise --tokens.
        "registrations": {"posted": posted, "stored": stored, "csrf_pairs": len(pairs),
                          "csrf_pairs_reused": sum(r.get("token_wraps", 0) for r in register_runs)},
        "errors": errors, "server_log_errors": server_errors[:20], "server_log": foyer.kept_log,
        "runs_detail": {"hello": hello_runs, "event_page": page_runs, "registration": register_runs,
                        "fresh_event_page": fresh_runs},
    }
    checks = {
        "event page": result["event_page_ratio"] >= EVENT_PAGE_BAR,
        "registration": result["registration_ratio"] >= REGISTRATION_BAR,
        "memory": peak_rss <= RSS_BAR_MB,
        "no errors": errors == 0 and not server_errors,
        # Every POST wrk counted was a new registration (wrk may count a few still in flight at the end).
        "every POST stored": stored >= posted,
    }
    targets = {
        "fresh page target": result["fresh_event_page_ratio"] >= FRESH_PAGE_TARGET,
        "reused page target": result["event_page_ratio"] >= REUSED_PAGE_TARGET,
        "memory target": peak_rss <= RSS_TARGET_MB,
    }
    ok = all(checks.values()) and all(targets.values())
    _profile.print_gap_profiles(args.db, [kind for kind, met in (("fresh page", targets["fresh page target"]),
                                                               ("reused page", targets["reused page target"]))
                                          if not met])
    missed = ", ".join(k for k, v in {**checks, **targets}.items() if not v)
    c.emit(result, f"{'OK' if ok else 'FAIL'}: throughput {args.db}: hello {hello_rps:.0f}/s, event page "
                   f"{page_rps:.0f}/s ({result['event_page_ratio']:.2f}x, bar {EVENT_PAGE_BAR}x, target "
                   f"{REUSED_PAGE_TARGET}x), fresh event page {fresh_rps:.0f}/s "
                   f"({result['fresh_event_page_ratio']:.2f}x, target {FRESH_PAGE_TARGET}x), registration "
                   f"{register_rps:.0f}/s ({result['registration_ratio']:.2f}x, bar {REGISTRATION_BAR}x), worker peak "
                   f"RSS {peak_rss} MB (bar {RSS_BAR_MB}, target {RSS_TARGET_MB}), {errors} errors"
                   + (f" -- missed: {missed}" if missed else ""))
    return 0 if ok else 1


def _settled(server: c.Server, run, *args, **kwargs) -> dict:
    """A wrk run on an idle server (the previous run's requests still in flight are answered first)."""
    waited = server.settle()
    result = run(*args, **kwargs)
    result["settled_before_s"] = waited
    return result


def _registration():
    from app.models import Registration

    return Registration


if __name__ == "__main__":
    sys.exit(main())
