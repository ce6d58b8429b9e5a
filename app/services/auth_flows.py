"""Microsoft sign-ins in progress, kept server-side and single-use, keyed by their `state`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from app.models import AuthFlow, db, utcnow
from app.services import crypto

LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True)
class PendingFlow:
    flow: dict[str, Any]
    user_id: int | None
    next_url: str


def remember(purpose: str, flow: dict[str, Any], *, user_id: int | None = None, next_url: str = "") -> None:
    """Keep a flow until Microsoft posts back (or it expires)."""
    db.session.execute(delete(AuthFlow).where(AuthFlow.created_at < utcnow() - LIFETIME))
    db.session.add(AuthFlow(state=flow["state"], purpose=purpose, flow_encrypted=crypto.encrypt(json.dumps(flow)),
                            user_id=user_id, next_url=next_url[:500], created_at=utcnow()))


def take(state: str | None, purpose: str) -> PendingFlow | None:
    """Remove and return the flow with this state, if it exists, is fresh and has this purpose."""
    if not state or len(state) > 128:
        return None
    row = db.session.get(AuthFlow, state)
    if row is None:
        return None
    db.session.delete(row)
    if row.purpose != purpose or row.created_at < utcnow() - LIFETIME:
        return None
    try:
        flow = json.loads(crypto.decrypt(row.flow_encrypted))
    except (crypto.SecretUnreadable, ValueError):
        return None
    return PendingFlow(flow=flow, user_id=row.user_id, next_url=row.next_url)
