"""Per-person privacy: everything Foyer holds about one registration (export), and its erasure.

Erasure keeps only an anonymous count on the event (`events.erased_registrations`). The seat is
freed through the registration engine first, so the waitlist moves on exactly as after a cancel;
then the registration, its answers and transitions go, and every queued or sent email that was
addressed to the person is removed (unsent) or emptied (sent: only the fact and status remain).

On SQLite, deleted content is overwritten in the database file (`PRAGMA secure_delete`, set on every
connection), and once an erasure or purge commits the write-ahead log, which still holds the old pages,
is checkpointed and truncated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask_babel import format_number, gettext
from sqlalchemy import String, cast, delete, func, literal, select, update
from sqlalchemy import event as sa_event

from app.models import (
    AuditEntry,
    Event,
    EventSession,
    Message,
    MessageStatus,
    OutboxItem,
    OutboxStatus,
    Registration,
    RegistrationAnswer,
    RegistrationState,
    RegistrationTransition,
    SessionAttendance,
    Setting,
    User,
    db,
    utcnow,
)
from app.services.attendance import join_links
from app.services.core import audit, links, settings
from app.services.core.errors import DomainError
from app.services.messaging import queueing
from app.services.registration import registrations

logger = logging.getLogger(__name__)

#: Export format version, so people (and tools) can tell what they are reading.
EXPORT_VERSION = 1
#: What a sent email's record keeps once its recipient has been erased.
ERASED_PAYLOAD = {"erased": True}
#: Outbox rows already being sent by a worker: their record is emptied, not deleted.
_KEEP_STATUSES = (OutboxStatus.done, OutboxStatus.running)
_CHECKPOINT_KEY = "foyer_truncate_wal"


def _truncate_wal_after_commit() -> None:
    """On SQLite, checkpoint and empty the WAL once the current transaction commits (never on rollback)."""
    session = db.session()
    if session.get_bind().dialect.name != "sqlite" or session.info.get(_CHECKPOINT_KEY):
        return
    session.info[_CHECKPOINT_KEY] = True
    sa_event.listen(session, "after_commit", _truncate_wal)
    sa_event.listen(session, "after_soft_rollback", _forget_truncate)


def _truncate_wal(session) -> None:
    if not session.info.pop(_CHECKPOINT_KEY, False):
        return
    # A connection of its own, outside any transaction: a checkpoint cannot run inside one.
    raw = session.get_bind().raw_connection()
    try:
        busy, _log, _done = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # a reader still holds old pages; the next checkpoint will catch up
            logger.warning("The write-ahead log could not be truncated after an erasure (a reader is active)")
    finally:
        raw.close()


def _forget_truncate(session, _previous_transaction) -> None:
    session.info.pop(_CHECKPOINT_KEY, None)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _email_rows(reg: Registration) -> list[OutboxItem]:
    """The outbox emails about this registration: its own keyed messages, and anything else for this
    event addressed to the person (verification, re-sent links) unless the address is shared with
    another registration of theirs for the same event (then only the keyed ones are theirs for sure).
    """
    prefix = f"email:registration:{reg.id}:"
    shared = db.session.scalar(
        select(Registration.id).where(Registration.event_id == reg.event_id, Registration.email == reg.email,
                                      Registration.id != reg.id).limit(1)
    ) is not None
    rows = db.session.scalars(
        select(OutboxItem).where(OutboxItem.kind == "email.send", OutboxItem.event_id == reg.event_id)
        .order_by(OutboxItem.id)
    )
    mine = []
    for row in rows:
        payload = row.payload if isinstance(row.payload, dict) else {}
        addressed = str(payload.get("to", "")).lower() == reg.email.lower()
        if row.dedupe_key.startswith(prefix) or (addressed and not shared):
            mine.append(row)
    return mine


def _message_rows(reg: Registration) -> list[Message]:
    """The messages to this registration: its own, and others for this event to the person's address
    (unless another registration of theirs for the event shares it).
    """
    shared = db.session.scalar(
        select(Registration.id).where(Registration.event_id == reg.event_id, Registration.email == reg.email,
                                      Registration.id != reg.id).limit(1)
    ) is not None
    query = select(Message).where(Message.event_id == reg.event_id).order_by(Message.id)
    return [m for m in db.session.scalars(query)
            if m.registration_id == reg.id or (not shared and m.recipient.lower() == reg.email.lower())]


#: Other domains' data about a registration, each under its own key in the person's export (e.g. the
#: questions they asked during the event). A domain that holds attendee data adds one with @exporter.
EXPORTERS: list[tuple[str, Callable[[Registration], Any]]] = []
#: Each eraser removes (or anonymises) what one domain holds about a registration, before the registration
#: itself is deleted; returns rows touched. A domain that holds attendee data adds one with @eraser.
ERASERS: list[tuple[str, Callable[[Registration], int]]] = []


def exporter(name: str):
    """Register a function that adds one domain's data about a registration to its export."""

    def decorate(fn: Callable[[Registration], Any]) -> Callable[[Registration], Any]:
        EXPORTERS.append((name, fn))
        return fn

    return decorate


def eraser(name: str):
    """Register a function that erases one domain's data about a registration."""

    def decorate(fn: Callable[[Registration], int]) -> Callable[[Registration], int]:
        ERASERS.append((name, fn))
        return fn

    return decorate


def export_registration(reg: Registration) -> dict[str, Any]:
    """Everything Foyer holds about one registration, as plain JSON-ready data."""
    event = reg.event
    emails = []
    for row in _email_rows(reg):
        payload = row.payload if isinstance(row.payload, dict) else {}
        emails.append({
            "subject": payload.get("subject", ""),
            "to": payload.get("to", ""),
            "text": payload.get("text", ""),
            "attachments": [a.get("name", "") for a in payload.get("attachments") or [] if isinstance(a, dict)],
            "status": row.status.value,
            "queued_at": _iso(row.created_at),
            "sent_at": _iso(row.completed_at),
        })
    for message in _message_rows(reg):
        words = queueing.words_of(message)  # an email not sent yet: as it would be written now
        emails.append({
            "subject": words.subject,
            "to": message.recipient,
            "text": words.text,
            "attachments": [a.get("name", "") for a in message.attachments or [] if isinstance(a, dict)],
            "status": message.status.value,
            "queued_at": _iso(message.created_at),
            "sent_at": _iso(message.sent_at),
        })
    return {
        "export_version": EXPORT_VERSION,
        "exported_at": _iso(utcnow()),
        "registration": {
            "first_name": reg.first_name,
            "last_name": reg.last_name,
            "email": reg.email,
            "timezone": reg.timezone,
            "phone": reg.phone,
            "sms_reminders": reg.sms_opt_in,
            "state": reg.state.value,
            "waitlist_position": registrations.waitlist_position(reg),
            "consent_version": reg.consent_version,
            "registered_at": _iso(reg.created_at),
            "confirmed_at": _iso(reg.confirmed_at),
            "cancelled_at": _iso(reg.cancelled_at),
            "updated_at": _iso(reg.updated_at),
            "joined_first_at": _iso(reg.first_joined_at),
            "last_seen_at": _iso(reg.last_seen_at),
        },
        "event": {
            "title": event.title,
            "url": links.event_url(event),
            "timezone": event.timezone,
            "starts_at": _iso(event.starts_at),
            "ends_at": _iso(event.ends_at),
            "status": event.status.value,
        },
        "answers": [{"question": a.question_label, "answer": a.value} for a in reg.answers],
        "history": [
            {"from": t.from_state, "to": t.to_state, "at": _iso(t.at), "by": t.actor_kind, "note": t.note}
            for t in reg.transitions
        ],
        "emails": emails,
        **{name: fn(reg) for name, fn in EXPORTERS},
    }


def erase_registration(reg: Registration, *, actor: User | None = None) -> Event:
    """Erase a registration for good (actor None: the attendee themself); returns its event.

    The seat is freed first through the registration engine (which promotes from the waitlist),
    then every row about the person is deleted or emptied; the event counts one more erasure.
    """
    if reg.is_active:
        registrations.cancel(reg, actor=actor, note="Personal data erased on request")
    event = reg.event
    reg_id = reg.id
    for row in _email_rows(reg):
        if row.status in _KEEP_STATUSES:
            # Sent (or being sent right now): keep that it happened, not what or to whom.
            row.payload = dict(ERASED_PAYLOAD)
            row.last_error = ""
            row.dedupe_key = _retired_key("erased", row.id)
        else:
            # Never sent: an erased person gets no more email (the cancellation included).
            db.session.delete(row)
    for message in _message_rows(reg):
        if message.status in (MessageStatus.sent, MessageStatus.sending):
            # Sent (or being sent right now): keep that it happened, not what or to whom.
            message.recipient, message.recipient_name, message.subject = "(erased)", "", "(erased)"
            message.body_text, message.body_html, message.attachments, message.last_error = "", "", [], ""
            message.delivery_details = ""  # a bounce message may quote the address
            item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
            message.dedupe_key = _retired_key("erased-message", message.id)
            if item is not None:
                item.payload = {"message_id": message.id, "attachments": [], **ERASED_PAYLOAD}
                item.dedupe_key = _retired_key("erased", item.id)
        else:
            item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
            if item is not None and item.status != OutboxStatus.running:
                db.session.delete(item)
            db.session.delete(message)
    for _name, erase in ERASERS:
        erase(reg)
    join_links.queue_identity_deletion(reg)  # ACS forgets the person too (and revokes their tokens)
    db.session.delete(reg)  # answers and transitions go with it (ORM cascade and ON DELETE CASCADE)
    db.session.execute(
        update(Event).where(Event.id == event.id)
        .values(erased_registrations=Event.erased_registrations + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    db.session.refresh(event, ["erased_registrations"])
    audit.record("privacy.erase", actor=actor, actor_kind="attendee", target=("registration", reg_id), event=event,
                 summary=f"Erased registration {reg_id}" + ("" if actor else " at the attendee's request"))
    logger.info("Registration %s of event %s erased by %s", reg_id, event.id, actor.id if actor else "the attendee")
    _truncate_wal_after_commit()
    return event


def record_self_export(reg: Registration) -> None:
    """Audit an attendee downloading their own data from their manage page."""
    audit.record("privacy.export", actor_kind="attendee", target=reg,
                 summary=f"Registration {reg.id} exported by the attendee")


# --- per person (admin) ---------------------------------------------------------------------------------


def find_person(email: str) -> list[Registration]:
    """Every registration held for an address, across events (newest first)."""
    address = (email or "").strip().lower()
    if not address or len(address) > 320:
        return []
    return list(db.session.scalars(select(Registration).where(Registration.email == address)
                                   .order_by(Registration.created_at.desc(), Registration.id.desc())))


def export_person(email: str, *, actor: User) -> dict[str, Any]:
    """Everything Foyer holds about one address, across events, as JSON-ready data (audited)."""
    regs = find_person(email)
    if not regs:
        raise DomainError(gettext("Foyer holds no registration for that address."), field="email")
    audit.record("privacy.export_person", actor=actor, target=("person", f"{len(regs)} registration(s)"),
                 summary=f"Exported the data of {len(regs)} registration(s) for one person",
                 details={"registration_ids": [r.id for r in regs]})
    return {"export_version": EXPORT_VERSION, "exported_at": _iso(utcnow()), "email": regs[0].email,
            "registrations": [export_registration(reg) for reg in regs]}


def erase_person(email: str, *, actor: User) -> int:
    """Erase every registration of one address (each as the attendee's own erasure would); returns how many."""
    regs = find_person(email)
    if not regs:
        raise DomainError(gettext("Foyer holds no registration for that address."), field="email")
    ids = [r.id for r in regs]
    for reg in regs:
        erase_registration(reg, actor=actor)
    audit.record("privacy.erase_person", actor=actor, target=("person", f"{len(ids)} registration(s)"),
                 summary=f"Erased {len(ids)} registration(s) of one person", details={"registration_ids": ids})
    return len(ids)


# --- retention ------------------------------------------------------------------------------------------

RETENTION_SETTING = "retention"
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 3650

#: Each purger removes or empties the personal data one table holds about an event's attendees.
#: They run in order, registrations last (the others may still look at them). A new table that
#: holds attendee data adds one function here with @purger.
PURGERS: list[tuple[str, Callable[[Event], int]]] = []


def purger(name: str, *, before: str | None = None):
    """Register a function that purges one table's personal data for an event; returns rows touched.
    `before` names a purger it must run ahead of (a table that refers to registrations: "registrations").
    """

    def decorate(fn: Callable[[Event], int]) -> Callable[[Event], int]:
        names = [n for n, _ in PURGERS]
        PURGERS.insert(names.index(before) if before in names else len(PURGERS), (name, fn))
        return fn

    return decorate


def default_retention_days() -> int:
    """The admin's default: days after an event's end when attendee data is purged."""
    return settings.read_setting(RETENTION_SETTING, _read_retention_days)


def _read_retention_days() -> int:
    row = db.session.get(Setting, RETENTION_SETTING)
    try:
        return int(row.value["days"]) if row is not None else DEFAULT_RETENTION_DAYS
    except (KeyError, TypeError, ValueError):
        return DEFAULT_RETENTION_DAYS


def _check_days(days: Any, field: str) -> int:
    try:
        value = int(days)
    except (TypeError, ValueError):
        raise DomainError(gettext("Enter a whole number of days."), field=field) from None
    if not 1 <= value <= MAX_RETENTION_DAYS:
        raise DomainError(gettext("Enter between 1 and %(max)s days.", max=format_number(MAX_RETENTION_DAYS)),
                          field=field)
    return value


def set_default_retention(days: Any, *, actor: User) -> int:
    """Set the default retention period (admins)."""
    value = _check_days(days, "days")
    settings.store(RETENTION_SETTING, {"days": value})
    audit.record("settings.retention", actor=actor, target=("setting", RETENTION_SETTING),
                 summary=f"Default retention set to {value} days")
    db.session.flush()
    return value


def set_event_retention(event: Event, days: Any, *, actor: User) -> None:
    """Set an event's own retention period, or None / "" for the admin's default."""
    value = None if days in (None, "") else _check_days(days, "retention_days")
    event.retention_days = value
    audit.record("event.retention", actor=actor, target=event,
                 summary=f"Retention set to {value} days" if value else "Retention set to the default")
    db.session.flush()


def retention_for(event: Event) -> int:
    return event.retention_days or default_retention_days()


def purge_date(event: Event) -> datetime:
    """When the event's attendee data is (or was) due for purging."""
    return event.ends_at + timedelta(days=retention_for(event))


def _anonymous_counts(event: Event) -> dict[str, Any]:
    rows = db.session.execute(select(Registration.state, Registration.attended, func.count())
                              .where(Registration.event_id == event.id)
                              .group_by(Registration.state, Registration.attended)).all()
    by_state = {state.value: 0 for state in RegistrationState}
    attended = no_shows = 0
    for state, was_there, count in rows:
        by_state[RegistrationState(state).value] += count
        if was_there is True:
            attended += count
        elif was_there is False and RegistrationState(state) == RegistrationState.confirmed:
            no_shows += count
    return {"by_state": by_state, "total": sum(by_state.values()), "attended": attended, "no_shows": no_shows,
            "erased_on_request": event.erased_registrations or 0}


def _retired_key(prefix: str, row_id: int) -> str:
    """A kept row's new dedupe key. Keys name registrations by id, and SQLite hands a deleted newest id
    to the next registration: a kept key would make that person's emails look already sent.
    """
    return f"{prefix}:{row_id}"


def _event_registration_ids(event: Event):
    return select(Registration.id).where(Registration.event_id == event.id).scalar_subquery()


@purger("outbox")
def _purge_outbox(event: Event) -> int:
    """Emails about the event: sent ones keep only that they happened; unsent ones go."""
    emails = OutboxItem.kind.in_(("email.send", "message.send")) & (OutboxItem.event_id == event.id)
    emptied = db.session.execute(
        update(OutboxItem).where(emails, OutboxItem.status.in_(_KEEP_STATUSES))
        .values(payload=dict(ERASED_PAYLOAD), last_error="",
                dedupe_key=literal("purged:", String) + cast(OutboxItem.id, String))
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    deleted = db.session.execute(
        delete(OutboxItem).where(emails, OutboxItem.status.not_in(_KEEP_STATUSES))
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    return emptied + deleted


@purger("audit_log")
def _purge_audit_details(event: Event) -> int:
    """Audit entries about the event's registrations keep what was done and when, not the details."""
    return db.session.execute(
        update(AuditEntry).where(AuditEntry.event_id == event.id, AuditEntry.target_type == "registration")
        .values(details={}).execution_options(synchronize_session=False)
    ).rowcount or 0


@purger("messages")
def _purge_messages(event: Event) -> int:
    """Every email and SMS rendered for the event's attendees (recipient, wording, links)."""
    return db.session.execute(delete(Message).where(Message.event_id == event.id)
                              .execution_options(synchronize_session=False)).rowcount or 0


@purger("session_attendances")
def _purge_session_attendance(event: Event) -> int:
    """Who attended which session of a course (the event's counts per session stay in its summary)."""
    return db.session.execute(delete(SessionAttendance).where(
        SessionAttendance.registration_id.in_(_event_registration_ids(event)))
        .execution_options(synchronize_session=False)).rowcount or 0


@exporter("session_attendance")
def _export_session_attendance(reg: Registration) -> list[dict[str, Any]]:
    """A course attendee's join records and attendance, session by session."""
    rows = db.session.execute(select(SessionAttendance, EventSession).join(
        EventSession, EventSession.id == SessionAttendance.session_id).where(
        SessionAttendance.registration_id == reg.id).order_by(EventSession.starts_at)).all()
    return [{"session": session.label, "starts_at": session.starts_at.isoformat(),
             "first_joined_at": row.first_joined_at.isoformat() if row.first_joined_at else None,
             "attended": row.attended, "minutes": (row.seconds or 0) // 60 if row.seconds is not None else None}
            for row, session in rows]


@eraser("session_attendance")
def _erase_session_attendance(reg: Registration) -> int:
    """Erasure on request: the attendee's per-session records."""
    return db.session.execute(delete(SessionAttendance).where(SessionAttendance.registration_id == reg.id)
                              .execution_options(synchronize_session=False)).rowcount or 0


@purger("registrations")
def _purge_registrations(event: Event) -> int:
    """Registrations with their answers and state history (and, through the worker, their ACS identities)."""
    joined = db.session.scalars(select(Registration).where(Registration.event_id == event.id,
                                                           Registration.acs_user_id.is_not(None))).all()
    for reg in joined:
        join_links.queue_identity_deletion(reg)
    ids = _event_registration_ids(event)
    db.session.execute(delete(RegistrationAnswer).where(RegistrationAnswer.registration_id.in_(ids))
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(RegistrationTransition).where(RegistrationTransition.registration_id.in_(ids))
                       .execution_options(synchronize_session=False))
    return db.session.execute(delete(Registration).where(Registration.event_id == event.id)
                              .execution_options(synchronize_session=False)).rowcount or 0


def purge_event(event: Event, *, actor: User | None = None) -> dict[str, Any]:
    """Remove every attendee's personal data for the event, keeping anonymous counts (flushes)."""
    counts = _anonymous_counts(event)
    touched = {name: fn(event) for name, fn in PURGERS}
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    event.purged_counts = counts
    event.personal_data_purged_at = utcnow()
    audit.record("privacy.purge", actor=actor, target=event,
                 summary=f"Purged attendee data of “{event.title}” ({counts['total']} registration(s))",
                 details={"rows": touched, "counts": counts})
    db.session.flush()
    logger.info("Personal data of event %s purged: %s", event.id, touched)
    _truncate_wal_after_commit()
    return counts


def due_for_purge(now: datetime | None = None) -> list[int]:
    """Ids of events whose retention period has passed and whose data is still held."""
    now = now or utcnow()
    default = default_retention_days()
    rows = db.session.execute(select(Event.id, Event.ends_at, Event.retention_days)
                              .where(Event.personal_data_purged_at.is_(None), Event.ends_at < now)).all()
    return [eid for eid, ends_at, days in rows if ends_at + timedelta(days=days or default) <= now]
