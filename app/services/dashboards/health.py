"""What the admin health page shows: database, worker heartbeat, outbox, Microsoft connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from app.models import Message, MessageStatus, Setting, db, utcnow
from app.models.microsoft import MicrosoftConnection
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox

HEARTBEAT_STALE = timedelta(minutes=2)


@dataclass(frozen=True)
class Health:
    database_ok: bool
    database_error: str
    database_dialect: str
    worker_seen_at: datetime | None
    worker_name: str
    worker_ok: bool
    outbox_depth: int
    outbox_oldest: datetime | None
    outbox_failed: int
    connection: MicrosoftConnection | None
    #: Foyer's built-in emulator answers for Microsoft (else the Microsoft cloud does).
    microsoft_built_in: bool
    #: Emails and SMS waiting / failed, and whether ACS refuses Foyer's credentials (a revoked key).
    messages_waiting: int = 0
    messages_failed: int = 0
    acs_refused: bool = False


def check() -> Health:
    dialect = db.engine.dialect.name
    try:
        db.session.execute(text("SELECT 1"))
        db_ok, db_error = True, ""
    except Exception as exc:  # noqa: BLE001 - the page reports any database failure
        db.session.rollback()
        db_ok, db_error = False, type(exc).__name__
    seen, name = None, ""
    stats = {"depth": 0, "oldest": None, "failed": 0}
    connection = None
    if db_ok:
        row = db.session.get(Setting, "worker_heartbeat")
        if row and isinstance(row.value, dict):
            try:
                seen = datetime.fromisoformat(row.value["at"])
                name = row.value.get("worker", "")
            except (KeyError, ValueError):
                seen = None
        stats = outbox.queue_stats()
        connection = db.session.get(MicrosoftConnection, 1)
    waiting = failed = 0
    acs_refused = False
    if db_ok:

        waiting = db.session.scalar(select(func.count(Message.id)).where(
            Message.status.in_([MessageStatus.queued, MessageStatus.sending]))) or 0
        failed = db.session.scalar(select(func.count(Message.id)).where(Message.status == MessageStatus.failed)) or 0
        acs_refused = db.session.scalar(select(Message.id).where(
            Message.status == MessageStatus.queued, Message.last_error.like("ACS refused%")).limit(1)) is not None
    oldest = stats["oldest"]
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return Health(
        database_ok=db_ok, database_error=db_error, database_dialect=dialect,
        worker_seen_at=seen, worker_name=name, worker_ok=seen is not None and utcnow() - seen < HEARTBEAT_STALE,
        outbox_depth=stats["depth"], outbox_oldest=oldest, outbox_failed=stats["failed"],
        connection=connection, microsoft_built_in=get_microsoft().built_in,
        messages_waiting=waiting, messages_failed=failed, acs_refused=acs_refused,
    )
