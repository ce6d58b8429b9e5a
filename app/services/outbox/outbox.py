"""Queue side effects in the caller's transaction; claim, perform and settle them in the worker.

Claiming is safe with many workers: on PostgreSQL candidates are read `FOR UPDATE SKIP LOCKED`, and on
every database the claim itself is a conditional UPDATE that only one worker can win. A claimed item
carries a lease (`locked_until`); a worker that dies mid-job leaves the lease to expire and the item
is claimed again. Handlers are idempotent by dedupe key, so a re-run never repeats a side effect.

Every claim raises the item's `claim_version`, which fences a worker that outlived its lease: right
before a provider call the handler calls `fence()`, which renews the lease for the length of the call
only if the item is still at this worker's claim, and the result is settled only under the same check.
A stale worker stops without sending and without overwriting the newer claim's outcome.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, g, has_request_context
from sqlalchemy import func, or_, select, update

from app.models import db, utcnow
from app.models.base import begin_write, insert_unless_exists
from app.models.outbox import OutboxItem, OutboxStatus

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
BASE_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 3600.0


class RetryLater(Exception):
    """A transient failure: try again after `retry_after` seconds (or exponential backoff when None)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """Retrying cannot help (bad request, unknown address): give up and show the error."""


class Defer(Exception):
    """Not now, and not a failure (e.g. the send quota is used up): run again after `seconds`,
    without counting this turn as an attempt.
    """

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class Throttled(Defer):
    """A remote service refused for now and said when to come back (429, or 503 with Retry-After).

    The item waits exactly that long and the refusal does not use up an attempt: an outage or a
    throttling storm, however long, delays the work but never makes Foyer give up on it.
    """


#: Shortest wait after a refusal, so a `Retry-After: 0` cannot turn into a busy loop.
MIN_THROTTLE_SECONDS = 1.0


def retry_transient(message: str, retry_after: float | None) -> Defer | RetryLater:
    """The outcome for a transient failure of a remote call: wait as the service asked (Throttled), or
    back off exponentially when it named no time (RetryLater, which counts towards `max_attempts`).
    """
    if retry_after is not None:
        return Throttled(message, seconds=max(retry_after, MIN_THROTTLE_SECONDS))
    return RetryLater(message)


class LostClaim(Exception):
    """Another worker has claimed the item since (this worker outlived its lease): stop, settle nothing."""


class WaitForReconnect(Exception):
    """The Microsoft connection needs an admin to sign in again; park the item, do not fail it."""


Handler = Callable[[dict[str, Any]], None]


@dataclass
class Registry:
    handlers: dict[str, Handler] = field(default_factory=dict)
    #: Called with the kind when a handler gives up for good (to surface the failure on its event).
    on_failure: dict[str, Callable[[dict[str, Any], str], None]] = field(default_factory=dict)


registry = Registry()

#: The item and claim version being performed in this thread (for `fence`).
_current_claim: ContextVar[tuple[int, int] | None] = ContextVar("outbox_claim", default=None)
#: A remote call's worst case, in multiples of MICROSOFT_TIMEOUT (the ACS client tries up to four times).
CALL_TIMEOUTS = 4


def handler(kind: str, *, on_failure: Callable[[dict[str, Any], str], None] | None = None):
    """Register the function that performs outbox items of `kind`."""

    def decorate(fn: Handler) -> Handler:
        registry.handlers[kind] = fn
        if on_failure is not None:
            registry.on_failure[kind] = on_failure
        return fn

    return decorate


def enqueue(kind: str, payload: dict[str, Any], *, dedupe_key: str, event_id: int | None = None,
            run_at: datetime | None = None) -> OutboxItem | None:
    """Add a side effect to the current transaction; a repeated dedupe key is ignored (returns None)."""
    # A repeated key, or a concurrent request that queued the same key first: that one wins.
    item = insert_unless_exists(OutboxItem(kind=kind, payload=payload, dedupe_key=dedupe_key, event_id=event_id,
                                           next_attempt_at=run_at or utcnow()), "dedupe_key")
    if item is None:
        return None

    if has_request_context():
        g.outbox_enqueued = True
    logger.info("Queued %s (%s)", kind, dedupe_key)
    return item


def enqueue_after_end(kind: str, event_id: int, ends_at: datetime, *, delay: timedelta, patience: timedelta,
                      retry_every_seconds: float, at_once: bool = False) -> bool:
    """Queue one event's work that Microsoft can answer only after the meeting ends; a repeat is ignored.

    It runs `delay` after the end, or at once when an organizer asks (`at_once`: then work already queued
    becomes due again with fresh attempts, unless it is running). It gets enough attempts to ask again
    every `retry_every_seconds` for `patience` after the end, with ten to spare for outages.
    """
    dedupe_key = f"{kind}:{event_id}"
    run_at = utcnow() if at_once else max(utcnow(), ends_at + delay)
    item = enqueue(kind, {"event_id": event_id}, dedupe_key=dedupe_key, event_id=event_id, run_at=run_at)
    if item is not None:
        item.max_attempts = int(patience.total_seconds() // retry_every_seconds) + 10
    elif at_once:
        queued = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == dedupe_key))
        if queued is not None and queued.status != OutboxStatus.running:
            retry_now(queued)
    return item is not None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease() -> timedelta:
    """How long a claim lasts (`OUTBOX_LEASE_SECONDS`, default LEASE)."""
    seconds = current_app.config.get("OUTBOX_LEASE_SECONDS")
    return timedelta(seconds=seconds) if seconds else LEASE


def claim_due(limit: int = 10, *, owner: str | None = None, now: datetime | None = None) -> list[int]:
    """Claim up to `limit` due items for this worker; commits the claim and returns their ids."""
    owner = owner or worker_id()
    now = now or utcnow()
    locked_until = now + lease()
    begin_write()
    claimable = or_(
        (OutboxItem.status == OutboxStatus.pending) & (OutboxItem.next_attempt_at <= now),
        (OutboxItem.status == OutboxStatus.running) & (OutboxItem.locked_until < now),
    )
    candidates = select(OutboxItem.id).where(claimable).order_by(OutboxItem.next_attempt_at, OutboxItem.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(db.session.scalars(candidates))
    claimed: list[int] = []
    for item_id in ids:
        result = db.session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item_id, claimable)
            .values(status=OutboxStatus.running, locked_by=owner, locked_until=locked_until,
                    attempts=OutboxItem.attempts + 1, claim_version=OutboxItem.claim_version + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(item_id)
    db.session.commit()
    return claimed


def fence(seconds: float | None = None) -> None:
    """Right before a provider call: confirm this worker still holds its claim on the item being
    performed and extend the lease to cover the call (commits); raise `LostClaim` if it does not.

    `seconds` is how long the call may take (default: CALL_TIMEOUTS × MICROSOFT_TIMEOUT); no other
    worker can take the item over until then. Outside `perform` (a handler run directly) it does nothing.
    """
    claim = _current_claim.get()
    if claim is None:
        return
    item_id, version = claim
    if seconds is None:
        seconds = CALL_TIMEOUTS * float(current_app.config.get("MICROSOFT_TIMEOUT") or 10)
    until = utcnow() + max(lease(), timedelta(seconds=seconds))
    db.session.rollback()
    begin_write()
    renewed = db.session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == item_id, OutboxItem.claim_version == version,
               OutboxItem.status == OutboxStatus.running)
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if renewed != 1:
        raise LostClaim(f"outbox item {item_id} was claimed by another worker")


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with jitter: 5 s, 10 s, 20 s … capped at an hour."""
    base = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * (2 ** max(0, attempts - 1)))
    return base * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not security


def perform(item_id: int, *, owner: str | None = None) -> OutboxStatus:
    """Run one claimed item's handler and settle it (commits)."""
    owner = owner or worker_id()
    db.session.rollback()
    item = db.session.get(OutboxItem, item_id)
    if item is None or item.status != OutboxStatus.running or item.locked_by != owner:
        return item.status if item else OutboxStatus.failed
    fn = registry.handlers.get(item.kind)
    kind, payload, attempts, version = item.kind, dict(item.payload), item.attempts, item.claim_version
    db.session.commit()  # end the read transaction: the handler may take a while
    error: str = ""
    deferred = throttled = False
    claim = _current_claim.set((item_id, version))
    try:
        if fn is None:
            raise PermanentFailure(f"no handler for {kind!r}")
        fn(payload)
    except LostClaim as exc:
        db.session.rollback()
        logger.warning("Outbox item %s (%s): %s; this worker stops", item_id, kind, exc)
        return OutboxStatus.running
    except Defer as exc:
        status, delay = OutboxStatus.pending, max(0.0, exc.seconds)
        deferred, throttled = True, isinstance(exc, Throttled)
        error = str(exc) if throttled else ""
    except RetryLater as exc:
        status, error = OutboxStatus.pending, str(exc)
        delay = exc.retry_after if exc.retry_after is not None else backoff_seconds(attempts)
    except WaitForReconnect as exc:
        status, error, delay = OutboxStatus.waiting, str(exc), 0.0
    except PermanentFailure as exc:
        status, error, delay = OutboxStatus.failed, str(exc), 0.0
    except Exception as exc:  # a bug in a handler must not kill the worker
        logger.exception("Outbox item %s (%s) raised", item_id, kind)
        status, error = OutboxStatus.pending, f"{type(exc).__name__}: {exc}"
        delay = backoff_seconds(attempts)
    else:
        status, delay = OutboxStatus.done, 0.0
    finally:
        _current_claim.reset(claim)
    db.session.rollback()
    begin_write()
    item = db.session.get(OutboxItem, item_id)
    if item is None:
        return status
    if item.claim_version != version or item.status != OutboxStatus.running:
        # This worker outlived its lease and another one has the item now: its outcome is not ours to write.
        db.session.rollback()
        logger.warning("Outbox item %s (%s) was claimed again while this worker ran it; result not recorded",
                       item_id, kind)
        return item.status
    if deferred:  # the attempt is given back
        item.attempts = max(0, item.attempts - 1)
        error = error or item.last_error
    elif status == OutboxStatus.pending and attempts >= item.max_attempts:
        status = OutboxStatus.failed
        error = f"gave up after {attempts} attempts: {error}"
    item.status = status
    item.last_error = error[:2000]
    item.locked_by = None
    item.locked_until = None
    if status == OutboxStatus.pending:
        item.next_attempt_at = utcnow() + timedelta(seconds=delay)
    if status in (OutboxStatus.done, OutboxStatus.failed):
        item.completed_at = utcnow()
    if status == OutboxStatus.failed and kind in registry.on_failure:
        registry.on_failure[kind](payload, error)
    db.session.commit()
    if throttled:
        logger.info("Outbox item %s (%s) refused for now; again in %.1f s: %s", item_id, kind, delay, error)
        return status
    if deferred:
        logger.debug("Outbox item %s (%s) deferred %.1f s", item_id, kind, delay)
        return status
    log = logger.warning if status in (OutboxStatus.failed, OutboxStatus.waiting) else logger.info
    log("Outbox item %s (%s) -> %s%s", item_id, kind, status, f": {error}" if error else "")
    return status


def drain(*, limit: int = 50, owner: str | None = None) -> int:
    """Claim and perform due items until none are due or `limit` were handled; returns how many."""
    done = 0
    owner = owner or worker_id()
    while done < limit:
        ids = claim_due(min(10, limit - done), owner=owner)
        if not ids:
            break
        for item_id in ids:
            perform(item_id, owner=owner)
            done += 1
    return done


def resume_waiting() -> int:
    """Put parked items back in the queue (after the Microsoft connection is repaired)."""
    result = db.session.execute(
        update(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.waiting)
        .values(status=OutboxStatus.pending, next_attempt_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def retry_now(item: OutboxItem) -> None:
    """An organizer's "retry": a failed or waiting item becomes due again with fresh attempts."""
    item.status = OutboxStatus.pending
    item.attempts = 0
    item.next_attempt_at = utcnow()
    item.completed_at = None


def queue_stats() -> dict[str, Any]:
    """Depth of the queue and age of its oldest pending item, for the health page."""
    pending = db.session.execute(
        select(func.count(OutboxItem.id), func.min(OutboxItem.created_at)).where(
            OutboxItem.status.in_([OutboxStatus.pending, OutboxStatus.running, OutboxStatus.waiting])
        )
    ).one()
    failed = db.session.scalar(select(func.count(OutboxItem.id)).where(OutboxItem.status == OutboxStatus.failed))
    return {"depth": pending[0], "oldest": pending[1], "failed": failed or 0}
