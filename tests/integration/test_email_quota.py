"""The email quota with real `flask worker` processes and a backlog of 1,000 (quality bar 7).

An admin sets the quota on Admin → Messages and the emulated ACS resource enforces the same limits
(429 + Retry-After above them, as ACS does). An organizer sends a message to 1,000 registrants. The
emulator must never see more than the per-minute quota in any 60 s nor more than the hourly quota in any
hour, never answer 429, and the admin and the organizer see when the backlog will have drained.

A test cannot watch an hour go by, so the limits are smaller than ACS's 30/min and 100/h, with the same
window arithmetic: 10 per minute and 15 per hour. Nor need it watch a whole minute: five emails went out
45 s before the test starts (in Foyer's records and in the resource's own count, as after a restart). So
both limits bind within seconds: five more fill the minute, the minute window lets five more through once
the earlier five are a minute old, and then the hour is used up — the remaining 990 wait, deferred rather
than failed, for hours.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import requests
from sqlalchemy import func, insert, select
from werkzeug.serving import WSGIRequestHandler, make_server

from app.extensions import db
from app.models import Message, MessageChannel, MessageStatus, OutboxItem, OutboxStatus, Role
from tests.conftest import CSRF_RE, PASSWORD
from tests.integration import test_worker_process as worker_process
from tests.integration.test_reminder_faults import (
    FAST,
    accepted_sends,
    busiest_window,
    make_event,
    refused_sends,
    spawn_worker,
)
from tests.integration.test_worker_process import wait_for
from tests.services.microsoft import conftest as tls_fixtures

tls_emulator = tls_fixtures.tls_emulator
tls_app = tls_fixtures.tls_app
emulator = tls_fixtures.emulator
tls_ctx = tls_fixtures.tls_ctx
worker_env = worker_process.worker_env

PER_MINUTE, PER_HOUR = 10, 15
BACKLOG = 1000
#: Emails sent before the test, and how long ago: half the minute's quota, leaving the minute in 30 s. The
#: workers must start, fan the message out to 1,000 and send within those 30 s (about 10 s on a slow machine).
EARLIER, EARLIER_AGO = 5, 30
ETA = re.compile(r'<time datetime="([^"]+)"')


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def served(app) -> Iterator[str]:
    """Foyer on http://127.0.0.1:<free port>, for the admin's and the organizer's browsers."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="quota-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class Browser:
    """A signed-in person's browser: a cookie jar, and forms posted with the page's CSRF token."""

    def __init__(self, base: str, email: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.trust_env = False
        response = self.submit("/login", {"email": email, "password": PASSWORD})
        assert response.status_code == 303, response.text[:500]

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, timeout=30, allow_redirects=False)

    def submit(self, path: str, data: dict, *, form: str | None = None) -> requests.Response:
        page = self.get(form or path)
        token = CSRF_RE.search(page.text)
        assert token, f"no CSRF token on {form or path}"
        return self.http.post(self.base + path, data={**data, "csrf_token": token.group(1) or token.group(2)},
                              timeout=60, allow_redirects=False)


def shown_eta(page: str, sentence: str) -> datetime:
    """The time in the <time> element that follows `sentence` on the page."""
    at = page.find(sentence)
    assert at >= 0, f"{sentence!r} is not on the page"
    match = ETA.search(page, at)
    assert match, f"no time after {sentence!r}"
    return datetime.fromisoformat(unescape(match.group(1)))


def statuses() -> Counter:
    db.session.rollback()
    return Counter(dict(db.session.execute(select(Message.status, func.count()).group_by(Message.status)).all()))


def send_earlier_emails(emulator, count: int, seconds_ago: float) -> list[float]:
    """`count` emails that went out `seconds_ago`: Foyer's messages hold their send slots, and the emulated
    resource counts them against its quota. Returns their send times."""
    at = time.time() - seconds_ago
    sent_at = datetime.fromtimestamp(at, UTC)
    db.session.rollback()  # the web app wrote since this session last read
    db.session.execute(insert(Message), [{
        "dedupe_key": f"earlier-{n}", "channel": MessageChannel.email, "kind": "organizer_message",
        "status": MessageStatus.sent, "recipient": f"earlier{n}@example.org", "subject": "Earlier",
        "deadline": sent_at, "reserved_at": sent_at, "sent_at": sent_at, "created_at": sent_at, "updated_at": sent_at,
        "attempts": 1,
    } for n in range(count)])
    db.session.commit()
    emulator.acs.record_earlier_email_sends([at] * count)
    return [at] * count


def test_quota_is_never_exceeded_with_a_thousand_queued_and_the_drain_time_is_shown(
        tls_ctx, emulator, worker_env, served, make_user, database_url, monkeypatch, tmp_path):
    monkeypatch.setattr(emulator.config, "email_per_minute", PER_MINUTE)
    monkeypatch.setattr(emulator.config, "email_per_hour", PER_HOUR)
    admin_user = make_user("admin@example.org", Role.admin)
    organizer_user = make_user("organizer@example.org", Role.organizer)
    admin = Browser(served, admin_user.email)
    saved = admin.submit("/admin/messages/quota", {"per_minute": str(PER_MINUTE), "per_hour": str(PER_HOUR)},
                         form="/admin/messages")
    assert saved.status_code == 303
    assert f"Currently {PER_MINUTE} per minute and {PER_HOUR} per hour" in admin.get("/admin/messages").text

    event_id = make_event(organizer_user.id, "quota-day", starts_at=datetime.now(UTC) + timedelta(days=7),
                          offsets=[], people=BACKLOG, prefix="guest")
    organizer = Browser(served, organizer_user.email)
    compose = f"/manage/events/{event_id}/messages"
    sent_form = organizer.submit(compose, {"segment": "confirmed", "subject": "Parking on the day",
                                           "body": "The car park opens at **8:30**.", "action": "send"})
    assert sent_form.status_code == 303
    batch_page = sent_form.headers["Location"].removeprefix(served)

    earlier = send_earlier_emails(emulator, EARLIER, EARLIER_AGO)
    # Several workers claim from the queue on PostgreSQL; SQLite deployments run one.
    count = 2 if database_url.startswith("postgresql") else 1
    workers = [spawn_worker(worker_env, f"foyer-worker-{n}", tmp_path, **FAST) for n in range(1, count + 1)]
    minute_left = PER_MINUTE - EARLIER
    hour_left = PER_HOUR - EARLIER
    try:
        wait_for(lambda: len(accepted_sends(emulator)) >= minute_left, timeout=30,
                 what="the rest of the minute's sends")
        first = min(s.received_at for s in accepted_sends(emulator))
        # The earlier sends leave the minute window at earlier + 60 s; the hour window allows five more.
        wait_for(lambda: len(accepted_sends(emulator)) >= hour_left, timeout=earlier[0] + 61 + 20 - time.time(),
                 what="the next minute's sends")
        wait_for(lambda: statuses().total() == BACKLOG + EARLIER, timeout=60, what="the message to fan out to 1,000")
        time.sleep(3)  # a send beyond the hour's quota would go now, with the minute's window open again
        now = datetime.now(UTC)
        admin_page = admin.get("/admin/messages").text
        organizer_batch = organizer.get(batch_page).text
        organizer_event = organizer.get(f"/manage/events/{event_id}").text
    finally:
        exits = [worker.stop() for worker in workers]
    assert exits == [0] * count, "\n".join(w.log() for w in workers)

    sent = [s.received_at for s in accepted_sends(emulator)]
    # Foyer's first sends came while the earlier five were still in the minute: the minute limit bound.
    assert first - earlier[0] < 60, \
        f"the workers first sent {first - earlier[0]:.1f} s after the earlier sends: too late for the minute to bind"
    times = earlier + sent
    assert len(sent) == hour_left  # the whole hourly quota was used …
    assert busiest_window(times, 60) == PER_MINUTE  # … never more than the minute's in any 60 s …
    assert busiest_window(times, 3600) == PER_HOUR  # … nor the hour's in any hour
    assert refused_sends(emulator) == []  # and ACS never had to refuse one
    assert emulator.acs.duplicate_operation_ids() == []
    waiting = BACKLOG - hour_left
    assert statuses() == {MessageStatus.sent: EARLIER + hour_left, MessageStatus.queued: waiting}
    items = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "message.send")).all()
    assert Counter(i.status for i in items) == {OutboxStatus.done: hour_left, OutboxStatus.pending: waiting}
    retried = [(i.id, i.attempts, i.last_error) for i in items if i.status == OutboxStatus.pending and i.attempts]
    assert retried == [], [w.log()[-5000:] for w in workers]  # deferred, not failed

    # 990 more at 15 an hour, this hour's 15 already gone: 66 more hourly windows, the first of which opens
    # an hour after the earlier sends. The last leaves 65 to 66 hours from now (an estimate may round up).
    hours = -(-waiting // PER_HOUR)
    earliest, latest = timedelta(hours=hours - 1), timedelta(hours=hours)
    assert f"<strong>{waiting}</strong> waiting to go out" in admin_page
    for page, sentence in ((admin_page, "at the current quota the queue is empty by"),
                           (organizer_batch, "Expected to finish by"),
                           (organizer_event, "at the current email quota the last has gone by")):
        eta = shown_eta(page, sentence) - now
        assert earliest - timedelta(minutes=5) < eta < latest + timedelta(minutes=5), (sentence, eta)
    assert f"<strong>{hour_left}</strong> of {BACKLOG} sent" in organizer_batch
    assert f"{waiting} emails to this event" in organizer_event
