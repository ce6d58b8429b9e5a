"""A queued email's files: those stored with it, and the registrant's calendar invitation, built as the
email is sent by the builder the registration emails register (messaging never knows a registration).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def invite_description(method: str) -> dict[str, str]:
    """The file name and content type of a registrant's invitation (REQUEST) or its cancellation (CANCEL)."""
    # ACS's attachment allow-list names the bare type; the METHOD travels inside the file.
    return {"name": "cancel.ics" if method == "CANCEL" else "invite.ics", "contentType": "text/calendar"}


#: Builds a queued email's calendar invitation from its spec as the email is sent (None: send without
#: it). Registered by the registration emails (`invite_builder`), which know registrations and events.
_invite_builder: Callable[[dict[str, Any]], dict[str, str] | None] | None = None


def invite_builder(build: Callable[[dict[str, Any]], dict[str, str] | None]):
    """Register the function that turns an invitation spec into an attachment (a decorator)."""
    global _invite_builder
    _invite_builder = build
    return build


def message_attachments(payload: dict[str, Any]) -> list[dict[str, str]]:
    """The files of a `message.send` item: those stored with it, and the invitation built now."""
    files = list(payload.get("attachments") or [])
    if payload.get("invite") and _invite_builder is not None:
        invite = _invite_builder(payload["invite"])
        if invite is not None:
            files.append(invite)
    return files
