"""API tokens: issued by admins, shown once, stored as a sha256, scoped read or write, revocable.

Foyer serves one organization per installation, so a token is the organization's: it reads every
event and registration and (with the write scope) registers people through the same engine as the
public form. Every issue and revocation is in the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import select, update

from app.models import ApiScope, ApiToken, User, db, utcnow
from app.services.core import audit, tokens
from app.services.core.errors import Conflict, DomainError, NotAllowed

logger = logging.getLogger(__name__)

#: Every token starts with this, so secret scanners (and people) recognise one.
TOKEN_PREFIX = "foyer_"  # noqa: S105 - a prefix, not a secret
NAME_MAX = 100
#: `last_used_at` is written at most this often per token.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    #: The plain token: shown to the admin once, never stored.
    plain: str


def _require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise NotAllowed(_("Only admins can manage API tokens."))


def issue(name: str, scope: str, *, actor: User) -> IssuedToken:
    """Create a token; the plain value is returned once and only its hash is kept."""
    _require_admin(actor)
    name = " ".join((name or "").split())
    if not name:
        raise DomainError(_("Give the token a name, e.g. the tool that will use it."), field="name")
    if len(name) > NAME_MAX:
        raise DomainError(_("Keep the name under %(num)s characters.", num=NAME_MAX), field="name")
    try:
        api_scope = ApiScope(scope)
    except ValueError:
        raise DomainError(_("Choose read or write."), field="scope") from None
    plain = TOKEN_PREFIX + tokens.new_token()
    token = ApiToken(name=name, scope=api_scope, token_hash=tokens.hash_token(plain),
                     prefix=plain[: len(TOKEN_PREFIX) + 4], created_by_id=actor.id, created_at=utcnow())
    db.session.add(token)
    db.session.flush()
    audit.record("api.token_issued", actor=actor, target=("api_token", token.id),
                 summary=f"Issued the {api_scope.value} API token “{name}”", details={"scope": api_scope.value})
    logger.info("API token %s (%s) issued by %s", token.id, api_scope.value, actor.id)
    return IssuedToken(token, plain)


def revoke(token: ApiToken, *, actor: User) -> ApiToken:
    """Revoke a token for good: every later call with it is refused."""
    _require_admin(actor)
    if token.revoked_at is not None:
        raise Conflict(_("This token is already revoked."))
    token.revoked_at = utcnow()
    db.session.flush()
    audit.record("api.token_revoked", actor=actor, target=("api_token", token.id),
                 summary=f"Revoked the API token “{token.name}”")
    logger.info("API token %s revoked by %s", token.id, actor.id)
    return token


def list_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None),
                                                             ApiToken.created_at.desc(), ApiToken.id.desc())))


def authenticate(plain: str | None) -> ApiToken | None:
    """The active token behind a bearer value; None for anything unknown or revoked (constant-time compare)."""
    if not isinstance(plain, str) or not plain.startswith(TOKEN_PREFIX) or not 20 <= len(plain) <= 120:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == tokens.hash_token(plain)))
    if token is None or not tokens.token_matches(plain, token.token_hash) or not token.is_active:
        return None
    return token


def touch(token: ApiToken) -> None:
    """Note when the token was last used (at most once per TOUCH_EVERY), in the caller's transaction."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
                           .execution_options(synchronize_session=False))
        token.last_used_at = now
