"""Shared fixtures: the app on SQLite *and* PostgreSQL, a clean database per test, an HTTP client
that carries real CSRF tokens (re-using one while its session lasts), sign-in helpers,
factories, and a network tripwire."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import time_machine
from flask import Flask, g, has_request_context, session
from flask import request as request_of_app
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature
from sqlalchemy import event as sa_event

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Role, User
from app.schema import migrate_to_latest
from app.services.accounts import accounts
from app.services.core import page_cache, settings
from app.services.outbox import outbox
from emulator.graph_facts import write_problems
from tests.database import empty_database

PG_ADMIN_DSN = os.environ.get("FOYER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DATABASES = [d for d in os.environ.get("FOYER_TEST_DATABASES", "sqlite,postgresql").split(",") if d]
PASSWORD = "correct horse battery"

#: How long a form helper re-uses a CSRF token read from a page (Flask-WTF accepts it for hours).
CSRF_CACHE_SECONDS = 300
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


# --- which database a test runs on ---------------------------------------------------------------

#: The fixture parameters that choose a database (`app`, the browser tests' live server, migrations).
DATABASE_PARAMS = ("database_url", "live_server", "database_kind")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `db_agnostic` run once, on SQLite (or on the one database a run uses); all others
    run on every database.

    The rule: mark a test `db_agnostic` only when what it checks is decided above the database (a
    template, a header, a redirect, form validation that refuses before saving, the browser-side
    behaviour of a page) and every query it makes is plain CRUD that other tests run on both
    databases. Anything that exercises a query of its own (search, paging, sorting, locking, counting,
    JSON or time-zone round trips, migrations, exports, the outbox, registration), or that sends text a
    database may refuse (fuzzing), stays unmarked. When unsure, leave it unmarked.
    """
    def databases(item: pytest.Item) -> dict[str, str]:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        return {name: params[name] for name in DATABASE_PARAMS if name in params}

    with_sqlite = {name for item in items for name, value in databases(item).items() if value == "sqlite"}
    kept, once = [], []
    for item in items:
        chosen = databases(item)
        another = any(value != "sqlite" and name in with_sqlite for name, value in chosen.items())
        left_out = (another and item.get_closest_marker("db_agnostic")) or _spread_elsewhere(item, chosen)
        (once if left_out else kept).append(item)
    if once:
        config.hook.pytest_deselected(items=once)
        items[:] = kept


def _spread_elsewhere(item: pytest.Item, chosen: dict[str, str]) -> bool:
    """Whether `spread_over_databases(argname)` gives this variant to another database of the run.

    The marked test's variants (the values of `argname`, in their order) take the run's databases in
    turn: with SQLite and PostgreSQL, the first variant runs on SQLite, the second on PostgreSQL, the
    third on SQLite... For tests whose variants differ only above the database (the kind of fault
    Microsoft answers with, say), each of which is a long run: every variant still runs, and every
    database still sees the test's SQL. A run on one database runs every variant on it.
    """
    marker = item.get_closest_marker("spread_over_databases")
    if marker is None or len(DATABASES) < 2 or not chosen:
        return False
    argname = marker.args[0]
    variants = [value for mark in item.iter_markers("parametrize") if mark.args[0] == argname
                for value in mark.args[1]]
    database = next(iter(chosen.values()))
    return DATABASES[variants.index(item.callspec.params[argname]) % len(DATABASES)] != database


# --- network tripwire -----------------------------------------------------------------------------

_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
            raise RuntimeError(f"Test tried to reach {host!r}; only loopback and the emulator are allowed")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _network_tripwire() -> Iterator[None]:
    """Fail any outbound connection that is not to this machine (Microsoft is emulated)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


# --- databases ------------------------------------------------------------------------------------


def _worker_suffix() -> str:
    # The pid keeps simultaneous test runs on one machine out of each other's databases.
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def fresh_postgres_database(name: str) -> str:
    """(Re)create an empty PostgreSQL database and return its SQLAlchemy URL."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+psycopg://{host_part}/{name}"


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """Each test runs once on SQLite (a WAL file) and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "foyer.db"
        yield f"sqlite:///{path}"
    else:
        name = f"foyer_test_{_worker_suffix()}"
        yield fresh_postgres_database(name)
        drop_postgres_database(name)


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory) -> Iterator[Flask]:
    """The app, its schema built by the migrations (never by create_all)."""
    instance = tmp_path_factory.mktemp("instance")
    application = create_app(TestConfig, instance_path=instance, SQLALCHEMY_DATABASE_URI=database_url)
    migrate_to_latest(application)
    application.before_request(lambda: setattr(g, _SERVED, True))  # see _requests_write_as_writers
    emulator = application.extensions["microsoft"].emulator
    if emulator is not None:
        # Tests drain the outbox at once; the meeting set-up delay has its own tests, which raise it.
        emulator.config.meeting_lookup_delay = 0.0
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_database(request) -> Iterator[None]:
    """Empty every table after each test. Tests commit for real (concurrency tests need it)."""
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        empty_database(application)
        page_cache.event_pages(application).clear()
        page_cache.event_children(application).clear()
        settings.settings_cache(application).clear()
        microsoft = application.extensions["microsoft"]
        if microsoft.emulator is not None:
            microsoft.emulator.reset()
        microsoft.entra.reset_cache()


@pytest.fixture(autouse=True)
def _graph_writes_as_microsoft_takes_them(request) -> Iterator[None]:
    """After each test using the app, walk every Graph request Foyer made through Microsoft's v1.0 facts
    (properties, value types, enum members, time zones) and fail the test if Graph would refuse one.

    Set up after `_clean_database`, so it runs before the emulator is reset.
    """
    yield
    if "app" not in request.fixturenames:
        return
    emulator = request.getfixturevalue("app").extensions["microsoft"].emulator
    if emulator is None:
        return
    problems = []
    for recorded in emulator.requests_for("graph"):
        prefer = [v for k, v in recorded.headers.items() if k.lower() == "prefer"]
        problems += write_problems(recorded.method, recorded.path, recorded.body, prefer)
    assert not problems, "Foyer sent Graph requests Microsoft would refuse:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def _requests_write_as_writers(request) -> Iterator[None]:
    """Fail a test in which a request or an outbox handler, on SQLite, wrote in a transaction that had
    read before as a deferred one (`BEGIN`, not `BEGIN IMMEDIATE`).

    Such a write is refused at once ("database is locked") whenever another process (the worker, another
    web worker) wrote in between, whatever the busy timeout: in production a 500 (or a handler's needless
    retry) that no single-process test shows. A request writes as a writer from its first query (POSTs,
    `web.writes_on_get`) or through `web.unit_of_work`, a handler after `begin_write`; a transaction of its
    own that reads before it writes begins as a writer too. A test that breaks the rule on purpose is
    marked `reads_then_writes`.
    """
    if "app" not in request.fixturenames or request.node.get_closest_marker("reads_then_writes"):
        yield
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        yield
        return
    offending: list[str] = []

    def watch(conn, cursor, statement, *args) -> None:
        words = statement.split(None, 1)
        first = words[0].upper() if words else ""
        info = conn.info
        if first == "BEGIN":
            info[_TRANSACTION] = "writer" if statement.split()[-1].upper() == "IMMEDIATE" else "deferred"
        elif first in ("SELECT", "WITH") and info.get(_TRANSACTION) == "deferred":
            info[_TRANSACTION] = "deferred, read"
        elif first in ("INSERT", "UPDATE", "DELETE") and info.get(_TRANSACTION) == "deferred":
            info[_TRANSACTION] = "writer"  # a first statement that writes takes the write lock, as BEGIN IMMEDIATE
        elif first in ("INSERT", "UPDATE", "DELETE") and info.get(_TRANSACTION) == "deferred, read":
            claim = outbox._current_claim.get()  # (item id, version) inside `outbox.perform`
            if has_request_context() and g.get(_SERVED):
                where = f"{request_of_app.method} {request_of_app.path}"
            elif claim is not None:
                where = f"outbox item {claim[0]}"
            else:
                return  # the test's own set-up and checks
            offending.append(f"{where}: {' '.join(statement.split())[:160]}")

    def ended(conn) -> None:
        conn.info.pop(_TRANSACTION, None)

    listeners = [("before_cursor_execute", watch), ("commit", ended), ("rollback", ended)]
    for name, listener in listeners:
        sa_event.listen(engine, name, listener)
    try:
        yield
    finally:
        for name, listener in listeners:
            sa_event.remove(engine, name, listener)
    assert not offending, ("A request or a handler wrote after reading in a deferred SQLite transaction (refused "
                           "when another process writes in between):\n" + "\n".join(offending))


#: Connection info: how the connection's current transaction began, and whether it has read.
_TRANSACTION = "foyer_test_transaction"
#: Set on `g` by every request the app serves (not by a `test_request_context`).
_SERVED = "foyer_test_served"


@pytest.fixture
def app_ctx(app) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.remove()


# --- HTTP ---------------------------------------------------------------------------------------


class Client(FlaskClient):
    """A test client whose forms carry the CSRF token a browser's would.

    `csrf_token(url)` always GETs the page and reads its token (a test that checks a page offers its form
    uses it). The form helpers (`submit`, `htmx`) re-use the last token while the session still holds the
    secret it was signed from, as a browser re-uses the token of the page it is on; a new session (sign-in,
    sign-out, a fresh client) or a clock moved by more than a few minutes makes them take a new one from
    Flask-WTF for the session (`minted_csrf_token`) instead of rendering a whole page for it, which was
    about a tenth of the route tests' time. Forms whose token is not the session's (the embedded
    registration form's is bound to its event) take it from their page: `csrf_token(url)`.
    """

    #: (the session's CSRF secret, the signed token, time.time() when it was taken)
    _csrf_cache: tuple[str, str, float] | None = None

    def csrf_token(self, url: str = "/") -> str:
        return self.csrf_token_of(self.get(url), url)

    def csrf_token_of(self, page, url: str) -> str:
        """The token on a page this client has just fetched from `url` (remembered for the form helpers)."""
        match = CSRF_RE.search(page.get_data(as_text=True))
        assert match, f"no CSRF token on {url} (status {page.status_code})"
        token = match.group(1) or match.group(2)
        secret = self._session_csrf_secret()
        self._csrf_cache = (secret, token, time.time()) if secret else None
        return token

    def form_csrf_token(self) -> str:
        """The token a form posted now would carry: the cached one while it is still good, else the one
        every page of this session carries (`minted_csrf_token`)."""
        cached = self._csrf_cache
        if cached is not None and 0 <= time.time() - cached[2] < CSRF_CACHE_SECONDS:
            if self._session_csrf_secret() == cached[0]:
                return cached[1]
        return self.minted_csrf_token()

    def minted_csrf_token(self) -> str:
        """The CSRF token every page of this session carries, made by Flask-WTF as a page would make it,
        without rendering one: the secret goes into the session cookie, as a page's first view puts it."""
        app = self.application
        with self.session_transaction() as cookie_session, app.test_request_context():
            session.update(cookie_session)
            token = generate_csrf()
            secret = cookie_session[self._csrf_field] = session[self._csrf_field]
        self._csrf_cache = (secret, token, time.time())
        return token

    @property
    def _csrf_field(self) -> str:
        return self.application.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")

    def _session_csrf_secret(self) -> str | None:
        """The CSRF secret Flask-WTF keeps in the signed session cookie (None without a session)."""
        app = self.application
        cookie = self.get_cookie(app.config["SESSION_COOKIE_NAME"])
        if cookie is None:
            return None
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        try:
            session = serializer.loads(cookie.value)
        except BadSignature:
            return None
        return session.get(self._csrf_field)

    def submit(self, url: str, data: dict | None = None, **kwargs):
        """POST a form like a browser would, with the session's CSRF token (every page of a session carries
        the same one)."""
        payload = dict(data or {})
        payload.setdefault("csrf_token", self.form_csrf_token())
        return self.post(url, data=payload, **kwargs)

    def htmx(self, method: str, url: str, **kwargs):
        """An htmx request: HX-Request header and the session's CSRF header, as <body hx-headers> carries it."""
        headers = {"HX-Request": "true", "X-CSRFToken": self.form_csrf_token(), **kwargs.pop("headers", {})}
        return self.open(url, method=method, headers=headers, **kwargs)


@pytest.fixture
def client(app) -> Client:
    app.test_client_class = Client
    return app.test_client()  # type: ignore[return-value]


# --- factories ------------------------------------------------------------------------------------


@pytest.fixture
def make_user(app):
    """Create a user directly in the database; returns its id and email."""

    def _make(email: str = "organizer@example.org", role: Role = Role.organizer, *, password: str | None = PASSWORD,
              active: bool = True, name: str = "") -> User:
        with app.app_context():
            user = accounts.create_user(email, role=role, password=password, name=name or email.split("@")[0])
            user.is_active_account = active
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
            return user

    return _make


@pytest.fixture
def make_event(app):
    """Create an event with sensible defaults; keyword overrides set any column."""
    counter = {"n": 0}

    def _make(owner: User, *, questions: int = 0, **overrides) -> Event:
        counter["n"] += 1
        start = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=7)
        values = {
            "title": f"Community call {counter['n']}",
            "slug": f"community-call-{counter['n']}",
            "description": "We talk about **things**.",
            "timezone": "Europe/Berlin",
            "starts_at": start,
            "ends_at": start + timedelta(hours=1),
            "status": EventStatus.draft,
            "owner_id": owner.id,
        }
        values.update(overrides)
        with app.app_context():
            event = Event(**values)
            for i in range(questions):
                event.questions.append(Question(position=i, kind=QuestionKind.short_text, label=f"Question {i + 1}"))
            db.session.add(event)
            db.session.commit()
            db.session.refresh(event)
            db.session.expunge(event)
            return event

    return _make


@pytest.fixture
def auth(client, make_user):
    """Sign-in helpers in the style of flaskr's AuthActions."""

    class Auth:
        def login(self, email: str, password: str = PASSWORD):
            return client.submit("/login", {"email": email, "password": password})

        def login_as(self, role: Role = Role.organizer, email: str | None = None) -> User:
            user = make_user(email or f"{role.value}@example.org", role)
            response = self.login(user.email)
            assert response.status_code == 303, response.get_data(as_text=True)
            return user

        def login_as_admin(self) -> User:
            return self.login_as(Role.admin)

        def login_as_organizer(self, email: str | None = None) -> User:
            return self.login_as(Role.organizer, email)

        def logout(self):
            return client.submit("/logout")

    return Auth()


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """The wall clock under the test's control: `clock.shift(seconds)` instead of `time.sleep(seconds)`.

    It keeps ticking (time.time, datetime.now and everything built on them, itsdangerous stamps and the
    emulator included). It reaches only this process: worker processes and live servers keep real time,
    and time.monotonic is not moved.
    """
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        yield traveller


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
