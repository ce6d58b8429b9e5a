"""The quota dispatcher: emails go out through ACS at a pace the resource's quota allows, most urgent first.

* the dispatcher never lets the provider see more than the admin-set quota: every send first takes a
  slot (a `reserved_at` stamp) under a lock (PostgreSQL advisory lock, SQLite's write lock), counted
  over a slightly longer window than the provider's so clock skew cannot push it over.
* when the quota is used up the send is deferred (not failed, not counted as an attempt), and messages
  come back in deadline order: a reminder due in ten minutes goes before an organizer's newsletter.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select, text, update

from app.models import Message, MessageChannel, MessageStatus, OutboxItem, OutboxStatus, Setting, User, db, utcnow
from app.models.base import begin_write
from app.services.core import settings
from app.services.core.errors import DomainError, NotAllowed

logger = logging.getLogger(__name__)

QUOTA_SETTING = "acs_email_quota"
#: ACS Email's documented default for a custom domain (microsoft.md F.3).
DEFAULT_PER_MINUTE, DEFAULT_PER_HOUR = 30, 100
#: Windows a little longer than the provider's, so a send that reaches ACS a moment after its slot
#: was taken can never make ACS count one too many.
MINUTE_WINDOW, HOUR_WINDOW = 61.0, 3601.0
#: Advisory-lock keys (PostgreSQL): the quota slot counter and the reminder sweep.
QUOTA_LOCK_KEY, SWEEP_LOCK_KEY = 0x466F7901, 0x466F7902


@dataclass(frozen=True)
class Quota:
    per_minute: int = DEFAULT_PER_MINUTE
    per_hour: int = DEFAULT_PER_HOUR


def get_quota() -> Quota:
    """The quota the admin set (read through the settings' copies: a change shows within seconds)."""
    return settings.read_setting(QUOTA_SETTING, _read_quota)


def _read_quota() -> Quota:
    row = db.session.get(Setting, QUOTA_SETTING)
    if row is None or not isinstance(row.value, dict):
        return Quota()
    try:
        return Quota(max(1, int(row.value["per_minute"])), max(1, int(row.value["per_hour"])))
    except (KeyError, TypeError, ValueError):
        return Quota()


#: Each quota field's errors: not a whole number, out of range.
QUOTA_ERRORS = {
    "per_minute": (_l("Enter a whole number of emails per minute."),
                   _l("Enter between 1 and 1,000,000 emails per minute.")),
    "per_hour": (_l("Enter a whole number of emails per hour."), _l("Enter between 1 and 1,000,000 emails per hour.")),
}


def save_quota(per_minute: Any, per_hour: Any, *, actor: User) -> Quota:
    """Set the ACS resource's email quota (admins)."""
    if not actor.is_admin:
        raise NotAllowed(gettext("Only admins can change the email quota."))
    values = {}
    for name, raw in (("per_minute", per_minute), ("per_hour", per_hour)):
        try:
            number = int(str(raw).strip())
        except (TypeError, ValueError):
            raise DomainError(str(QUOTA_ERRORS[name][0]), field=name) from None
        if not 1 <= number <= 1_000_000:
            raise DomainError(str(QUOTA_ERRORS[name][1]), field=name)
        values[name] = number
    if values["per_hour"] < values["per_minute"]:
        raise DomainError(gettext("The hourly quota cannot be smaller than the per-minute quota."), field="per_hour")
    settings.store(QUOTA_SETTING, values)
    logger.info("Email quota set to %s/min, %s/h by %s", values["per_minute"], values["per_hour"], actor.id)
    return Quota(**values)


def drain_seconds(count: int, quota: Quota | None = None, *, used_minute: int = 0, used_hour: int = 0) -> float:
    """How long `count` more emails take to go out at the quota (seconds until the last one leaves)."""
    quota = quota or get_quota()
    if count <= 0:
        return 0.0
    first_hour = max(quota.per_hour - used_hour, 0)
    if count <= first_hour:
        return (math.ceil((count + used_minute) / quota.per_minute) - 1) * MINUTE_WINDOW
    rest = count - first_hour
    hours = math.ceil(rest / quota.per_hour)
    last = rest - (hours - 1) * quota.per_hour
    return hours * HOUR_WINDOW + (math.ceil(last / quota.per_minute) - 1) * MINUTE_WINDOW


def backlog() -> int:
    """Emails waiting to go out."""
    return db.session.scalar(select(func.count(Message.id)).where(
        Message.channel == MessageChannel.email,
        Message.status.in_([MessageStatus.queued, MessageStatus.sending]))) or 0


def eta(extra: int = 0, *, now: datetime | None = None) -> datetime:
    """When the current backlog plus `extra` more emails will have gone out."""
    now = now or utcnow()
    used_minute, used_hour = _used(now)
    return now + timedelta(seconds=drain_seconds(backlog() + extra, used_minute=used_minute, used_hour=used_hour))


def _used(now: datetime) -> tuple[int, int]:
    """Slots taken in the last minute and hour (one query)."""
    minute_ago, hour_ago = now - timedelta(seconds=MINUTE_WINDOW), now - timedelta(seconds=HOUR_WINDOW)
    row = db.session.execute(select(
        func.coalesce(func.sum(case((Message.reserved_at > minute_ago, 1), else_=0)), 0),
        func.count(Message.id),
    ).where(Message.channel == MessageChannel.email, Message.reserved_at > hour_ago)).one()
    return int(row[0]), int(row[1])


def _lock(key: int) -> None:
    """Serialise with other workers for the rest of this transaction."""
    begin_write()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


#: When the quota is used up, queued sends wake up together once this many slots are free again.
WAKE_BATCH = 10


def _slot_wait(now: datetime, quota: Quota, used_minute: int, used_hour: int, need: int = 1) -> float:
    """Seconds until `need` slots are free (0 when they are free now)."""
    wait = 0.0
    for window, limit, used in ((MINUTE_WINDOW, quota.per_minute, used_minute),
                                (HOUR_WINDOW, quota.per_hour, used_hour)):
        need_here = min(need, limit)
        if used + need_here <= limit:
            continue
        nth = db.session.scalar(
            select(Message.reserved_at)
            .where(Message.channel == MessageChannel.email, Message.reserved_at > now - timedelta(seconds=window))
            .order_by(Message.reserved_at.desc()).offset(limit - need_here).limit(1)
        )
        if nth is not None:
            wait = max(wait, (nth + timedelta(seconds=window) - now).total_seconds())
    return wait


def _ahead(message_id: int, deadline: datetime, now: datetime, *, cap: int | None = None) -> int:
    """Queued emails more urgent than this one (an earlier deadline); counted up to `cap`.

    Equally urgent messages are not ranked among themselves: whichever the worker picks up first goes.
    """
    query = select(Message.id).where(
        Message.channel == MessageChannel.email,
        Message.status == MessageStatus.queued,
        Message.reserved_at.is_(None),
        Message.created_at <= now,
        Message.deadline < deadline,
    )
    if cap is not None:
        query = query.limit(cap)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def reserve_slot(message_id: int, *, now: datetime | None = None) -> float:
    """Take a send slot for a message (commits). Returns 0 when taken, else seconds to wait first.

    When the quota is used up, every queued send is put back until a few slots are free again (one
    UPDATE), rather than each of them waking up, finding no slot and going back to sleep.
    """
    now = now or utcnow()
    db.session.rollback()
    _lock(QUOTA_LOCK_KEY)
    deadline = db.session.scalar(select(Message.deadline).where(Message.id == message_id))
    quota = get_quota()
    used_minute, used_hour = _used(now)
    free = min(quota.per_minute - used_minute, quota.per_hour - used_hour)
    if free > 0:
        ahead = _ahead(message_id, deadline, now, cap=free)
        if ahead < free:
            db.session.execute(update(Message).where(Message.id == message_id).values(
                reserved_at=now, status=MessageStatus.sending, attempts=Message.attempts + 1, updated_at=now)
                .execution_options(synchronize_session=False))
            db.session.commit()
            return 0.0
        # The free slots are owed to more urgent messages (queued, due now): let them have them. Every
        # queued send no more urgent than this one steps back with it, so the worker reaches the urgent
        # ones next instead of stepping through a long backlog one message at a time.
        _put_back(now + timedelta(seconds=1), due_by=now, not_before=deadline)
        db.session.commit()
        return 1.0
    # Wake once a batch of slots is free, but never wait for more than the hour has left: when only the
    # minute is used up and the hour has five slots left, those five go a minute later, not an hour later.
    free_hour = quota.per_hour - used_hour
    need = WAKE_BATCH if free_hour <= 0 else min(WAKE_BATCH, free_hour)
    wait = max(_slot_wait(now, quota, used_minute, used_hour, need=need), 0.5)
    _put_back(now + timedelta(seconds=wait))
    db.session.commit()
    return wait


def _put_back(until: datetime, *, due_by: datetime | None = None, not_before: datetime | None = None) -> None:
    """Make queued sends that would run before `until` (or by `due_by`) wait until then, in one UPDATE;
    with `not_before`, only those whose deadline is no earlier than that.
    """
    condition = [OutboxItem.kind == "message.send", OutboxItem.status == OutboxStatus.pending,
                 OutboxItem.next_attempt_at <= due_by if due_by is not None else OutboxItem.next_attempt_at < until]
    if not_before is not None:
        condition.append(OutboxItem.dedupe_key.in_(
            select("message:" + Message.dedupe_key).where(Message.status == MessageStatus.queued,
                                                          Message.deadline >= not_before)))
    db.session.execute(update(OutboxItem).where(*condition).values(next_attempt_at=until)
                       .execution_options(synchronize_session=False))
