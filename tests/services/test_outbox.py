"""The outbox: idempotent queueing, retries with backoff, leases, and safe concurrent draining."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxItem, OutboxStatus, utcnow
from app.services.outbox import outbox


@pytest.fixture
def effects():
    """Handlers registered for these tests record their side effects here."""
    seen: list[str] = []
    failures: dict[str, int] = {}
    lock = threading.Lock()

    @outbox.handler("test.effect")
    def _effect(payload):
        with lock:
            seen.append(payload["name"])

    @outbox.handler("test.flaky")
    def _flaky(payload):
        left = failures.setdefault(payload["name"], payload["fail_times"])
        if left > 0:
            failures[payload["name"]] = left - 1
            raise outbox.RetryLater("Microsoft said 503", retry_after=0)
        seen.append(payload["name"])

    @outbox.handler("test.slow_down")
    def _slow(payload):
        raise outbox.RetryLater("429", retry_after=30.5)

    @outbox.handler("test.throttled")
    def _throttled(payload):
        raise outbox.retry_transient("429 Too Many Requests", payload["retry_after"])

    @outbox.handler("test.broken", on_failure=lambda payload, error: seen.append(f"failed:{error}"))
    def _broken(payload):
        raise outbox.PermanentFailure("bad address")

    @outbox.handler("test.parked")
    def _parked(payload):
        raise outbox.WaitForReconnect("revoked")

    yield seen
    for kind in ("test.effect", "test.flaky", "test.slow_down", "test.throttled", "test.broken", "test.parked"):
        outbox.registry.handlers.pop(kind, None)
        outbox.registry.on_failure.pop(kind, None)


def _item(key):
    return db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == key))


def test_same_dedupe_key_is_queued_once(app_ctx):
    assert outbox.enqueue("test.effect", {"name": "a"}, dedupe_key="k1") is not None
    assert outbox.enqueue("test.effect", {"name": "a"}, dedupe_key="k1") is None
    db.session.commit()
    assert db.session.scalar(select(func.count(OutboxItem.id))) == 1


@pytest.mark.parametrize(("status", "due_again"), [(OutboxStatus.done, True), (OutboxStatus.failed, True),
                                                   (OutboxStatus.pending, True), (OutboxStatus.running, False)])
def test_work_after_the_end_asked_for_at_once_again_is_due_now_unless_running(make_user, make_event, app_ctx,
                                                                              status, due_again):
    event_id = make_event(make_user()).id
    ends_at = utcnow() - timedelta(hours=1)
    schedule = {"delay": timedelta(minutes=15), "patience": timedelta(hours=2), "retry_every_seconds": 600}
    assert outbox.enqueue_after_end("test.effect", event_id, ends_at, **schedule)
    item = _item(f"test.effect:{event_id}")
    item.status, item.attempts, item.next_attempt_at = status, 3, utcnow() + timedelta(days=1)
    db.session.commit()
    assert not outbox.enqueue_after_end("test.effect", event_id, ends_at, **schedule)  # a repeat on schedule: untouched
    assert (item.status, item.attempts) == (status, 3)
    assert not outbox.enqueue_after_end("test.effect", event_id, ends_at, at_once=True, **schedule)
    assert (item.status == OutboxStatus.pending and item.attempts == 0) is due_again
    assert (item.next_attempt_at <= utcnow()) is due_again
    assert db.session.scalar(select(func.count(OutboxItem.id))) == 1


def test_job_failing_three_times_then_succeeding_runs_its_effect_once(app_ctx, effects):
    outbox.enqueue("test.flaky", {"name": "x", "fail_times": 3}, dedupe_key="flaky")
    db.session.commit()
    for _ in range(6):
        outbox.drain()
    item = _item("flaky")
    assert effects == ["x"]
    assert item.status == OutboxStatus.done and item.attempts == 4


def test_retry_after_is_honoured(app_ctx, effects):
    outbox.enqueue("test.slow_down", {}, dedupe_key="slow")
    db.session.commit()
    before = utcnow()
    assert outbox.drain() == 1
    item = _item("slow")
    assert item.status == OutboxStatus.pending
    wait = (item.next_attempt_at - before).total_seconds()
    assert 30.0 <= wait < 35
    assert outbox.claim_due() == []  # not retried before its Retry-After


def test_refusals_with_retry_after_wait_as_asked_and_never_use_up_attempts(app_ctx, effects):
    outbox.enqueue("test.throttled", {"retry_after": 12.5}, dedupe_key="throttled")
    outbox.enqueue("test.throttled", {"retry_after": 0}, dedupe_key="retry-after-zero")
    db.session.commit()
    _item("throttled").max_attempts = 3
    db.session.commit()
    for _ in range(5):  # more refusals than attempts allowed
        before = utcnow()
        assert outbox.drain() == 2
        item, zero = _item("throttled"), _item("retry-after-zero")
        assert item.status == OutboxStatus.pending and item.attempts == 0
        assert "429" in item.last_error
        assert 12.5 <= (item.next_attempt_at - before).total_seconds() < 14
        assert (zero.next_attempt_at - before).total_seconds() >= outbox.MIN_THROTTLE_SECONDS  # no busy loop
        assert outbox.claim_due() == []  # not retried before its Retry-After
        item.next_attempt_at = zero.next_attempt_at = utcnow()  # time passes
        db.session.commit()


def test_permanent_failure_stops_and_reports(app_ctx, effects):
    outbox.enqueue("test.broken", {}, dedupe_key="broken")
    db.session.commit()
    outbox.drain()
    item = _item("broken")
    assert item.status == OutboxStatus.failed and "bad address" in item.last_error
    assert effects == ["failed:bad address"]
    assert outbox.claim_due() == []


def test_too_many_attempts_fail_for_good(app_ctx, effects):
    outbox.enqueue("test.flaky", {"name": "y", "fail_times": 99}, dedupe_key="hopeless")
    db.session.commit()
    _item("hopeless").max_attempts = 3
    db.session.commit()
    for _ in range(5):
        outbox.drain()
    item = _item("hopeless")
    assert item.status == OutboxStatus.failed and item.attempts == 3
    assert "gave up after 3 attempts" in item.last_error


def test_parked_items_wait_for_reconnect_then_resume(app_ctx, effects):
    outbox.enqueue("test.parked", {}, dedupe_key="parked")
    db.session.commit()
    outbox.drain()
    assert _item("parked").status == OutboxStatus.waiting
    assert outbox.claim_due() == []
    assert outbox.resume_waiting() == 1
    db.session.commit()
    assert outbox.claim_due() != []


def test_a_worker_that_dies_mid_job_neither_loses_nor_repeats_it(app_ctx, effects):
    outbox.enqueue("test.effect", {"name": "once"}, dedupe_key="lease")
    db.session.commit()
    assert outbox.claim_due(owner="worker-a") != []  # worker A claims it, then dies before performing
    assert outbox.claim_due(owner="worker-b") == []  # the lease protects it meanwhile
    later = utcnow() + outbox.LEASE + timedelta(seconds=1)
    [item_id] = outbox.claim_due(owner="worker-b", now=later)
    assert outbox.perform(item_id, owner="worker-b") == OutboxStatus.done
    assert outbox.perform(item_id, owner="worker-a") == OutboxStatus.done  # the dead worker's claim is void
    assert effects == ["once"]


def test_concurrent_workers_perform_each_item_exactly_once(app, app_ctx, effects):
    for i in range(40):
        outbox.enqueue("test.effect", {"name": f"m{i}"}, dedupe_key=f"c{i}")
    db.session.commit()
    errors = []

    def worker(n):
        with app.app_context():
            try:
                while outbox.drain(owner=f"w{n}", limit=5):
                    pass
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(effects) == sorted(f"m{i}" for i in range(40))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(OutboxItem.status == OutboxStatus.done)) == 40
