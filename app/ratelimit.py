"""A Flask-Limiter (`limits`) storage in Foyer's own database: `RATELIMIT_STORAGE_URI=database://`.

The default in-memory store counts per process, so four gunicorn workers would allow four times the
limit. Counting in the database shares the count between every process and host without another
service to run; Redis (`redis://…`) remains an option for large installations.

Fixed windows only (Flask-Limiter's default strategy). Each hit is one atomic upsert on a connection
of its own in autocommit, outside the request's transaction. On PostgreSQL the counters live in Foyer's
database. On SQLite they live in a file beside it (`foyer.db` → `foyer.db-ratelimits`): a write to the main file
from another connection would end the request's read snapshot, and SQLite would then refuse the
request's own write ("database is locked").

Failed sign-ins are also counted here, per account *and* client (`record_failed_sign_in`): a client that
keeps guessing waits longer and longer, while the account's owner elsewhere signs in as usual.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time

from flask import current_app
from limits.storage import Storage
from sqlalchemy import Engine, create_engine, delete, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from app.extensions import (
    db,  # the current app's engine: limits are checked inside requests
    limiter,
)
from app.models.rate_limit import RateLimitCounter

#: Expired counters are deleted every this many hits (per process), so the table stays small.
PRUNE_EVERY = 500


#: One hit: a single atomic upsert, the same SQL on SQLite and PostgreSQL; a lapsed window starts over.
#: Written out as text because SQLAlchemy compiles a dialect's INSERT … ON CONFLICT anew on every use
#: (it has no statement-cache key), and this runs on every rate-limited request.
_HIT = text(
    'INSERT INTO rate_limit_counters ("key", count, expires_at) VALUES (:key, :amount, :expires_at) '
    'ON CONFLICT ("key") DO UPDATE SET '
    "count = CASE WHEN rate_limit_counters.expires_at <= :now THEN :amount "
    "ELSE rate_limit_counters.count + :amount END, "
    "expires_at = CASE WHEN rate_limit_counters.expires_at <= :now THEN :expires_at "
    "ELSE rate_limit_counters.expires_at END "
    "RETURNING count"
)


class DatabaseStorage(Storage):
    STORAGE_SCHEME = ["database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options) -> None:
        self._hits = 0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    _side_engines: dict[str, Engine] = {}
    _lock = threading.Lock()

    @classmethod
    def _engine(cls) -> Engine:
        """The counters' engine, in autocommit: a hit's upsert is atomic on its own, so it needs neither
        BEGIN nor COMMIT (on PostgreSQL one round trip to the server instead of three, on every
        rate-limited request). Its own engine, because switching a pooled connection to autocommit and
        back costs more round trips than it saves.
        """
        main = db.engine
        with cls._lock:
            key = main.url.render_as_string(hide_password=False)
            if key not in cls._side_engines:
                cls._side_engines[key] = (_sqlite_side_engine(main) if main.dialect.name == "sqlite"
                                          else create_engine(main.url, isolation_level="AUTOCOMMIT",
                                                             pool_pre_ping=True))
            return cls._side_engines[key]

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        table = RateLimitCounter.__table__
        with self._engine().begin() as conn:
            count = conn.execute(_HIT, {"key": key, "amount": amount, "now": now,
                                        "expires_at": now + expiry}).scalar_one()
            self._hits += 1
            if self._hits % PRUNE_EVERY == 0:
                conn.execute(delete(table).where(table.c.expires_at <= now))
        return count

    def _row(self, key: str) -> tuple[int, float] | None:
        table = RateLimitCounter.__table__
        with self._engine().connect() as conn:
            row = conn.execute(select(table.c.count, table.c.expires_at).where(table.c.key == key)).first()
        if row is None or row.expires_at <= time.time():
            return None
        return row.count, row.expires_at

    def get(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row[1] if row else time.time()

    def check(self) -> bool:
        try:
            with self._engine().connect() as conn:
                conn.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self._engine().begin() as conn:
            return conn.execute(delete(RateLimitCounter.__table__)).rowcount

    def clear(self, key: str) -> None:
        table = RateLimitCounter.__table__
        with self._engine().begin() as conn:
            conn.execute(delete(table).where(table.c.key == key))


def _sqlite_side_engine(main: Engine) -> Engine:
    """The counters' own SQLite file next to the main one (in memory for an in-memory database)."""
    database = main.url.database
    if not database or database == ":memory:":
        engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False},
                               isolation_level="AUTOCOMMIT")
    else:
        engine = create_engine(make_url(main.url).set(database=f"{database}-ratelimits"), isolation_level="AUTOCOMMIT")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        # As for the main file: a commit does not wait for the disk (WAL stays consistent; a power cut
        # can lose the last moments of counting, which only lets a few more requests through).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    try:
        RateLimitCounter.__table__.create(engine, checkfirst=True)
    except OperationalError as exc:  # another process created it between the check and the CREATE
        if "already exists" not in str(exc):
            raise
    return engine


# --- failed sign-ins per (account, client) ------------------------------------------------------------

#: Wrong passwords a client may send for one account before it has to wait; each further one doubles the wait.
FREE_FAILURES = 5
FIRST_WAIT_SECONDS = 30
MAX_WAIT_SECONDS = 15 * 60
#: How long failures are remembered (a success from that client forgets them at once).
FAILURE_MEMORY_SECONDS = 24 * 3600


def _failure_keys(email: str, client: str) -> tuple[str, str]:
    # Hashed: the counters name no address, and a long typed address makes no long key.
    ident = hashlib.sha256(f"{email.strip().lower()}\n{client}".encode()).hexdigest()[:40]
    return f"signin-failures:{ident}", f"signin-wait:{ident}"


def _storage() -> Storage | None:
    """The rate limiter's storage, or None when rate limiting is turned off (RATELIMIT_ENABLED=false)."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    return limiter.storage


def sign_in_wait(email: str, client: str) -> int:
    """Seconds this client must still wait before it may try a password for this account (0: it may).

    Only failures from this very client count, so nobody elsewhere can lock an account's owner out.
    """
    _failures, wait = _failure_keys(email, client)
    storage = _storage()
    if storage is None or not storage.get(wait):
        return 0
    return max(1, math.ceil(storage.get_expiry(wait) - time.time()))


def record_failed_sign_in(email: str, client: str) -> None:
    """Count a wrong password from this client for this account; past the free ones, start a wait."""
    failures, wait = _failure_keys(email, client)
    storage = _storage()
    if storage is None:
        return
    count = storage.incr(failures, FAILURE_MEMORY_SECONDS)
    if count >= FREE_FAILURES:
        seconds = min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** (count - FREE_FAILURES))
        storage.clear(wait)
        storage.incr(wait, seconds)


def clear_failed_sign_ins(email: str, client: str) -> None:
    """A correct password: this client starts afresh for this account."""
    storage = _storage()
    for key in _failure_keys(email, client) if storage is not None else ():
        storage.clear(key)
