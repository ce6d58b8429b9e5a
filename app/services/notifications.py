"""Outgoing email through ACS Email, always via the outbox (never inside a request or transaction)."""

from __future__ import annotations

import base64
import logging
import uuid

from app.services import outbox
from app.services.microsoft.acs import EmailMessage
from app.services.microsoft.errors import AcsError
from app.services.microsoft.wiring import get_microsoft

logger = logging.getLogger(__name__)


def _clean_header(value: str) -> str:
    """No CR/LF or control characters in anything that becomes a header (subject, names)."""
    return "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in value).strip()


def queue_plain_email(*, to: str, subject: str, text: str, dedupe_key: str, name: str = "", html: str | None = None,
                      event_id: int | None = None, attachments: list[tuple[str, str, bytes]] | None = None) -> None:
    """Queue one email in the current transaction.

    `attachments` are (file name, content type, bytes), e.g. ("invite.ics", "text/calendar", data).
    The same `dedupe_key` never sends twice.
    """
    outbox.enqueue(
        "email.send",
        {"to": to, "name": _clean_header(name), "subject": _clean_header(subject), "text": text, "html": html or "",
         # Chosen once and kept in the item, so a retry or a crash check reuses it.
         "operation_id": str(uuid.uuid4()),
         "attachments": [{"name": _clean_header(n), "contentType": t, "contentInBase64": base64.b64encode(b).decode()}
                         for n, t, b in (attachments or [])]},
        dedupe_key=f"email:{dedupe_key}", event_id=event_id,
    )


@outbox.handler("email.send")
def send_email(payload: dict) -> None:
    """Perform a queued email; 429s and outages are retried after ACS's Retry-After."""
    from markupsafe import escape

    html = payload.get("html") or f"<pre>{escape(payload['text'])}</pre>"
    message = EmailMessage(to=[(payload["to"], payload.get("name") or "")], subject=payload["subject"],
                           plain_text=payload["text"], html=html, attachments=payload.get("attachments") or None)
    try:
        result = get_microsoft().acs_email.send(message, operation_id=payload["operation_id"])
    except AcsError as exc:
        if exc.transient:
            raise outbox.retry_transient(str(exc), exc.retry_after) from exc
        raise outbox.PermanentFailure(str(exc)) from exc
    if result.status == "Failed":
        raise outbox.PermanentFailure(f"ACS could not deliver: {result.error or 'failed'}")
    if result.status not in ("Succeeded",):
        raise outbox.RetryLater(f"email operation {result.operation_id} still {result.status}")
    logger.info("Email %s accepted by ACS", result.operation_id)
