"""The live part of an event, beside the embedded call: Q&A (questions.py) and polls (polls.py).

Attendees take part through their join link while it is open (services/attendance/join_links.py decides when: the
same window as the call); organizers who may manage the event moderate. Both modules register their
share of the privacy machinery (export, erasure, retention purge) in services/registration/privacy.py.
"""

from __future__ import annotations

from flask_babel import gettext

from app.services.attendance.join_links import JoinLink, JoinState, status
from app.services.core.errors import DomainError


class LiveClosed(DomainError):
    """The attendee's link cannot take part right now (outside the join window, cancelled, replaced)."""


def require_open(link: JoinLink) -> None:
    """Raise LiveClosed unless the link could join the call right now (the join window's rules)."""
    current = status(link)
    if current.state != JoinState.open:
        raise LiveClosed(gettext("Questions and polls are open only while the call is."))
