"""The README's journey, with Foyer started exactly as `make run` starts it: the Microsoft emulator
(`flask emulator serve`), the web server (`flask run`) and the worker (`flask worker`) as three
processes on the embedded default, in a temporary instance directory on free ports.

In Chromium, by visible labels: first-run setup → connect Microsoft through the emulator's sign-in page
(another origin) → an event in Europe/Amsterdam → publish → Teams "Ready" → three registrations on two
seats → the emails arrive → the join page from the emailed link gives a join session → edit the time
and title → cancel the event. Then Ctrl+C stops every process (none has to be killed), they are started
again and the state checked again: still "Connected", no failed outbox item, every message final, and the
join URL Foyer keeps is the emulator's current one.

`FoyerProcesses.log("web")` returns a process's log so far (e.g. to read a code the web server prints).
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app import create_app
from app.config import Config
from app.extensions import db
from app.models import Event, Message, MessageStatus, OutboxItem, OutboxStatus
from app.services.microsoft.emulator_cli import wait_until_answering
from tests.browser.conftest import REPO_ROOT, LiveServer
from tests.ports import free_port

ADMIN_EMAIL = "ada@example.org"
PASSWORD = "a long secret pw"
TITLE = "Amsterdam community call"
NEW_TITLE = "Amsterdam community call (moved)"
ZONE = "Europe/Amsterdam"
SERVICE_ACCOUNT = "foyer.service@contoso.emulator.invalid"
PEOPLE = [("Ada", "Lovelace", "ada.l@example.org"), ("Bob", "Babbage", "bob@example.org"),
          ("Cleo", "Cray", "cleo@example.org")]
#: Message kinds whose outcome is not settled yet; anything else is a final state.
UNFINISHED = (MessageStatus.queued, MessageStatus.sending)
#: What ACS's delivery reports (Event Grid) say of an email in the end.
FINAL_DELIVERY = ("Delivered", "Bounced", "Suppressed", "Failed", "Quarantined", "FilteredSpam", "Expanded")


@dataclass
class FoyerProcesses:
    """The three processes of `make run`, with their logs in the instance directory."""

    instance: Path
    web_port: int
    emulator_port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.web_port}"

    @property
    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "FOYER_INSTANCE_PATH": str(self.instance),
            "HOST": "localhost",
            "PORT": str(self.web_port),
            "EMULATOR_PORT": str(self.emulator_port),
            # Fast, but the product's own settings: the worker looks often, ACS is asked soon.
            "OUTBOX_POLL_SECONDS": "0.3",
            "REMINDER_SWEEP_SECONDS": "5",
            "ACS_STATUS_POLL_SECONDS": "1",
            "ACS_EMAIL_POLL_SECONDS": "0.2",
            "REGISTRATION_MIN_FILL_SECONDS": "0",
            "LOG_LEVEL": "INFO",
        }
        if "REQUESTS_CA_BUNDLE" in os.environ:  # a machine-wide bundle must not hide the emulator's CA
            env["REQUESTS_CA_BUNDLE"] = os.environ["REQUESTS_CA_BUNDLE"]
        return env

    def _flask(self, *args: str, log: str) -> subprocess.Popen:
        with open(self.instance / f"{log}.log", "ab") as out:  # the child keeps its own copy
            return subprocess.Popen(  # noqa: S603 - our own interpreter and commands
                [sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=REPO_ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def start(self) -> None:
        """As `make run`: migrate, start the emulator, the web server and the worker, wait until both answer."""
        with _ctrl_c_as_in_a_terminal():
            self._start()

    def _start(self) -> None:
        upgrade = self._flask("db", "upgrade", log="upgrade")
        assert upgrade.wait(timeout=120) == 0, self.log("upgrade")
        self.procs["emulator"] = self._flask("emulator", "serve", log="emulator")
        self.procs["web"] = self._flask("run", "--host", "localhost", "--port", str(self.web_port), log="web")
        self.procs["worker"] = self._flask("worker", log="worker")
        authority = f"https://127.0.0.1:{self.emulator_port}/c0ffee00-f0e0-4000-8000-000000000001"
        missing = wait_until_answering([authority + "/v2.0/.well-known/openid-configuration", self.base_url + "/"],
                                       timeout=60, ca_bundle=str(self.ca_bundle))
        assert not missing, f"not answering: {missing}\n" + "\n".join(self.log(n) for n in self.procs)

    def stop(self) -> list[str]:
        """Ctrl+C for each process; a process that does not stop in time is killed. Returns the names of
        the processes that had to be killed."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        killed = []
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
                killed.append(name)
        self.procs.clear()
        return killed

    def log(self, name: str) -> str:
        path = self.instance / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def ca_bundle(self) -> Path:
        return self.instance / "emulator" / "emulator-ca.pem"

    def emulator_api(self, path: str) -> dict:
        """The emulator's inspection API (only on its TLS origin, never on the sign-in listener)."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        url = f"https://127.0.0.1:{self.emulator_port}/_emulator/{path}"
        with urllib.request.urlopen(url, timeout=10, context=context) as answer:  # noqa: S310 - our own emulator
            return json.load(answer)


@contextmanager
def _ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """While processes start: SIGINT at its default, as the foreground of a terminal has it.

    A test run started in the background (`make test &` in a script, some CI runners) ignores SIGINT, and
    an ignored signal stays ignored in every process started from it: Ctrl+C would then stop none of the
    three, and each stop would wait for its timeout and kill them.
    """
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def foyer(tmp_path_factory) -> Iterator[FoyerProcesses]:
    processes = FoyerProcesses(instance=tmp_path_factory.mktemp("make-run-instance"), web_port=free_port(),
                               emulator_port=free_port(pair=True))
    try:
        processes.start()  # a process that did start is stopped even when another one did not
        yield processes
    finally:
        processes.stop()


@pytest.fixture(scope="module")
def live_server(foyer) -> Iterator[LiveServer]:
    """The browser fixtures' view of Foyer: its address, and an app on the same instance for reading
    the database (it never serves a request)."""
    app = create_app(Config, instance_path=foyer.instance, environ=foyer.env)
    yield LiveServer(app=app, base_url=foyer.base_url)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _read(app, query):
    with app.app_context():
        try:
            return query()
        finally:
            db.session.remove()


def _wait(condition, *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _outbox_idle(app) -> bool:
    """No item running, waiting for a re-connect, or due now (later ones, e.g. the attendance import
    after the event, may wait)."""
    soon = datetime.now(UTC) + timedelta(seconds=30)
    busy = select(OutboxItem).where(
        (OutboxItem.status.in_((OutboxStatus.running, OutboxStatus.waiting)))
        | ((OutboxItem.status == OutboxStatus.pending) & (OutboxItem.next_attempt_at <= soon)))
    return not _read(app, lambda: db.session.scalars(busy).all())


def _unfinished_messages(app) -> list[str]:
    def query():
        rows = db.session.scalars(select(Message)).all()
        return [f"{m.recipient} {m.kind} {m.status.value} {m.operation_status} {m.delivery}" for m in rows
                if m.status in UNFINISHED or (m.status == MessageStatus.sent and m.channel.value == "email"
                                              and m.delivery not in FINAL_DELIVERY)]
    return _read(app, query)


# --- steps ------------------------------------------------------------------------------------------


def _first_run_setup(page: Page, visit, audit, foyer) -> None:
    visit("/login")  # the first visitor is sent to setup
    expect(page).to_have_url(re.compile(r"/setup$"))
    # The one-time setup code is printed where only the operator sees it: the web server's log.
    codes = re.findall(r"one-time setup code: ([A-Z0-9-]+)", foyer.log("web"))
    assert codes, foyer.log("web")[-2000:]
    page.get_by_label("Setup code").fill(codes[-1])
    page.get_by_label("Your name").fill("Ada Admin")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create admin account").click()
    expect(page.get_by_role("status").filter(has_text="Your admin account is ready")).to_be_visible()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    audit()


def _sign_in(page: Page, visit) -> None:
    """Sign in as the admin (a session kept across a restart may already be signed in)."""
    visit("/login")
    if page.get_by_role("heading", name="Your events", level=1).count():
        return
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()


def _connect_microsoft(page: Page, visit, audit, foyer: FoyerProcesses) -> None:
    visit("/admin/microsoft/")
    page.get_by_role("button", name="Connect the emulated service account").click()
    # The emulator's sign-in page: another origin, as login.microsoftonline.com is.
    expect(page).to_have_url(re.compile(rf"^http://localhost:{foyer.emulator_port + 1}/[^/]+/oauth2/v2\.0/authorize\?"))
    expect(page.get_by_role("heading", name="Sign in (Microsoft emulator)")).to_be_visible()
    audit()
    choice = re.compile(rf"Sign in as Foyer Service Account <{re.escape(SERVICE_ACCOUNT)}>")
    page.get_by_role("button", name=choice).click()
    expect(page).to_have_url(re.compile(r"/admin/microsoft/\?outcome=connected$"))
    expect(page.get_by_role("status").filter(has_text="Microsoft 365 is connected.")).to_be_visible()
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    audit()


def _starts_at(minutes: int) -> datetime:
    """A start time in the join window (opens 15 minutes before), in the event's zone."""
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def _create_and_publish(page: Page, visit, audit) -> None:
    visit("/manage/events")
    page.get_by_role("link", name="New event").click()
    expect(page.get_by_role("heading", name="New event", level=1)).to_be_visible()
    starts = _starts_at(10)
    page.get_by_label("Title", exact=True).fill(TITLE)
    page.get_by_label("Description", exact=True).fill("Meet the team.")
    page.get_by_label("Time zone", exact=True).select_option(ZONE)
    page.get_by_label("Starts", exact=True).fill(starts.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends", exact=True).fill((starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Capacity", exact=True).fill("2")
    page.get_by_role("button", name="Create event").click()
    expect(page.get_by_role("status").filter(has_text="Event created as a draft")).to_be_visible()
    audit()
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=TITLE).click()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status").filter(has_text="Published")).to_be_visible()
    # The worker process creates the meeting; the status fragment polls until it is ready.
    expect(page.locator(".teams-status")).to_contain_text("Ready", timeout=60_000)
    audit()


def _register(page: Page, visit, audit, foyer: FoyerProcesses, slug: str, first: str, last: str, email: str, *,
              subject: str) -> None:
    """Register on the public page; the email whose subject matches `subject` arrives in the mailbox."""
    visit(f"/events/{slug}")
    form = page.locator("#register-form")
    form.get_by_label("First name").fill(first)
    form.get_by_label("Last name").fill(last)
    form.get_by_label("Email", exact=True).fill(email)
    consent = form.get_by_role("checkbox", name=re.compile("I have read the"))
    if consent.count():
        consent.check()
    form.get_by_role("button", name=re.compile("^(Register|Join the waitlist)$")).click()
    expect(page.get_by_role("status").get_by_role("heading")).to_be_visible()
    audit()
    _wait(lambda: any(re.search(subject, e["subject"]) for e in _mailbox(foyer, email)),
          what=f"the email “{subject}” to {email}")


def _mailbox(foyer: FoyerProcesses, recipient: str) -> list[dict]:
    return [e for e in foyer.emulator_api("acs/emails")["value"] if any(to.get("address") == recipient
                                                                       for to in e["to"])]


def _emailed_link(foyer: FoyerProcesses, recipient: str, path: str) -> str:
    """The newest link under `path` in an email the emulator's mailbox received for `recipient`."""
    links: list[str] = []

    def arrived() -> bool:
        for email in _mailbox(foyer, recipient):
            pattern = rf"{re.escape(foyer.base_url + path)}[^\s\"<]+"
            links.extend(re.findall(pattern, email.get("plain_text") or ""))
        return bool(links)

    _wait(arrived, what=f"an email with a {path} link to {recipient}")
    return links[-1]


def _emailed_join_link(foyer: FoyerProcesses, recipient: str) -> str:
    return _emailed_link(foyer, recipient, "/j/")


def _join(page: Page, visit, audit, foyer: FoyerProcesses, link: str) -> None:
    visit(link.removeprefix(foyer.base_url))
    expect(page.get_by_role("heading", name="The call is open")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/session") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Join the call").click()
    assert answer.value.status == 200
    expect(page.get_by_role("region", name="You would be in the call now")).to_be_visible()
    audit()


def _edit_time_and_title(page: Page, visit, audit, event_id: int) -> None:
    visit(f"/manage/events/{event_id}/edit")
    starts = _starts_at(12)
    page.get_by_label("Title", exact=True).fill(NEW_TITLE)
    page.get_by_label("Starts", exact=True).fill(starts.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends", exact=True).fill((starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Changes saved.")).to_be_visible()
    audit()


def _cancel_event(page: Page, visit, audit, event_id: int) -> None:
    visit(f"/manage/events/{event_id}")
    page.get_by_role("link", name="Cancel event…").click()
    page.get_by_role("button", name="Cancel the event").click()
    expect(page.get_by_role("status").filter(has_text="The event is cancelled.")).to_be_visible()
    audit()


def _check_state(page: Page, visit, audit, foyer: FoyerProcesses, app, event_id: int) -> None:
    """Connected, nothing failed, every message final, Foyer's join URL the emulator's current one."""
    _wait(lambda: _outbox_idle(app), what="the outbox to be idle")
    _wait(lambda: not _unfinished_messages(app), what="every message to reach a final state", timeout=90)
    visit("/admin/microsoft/")
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    visit("/admin/health")
    outbox_row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Outbox"))
    expect(outbox_row).to_contain_text("OK")
    expect(outbox_row).not_to_contain_text("failed")
    visit("/admin/messages")
    statuses = page.get_by_role("table").locator("td .badge")  # the Status column's badges
    expect(statuses.first).to_be_visible()
    expect(statuses.filter(has_text=re.compile("^(Queued|Sending)$"))).to_have_count(0)
    event = _read(app, lambda: db.session.get(Event, event_id))
    meetings = {m["id"]: m for m in foyer.emulator_api("graph/online-meetings")["value"]}
    events = {e["id"]: e for e in foyer.emulator_api("graph/events")["value"]}
    current = (events.get(event.graph_event_id) or {}).get("onlineMeeting") or {}
    emulator_join = current.get("joinUrl") or meetings.get(event.online_meeting_id, {}).get("joinWebUrl")
    assert event.join_url and event.join_url == emulator_join


def test_the_readme_journey_on_make_runs_three_processes(page: Page, visit, audit, foyer, live_server):
    app = live_server.app
    _first_run_setup(page, visit, audit, foyer)
    _connect_microsoft(page, visit, audit, foyer)
    _create_and_publish(page, visit, audit)
    event_id, slug = _read(app, lambda: db.session.execute(select(Event.id, Event.slug)).one())
    assert _read(app, lambda: db.session.get(Event, event_id).timezone) == ZONE

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status").filter(has_text="You have been signed out")).to_be_visible()
    _register(page, visit, audit, foyer, slug, *PEOPLE[0], subject="You're registered")
    _register(page, visit, audit, foyer, slug, *PEOPLE[1], subject="You're registered")
    _register(page, visit, audit, foyer, slug, *PEOPLE[2], subject="(?i)waitlist")
    link = _emailed_join_link(foyer, PEOPLE[0][2])
    _join(page, visit, audit, foyer, link)

    _sign_in(page, visit)
    _edit_time_and_title(page, visit, audit, event_id)
    _wait(lambda: _outbox_idle(app), what="the Teams update")
    _check_state(page, visit, audit, foyer, app, event_id)
    _cancel_event(page, visit, audit, event_id)
    _check_state(page, visit, audit, foyer, app, event_id)

    assert foyer.stop() == [], "Ctrl+C did not stop these processes"
    foyer.start()
    _sign_in(page, visit)
    _check_state(page, visit, audit, foyer, app, event_id)
    for name in ("web", "worker"):
        assert "Traceback" not in foyer.log(name), foyer.log(name)[-4000:]
