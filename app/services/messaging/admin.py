"""The message log for admins and organizers: the filtered list, a batch's progress, and an admin's retry
of a failed message.
"""

from __future__ import annotations

import logging

from flask_babel import gettext
from sqlalchemy import func, select

from app.models import Message, MessageChannel, MessageStatus, OutboxItem, User, db
from app.services.core.errors import DomainError, NotAllowed
from app.services.messaging.kinds import KINDS, new_operation_id
from app.services.outbox import outbox

logger = logging.getLogger(__name__)

def retry(message: Message, *, actor: User) -> None:
    """Send a failed message again (admins): a new Operation-Id, fresh attempts."""
    if not actor.is_admin:
        raise NotAllowed(gettext("Only admins can retry messages."))
    if message.status != MessageStatus.failed:
        raise DomainError(gettext("Only failed messages can be retried."))
    retries = message.attempts or 0
    message.status = MessageStatus.queued
    message.operation_id = new_operation_id() \
        if message.channel == MessageChannel.email else ""
    message.attempts = 0
    message.reserved_at = None
    message.last_error = f"Retried by an admin after {retries} attempt(s)."
    message.operation_status = ""
    message.delivery, message.delivery_details, message.delivery_reported_at = "", "", None
    item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
    if item is None:
        outbox.enqueue("message.send", {"message_id": message.id, "attachments": []},
                       dedupe_key=f"message:{message.dedupe_key}", event_id=message.event_id)
    else:
        outbox.retry_now(item)
    logger.info("Message %s retried by %s", message.id, actor.id)


PAGE_SIZE = 50


def list_messages(*, event_id: int | None = None, kind: str = "", status: str = "", page: int = 1):
    query = select(Message)
    if event_id:
        query = query.where(Message.event_id == event_id)
    if kind in KINDS:
        query = query.where(Message.kind == kind)
    if status in MessageStatus.__members__:
        query = query.where(Message.status == MessageStatus(status))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(Message.id.desc()).limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE))
    return list(rows), total


def batch_progress(batch: str) -> dict[str, int]:
    rows = db.session.execute(select(Message.status, func.count()).where(Message.batch == batch)
                              .group_by(Message.status)).all()
    counts = {s.value: 0 for s in MessageStatus}
    for state, count in rows:
        counts[MessageStatus(state).value] = count
    return counts
