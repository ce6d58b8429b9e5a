"""Shared helpers for the benches in bench/ (not run in CI).

Every bench serves Foyer on 127.0.0.1 the way production does: gunicorn with the repository's
`gunicorn.conf.py` (sync workers, `wsgi:app`, WEB_CONCURRENCY workers), a fresh database migrated with
`flask --app wsgi db upgrade`, and an event created and published through Foyer's own services.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from anywhere

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PG_DSN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"

#: What a realistic public event page carries: a few paragraphs of Markdown.
DESCRIPTION = """\
Join us for an afternoon of talks and questions about **how we build things together**.

## Agenda

1. Welcome and introductions
2. What we learned this year — with *real numbers*
3. Questions from the audience

Bring your questions; the session is recorded for those who cannot attend. More about us at
[our website](https://example.org/about).
"""


# --- databases ------------------------------------------------------------------------------------------


def pg_dsn() -> str:
    return os.environ.get("FOYER_BENCH_PG_DSN", PG_DSN_DEFAULT)


@contextmanager
def fresh_database(kind: str, tmp: Path, name: str):
    """Yield the DATABASE_URL of a new, empty database; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    dsn = pg_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    host = dsn.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{host}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def foyer_environ(database_url: str, **extra: str) -> dict[str, str]:
    """Configuration for the app, the migration and gunicorn (see README's configuration table)."""
    from app.services.core.crypto import generate_key

    environ = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-" + generate_key(),
        "ENCRYPTION_KEYS": generate_key(),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        "OUTBOX_DRAIN_AFTER_REQUEST": "0",
        "LOG_LEVEL": "WARNING",
        # Every request comes from 127.0.0.1: without a high limit the rate limiter would be the bench.
        "REGISTRATION_RATE_LIMIT": "100000000 per minute",
        # Scripted clients post the form at once; the bot check would send every one of them back.
        "REGISTRATION_MIN_FILL_SECONDS": "0",
        "FOYER_EMULATOR_FAULTS": "",
    }
    environ.update(extra)
    return environ


def migrate(environ: dict[str, str]) -> None:
    """`flask --app wsgi db upgrade` against the bench database."""
    subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, check=True,  # noqa: S603
                   env={**os.environ, **environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_app(environ: dict[str, str], tmp: Path):
    """An app object on the bench database, for seeding and checking (never serves requests)."""
    from app import create_app
    from app.config import Config

    return create_app(Config, instance_path=tmp / "instance", environ=environ)


def add_in_process_arguments(parser: argparse.ArgumentParser) -> None:
    """`--db` and `--dsn` of the benches that serve requests through Flask's test client (`app_in_process`)."""
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--dsn", default=None, help="PostgreSQL admin DSN (default FOYER_BENCH_PG_DSN or local)")


@contextmanager
def app_in_process(args: argparse.Namespace, pg_database: str):
    """The app on a fresh, migrated database (`args.db`, `args.dsn`) with the page reuse off, for requests
    through Flask's test client in this process; its connections are closed afterwards.
    """
    if args.dsn:
        os.environ["FOYER_BENCH_PG_DSN"] = args.dsn
    with temporary_directory() as tmp_name, fresh_database(args.db, Path(tmp_name), pg_database) as url:
        environ = foyer_environ(url, PUBLIC_PAGE_CACHE_SECONDS="0")
        migrate(environ)
        app = make_app(environ, Path(tmp_name))
        try:
            yield app
        finally:
            from app.extensions import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def seed_event(app, *, slug: str = "bench", title: str = "Bench event", capacity: int | None = None,
               waitlist: bool = True) -> str:
    """Create and publish an event through Foyer's services (as an organizer would); returns its slug."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Role, User
    from app.services.accounts import accounts
    from app.services.events import events

    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == "bench@example.org"))  # a second event's
        if owner is None:
            owner = accounts.create_user("bench@example.org", role=Role.organizer, password=None, name="Bench")
            db.session.flush()
        starts = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=7)
        event = events.create_event(events.EventData(
            title=title, slug=slug, starts_at=starts, ends_at=starts + timedelta(hours=1),
            timezone="Europe/Berlin", description=DESCRIPTION, capacity=capacity, waitlist_enabled=waitlist,
        ), actor=owner)
        events.publish_event(event, actor=owner)
        db.session.commit()
        slug = event.slug
        db.session.remove()
        db.engine.dispose()
    return slug


def count_rows(app, model) -> int:
    from sqlalchemy import func, select

    from app.extensions import db

    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(model))
        finally:
            db.session.remove()
            db.engine.dispose()


# --- CSRF tokens for registration POSTs -------------------------------------------------------------------


def csrf_pairs(app, n: int) -> tuple[str, list[tuple[str, str]]]:
    """`n` fresh (session cookie, CSRF token) pairs, each what one visitor's GET of the form would give.

    Made with the app's own session serializer and Flask-WTF's `generate_csrf`, so the timed runs measure
    only the POSTs. Returns the session cookie's name and the pairs.
    """
    from flask import session
    from flask_wtf.csrf import generate_csrf

    serializer = app.session_interface.get_signing_serializer(app)
    pairs = []
    for _ in range(n):
        with app.test_request_context("/"):
            token = generate_csrf()
            pairs.append((serializer.dumps(dict(session)), token))
    return app.config["SESSION_COOKIE_NAME"], pairs


def check_csrf_pair_over_http(base_url: str, slug: str) -> None:
    """Fail early if a real GET of the form does not carry a CSRF token (the form changed)."""
    page = requests.get(f"{base_url}/events/{slug}", timeout=30)
    page.raise_for_status()
    if not CSRF.search(page.text):
        raise SystemExit("the event page has no registration form with a CSRF token")


def warm_registration(base_url: str, slug: str, email: str = "warm-up@example.org") -> None:
    """One registration the way a browser makes it (GET the form, POST it) before anything is timed.

    The first registration on a fresh SQLite database also creates the rate-limit counters' side file;
    doing that once up front keeps first-use setup out of the figures.
    """
    with requests.Session() as http:
        page = http.get(f"{base_url}/events/{slug}/register", timeout=60)
        token = CSRF.search(page.text)
        if token is None:
            raise SystemExit("the registration form has no CSRF token")
        response = http.post(f"{base_url}/events/{slug}/register", allow_redirects=False, timeout=60,
                             data={"csrf_token": token.group(1), "first_name": "Warm", "last_name": "Up",
                                   "email": email, "timezone": "Europe/Berlin", "consent": "y"})
        if response.status_code != 303:
            raise SystemExit(f"the warm-up registration answered {response.status_code}")


def registration_body(token: str, email: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"csrf_token": token, "first_name": "Bench", "last_name": "Person", "email": email,
                      "timezone": "Europe/Berlin", "consent": "y"})


# --- servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with gunicorn.conf.py on 127.0.0.1 (optionally another WSGI app, same settings)."""

    def __init__(self, environ: dict[str, str], tmp: Path, *, app_uri: str | None = None,
                 workers: int | None = None, threads: int | None = None, name: str = "foyer",
                 extra_args: list[str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **environ, "FOYER_BIND": f"127.0.0.1:{self.port}"}
        if workers:
            env["WEB_CONCURRENCY"] = str(workers)
        command = [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), *(extra_args or [])]
        if threads:  # above 1, gunicorn runs gthread workers
            command += ["--threads", str(threads)]
        if app_uri:
            command.append(app_uri)
        self.log_path = tmp / f"{name}-gunicorn.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (access and error log, as under systemd)
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log,  # noqa: S603
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.peaks: dict[int, int] = {}  # worker pid -> VmHWM in kB
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def wait_until_up(self, path: str = "/", seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.process.returncode}: see {self.log_path}\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            try:
                if requests.get(self.base_url + path, timeout=5).status_code < 500:
                    # Every worker imports the app after the fork: give them all a request to warm up.
                    for _ in range(20):
                        requests.get(self.base_url + path, timeout=30)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("gunicorn did not start")

    def worker_pids(self) -> list[int]:
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                pass
        return pids

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and its live workers."""
        total = 0.0
        for pid in [self.process.pid, *self.worker_pids()]:
            try:
                total += cpu_seconds_of(process_stat(pid)[1])
            except OSError:
                continue
        return total

    def settle(self, timeout: float = 120, window: float = 1.0, idle_share: float = 0.05) -> float:
        """Wait until the server is idle (requests left in flight by the last run finished); returns the wait.

        wrk stops counting at the end of a run, but the server still answers what was sent: without this,
        the next run would start behind that queue.
        """
        began = time.monotonic()
        previous = self.cpu_seconds()
        while time.monotonic() - began < timeout:
            time.sleep(window)
            now = self.cpu_seconds()
            if now - previous < idle_share * window:
                break
            previous = now
        return round(time.monotonic() - began, 1)

    def sample_memory(self) -> None:
        for pid in self.worker_pids():
            kb = vm_hwm_kb(pid)
            if kb is not None:
                self.peaks[pid] = max(kb, self.peaks.get(pid, 0))

    def start_sampling(self, every: float = 0.5) -> None:
        """Record every web worker's peak RSS while it lives (gunicorn recycles workers: max_requests)."""
        def loop() -> None:
            while not self._sampling.wait(every):
                self.sample_memory()

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def memory_report(self) -> dict:
        self.sample_memory()
        current = {pid: vm_hwm_kb(pid) for pid in self.worker_pids()}
        current = {pid: kb for pid, kb in current.items() if kb is not None}
        return {
            "peak_rss_mb_any_worker": round(max(self.peaks.values(), default=0) / 1024, 1),
            "peak_rss_mb_live_workers_after_run": round(max(current.values(), default=0) / 1024, 1),
            "workers_seen": len(self.peaks),
        }

    def errors_in_log(self) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines()
                if "Traceback" in line or " ERROR " in line or "[CRITICAL]" in line or "WORKER TIMEOUT" in line]

    def stop(self) -> None:
        self._sampling.set()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        self.kept_log = keep_log(self.log_path)


def process_stat(pid: int | str) -> tuple[str, list[str]]:
    """A process's name and the fields after it in `/proc/<pid>/stat` (OSError once it has ended)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    name_end = stat.rindex(")")  # the name may itself hold ")"
    return stat[stat.index("(") + 1:name_end], stat[name_end + 2:].split()


def cpu_seconds_of(fields: list[str]) -> float:
    """The CPU time (utime + stime) in a process's `process_stat` fields."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keep_log(path: Path) -> str:
    """Copy a server log out of the temporary directory (FOYER_BENCH_LOG_DIR, default /tmp/foyer-bench-logs)."""
    target_dir = Path(os.environ.get("FOYER_BENCH_LOG_DIR", "/tmp/foyer-bench-logs"))  # noqa: S108
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{path.name}"
    shutil.copyfile(path, target)
    return str(target)


def vm_hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class FlaskProcess:
    """`flask --app wsgi <command>` on the bench's configuration, its output kept in a log file; `stop()`
    sends `stop_signal` and waits up to `stop_seconds` before killing it.
    """

    stop_signal = signal.SIGTERM
    stop_seconds = 60

    def __init__(self, environ: dict[str, str], tmp: Path, *command: str) -> None:
        self.env = {**os.environ, **environ}
        self.log_path = tmp / f"{command[0]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen([str(VENV_BIN / "flask"), "--app", "wsgi", *command], cwd=ROOT,  # noqa: S603
                                        env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=self.stop_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        self.kept_log = keep_log(self.log_path)


class Worker(FlaskProcess):
    """`flask --app wsgi worker`: drains the outbox (emails, Microsoft calls) beside the web server."""

    def __init__(self, environ: dict[str, str], tmp: Path) -> None:
        super().__init__(environ, tmp, "worker")


class Emulator(FlaskProcess):
    """`flask --app wsgi emulator serve`: the built-in Microsoft emulator as `make run` starts it, on
    EMULATOR_PORT (and its sign-in page on the next port) with its CA and state under FOYER_INSTANCE_PATH;
    `environ` must name both, and every process of the bench the same. FOYER_EMULATOR_FAULTS applies here.
    """

    stop_signal = signal.SIGINT
    stop_seconds = 30

    def __init__(self, environ: dict[str, str], tmp: Path) -> None:
        super().__init__(environ, tmp, "emulator", "serve")
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "emulator", "wait-ready"], cwd=ROOT,  # noqa: S603
                       env=self.env, check=True, stdout=subprocess.DEVNULL)


def free_port_pair() -> int:
    """A port whose next port is free too (the emulator's TLS port and its sign-in page)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise SystemExit("no two free ports side by side")


# --- wrk ----------------------------------------------------------------------------------------------

WRK_LINE = re.compile(r"Requests/sec:\s+([\d.]+)")


#: The help of a served bench's --workers option.
WORKERS_HELP = "gunicorn workers (default: gunicorn.conf.py's, WEB_CONCURRENCY or 2 x cores + 1)"


def add_wrk_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a bench that serves Foyer under gunicorn and loads it with wrk."""
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=None, help=WORKERS_HELP)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return path


def run_wrk(url: str, *, seconds: int, connections: int, threads: int, script: Path | None = None,
            env: dict[str, str] | None = None) -> dict:
    """One wrk run; requests/s, completed requests, socket errors and non-2xx/3xx answers."""
    command = [require_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
               "--timeout", "30s"]
    if script:
        command += ["-s", str(script)]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})  # noqa: S603
    text = out.stdout
    match = WRK_LINE.search(text)
    if not match:
        raise SystemExit(f"could not read wrk's output:\n{text}\n{out.stderr}")
    completed = re.search(r"(\d+) requests in", text)
    non_ok = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", text)
    wraps = re.search(r"token_wraps: (\d+)", text)
    return {
        "rps": float(match.group(1)),
        "requests": int(completed.group(1)) if completed else 0,
        "non_2xx_3xx": int(non_ok.group(1)) if non_ok else 0,
        # Sync workers close every connection after answering, so "read" errors are expected
        # (gunicorn hangs up on a kept-alive socket); connect errors and timeouts are not.
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock else {},
        "p50_ms": _to_ms(*p50.groups()) if p50 else None,
        **({"token_wraps": int(wraps.group(1))} if wraps else {}),
    }


def _to_ms(value: str, unit: str) -> float:
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)


def wrk_errors(run: dict) -> int:
    sock = run.get("socket_errors", {})
    return run["non_2xx_3xx"] + sock.get("connect", 0) + sock.get("timeout", 0) + sock.get("write", 0)


def median_rps(runs: list[dict]) -> float:
    return round(statistics.median(r["rps"] for r in runs), 1)


class TokenFile:
    """The pairs for bench/register.lua: one 'cookie<TAB>token' line each."""

    def __init__(self, tmp: Path, cookie_name: str, pairs: list[tuple[str, str]], name: str = "tokens.tsv") -> None:
        self.path = tmp / name
        self.path.write_text("".join(f"{c}\t{t}\n" for c, t in pairs))
        self.cookie_name = cookie_name
        self.count = len(pairs)

    def wrk_env(self, path: str, run_tag: str, threads: int) -> dict[str, str]:
        return {"FOYER_BENCH_TOKENS": str(self.path), "FOYER_BENCH_PATH": path, "FOYER_BENCH_RUN": run_tag,
                "FOYER_BENCH_COOKIE": self.cookie_name, "FOYER_BENCH_THREADS": str(threads)}


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout  # noqa: S607
    model = re.search(r"Model name:\s+(.+)", lscpu)
    return {"nproc": os.cpu_count(), "cpu": model.group(1).strip() if model else "?",
            "python": sys.version.split()[0], "loadavg_1m": round(os.getloadavg()[0], 2),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def temporary_directory():
    return tempfile.TemporaryDirectory(prefix="foyer-bench-")


def emit(result: dict, summary: str) -> None:
    print(json.dumps(result, indent=2, default=str))
    print(summary, flush=True)
