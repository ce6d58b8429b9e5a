"""`EntraAuth`: the service account's delegated tokens through MSAL.

The service account signs in once (auth-code flow with PKCE); MSAL's `SerializableTokenCache` then
holds its refresh token. The cache lives encrypted in the database (`TokenStore`) and is saved whenever
MSAL changes it, because refresh tokens rotate.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msal
import requests

from app.services.microsoft.errors import AuthError, ConsentRequired, NotConnected, ReconnectRequired

logger = logging.getLogger(__name__)

#: Delegated scopes of the service account (MSAL adds openid, profile and offline_access itself).
SERVICE_SCOPES = [
    "Calendars.ReadWrite",
    "OnlineMeetings.ReadWrite",
    "User.Read",
    "OnlineMeetingArtifact.Read.All",
]
#: Delegated scopes for the meeting's recordings and transcripts after the event (Graph's callRecording and
#: callTranscript: list, get and /content need these and only these, for the meeting's organizer).
#: Requested at connect time; a connection made before they existed lacks them until an admin reconnects.
RECORDING_SCOPES = ["OnlineMeetingRecording.Read.All", "OnlineMeetingTranscript.Read.All"]
#: Everything the connect sign-in asks the admin to consent to.
CONNECT_SCOPES = SERVICE_SCOPES + RECORDING_SCOPES
#: Scopes for staff sign-in: identity only.
SIGN_IN_SCOPES = ["User.Read"]
#: AADSTS65001: the user or administrator has not consented to the scopes asked for.
CONSENT_CODE = 65001
#: invalid_grant codes that mean "a person must sign in again".
RECONNECT_CODES = {50173, 700082, 50078, 50076, 70043, 54005, 70008, 700084}


class TokenStore(Protocol):
    def load(self) -> str | None: ...
    def save(self, serialized: str, *, account: dict[str, Any] | None, expires_at: datetime | None) -> None: ...


@dataclass(frozen=True)
class SignedInAccount:
    username: str
    name: str
    home_account_id: str
    object_id: str
    tenant_id: str
    access_token_expires_at: datetime | None
    #: The scopes the token response says were granted (space-separated in Entra's answer).
    granted_scopes: tuple[str, ...] = ()


class EntraAuth:
    def __init__(self, authority: str, client_id: str, client_secret: str, *, session: requests.Session,
                 timeout: float = 10.0) -> None:
        self.authority = authority.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._session = session
        self.timeout = timeout
        #: Discovery documents cached across app instances (MSAL's own http_cache mapping).
        self._http_cache: dict = {}
        self._lock = threading.Lock()

    def reset_cache(self) -> None:
        """Forget cached discovery documents and MSAL's throttling memory (tests, key changes)."""
        self._http_cache.clear()

    @property
    def is_configured(self) -> bool:
        return bool(self.authority and self.client_id and self._secret)

    def _app(self, cache: msal.TokenCache | None = None) -> msal.ConfidentialClientApplication:
        try:
            return msal.ConfidentialClientApplication(
                self.client_id, client_credential=self._secret, authority=self.authority,
                token_cache=cache, http_client=self._session, instance_discovery=False,
                http_cache=self._http_cache, timeout=self.timeout,
            )
        except (ValueError, requests.RequestException) as exc:
            raise AuthError(f"Could not reach the Entra ID authority: {type(exc).__name__}", transient=True) from exc

    # --- interactive sign-in ----------------------------------------------------------------------

    def initiate_flow(self, redirect_uri: str, *, scopes: list[str], login_hint: str | None = None,
                      prompt: str | None = None) -> dict[str, Any]:
        """Start the auth-code flow; the caller keeps the returned dict (it holds the PKCE verifier)."""
        # form_post keeps the code out of URLs, browser history and logs (MSAL's recommendation); the
        # callback arrives as a cross-site POST without our session cookie, so callers keep the flow
        # server-side by its state (services/accounts/auth_flows.py).
        return self._app().initiate_auth_code_flow(scopes, redirect_uri=redirect_uri, login_hint=login_hint,
                                                   prompt=prompt, response_mode="form_post")

    def complete_flow(self, flow: dict[str, Any], auth_response: dict[str, str],
                      store: TokenStore | None = None) -> SignedInAccount:
        """Redeem the code. With a store, the tokens are kept for the service account."""
        cache = msal.SerializableTokenCache()
        try:
            result = self._app(cache).acquire_token_by_auth_code_flow(flow, auth_response)
        except ValueError as exc:  # state mismatch or missing
            raise AuthError("The sign-in response did not match the request. Please try again.") from exc
        if "error" in result:
            raise AuthError(_describe(result), code=str(result.get("error")))
        claims = result.get("id_token_claims") or {}
        expires_at = datetime.now(UTC) + timedelta(seconds=int(result.get("expires_in") or 0))
        accounts = self._app(cache).get_accounts()
        home = accounts[0]["home_account_id"] if accounts else ""
        account = SignedInAccount(
            username=claims.get("preferred_username") or "", name=claims.get("name") or "",
            home_account_id=home, object_id=claims.get("oid") or "", tenant_id=claims.get("tid") or "",
            access_token_expires_at=expires_at, granted_scopes=_granted(result),
        )
        if store is not None:
            store.save(cache.serialize(), account={"username": account.username, "name": account.name,
                                                   "home_account_id": home}, expires_at=expires_at)
        return account

    # --- silent use -------------------------------------------------------------------------------

    def acquire_token(self, store: TokenStore, *, force_refresh: bool = False,
                      scopes: list[str] | None = None) -> str:
        """An access token for the service account from the stored cache, refreshing as needed.

        `scopes` defaults to SERVICE_SCOPES; recordings ask for RECORDING_SCOPES on top, which only a
        connection that consented to them can get.
        """
        with self._lock:
            state = store.load()
            if not state:
                raise NotConnected("No Microsoft 365 service account is connected.")
            cache = msal.SerializableTokenCache()
            cache.deserialize(state)
            app = self._app(cache)
            accounts = app.get_accounts()
            if not accounts:
                raise NotConnected("The stored Microsoft 365 connection holds no account.")
            try:
                result = app.acquire_token_silent_with_error(scopes or SERVICE_SCOPES, account=accounts[0],
                                                             force_refresh=force_refresh)
            except requests.RequestException as exc:
                raise AuthError(f"Could not reach Entra ID: {type(exc).__name__}", transient=True) from exc
            if result and "access_token" in result:
                if cache.has_state_changed:
                    expires_at = datetime.now(UTC) + timedelta(seconds=int(result.get("expires_in") or 0))
                    store.save(cache.serialize(), account=None, expires_at=expires_at)
                    logger.info("Service-account token refreshed")
                return result["access_token"]
            if not result:
                raise ReconnectRequired("No usable token is cached for the service account.", code="no_token")
            codes = set(result.get("error_codes") or [])
            if scopes and CONSENT_CODE in codes:
                raise ConsentRequired(_describe(result), code=_aadsts(result))
            if result.get("error") == "invalid_grant" or codes & RECONNECT_CODES:
                raise ReconnectRequired(_describe(result), code=_aadsts(result))
            transient = result.get("error") in {"temporarily_unavailable", "server_error"}
            raise AuthError(_describe(result), code=_aadsts(result), transient=transient)


def _granted(result: dict[str, Any]) -> tuple[str, ...]:
    """The granted scopes of a token response (a string, or a list once MSAL has parsed it)."""
    scope = result.get("scope") or ""
    return tuple(scope.split() if isinstance(scope, str) else scope)


def _aadsts(result: dict[str, Any]) -> str:
    codes = result.get("error_codes") or []
    return f"AADSTS{codes[0]}" if codes else str(result.get("error") or "")


def _describe(result: dict[str, Any]) -> str:
    """The error and the first line of its description: never tokens, which MSAL does not echo here."""
    description = (result.get("error_description") or "").splitlines()
    return f"{result.get('error')}: {description[0] if description else ''}".strip(": ")
