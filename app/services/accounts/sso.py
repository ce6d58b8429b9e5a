"""Optional "Sign in with Microsoft" for staff: OpenID Connect through MSAL, restricted to the
configured tenant, matched to an existing Foyer user. It never creates accounts (least of all admins).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models import MicrosoftConnection, Setting, User, db, utcnow
from app.models.base import begin_write
from app.services.core import audit, settings
from app.services.core.errors import NotAllowed
from app.services.microsoft.connection import CONNECTION_ID
from app.services.microsoft.entra import SIGN_IN_SCOPES
from app.services.microsoft.wiring import get_microsoft

logger = logging.getLogger(__name__)

SETTING_KEY = "staff_sso"


def is_enabled() -> bool:
    row = db.session.get(Setting, SETTING_KEY)
    return bool(row and isinstance(row.value, dict) and row.value.get("enabled"))


def set_enabled(enabled: bool, *, actor: User) -> None:
    settings.store(SETTING_KEY, {"enabled": enabled})
    audit.record("settings.staff_sign_in", actor=actor, target=("setting", SETTING_KEY),
                 summary=f"Sign in with Microsoft for staff switched {'on' if enabled else 'off'}")
    logger.info("Staff sign-in with Microsoft %s by %s", "enabled" if enabled else "disabled", actor.id)


UNKNOWN_TENANT = _l("Foyer does not know its Microsoft 365 organization yet: an administrator connects Microsoft 365 "
                    "first (or sets ENTRA_TENANT_ID).")


def start_sign_in(redirect_uri: str) -> dict[str, Any]:
    if not is_enabled():
        raise NotAllowed(_("Sign in with Microsoft is not switched on."))
    if not organization_tenant():
        raise NotAllowed(str(UNKNOWN_TENANT))
    return get_microsoft().entra.initiate_flow(redirect_uri, scopes=SIGN_IN_SCOPES, prompt="select_account")


def organization_tenant() -> str:
    """The Entra tenant whose staff may sign in: ENTRA_TENANT_ID (configured, or the authority's tenant
    id), else the tenant of the connected service account (the `tid` of its id token); "" when unknown.
    """
    configured = (current_app.config.get("ENTRA_TENANT_ID") or "").lower()
    if configured:
        return configured

    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    return (row.tenant_id or "").lower() if row is not None else ""


def finish_sign_in(flow: dict[str, Any], auth_response: dict[str, str]) -> User:
    """Redeem the code and return the matching active Foyer user.

    A Microsoft account is matched by its object id and tenant id (`oid` + `tid`), as Microsoft
    advises; the username (UPN) can change or be given to someone else. A Foyer account that has never
    signed in with Microsoft is linked once, on its first such sign-in, when the account's UPN in the
    organization's own tenant (a domain the tenant has verified; never a guest's #EXT# name) equals its
    email; the link is audited, and from then on only `oid` + `tid` count.

    Starts its own unit of work after the code is redeemed (call it before making other changes in the
    request), as `connection.finish_connect` does.
    """
    if not is_enabled():
        raise NotAllowed(_("Sign in with Microsoft is not switched on."))
    tenant = organization_tenant()
    if not tenant:
        raise NotAllowed(str(UNKNOWN_TENANT))
    account = get_microsoft().entra.complete_flow(flow, auth_response)
    # The code was redeemed over the network while other processes (the worker) may have written: end
    # the snapshot read before the call and go on as a writer, which waits its turn. On SQLite a read
    # transaction that writes after another connection's commit fails at once ("database is locked").
    db.session.rollback()
    begin_write()
    tid, oid = (account.tenant_id or "").lower(), account.object_id
    if tid != tenant:
        logger.warning("Microsoft sign-in refused: tenant %s is not the organization's tenant", account.tenant_id)
        raise NotAllowed(_("That Microsoft account belongs to another organization."))
    user = db.session.scalar(select(User).where(User.entra_object_id == oid)) if oid else None
    if user is not None and user.entra_tenant_id and user.entra_tenant_id != tid:
        logger.warning("Microsoft sign-in refused: user %s is linked to that object id in another tenant", user.id)
        user = None
    elif user is not None and not user.entra_tenant_id:
        user.entra_tenant_id = tid  # linked before tenants were recorded, under the same tenant check
    elif user is None and oid:
        user = _link_once(account.username, oid=oid, tid=tid)
    if user is None or not user.is_active_account:
        raise NotAllowed(_("There is no active Foyer account for that Microsoft account. Ask an administrator."))
    user.last_login_at = utcnow()
    audit.record("auth.login", actor=user, target=user, summary="Signed in with Microsoft")
    logger.info("User %s signed in with Microsoft", user.id)
    return user


def _link_once(username: str, *, oid: str, tid: str) -> User | None:
    """Link the Foyer account whose email is this UPN, if it was never linked to a Microsoft account."""
    address = (username or "").strip().lower()
    if not address or "#ext#" in address:
        return None
    user = db.session.scalar(select(User).where(func.lower(User.email) == address))
    if user is None or user.entra_object_id or not user.is_active_account:
        return None  # already linked to another Microsoft account: never re-linked by name
    user.entra_object_id, user.entra_tenant_id = oid, tid
    audit.record("auth.microsoft_linked", actor=user, target=user,
                 summary="Linked to a Microsoft account on its first sign-in with Microsoft")
    logger.info("User %s linked to a Microsoft account", user.id)
    return user
