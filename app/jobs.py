"""Scheduled job functions: small, idempotent, each running in its own app context and committing."""

from __future__ import annotations

import logging
import os
import socket

from flask import Flask

from app.models import Event, Setting, db, utcnow
from app.models.base import begin_write, insert_unless_exists
from app.services.attendance import attendance
from app.services.microsoft import connection
from app.services.outbox import outbox
from app.services.registration import privacy, registrations, reminders

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "worker_heartbeat"


def drain_outbox(app: Flask) -> None:
    """Perform every due outbox item."""
    with app.app_context():
        try:
            connection.alert_admins_if_needed()
            handled = outbox.drain(limit=app.config["OUTBOX_BATCH"])
            if handled:
                logger.info("Drained %s outbox item(s)", handled)
        finally:
            db.session.remove()


def expire_unverified_holds(app: Flask) -> None:
    """Cancel registrations whose address was never confirmed before the link lapsed."""
    with app.app_context():
        try:
            begin_write()
            expired = registrations.expire_unverified()
            db.session.commit()
            if expired:
                logger.info("Expired %s unconfirmed registration(s)", expired)
        finally:
            db.session.remove()


def send_reminders(app: Flask) -> None:
    """Queue every reminder that is due (one sweeping worker at a time on PostgreSQL)."""
    with app.app_context():
        try:
            reminders.sweep()
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


def heartbeat(app: Flask) -> None:
    """Record that a worker is alive (shown on the admin health page)."""
    with app.app_context():
        try:
            value = {"at": utcnow().isoformat(), "worker": f"{socket.gethostname()}:{os.getpid()}"}
            begin_write()  # read-then-write: take SQLite's write lock first, as other writers do
            row = db.session.get(Setting, HEARTBEAT_KEY)
            if row is None:
                # Workers started together on PostgreSQL may all find no row: the first one's insert stands.
                insert_unless_exists(Setting(key=HEARTBEAT_KEY, value=value), "key")
            else:
                row.value = value
            db.session.commit()
        finally:
            db.session.remove()


def queue_attendance_imports(app: Flask) -> None:
    """Queue the attendance import of events that have ended (the outbox performs it)."""
    with app.app_context():
        try:
            begin_write()
            queued = attendance.queue_due_imports()
            db.session.commit()
            if queued:
                logger.info("Queued attendance import for %s event(s)", queued)
        finally:
            db.session.remove()


def purge_personal_data(app: Flask) -> None:
    """Purge attendee data of events past their retention period, one event per transaction."""
    with app.app_context():
        try:
            for event_id in privacy.due_for_purge():
                db.session.rollback()
                begin_write()
                event = db.session.get(Event, event_id)
                if event is None or event.personal_data_purged_at is not None:
                    continue  # another worker got there first
                privacy.purge_event(event)
                db.session.commit()
        finally:
            db.session.remove()
