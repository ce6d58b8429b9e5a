"""The service-account connection: connect once, keep its tokens encrypted, notice revocation.

Every Graph call made for Foyer goes through `service_account_token()`. When Entra refuses the refresh
token, the connection turns "needs re-connect", admins are alerted once, and Microsoft-bound outbox
work is parked (not failed) until an admin connects again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import select, update

from app.models import Role, User, db, utcnow
from app.models.base import IMMEDIATE_OPTION, begin_write, unsaved
from app.models.microsoft import ConnectionStatus, MicrosoftConnection
from app.services.core import audit, crypto, signals
from app.services.core.errors import NotAllowed
from app.services.microsoft.entra import CONNECT_SCOPES, RECORDING_SCOPES, SignedInAccount
from app.services.microsoft.errors import NotConnected, ReconnectRequired
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox

logger = logging.getLogger(__name__)

CONNECTION_ID = 1


def shown_connection() -> MicrosoftConnection:
    """The connection row for a page to show, read only: until the first connect there may be none, and
    a blank (disconnected) one, never stored, stands in for it. A page view then writes nothing.
    """
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    if row is not None:
        return row
    return unsaved(MicrosoftConnection, id=CONNECTION_ID)


def get_connection() -> MicrosoftConnection:
    """The one connection row (created on first use), for work that changes it."""
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    if row is None:
        row = MicrosoftConnection(id=CONNECTION_ID)
        db.session.add(row)
        db.session.flush()
    return row


class DatabaseTokenStore:
    """MSAL's cache, encrypted, in the connection row.

    Saves go through their own short transaction: a refreshed (rotated) refresh token must be kept
    even if the work that needed it later rolls back.
    """

    def load(self) -> str | None:
        with db.engine.connect() as conn:
            row = conn.execute(
                select(MicrosoftConnection.token_cache_encrypted, MicrosoftConnection.status)
                .where(MicrosoftConnection.id == CONNECTION_ID)
            ).first()
        if row is None or row.token_cache_encrypted is None or row.status == ConnectionStatus.disconnected:
            return None
        return crypto.decrypt(row.token_cache_encrypted)

    def save(self, serialized: str, *, account: dict[str, Any] | None, expires_at: datetime | None) -> None:
        values: dict[str, Any] = {
            "token_cache_encrypted": crypto.encrypt(serialized),
            "access_token_expires_at": expires_at,
            "last_refresh_at": utcnow(),
        }
        if account is not None:
            values.update(account_username=account["username"], account_name=account["name"],
                          home_account_id=account["home_account_id"])
        # A writer from its first statement (SQLite: BEGIN IMMEDIATE): it reads before it writes, and a
        # transaction that does so is refused at once when another process wrote in between.
        with db.engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE_OPTION: True})
            with conn.begin():
                query = select(MicrosoftConnection.id).where(MicrosoftConnection.id == CONNECTION_ID)
                exists = conn.execute(query).first()
                if exists is None:  # the columns left out take their defaults (disconnected, blank)
                    conn.execute(MicrosoftConnection.__table__.insert().values(id=CONNECTION_ID, **values))
                else:
                    conn.execute(update(MicrosoftConnection).where(MicrosoftConnection.id == CONNECTION_ID)
                                 .values(**values))


def service_account_token(*, force_refresh: bool = False, scopes: list[str] | None = None) -> str:
    """An access token for Graph, or ReconnectRequired / NotConnected (recorded on the connection)."""
    try:
        return get_microsoft().entra.acquire_token(DatabaseTokenStore(), force_refresh=force_refresh, scopes=scopes)
    except ReconnectRequired as exc:
        record_reconnect_required(str(exc))
        raise
    except crypto.SecretUnreadable as exc:
        record_reconnect_required("The stored tokens cannot be decrypted with the configured keys.")
        raise ReconnectRequired(str(exc)) from exc


def record_reconnect_required(reason: str) -> None:
    """Mark the connection broken, in its own transaction (the caller's work may roll back).

    Admins are told by `alert_admins_if_needed`, which the worker runs: once per breakage.
    """
    with db.engine.begin() as conn:
        conn.execute(
            update(MicrosoftConnection)
            .where(MicrosoftConnection.id == CONNECTION_ID, MicrosoftConnection.status != ConnectionStatus.disconnected)
            .values(status=ConnectionStatus.needs_reconnect, last_error=reason[:1000])
        )
    logger.warning("Microsoft 365 connection needs re-connect: %s", reason)


def alert_admins_if_needed() -> int:
    """Email every active admin once after the connection broke; returns how many were queued."""
    begin_write()
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    if row is None or row.status != ConnectionStatus.needs_reconnect or row.admins_alerted_at is not None:
        db.session.rollback()
        return 0
    row.admins_alerted_at = utcnow()
    admins = db.session.scalars(select(User).where(User.role == Role.admin, User.is_active_account.is_(True))).all()
    stamp = row.admins_alerted_at.strftime("%Y%m%d%H%M%S%f")  # one alert per breakage, however close
    signals.microsoft_connection_broken.send(row, admins=list(admins), reason=row.last_error,
                                             key=f"reconnect:{stamp}")
    db.session.commit()
    return len(admins)


def start_connect(redirect_uri: str) -> dict[str, Any]:
    """Begin the service account's sign-in; keep the returned flow in the session."""
    return get_microsoft().entra.initiate_flow(redirect_uri, scopes=CONNECT_SCOPES, prompt="select_account")


def finish_connect(flow: dict[str, Any], auth_response: dict[str, str], *, actor: User) -> SignedInAccount:
    """Redeem the code, keep the tokens, and resume any parked Microsoft work.

    Starts its own unit of work: the tokens are saved on a separate connection, so any snapshot the
    session read before is ended first (call it before making other changes in the request).
    """
    account = get_microsoft().entra.complete_flow(flow, auth_response, store=DatabaseTokenStore())
    db.session.rollback()
    begin_write()
    row = get_connection()
    row.status = ConnectionStatus.connected
    row.connected_at = utcnow()
    row.connected_by_id = actor.id
    row.tenant_id = (account.tenant_id or "").lower() or row.tenant_id  # from the id token's `tid`
    row.last_error = ""
    row.admins_alerted_at = None
    row.granted_scopes = " ".join(sorted({_short_scope(s) for s in account.granted_scopes} - {""}))
    resumed = outbox.resume_waiting()
    audit.record("microsoft.connect", actor=actor, target=("setting", "microsoft"),
                 summary=f"Connected the Microsoft 365 service account {account.username}")
    logger.info("Microsoft 365 service account %s connected by %s; %s parked item(s) resumed",
                account.username, actor.id, resumed)
    return account


def disconnect(*, actor: User) -> None:
    """Forget the tokens. Microsoft-bound work waits until someone connects again."""
    row = get_connection()
    row.status = ConnectionStatus.disconnected
    row.token_cache_encrypted = None
    row.access_token_expires_at = None
    row.home_account_id = ""
    row.last_error = ""
    audit.record("microsoft.disconnect", actor=actor, target=("setting", "microsoft"),
                 summary="Disconnected the Microsoft 365 service account")
    logger.info("Microsoft 365 connection removed by %s", actor.id)


def _short_scope(scope: str) -> str:
    """"https://graph.microsoft.com/User.Read" and "User.Read" both read "user.read"; OIDC scopes drop out."""
    short = scope.strip().rsplit("/", 1)[-1].lower()
    return "" if short in ("openid", "profile", "email", "offline_access") else short


def missing_recording_scopes() -> list[str]:
    """The recording scopes the connection was not granted (all of them for a connection made before
    Foyer asked for them: an admin must reconnect once); none while nothing is connected.
    """
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    if row is None or row.status == ConnectionStatus.disconnected:
        return []  # nothing is connected: connecting asks for every permission
    granted = set((row.granted_scopes or "").split())
    return [scope for scope in RECORDING_SCOPES if scope.lower() not in granted]


def require_connected() -> None:
    """Raise NotConnected unless the connection is usable (handlers call this before Graph work)."""
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    if row is None or row.status == ConnectionStatus.disconnected:
        raise NotConnected("No Microsoft 365 service account is connected.")
    if row.status == ConnectionStatus.needs_reconnect:
        raise ReconnectRequired(row.last_error or "The Microsoft 365 connection needs to be re-connected.")


def rotate_secrets() -> int:
    """Re-encrypt stored secrets under the newest key; returns how many were rewritten."""
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    if row is None or not row.token_cache_encrypted:
        return 0
    row.token_cache_encrypted = crypto.rotate(row.token_cache_encrypted)
    return 1


def setup_prompt() -> dict[str, Any] | None:
    """What the admin's "connect Microsoft 365" prompt needs, or None when the connection is fine (a
    connection lacking the recording permissions asks for one reconnect).
    """
    row = db.session.get(MicrosoftConnection, CONNECTION_ID)
    status = row.status if row is not None else ConnectionStatus.disconnected
    one_click = get_microsoft().connects_without_sign_in
    if status == ConnectionStatus.connected:
        missing = missing_recording_scopes()
        return {"status": "missing_scopes", "one_click": one_click, "missing": missing} if missing else None
    return {"status": status.value, "one_click": one_click}


def connect_without_sign_in(redirect_uri: str, *, actor: User) -> SignedInAccount:
    """Connect the service account in one step where this installation's Microsoft allows it (the
    first-run convenience of the built-in one): the sign-in is answered on the admin's behalf, through the
    same authorize page and token exchange a browser would use.
    """
    clients = get_microsoft()
    if not clients.connects_without_sign_in:
        raise NotAllowed(gettext("Only the built-in emulator can be connected in one click."))
    flow = start_connect(redirect_uri)
    return finish_connect(flow, clients.sign_in_service_account(flow["auth_uri"]), actor=actor)
