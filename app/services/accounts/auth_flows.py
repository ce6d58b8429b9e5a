"""Microsoft sign-ins in progress, kept server-side and single-use, keyed by their `state`, and bound
to the browser that started them.

The flow itself (PKCE verifier, nonce) stays in the database, encrypted. Its `state` is also kept in
the starting browser's Flask session, and a callback is honoured only from a browser whose session
holds that state: without this, someone could start a sign-in, stop before the callback, and have a
signed-in person's browser post it (login CSRF: the victim ends up in the attacker's account, or
connects the attacker's Microsoft account).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import session
from sqlalchemy import delete

from app.models import AuthFlow, db, utcnow
from app.services.core import crypto

LIFETIME = timedelta(minutes=15)
#: The session key holding "<purpose>:<state>" of the flows this browser started (newest last).
SESSION_KEY = "microsoft_flows"
#: Flows kept per browser: a second tab's sign-in does not cancel the first's.
PER_BROWSER = 3


@dataclass(frozen=True)
class PendingFlow:
    flow: dict[str, Any]
    user_id: int | None
    next_url: str


def remember(purpose: str, flow: dict[str, Any], *, user_id: int | None = None, next_url: str = "") -> None:
    """Keep a flow until Microsoft posts back (or it expires), bound to this browser's session. Run again
    after a rollback (a busy database), it keeps the flow once.
    """
    db.session.execute(delete(AuthFlow).where(AuthFlow.created_at < utcnow() - LIFETIME))
    db.session.add(AuthFlow(state=flow["state"], purpose=purpose, flow_encrypted=crypto.encrypt(json.dumps(flow)),
                            user_id=user_id, next_url=next_url[:500], created_at=utcnow()))
    entry = f"{purpose}:{flow['state']}"
    started = [kept for kept in session.get(SESSION_KEY, []) if isinstance(kept, str) and kept != entry]
    session[SESSION_KEY] = (started + [entry])[-PER_BROWSER:]


def started_here(state: str | None, purpose: str) -> bool:
    """Whether this browser's session started the flow with this state (reads the session only)."""
    if not state or len(state) > 128:
        return False
    return f"{purpose}:{state}" in session.get(SESSION_KEY, [])


def take(state: str | None, purpose: str) -> PendingFlow | None:
    """Remove and return the flow with this state, if this browser started it and it exists, is fresh
    and has this purpose. A flow another browser started is left alone (None).
    """
    if not started_here(state, purpose):
        return None
    row = db.session.get(AuthFlow, state)
    if row is not None:
        db.session.delete(row)
        db.session.flush()  # gone from the database before this browser forgets it: a busy database can retry
    session[SESSION_KEY] = [entry for entry in session.get(SESSION_KEY, []) if entry != f"{purpose}:{state}"]
    if row is None:
        return None
    if row.purpose != purpose or row.created_at < utcnow() - LIFETIME:
        return None
    try:
        flow = json.loads(crypto.decrypt(row.flow_encrypted))
    except (crypto.SecretUnreadable, ValueError):
        return None
    return PendingFlow(flow=flow, user_id=row.user_id, next_url=row.next_url)
