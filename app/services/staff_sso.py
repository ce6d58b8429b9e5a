"""Optional "Sign in with Microsoft" for staff: OpenID Connect through MSAL, restricted to the
configured tenant, matched to an existing Foyer user. It never creates accounts (least of all admins).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.models import Setting, User, db
from app.services import audit
from app.services.errors import NotAllowed
from app.services.microsoft.entra import SIGN_IN_SCOPES
from app.services.microsoft.wiring import get_microsoft

logger = logging.getLogger(__name__)

SETTING_KEY = "staff_sso"


def is_enabled() -> bool:
    row = db.session.get(Setting, SETTING_KEY)
    return bool(row and isinstance(row.value, dict) and row.value.get("enabled"))


def set_enabled(enabled: bool, *, actor: User) -> None:
    row = db.session.get(Setting, SETTING_KEY)
    if row is None:
        db.session.add(Setting(key=SETTING_KEY, value={"enabled": enabled}))
    else:
        row.value = {"enabled": enabled}
    audit.record("settings.staff_sign_in", actor=actor, target=("setting", SETTING_KEY),
                 summary=f"Sign in with Microsoft for staff switched {'on' if enabled else 'off'}")
    logger.info("Staff sign-in with Microsoft %s by %s", "enabled" if enabled else "disabled", actor.id)


def start_sign_in(redirect_uri: str) -> dict[str, Any]:
    if not is_enabled():
        raise NotAllowed("Sign in with Microsoft is not switched on.")
    return get_microsoft().entra.initiate_flow(redirect_uri, scopes=SIGN_IN_SCOPES, prompt="select_account")


def finish_sign_in(flow: dict[str, Any], auth_response: dict[str, str]) -> User:
    """Redeem the code and return the matching active Foyer user."""
    if not is_enabled():
        raise NotAllowed("Sign in with Microsoft is not switched on.")
    account = get_microsoft().entra.complete_flow(flow, auth_response)
    if account.tenant_id.lower() != current_app.config["ENTRA_TENANT_ID"].lower():
        logger.warning("Microsoft sign-in refused: tenant %s is not the configured tenant", account.tenant_id)
        raise NotAllowed("That Microsoft account belongs to another organization.")
    user = None
    if account.object_id:
        user = db.session.scalar(select(User).where(User.entra_object_id == account.object_id))
    if user is None and account.username:
        user = db.session.scalar(select(User).where(func.lower(User.email) == account.username.lower()))
        if user is not None and user.entra_object_id and user.entra_object_id != account.object_id:
            user = None  # that Foyer user is bound to another Microsoft account
    if user is None or not user.is_active_account:
        raise NotAllowed("There is no active Foyer account for that Microsoft account. Ask an administrator.")
    if not user.entra_object_id and account.object_id:
        user.entra_object_id = account.object_id
    from app.models import utcnow

    user.last_login_at = utcnow()
    audit.record("auth.login", actor=user, target=user, summary="Signed in with Microsoft")
    logger.info("User %s signed in with Microsoft", user.id)
    return user
