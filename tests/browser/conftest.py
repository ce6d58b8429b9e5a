"""Browser tests: Foyer served on a real socket, driven by Debian's Chromium through Playwright.

The pattern every browser test follows::

    def test_something(page, visit, audit):
        visit("/setup")                          # open a page: it is audited at once
        page.get_by_label("Email").fill("…")     # act through accessible locators
        page.get_by_role("button", name="…").click()
        expect(page.get_by_role("heading", name="…")).to_be_visible()
        audit()                                  # audit the page the action led to

* `visit(path)` opens a page and audits it; `audit()` audits whatever the page shows now (call it
  after every step that lands on a new page or swaps in new content). The page a test ends on is
  audited automatically.
* An audit runs axe-core and fails the test on any violation of impact "serious" or "critical",
  listing the rule, the elements and the help URL.
* Any console error (CSP violations are console errors), uncaught page exception, failed request
  or HTTP error response (except 422, Foyer's answer to an invalid form) fails the test too. A test
  that expects one says so with `browser_errors.allow(r"pattern")`.
* Each test gets a new browser context (no cookies) and an empty database. JavaScript can be turned
  off for a test with `@pytest.mark.parametrize("context_options", [{"java_script_enabled": False}])`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from app import config as foyer_config  # not `import TestConfig`: pytest would try to collect it
from app import create_app
from app.extensions import db
from app.schema import migrate_to_latest
from app.services.core import page_cache
from app.services.microsoft import wiring
from tests.database import empty_database

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FOYER_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# Without the background-networking flags Chromium keeps calling Google's services, which this
# machine's closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # The join page's call needs a camera and microphone: fake ones (a test pattern and a tone),
    # granted without a prompt.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
BROWSER_DATABASES = [d for d in os.environ.get("FOYER_BROWSER_DATABASES", "sqlite,postgresql").split(",") if d]
BLOCKING_IMPACTS = ("serious", "critical")
#: Responses a browser test may see without failing: 422 is how Foyer answers an invalid form.
EXPECTED_STATUSES = {422}
PAGE_WATCHES = pytest.StashKey[list["PageWatch"]]()

logger = logging.getLogger(__name__)


#: Browser tests that also run on PostgreSQL: the attendee's whole journey, as the end-to-end check of
#: each database. The others check what the browser shows and does; every query under their pages runs
#: on both databases in the route and integration tests, so they run once (`db_agnostic`, tests/conftest.py).
ON_EVERY_DATABASE = {"test_registration_journey.py"}


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py's hook reads the db_agnostic marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.path)).resolve()
        if here in path.parents:
            item.add_marker(pytest.mark.browser)
            if path.name not in ON_EVERY_DATABASE:
                item.add_marker(pytest.mark.db_agnostic)


def _unavailable(reason: str) -> None:
    """Skip on a developer machine without the tool; in CI a missing tool is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason)


# --- the live server ------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request drowns the test output
        pass


def htmx_settled(page) -> None:
    """Wait until htmx has no request in flight and has swapped, settled and wired up what it swapped in.

    A control inside freshly swapped content only answers (hx-get on change, …) once htmx has processed it;
    htmx pushes the URL before it swaps, so acting on the new content right after the URL changes can be lost.
    """
    busy = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"
    page.wait_for_function(f"() => !document.querySelector('{busy}')")


@dataclass
class LiveServer:
    app: Flask
    base_url: str

    def url(self, path: str = "/") -> str:
        return self.base_url + path


def _root_conftest(config: pytest.Config):
    """tests/conftest.py as pytest loaded it (it is not importable by name: see test_migrations.py)."""
    wanted = REPO_ROOT / "tests" / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == wanted:
            return plugin
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture(scope="session", params=BROWSER_DATABASES)
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Foyer on http://localhost:<free port>, its own database built by the migrations."""
    pg_name = f"foyer_browser_{_root_conftest(request.config)._worker_suffix()}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('browser-db') / 'foyer.db'}"
    else:
        url = _root_conftest(request.config).fresh_postgres_database(pg_name)
    instance = tmp_path_factory.mktemp("browser-instance")
    # The live panels poll every 2 s instead of 10: what one person does shows on another's page sooner.
    app = create_app(foyer_config.TestConfig, instance_path=instance, SQLALCHEMY_DATABASE_URI=url, LIVE_POLL_SECONDS=2)
    migrate_to_latest(app)
    # `localhost`, not 127.0.0.1: it is the name people use, and browsers treat it as a secure context.
    server = make_server("localhost", 0, app, threaded=True, request_handler=_QuietHandler)
    base_url = f"http://localhost:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = base_url
    # Register this address's callbacks with the app's in-process emulator (its app registration).
    app.extensions["microsoft"].emulator.config.redirect_uris = wiring.redirect_uris(base_url)
    # Teams sets meetings up after a moment (the emulator models it; its own tests cover the wait).
    app.extensions["microsoft"].emulator.config.meeting_lookup_delay = 0.0
    thread = threading.Thread(target=server.serve_forever, name="foyer-live-server", daemon=True)
    thread.start()
    yield LiveServer(app=app, base_url=base_url)
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if request.param != "sqlite":
        _root_conftest(request.config).drop_postgres_database(pg_name)


@pytest.fixture(autouse=True)
def _empty_live_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each browser test starts from an empty database (first-run setup included) and a Microsoft that
    remembers nothing of the previous test (sent emails, pending delivery reports, tokens)."""
    yield
    if "live_server" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("live_server").app
    with app.app_context():
        empty_database(app)
        microsoft = app.extensions["microsoft"]
        if microsoft.emulator is not None:
            microsoft.emulator.reset()
        microsoft.entra.reset_cache()
    page_cache.event_pages(app).clear()
    page_cache.event_children(app).clear()


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE_JS.exists():
        _unavailable(f"{AXE_JS.relative_to(REPO_ROOT)} is missing: run `npm ci` (or `make test`)")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def browser(axe_source):
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: `apt-get install chromium` (or `make test`) to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context_options() -> dict:
    """Extra `browser.new_context` options; override with `@pytest.mark.parametrize("context_options", [...])`."""
    return {}


@pytest.fixture
def context(browser, live_server, context_options):
    options = {"base_url": live_server.base_url, "locale": "en-GB", "timezone_id": "Europe/London", **context_options}
    ctx = browser.new_context(**options)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@dataclass
class BrowserErrors:
    """Problems the browser reported while the test ran, and the ones the test expects."""

    found: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect problems matching `pattern` (a regex searched in the message) for this test."""
        self.allowed.append(re.compile(pattern))

    def add(self, message: str) -> None:
        if not any(p.search(message) for p in self.allowed):
            self.found.append(message)


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@dataclass
class PageWatch:
    """Listens to one page: errors as they happen, and which states of the page were audited."""

    page: object
    errors: BrowserErrors
    axe_source: str
    javascript: bool
    auditor: object | None = None  # a JS-enabled page that audits what a JS-disabled page shows
    navigations: int = 0
    audited_at: int = -1
    violations: list[str] = field(default_factory=list)

    def attach(self) -> None:
        page = self.page
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.add(f"uncaught exception on {page.url}: {exc}"))
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)
        page.on("framenavigated", self._on_navigated)

    def _on_console(self, message) -> None:
        # "Failed to load resource" names no URL; _on_response reports the same failure with its URL.
        if message.type != "error" or message.text.startswith("Failed to load resource"):
            return
        if message.text.startswith("htmx:sendAbort"):
            # htmx aborts its request in flight (a poll, a boosted link) when the page is left, and logs the
            # abort as two errors, "htmx:afterRequest" then "htmx:sendAbort": a request cut short by the next
            # navigation, like ERR_ABORTED below. A request that fails logs htmx:sendError or
            # htmx:responseError instead, and the failed response is reported as well.
            aborted = f"console error on {self.page.url}: htmx:afterRequest"
            if self.errors.found and self.errors.found[-1].startswith(aborted):
                self.errors.found.pop()
            return
        self.errors.add(f"console error on {self.page.url}: {message.text}")

    def _on_response(self, response) -> None:
        if response.status < 400 or response.status in EXPECTED_STATUSES:
            return
        self.errors.add(f"HTTP {response.status} for {response.request.method} {response.url}")

    def _on_request_failed(self, request) -> None:
        if request.failure and "ERR_ABORTED" in request.failure:
            return  # a request cut short by the next navigation (e.g. a redirect)
        self.errors.add(f"request failed: {request.method} {request.url}: {request.failure}")

    def _on_navigated(self, frame) -> None:
        if frame.parent_frame is None:
            self.navigations += 1

    def audit(self) -> None:
        """Run axe-core on what the page shows now; fail on serious or critical violations."""
        page = self.page
        page.wait_for_load_state("load")
        if self.javascript:
            htmx_settled(page)  # judge the page htmx has finished with
            results = self._run_axe(page)
        else:
            results = self._audit_without_javascript()
        self.audited_at = self.navigations
        blocking = [v for v in results if v["impact"] in BLOCKING_IMPACTS]
        if blocking:
            lines = [f"axe-core found {len(blocking)} serious/critical accessibility problem(s) on {page.url}:"]
            for v in blocking:
                lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} — {v['helpUrl']}")
                for node in v["nodes"][:5]:
                    summary = node["failureSummary"].strip().splitlines() or [""]
                    lines.append(f"      at {json.dumps(node['target'])}: {summary[-1].strip()}")
            pytest.fail("\n".join(lines), pytrace=False)

    def _run_axe(self, target) -> list[dict]:
        # The CSP (script-src 'self') blocks inline <script> tags, so add_script_tag cannot load
        # axe. page.evaluate runs through the DevTools protocol, which CSP does not govern.
        if not target.evaluate("() => typeof window.axe === 'object'"):
            target.evaluate(self.axe_source)
        return target.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ["violations"]});
                return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                    nodes: v.nodes.map(n => ({target: n.target, failureSummary: n.failureSummary || ""}))}));
            }"""
        )

    def _audit_without_javascript(self) -> list[dict]:
        """With JavaScript off in the page, axe cannot run in it (its timers never fire). Audit a
        copy instead: a JS-enabled page loads the same HTML at the same URL, with the page's own
        scripts blocked, so it looks exactly as it does to a visitor without JavaScript."""
        html = self.page.content()
        url = self.page.url
        auditor = self.auditor

        def serve_copy(route) -> None:
            if route.request.url == url and route.request.resource_type == "document":
                route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
            elif route.request.resource_type == "script":
                route.abort()
            else:
                route.continue_()

        auditor.route("**/*", serve_copy)
        try:
            auditor.goto(url)
            return self._run_axe(auditor)
        finally:
            auditor.unroute("**/*", serve_copy)

    def finish(self) -> None:
        """After the test: audit the last page if it changed since the last audit; report errors."""
        if not self.page.is_closed() and self.navigations != self.audited_at:
            self.audit()
        if self.errors.found:
            pytest.fail("The browser reported problems:\n  " + "\n  ".join(self.errors.found), pytrace=False)


@pytest.fixture
def page(context, browser, browser_errors, axe_source, context_options, request: pytest.FixtureRequest):
    """A new tab whose errors fail the test and whose final state is audited (see the module doc)."""
    javascript = context_options.get("java_script_enabled", True)
    auditor_context = None if javascript else browser.new_context(locale="en-GB", timezone_id="Europe/London")
    tab = context.new_page()
    watch = PageWatch(page=tab, errors=browser_errors, axe_source=axe_source, javascript=javascript)
    if auditor_context is not None:
        watch.auditor = auditor_context.new_page()
    watch.attach()
    request.node.stash.setdefault(PAGE_WATCHES, []).append(watch)
    yield tab
    if auditor_context is not None:
        auditor_context.close()


@pytest.fixture
def audit(page, request: pytest.FixtureRequest):
    """`audit()` checks the page as it is now; `audit(other_page)` checks another watched tab."""

    def _audit(target=None) -> None:
        target = target or page
        for watch in request.node.stash[PAGE_WATCHES]:
            if watch.page is target:
                watch.audit()
                return
        raise AssertionError("that page is not watched; create it with the `page` fixture")

    return _audit


@pytest.fixture
def visit(page, audit):
    """`visit("/path")` opens a page (relative to the live server), checks it loaded, and audits it."""

    def _visit(path: str):
        response = page.goto(path)
        assert response is not None and response.ok, f"GET {path} answered {response and response.status}"
        audit()
        return response

    return _visit


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    # After a test body that passed, audit its final page and report browser errors as the test's
    # own failure (a fixture teardown would report them as a separate error).
    result = yield
    for watch in item.stash.get(PAGE_WATCHES, []):
        watch.finish()
    return result
