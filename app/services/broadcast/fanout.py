"""Messages to many registrants of one event, queued one per person by a fan-out in the worker: an
organizer's message to a segment (everyone, confirmed, waitlisted, awaiting approval, attended, did not
attend), and the notices that an event changed or was cancelled.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from flask import current_app
from flask_babel import force_locale, format_number, gettext
from sqlalchemy import func, select

from app.models import ACTIVE_STATES, AuditEntry, Event, OutboxItem, Registration, RegistrationState, User, db, utcnow
from app.models.base import begin_write
from app.services.attendance import attendance
from app.services.core import audit
from app.services.core.errors import DomainError, NotAllowed
from app.services.core.settings import get_languages
from app.services.events import events
from app.services.messaging import kinds, rendering
from app.services.messaging.kinds import N_
from app.services.outbox import outbox
from app.services.registration import emails

logger = logging.getLogger(__name__)


BODY_MAX = 20_000


def _in_states(*states: RegistrationState):
    return lambda: Registration.state.in_(states)


def _attendance(name: str):
    def condition():
        return attendance.SEGMENTS[name]()

    return condition


#: Who an organizer message can go to: name -> (label, SQL condition). The attendance segments
#: exist for an event once its attendance has been imported (see `available_segments`). Labels are
#: English in the audit log and translated where the organizer reads them.
SEGMENTS: dict[str, tuple[str, Callable[[], Any]]] = {
    "all": (N_("Everyone registered"), _in_states(RegistrationState.confirmed, RegistrationState.waitlisted,
                                                  RegistrationState.pending)),
    "confirmed": (N_("Confirmed"), _in_states(RegistrationState.confirmed)),
    "waitlisted": (N_("Waitlisted"), _in_states(RegistrationState.waitlisted)),
    "pending": (N_("Awaiting approval"), _in_states(RegistrationState.pending)),
    "attended": (N_("Attended"), _attendance("attended")),
    "no_show": (N_("Registered but did not attend"), _attendance("no_show")),
}


ATTENDANCE_SEGMENTS = ("attended", "no_show")


def available_segments(event: Event) -> list[str]:
    """The segments an organizer can choose for this event (attendance ones once it is known)."""
    return [key for key in SEGMENTS
            if key not in ATTENDANCE_SEGMENTS or event.attendance_imported_at is not None]


def segment_query(event: Event, segment: str):
    _, condition = SEGMENTS[segment]
    return (select(Registration).where(Registration.event_id == event.id, condition())
            .order_by(Registration.id))


def segment_count(event: Event, segment: str) -> int:
    _, condition = SEGMENTS[segment]
    return db.session.scalar(select(func.count(Registration.id)).where(
        Registration.event_id == event.id, condition())) or 0


def queue_event_changed(event: Event, *, previous: dict[str, str] | None = None) -> None:
    """Tell every active registrant an event's time or title changed (confirmed ones get the new .ics);
    `previous` (title, ISO start and end) lets each email show what it was.
    """
    outbox.enqueue("messages.fanout", {"event_id": event.id, "kind": "event_changed", "sequence": event.ics_sequence,
                                       "batch": f"event_changed:{event.id}:{event.ics_sequence}",
                                       "previous": previous},
                   dedupe_key=f"fanout:event_changed:{event.id}:{event.ics_sequence}", event_id=event.id)


def on_event_updated(event: Event, *, actor: User, previous: dict[str, str] | None, notify_attendees: bool) -> None:
    """Receiver of `signals.event_updated`: registrants hear of a change they were told about, if asked."""
    if previous is not None and notify_attendees:
        queue_event_changed(event, previous=previous)


def on_event_cancelled(event: Event, *, actor: User, was_published: bool) -> None:
    """Receiver of `signals.event_cancelled`: registrants of an event the public saw are told."""
    if was_published:
        queue_event_cancelled(event)


def previous_details(event: Event, previous: dict[str, str] | None, zone: str, language: str | None = None) -> str:
    """What an event was before a change, in the recipient's zone and language (a registration's; None: the
    current locale): "Was: …" lines ('' when unknown).
    """
    if not previous:
        return ""
    if language and language in get_languages().offered:
        with force_locale(language):
            return _previous_lines(event, previous, zone)
    return _previous_lines(event, previous, zone)


def _previous_lines(event: Event, previous: dict[str, str], zone: str) -> str:
    lines = []
    if previous.get("title") and previous["title"] != event.title:
        lines.append(gettext("Was called: %(title)s", title=previous["title"]))
    try:
        before = SimpleNamespace(starts_at=datetime.fromisoformat(previous["starts_at"]),
                                 ends_at=datetime.fromisoformat(previous["ends_at"]))
    except (KeyError, TypeError, ValueError):
        before = None
    if before is not None and (before.starts_at, before.ends_at) != (event.starts_at, event.ends_at):
        lines.append(gettext("Was: %(when)s", when=rendering.describe_when(before, zone)))
        lines.append(gettext("Now: %(when)s", when=rendering.describe_when(event, zone)))
    return "\n".join(lines)


def queue_event_cancelled(event: Event) -> None:
    """Tell every active registrant the event is cancelled (confirmed ones get METHOD:CANCEL)."""
    outbox.enqueue("messages.fanout", {"event_id": event.id, "kind": "event_cancelled",
                                       "sequence": event.ics_sequence, "batch": f"event_cancelled:{event.id}"},
                   dedupe_key=f"fanout:event_cancelled:{event.id}", event_id=event.id)


@dataclass(frozen=True)
class Composition:
    segment: str
    subject: str
    body: str


def check_composition(event: Event, segment: str, subject: str, body: str) -> Composition:
    """Validate an organizer message; DomainError naming the field otherwise."""
    if segment not in available_segments(event):
        raise DomainError(gettext("Choose who receives the message."), field="segment")
    subject = kinds.clean_header(subject)
    if not subject:
        raise DomainError(gettext("Enter a subject."), field="subject")
    if len(subject) > kinds.SUBJECT_MAX:
        raise DomainError(gettext("Keep the subject under %(max)s characters.", max=kinds.SUBJECT_MAX), field="subject")
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise DomainError(gettext("Write the message."), field="body")
    if len(body) > BODY_MAX:
        raise DomainError(gettext("Keep the message under %(max)s characters.", max=format_number(BODY_MAX)),
                          field="body")
    return Composition(segment, subject, body)


def render_organizer_message(event: Event, composition: Composition, *, name: str = "", zone: str | None = None,
                             manage_link: str | None = None) -> rendering.Rendered:
    return rendering.render("organizer", event=event, name=name, zone=zone or event.timezone, manage_link=manage_link,
                            subject=composition.subject, intro=composition.body)


def send_organizer_message(event: Event, composition: Composition, *, actor: User) -> str:
    """Queue an organizer message to a segment; returns the batch key for the progress view."""
    if not events.can_manage(actor, event):
        raise NotAllowed(gettext("You cannot message this event's attendees."))
    batch = f"organizer:{event.id}:{uuid.uuid4().hex[:12]}"
    expected = segment_count(event, composition.segment)
    outbox.enqueue("messages.fanout", {"event_id": event.id, "kind": "organizer", "segment": composition.segment,
                                       "subject": composition.subject, "body": composition.body, "batch": batch,
                                       "expected": expected,
                                       "actor_id": actor.id},
                   dedupe_key=f"fanout:{batch}", event_id=event.id)
    audit.record("message.send", actor=actor, target=event, event=event,
                 summary=f"Messaged “{SEGMENTS[composition.segment][0]}”: {composition.subject}",
                 details={"batch": batch, "segment": composition.segment, "subject": composition.subject,
                          "recipients": expected})
    logger.info("Organizer message %s to %s of event %s queued by %s", batch, composition.segment, event.id,
                actor.id)
    return batch


def composed_subjects(event: Event) -> dict[str, str]:
    """The subject each of the event's organizer messages was composed with, by batch (its audit record)."""
    rows = db.session.scalars(select(AuditEntry.details).where(AuditEntry.event_id == event.id,
                                                               AuditEntry.action == "message.send"))
    return {d["batch"]: str(d.get("subject", "")) for d in rows if isinstance(d, dict) and d.get("batch")}


def _fanout_item(batch: str) -> OutboxItem | None:
    return db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"fanout:{batch}"))


def fanout_pending(batch: str) -> bool:
    """Whether an organizer message's fan-out has still to queue its messages."""
    item = _fanout_item(batch)
    return item is not None and item.status.value in ("pending", "running")


def fanout_expected(batch: str) -> int | None:
    """How many recipients an organizer message was counted for when it was sent."""
    item = _fanout_item(batch)
    return item.payload.get("expected") if item is not None else None


#: Recipients queued per committed transaction when the config does not say (BROADCAST_BATCH_SIZE).
DEFAULT_BATCH_SIZE = 100


def _batch_size() -> int:
    try:
        return max(1, int(current_app.config.get("BROADCAST_BATCH_SIZE") or DEFAULT_BATCH_SIZE))
    except (RuntimeError, TypeError, ValueError):
        return DEFAULT_BATCH_SIZE


@outbox.handler("messages.fanout")
def fanout(payload: dict[str, Any]) -> None:
    """Queue one message per recipient of an event-wide send, BROADCAST_BATCH_SIZE recipients per committed
    transaction, so SQLite's write lock is held briefly each time rather than for the whole send.

    Exactly once: each message has a per-recipient dedupe key (a recipient already queued is skipped, and
    the insert itself does nothing on a repeated key), so a fan-out that stopped half-way, retried by the
    outbox, queues only the recipients it had not reached.
    """
    size = _batch_size()
    after, count, batches = 0, 0, 0
    while True:
        db.session.rollback()
        begin_write()
        event = db.session.get(Event, payload["event_id"])
        if event is None:
            db.session.rollback()
            return
        regs = list(db.session.scalars(_recipients(event, payload).where(Registration.id > after).limit(size)))
        if not regs:
            db.session.rollback()
            break
        count += _queue_batch(event, payload, regs)
        after = regs[-1].id
        db.session.commit()
        batches += 1
        if len(regs) < size:
            break
    logger.info("Fan-out %s queued %s message(s) in %s batch(es)", payload["batch"], count, batches)


def _recipients(event: Event, payload: dict[str, Any]):
    if payload["kind"] == "organizer":
        return segment_query(event, payload["segment"])
    return (select(Registration).where(Registration.event_id == event.id, Registration.state.in_(ACTIVE_STATES),
                                       Registration.state != RegistrationState.unverified)
            .order_by(Registration.id))


def _queue_batch(event: Event, payload: dict[str, Any], regs: list[Registration]) -> int:
    """Queue the messages of one batch of recipients in the open transaction; how many were new."""
    kind, batch = payload["kind"], payload["batch"]
    count = 0
    for reg in regs:
        key = f"{batch}:{reg.id}"
        if kind == "organizer":
            # Written as each is sent: the batch records who gets which message, and renders nothing
            # while it holds the write lock.
            queued = emails.notify_registration(reg, "organizer", dedupe_key=key, batch=batch,
                                                deadline=utcnow() + timedelta(hours=6), subject=payload["subject"],
                                                intro=payload["body"])
        else:
            confirmed = reg.state == RegistrationState.confirmed
            method = ("CANCEL" if kind == "event_cancelled" else "REQUEST") if confirmed else None
            extra = (event.cancellation_reason if kind == "event_cancelled"
                     else previous_details(event, payload.get("previous"), reg.timezone, reg.language))
            queued = emails.notify_registration(reg, kind, dedupe_key=key, invite=method, batch=batch, extra=extra,
                                                deadline=utcnow() + timedelta(minutes=30))
        count += 1 if queued is not None else 0
    return count
