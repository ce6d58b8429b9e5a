"""Sending through Azure Communication Services, from the outbox: email (after taking a quota slot), SMS,
and the email operation's final status.

One logical message -> one row -> one outbox item -> one ACS operation whose Operation-Id Foyer chooses
(a random UUID stored with the message before the first attempt). Before any second attempt the worker
asks ACS for that operation; if ACS already has it, it is not sent again.
"""

from __future__ import annotations

import base64
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from markupsafe import escape
from sqlalchemy import select, update

from app.models import (
    Event,
    EventStatus,
    Message,
    MessageChannel,
    MessageStatus,
    OutboxItem,
    OutboxStatus,
    Registration,
    RegistrationState,
    db,
    utcnow,
)
from app.models.base import begin_write
from app.services.core import crypto
from app.services.core.settings import get_branding, get_email_settings
from app.services.messaging.attachments import message_attachments
from app.services.messaging.dispatch import reserve_slot
from app.services.messaging.kinds import RECIPIENT_NAME_MAX, clean_header, new_operation_id
from app.services.messaging.queueing import existing_message, insert_message
from app.services.messaging.rendering import SECRET_LINK, render_deferred
from app.services.microsoft.acs import EmailMessage
from app.services.microsoft.errors import AcsError
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox

logger = logging.getLogger(__name__)

#: How long after "sent" the operation's final status is read.
STATUS_POLL_DELAY = 30.0
#: An ACS key that is refused (revoked, rotated) keeps messages queued; they are tried again this often.
CREDENTIALS_RETRY_SECONDS = 300.0


def _with_secret_link(payload: dict[str, Any], text_body: str, html_body: str) -> tuple[str, str]:
    """The bodies as sent: a one-time link kept out of the log is put back in (see SECRET_LINK)."""
    sealed = payload.get("secret_link")
    if not sealed:
        return text_body, html_body

    link = crypto.decrypt(sealed)
    return text_body.replace(SECRET_LINK, link), html_body.replace(SECRET_LINK, str(escape(link)))


def _settle(message_id: int, **values: Any) -> None:
    """Record a step of the send in its own short transaction."""
    db.session.rollback()
    begin_write()
    db.session.execute(update(Message).where(Message.id == message_id).values(**values, updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _mark_failed(payload: dict[str, Any], error: str) -> None:
    """The outbox gave up: the message shows as failed (perform() commits)."""
    message = db.session.get(Message, payload.get("message_id"))
    if message is not None and message.status not in (MessageStatus.sent, MessageStatus.suppressed):
        message.status = MessageStatus.failed
        message.last_error = error[:2000]


_SEND_COLUMNS = (Message.id, Message.status, Message.kind, Message.channel, Message.attempts, Message.operation_id,
                 Message.recipient, Message.recipient_name, Message.subject, Message.body_text, Message.body_html,
                 Message.event_id, Message.registration_id)


def _still_wanted(row, now: datetime) -> str:
    """Why a queued reminder should no longer go out ('' when it should)."""
    if row.kind != "reminder":
        return ""
    event = db.session.execute(select(Event.status, Event.starts_at).where(Event.id == row.event_id)).first() \
        if row.event_id else None
    if event is None or event.status != EventStatus.published:
        return "The event is no longer published."
    if event.starts_at <= now:
        return "The event had already started."
    state = db.session.scalar(select(Registration.state).where(Registration.id == row.registration_id)) \
        if row.registration_id else None
    if state != RegistrationState.confirmed:
        return "The registration is no longer confirmed."
    return ""


def _write_now(message_id: int, spec: dict[str, Any]):
    """Write a message queued to be written as it is sent, and record what it says before it goes out (so a
    second attempt sends the same words, and the message log shows them); None when there is nothing left
    to write it for (its registration was erased), which suppresses it.
    """
    db.session.rollback()
    begin_write()  # writing it may issue a personal link the registration lost meanwhile
    rendered = render_deferred(spec)
    if rendered is None:
        _settle(message_id, status=MessageStatus.suppressed, last_error="Nothing left to write it for: "
                "its registration no longer exists.")
        logger.info("Message %s suppressed: its registration no longer exists", message_id)
        return None
    db.session.execute(update(Message).where(Message.id == message_id, Message.body_text == "").values(
        subject=rendered.subject, body_text=rendered.text, body_html=rendered.html, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.commit()
    return db.session.execute(select(*_SEND_COLUMNS).where(Message.id == message_id)).first()


@outbox.handler("message.send", on_failure=_mark_failed)
def send_message(payload: dict[str, Any]) -> None:
    """Send one message: check ACS for an earlier attempt first, take a quota slot, submit, record."""
    message_id = payload["message_id"]
    db.session.rollback()
    row = db.session.execute(select(*_SEND_COLUMNS).where(Message.id == message_id)).first()
    if row is None or row.status in (MessageStatus.sent, MessageStatus.suppressed, MessageStatus.failed):
        return
    now = utcnow()
    reason = _still_wanted(row, now)
    if reason:
        _settle(message_id, status=MessageStatus.suppressed, last_error=reason)
        logger.info("Message %s suppressed: %s", message_id, reason)
        return
    if row.channel == MessageChannel.sms:
        _send_sms(row)
        return
    if payload.get("render") and not row.body_text:
        row = _write_now(message_id, payload["render"])
        if row is None:
            return
    client = get_microsoft().acs_email
    if row.attempts > 0 and row.operation_id:
        # An earlier attempt may have reached ACS (crash, timeout): ask before sending again.
        db.session.commit()
        try:
            previous = client.operation_status(row.operation_id)
        except AcsError as exc:
            _raise_for(message_id, exc)
        if previous is not None:
            _accepted(message_id, row.operation_id, row.event_id, previous.status, previous.error)
            logger.info("Message %s was already accepted by ACS (operation %s); not sent again",
                        message_id, row.operation_id)
            return
    wait = reserve_slot(message_id, now=now)
    if wait > 0:
        raise outbox.Defer("email quota in use", seconds=wait)
    reply_to = sender_reply_to()
    files = message_attachments(payload)
    db.session.rollback()  # building the invite read rows: no transaction stays open during the call
    text_body, html_body = _with_secret_link(payload, row.body_text, row.body_html)
    email = EmailMessage(to=[(row.recipient, row.recipient_name)], subject=row.subject, plain_text=text_body,
                         html=html_body, attachments=files or None, reply_to=reply_to)
    outbox.fence()  # still this worker's to send, and no one else's until the call is over
    try:
        result = client.submit(email, operation_id=row.operation_id)
    except AcsError as exc:
        if exc.status == 429:
            # ACS did not count it: give the slot back.
            _settle(message_id, reserved_at=None)
        _raise_for(message_id, exc)
    _accepted(message_id, row.operation_id, row.event_id, result.status, result.error, files=files)



def sender_reply_to() -> list[tuple[str, str]] | None:
    """The admin's reply-to address, named with the sender name, for every email sent; None without one.

    ACS sends From the configured sender address; its display name belongs to that MailFrom address in
    Azure (the send request has no field for it), so the sender name travels with the reply-to.
    """
    sender = get_email_settings()
    if not sender.reply_to:
        return None
    return [(sender.reply_to, clean_header(sender.sender_name or get_branding().site_name))]


@outbox.handler("email.send", on_failure=_mark_failed)
def send_legacy_email(payload: dict[str, Any]) -> None:
    """An email an earlier version queued outside the message log: record it as a message (keeping its
    Operation-Id, counted as tried so ACS is asked about it first) and send it as one.
    """
    db.session.rollback()
    begin_write()
    operation_id = str(payload.get("operation_id") or new_operation_id())
    key = f"legacy-email:{operation_id}"
    # Its event and registration (from the item and its key), so that erasure and retention find it.
    item = next((i for i in db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "email.send",
                                                                         OutboxItem.status == OutboxStatus.running))
                 if isinstance(i.payload, dict) and i.payload.get("operation_id") == operation_id), None)
    found = re.match(r"email:registration:(\d+):", item.dedupe_key) if item is not None else None
    registration_id = int(found.group(1)) if found else None
    if registration_id is not None and db.session.get(Registration, registration_id) is None:
        registration_id = None
    message = existing_message(key) or insert_message(Message(
        dedupe_key=key, channel=MessageChannel.email, kind="legacy", status=MessageStatus.queued,
        event_id=item.event_id if item is not None else None, registration_id=registration_id,
        recipient=str(payload.get("to", "")),
        recipient_name=clean_header(str(payload.get("name", "")))[:RECIPIENT_NAME_MAX],
        subject=clean_header(str(payload.get("subject", ""))), body_text=str(payload.get("text", "")),
        body_html=str(payload.get("html") or "") or f"<pre>{escape(str(payload.get('text', '')))}</pre>",
        deadline=utcnow(), operation_id=operation_id, attempts=1, created_at=utcnow())) or existing_message(key)
    db.session.commit()
    send_message({**payload, "message_id": message.id})


def _raise_for(message_id: int, exc: AcsError) -> None:
    """Turn an ACS error into the outbox's verdict, recording it on the message."""
    if exc.status in (401, 403):
        _settle(message_id, status=MessageStatus.queued,
                last_error="ACS refused Foyer's credentials (check ACS_CONNECTION_STRING); kept queued.")
        raise outbox.RetryLater(str(exc), retry_after=CREDENTIALS_RETRY_SECONDS) from exc
    if exc.transient:
        _settle(message_id, status=MessageStatus.queued, last_error=str(exc)[:2000])
        raise outbox.retry_transient(str(exc), exc.retry_after) from exc
    _settle(message_id, status=MessageStatus.failed, last_error=str(exc)[:2000])
    raise outbox.PermanentFailure(str(exc)) from exc


_TERMINAL = ("Succeeded", "Failed", "Canceled")


def _accepted(message_id: int, operation_id: str, event_id: int | None, status: str, error: str, *,
              files: list[dict[str, str]] | None = None) -> None:
    """ACS has the operation: the message is sent; its final status is recorded now or polled later.

    `files` are the attachments that went with it, recorded by name, type and size.
    """
    sent_files = {} if files is None else {"attachments": [
        {"name": f["name"], "contentType": f["contentType"], "size": len(base64.b64decode(f["contentInBase64"]))}
        for f in files]}
    if status in ("Failed", "Canceled"):
        _settle(message_id, status=MessageStatus.failed, operation_status=status, sent_at=utcnow(),
                last_error=f"ACS could not deliver: {error or status}"[:2000], **sent_files)
        return
    db.session.rollback()
    begin_write()
    db.session.execute(update(Message).where(Message.id == message_id).values(
        status=MessageStatus.sent, sent_at=utcnow(), last_error="", updated_at=utcnow(), **sent_files,
        operation_status=status if status in _TERMINAL else "Running").execution_options(synchronize_session=False))
    if status not in _TERMINAL:
        outbox.enqueue("message.status", {"message_id": message_id, "operation_id": operation_id},
                       dedupe_key=f"message-status:{operation_id}", event_id=event_id,
                       run_at=utcnow() + timedelta(seconds=current_app.config.get("ACS_STATUS_POLL_SECONDS",
                                                                                  STATUS_POLL_DELAY)))
    db.session.commit()


@outbox.handler("message.status")
def poll_status(payload: dict[str, Any]) -> None:
    """Record an email operation's final status from ACS (Succeeded: accepted for delivery; see delivery_reports)."""
    client = get_microsoft().acs_email
    try:
        result = client.operation_status(payload["operation_id"])
    except AcsError as exc:
        if exc.transient and exc.retry_after is not None:
            raise outbox.retry_transient(str(exc), exc.retry_after) from exc
        if exc.transient or exc.status in (401, 403):
            raise outbox.RetryLater(str(exc), retry_after=exc.retry_after or 60) from exc
        raise outbox.PermanentFailure(str(exc)) from exc
    if result is None:
        raise outbox.PermanentFailure("ACS does not know this operation")
    if result.status not in _TERMINAL:
        raise outbox.RetryLater(f"operation still {result.status}",
                                retry_after=current_app.config.get("ACS_STATUS_POLL_SECONDS", STATUS_POLL_DELAY))
    if result.status == "Succeeded":
        _settle(payload["message_id"], operation_status="Succeeded")
    else:
        _settle(payload["message_id"], operation_status=result.status, status=MessageStatus.failed,
                last_error=f"ACS could not deliver: {result.error or result.status}"[:2000])


def _send_sms(row) -> None:
    sms = get_microsoft().acs_sms
    message_id = row.id
    if sms is None:
        _settle(message_id, status=MessageStatus.suppressed, last_error="No SMS sender number is configured.")
        return
    _settle(message_id, status=MessageStatus.sending, attempts=row.attempts + 1)
    outbox.fence()
    try:
        results = sms.send([row.recipient], row.body_text, tag=f"foyer-{message_id}")
    except AcsError as exc:
        _raise_for(message_id, exc)
    result = results[0] if results else None
    if result is not None and result.successful:
        _settle(message_id, status=MessageStatus.sent, sent_at=utcnow(), operation_id=result.message_id or "",
                operation_status="Accepted", last_error="")
    else:
        error = result.error if result is not None else "no result"
        _settle(message_id, status=MessageStatus.failed, last_error=f"SMS not accepted: {error}"[:2000])
        raise outbox.PermanentFailure(error)

