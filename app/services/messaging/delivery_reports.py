"""Delivery reports from Azure Communication Services, received through an Event Grid webhook.

ACS's "Succeeded" for a send operation means the email was accepted for delivery. Whether it reached the
recipient arrives later as an Event Grid event: `Microsoft.Communication.EmailDeliveryReportReceived`
(Delivered, Bounced, Suppressed, Failed, FilteredSpam, Quarantined, Expanded) and, for SMS sent with
delivery reports on, `Microsoft.Communication.SMSDeliveryReportReceived` (Delivered, Failed). A report's
`messageId` is the send's ACS id: for email the operation id Foyer chose (Operation-Id), for SMS the
message id ACS answered; both are stored as `Message.operation_id`.

Event Grid proves the webhook first (a `SubscriptionValidationEvent` whose `validationCode` must be
echoed as `{"validationResponse": …}`), delivers at least once (so each event id is recorded once) and
carries the webhook secret as a query parameter of the subscribed URL or as a static delivery-property
header.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from app.models import Message, MessageChannel, MessageDeliveryReport, Registration, db, utcnow
from app.models.base import insert_unless_exists
from app.models.message import DELIVERY_LABELS
from app.services.core import links

logger = logging.getLogger(__name__)

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
EMAIL_REPORT = "Microsoft.Communication.EmailDeliveryReportReceived"
SMS_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
#: The query parameter and the header (an Event Grid static delivery property) that may carry the secret.
SECRET_PARAM = "secret"  # noqa: S105 - a parameter name
SECRET_HEADER = "X-Foyer-Webhook-Secret"  # noqa: S105 - a header name
#: Event Grid posts at most 5,000 events (1 MB) per batch; more is not Event Grid.
MAX_EVENTS = 5000

class BadEvents(ValueError):
    """The body is not an Event Grid event batch Foyer can read."""


@dataclass
class Outcome:
    """What one webhook call did: the handshake answer, or how many reports were recorded."""

    validation_code: str | None = None
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    unknown: int = 0
    ignored_types: list[str] = field(default_factory=list)


def secret_matches(provided: str | None) -> bool:
    """Whether a request carries the configured webhook secret (constant-time; an unset secret matches nothing)."""
    expected = current_app.config.get("ACS_WEBHOOK_SECRET") or ""
    if not expected or not provided:
        return False
    return hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))


def webhook_url() -> str:
    """The full URL to subscribe in Event Grid (the secret in its query string), on PUBLIC_BASE_URL."""
    return links.public_url("webhooks.acs_events_POST", **{SECRET_PARAM: current_app.config["ACS_WEBHOOK_SECRET"]})


def _text(value: Any, name: str, *, required: bool = True, limit: int = 500) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadEvents(f"'{name}' must be a non-empty string.")
    if len(value) > limit:
        raise BadEvents(f"'{name}' is longer than {limit} characters.")
    return value.strip()


def parse(body: Any) -> list[dict[str, Any]]:
    """Check the shape of an Event Grid batch (a JSON array of events); BadEvents names what is wrong."""
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not body:
        raise BadEvents("Expected a JSON array of Event Grid events.")
    if len(body) > MAX_EVENTS:
        raise BadEvents(f"At most {MAX_EVENTS} events per request.")
    events = []
    for index, event in enumerate(body):
        if not isinstance(event, dict):
            raise BadEvents(f"Event {index} is not a JSON object.")
        try:
            event_type = _text(event.get("eventType"), "eventType", limit=100)
            event_id = _text(event.get("id"), "id", limit=200)
        except BadEvents as exc:
            raise BadEvents(f"Event {index}: {exc}") from None
        data = event.get("data")
        if not isinstance(data, dict):
            raise BadEvents(f"Event {index}: 'data' must be a JSON object.")
        try:
            if event_type == VALIDATION_EVENT:
                _text(data.get("validationCode"), "data.validationCode", limit=200)
            elif event_type == EMAIL_REPORT:
                _text(data.get("messageId"), "data.messageId", limit=100)
                _text(data.get("status"), "data.status", limit=30)
            elif event_type == SMS_REPORT:
                _text(data.get("messageId"), "data.messageId", limit=100)
                _text(data.get("deliveryStatus"), "data.deliveryStatus", limit=30)
        except BadEvents as exc:
            raise BadEvents(f"Event {index} ({event_type}): {exc}") from None
        events.append({"id": event_id, "eventType": event_type, "data": data, "eventTime": event.get("eventTime")})
    return events


def _when(*values: Any) -> datetime:
    """The first parseable ISO-8601 time (ACS sends 7-digit fractions), else now."""
    for value in values:
        if isinstance(value, str) and value:
            text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip().replace("Z", "+00:00"))
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return utcnow()


def _details(value: Any) -> str:
    """ACS's explanation: a string (SMS) or {statusMessage, recipientMailServerHostName} (email)."""
    if isinstance(value, dict):
        message = value.get("statusMessage")
        host = value.get("recipientMailServerHostName")
        parts = [str(message).strip()] if isinstance(message, str) and message.strip() else []
        if isinstance(host, str) and host.strip() and not parts:
            parts.append(f"Receiving server: {host.strip()}")
        return " ".join(parts)[:2000]
    return value.strip()[:2000] if isinstance(value, str) else ""


def handle(events: list[dict[str, Any]]) -> Outcome:
    """Answer the handshake or record each report once (flushes; the caller commits)."""
    outcome = Outcome(received=len(events))
    for event in events:
        event_type, data = event["eventType"], event["data"]
        if event_type == VALIDATION_EVENT:
            outcome.validation_code = data["validationCode"].strip()
            continue
        if event_type == EMAIL_REPORT:
            channel, status = MessageChannel.email, data["status"].strip()
            details = _details(data.get("deliveryStatusDetails"))
            at = _when(data.get("deliveryAttemptTimeStamp"), data.get("deliveryAttemptTimestamp"),
                       event.get("eventTime"))
        elif event_type == SMS_REPORT:
            channel, status = MessageChannel.sms, data["deliveryStatus"].strip()
            details = _details(data.get("deliveryStatusDetails"))
            attempts = data.get("deliveryAttempts")
            last_attempt = attempts[-1].get("timestamp") if isinstance(attempts, list) and attempts and \
                isinstance(attempts[-1], dict) else None
            at = _when(last_attempt, data.get("receivedTimestamp"), event.get("eventTime"))
        else:
            outcome.ignored_types.append(event_type)
            continue
        _record(event["id"], event_type, channel, data["messageId"].strip(), status, details, at, outcome)
    return outcome


def _record(event_id: str, event_type: str, channel: MessageChannel, acs_id: str, status: str, details: str,
            at: datetime, outcome: Outcome) -> None:
    message_id = db.session.scalar(select(Message.id).where(Message.operation_id == acs_id,
                                                            Message.channel == channel).limit(1))
    if message_id is None:
        # Another system on the same ACS resource, or a message purged since: nothing of Foyer's to update.
        outcome.unknown += 1
        logger.info("Delivery report %s for a message Foyer does not know; ignored", event_id)
        return
    row = insert_unless_exists(MessageDeliveryReport(event_id=event_id, message_id=message_id, event_type=event_type,
                                                     status=status[:30], received_at=utcnow()), "event_id")
    if row is None:
        outcome.duplicates += 1
        return
    # Event Grid does not keep order: an older report never replaces a newer one.
    db.session.execute(
        update(Message)
        .where(Message.id == message_id,
               (Message.delivery_reported_at.is_(None)) | (Message.delivery_reported_at <= at))
        .values(delivery=status[:30], delivery_details=details, delivery_reported_at=at, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    outcome.recorded += 1
    logger.info("Delivery report for message %s: %s", message_id, status)


def problems_by_registration(registration_ids: list[int]) -> dict[int, Message]:
    """For each registration, its latest email that ACS reports as not delivered (bounced, suppressed, …)."""
    if not registration_ids:
        return {}
    rows = db.session.scalars(
        select(Message).where(Message.registration_id.in_(registration_ids),
                              Message.channel == MessageChannel.email, Message.delivery != "")
        .order_by(Message.registration_id, Message.id)
    )
    latest: dict[int, Message] = {}
    for message in rows:
        latest[message.registration_id] = message
    return {reg_id: m for reg_id, m in latest.items() if m.delivery_problem}


def registration_problem(reg: Registration) -> Message | None:
    """The registration's latest email, if ACS reports it as not delivered."""
    return problems_by_registration([reg.id]).get(reg.id)


def batch_deliveries(batch: str) -> list[tuple[str, int]]:
    """How the messages of one send were reported delivered: [("Delivered", 40), ("Bounced", 2), …]."""
    rows = db.session.execute(select(Message.delivery, func.count()).where(Message.batch == batch,
                                                                           Message.delivery != "")
                              .group_by(Message.delivery)).all()
    order = list(DELIVERY_LABELS)  # delivered first, then the problems
    rows = sorted(rows, key=lambda row: (order.index(row[0]) if row[0] in order else len(order), row[0]))
    return [(str(DELIVERY_LABELS.get(status, status)), count) for status, count in rows]
