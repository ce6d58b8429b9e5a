"""Entra ID (Azure AD v2.0 endpoints): OIDC discovery, JWKS, authorize page, token endpoint.

Follows microsoft.md D: MSAL needs https endpoints with a tenant path segment, an id_token echoing
the (already hashed) nonce, and `client_info` = base64url {"uid","utid"}. Refresh tokens are not
single-use (as in Entra; configurable) and every redemption issues a new one. Revoking a user sets
their "tokens valid from" time, after which older refresh tokens fail with AADSTS50173.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ._util import b64url, b64url_json, iso_utc, json_response, new_guid
from .core import EmulatedUser, RequestContext
from .faults import Fault

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger(__name__)

#: The Graph resource's application id, used as the access token audience (as Entra does).
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_GRAPH_PREFIXES = ("https://graph.microsoft.com/", "https://graph.emulator.invalid/", GRAPH_APP_ID + "/")


@dataclass
class AuthCode:
    """An authorization code waiting to be redeemed."""

    code: str
    client_id: str
    redirect_uri: str
    user_oid: str
    scopes: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float
    redeemed: bool = False


@dataclass
class RefreshTokenRecord:
    """A refresh token and the consent behind it."""

    token: str
    client_id: str
    user_oid: str
    scopes: frozenset[str]
    issued_at: float
    redeemed: bool = False


@dataclass
class AccessTokenRecord:
    """An access token for Graph; Graph trusts this registry rather than the JWT signature."""

    token: str
    client_id: str
    user_oid: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_AUTO_SUBMIT = "document.forms[0].submit()"
_AUTO_SUBMIT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_AUTO_SUBMIT.encode()).digest()).decode()


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _with_page_headers(response: Response, *, form_action: str = "'none'", script: str | None = None) -> Response:
    """The strict policy of every page the emulator shows a browser: nothing loads, no framing."""
    policy = f"default-src 'none'; base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
    if script:
        policy += f"; script-src {script}"
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def graph_scope(scope: str) -> str | None:
    """Normalise a requested scope to Graph's short form ("Calendars.ReadWrite"); None if reserved."""
    value = scope.strip()
    if not value or value.lower() in RESERVED_SCOPES:
        return None
    for prefix in _GRAPH_PREFIXES:
        if value.lower().startswith(prefix.lower()):
            return value[len(prefix) :]
    return value


class OAuthError(Exception):
    """An OAuth2 error response from the token endpoint, with Entra's AADSTS decoration."""

    def __init__(self, error: str, code: int, message: str, *, status: int = 400, suberror: str | None = None) -> None:
        super().__init__(message)
        self.error, self.code, self.message, self.status, self.suberror = error, code, message, status, suberror


class EntraService:
    """The Entra ID endpoints and token state. Access it as `emulator.entra`."""

    name = "entra"

    def __init__(self, emulator: Emulator) -> None:
        from ._util import JwtSigner

        self._emulator = emulator
        self.config = emulator.config
        self.signer = JwtSigner()
        self.users: dict[str, EmulatedUser] = {u.oid: u for u in self.config.users}
        self._url_map = _url_map()
        self.reset()

    def reset(self) -> None:
        """Forget codes, tokens, consents and revocations."""
        self.auth_codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshTokenRecord] = {}
        self.access_tokens: dict[str, AccessTokenRecord] = {}
        #: user oid -> scopes consented per client id
        self.consents: dict[tuple[str, str], set[str]] = {}
        #: user oid -> epoch seconds; refresh tokens issued before this are revoked (AADSTS50173)
        self.tokens_valid_from: dict[str, float] = {}
        #: user oid -> number of interactive sign-ins (the authorize page's POST)
        self.sign_ins: list[dict[str, Any]] = []

    # --- Python control API ---

    def user(self, who: str) -> EmulatedUser:
        """Find a user by oid or UPN (case-insensitive); KeyError if unknown."""
        if who in self.users:
            return self.users[who]
        for user in self.users.values():
            if user.upn.lower() == who.lower():
                return user
        raise KeyError(who)

    def revoke_refresh_tokens(self, user: str | None = None) -> None:
        """Revoke the refresh tokens of one user (oid or UPN) or of every user (AADSTS50173 after)."""
        with self._emulator.lock:
            now = self._emulator.clock.time()
            targets = [self.user(user)] if user else list(self.users.values())
            for target in targets:
                self.tokens_valid_from[target.oid] = now
        logger.info("Emulator revoked refresh tokens for %s", user or "all users")

    def expire_access_tokens(self, user: str | None = None) -> None:
        """Make every current access token (of one user, or all) expired, so Graph answers 401."""
        with self._emulator.lock:
            now = self._emulator.clock.time()
            oid = self.user(user).oid if user else None
            for record in self.access_tokens.values():
                if oid is None or record.user_oid == oid:
                    record.expires_at = min(record.expires_at, now - 1)

    def issue_access_token(self, user: str, scopes: list[str], *, lifetime: int | None = None) -> str:
        """Mint a Graph access token directly (for seeding Foyer state in tests; bypasses OAuth)."""
        with self._emulator.lock:
            return self._new_access_token(self.user(user), self.config.client_id, scopes, lifetime=lifetime)[0]

    def lookup_access_token(self, token: str) -> AccessTokenRecord | None:
        """The registry entry for a bearer token, or None."""
        with self._emulator.lock:
            return self.access_tokens.get(token)

    # --- WSGI dispatch ---

    def dispatch(self, request: Request, ctx: RequestContext) -> Response:
        """Route an Entra request."""
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except (NotFound, MethodNotAllowed) as exc:
            return self._oauth_error_response(
                OAuthError(
                    "invalid_request", 900561, "The endpoint only accepts POST or GET requests.", status=exc.code or 404
                ),
                ctx,
            )
        except HTTPException as exc:  # pragma: no cover - routing redirects are disabled by our rules
            return exc.get_response()
        tenant = args["tenant"]
        if not self._known_tenant(tenant):
            return self._oauth_error_response(
                OAuthError(
                    "invalid_tenant",
                    90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the "
                    "correct tenant ID and are signing into the correct cloud.",
                ),
                ctx,
            )
        handler = getattr(self, f"_{endpoint}")
        return handler(request, ctx, tenant)

    def fault_response(self, fault: Fault, ctx: RequestContext) -> Response:
        """An injected error in Entra's OAuth error format."""
        status = int(fault.status)
        error = fault.code or ("temporarily_unavailable" if status in (429, 503, 504) else "server_error")
        aadsts = {429: 50196, 503: 90033, 504: 90033}.get(status, 90100)
        response = self._oauth_error_response(
            OAuthError(error, aadsts, "The service is temporarily unavailable (emulated fault).", status=status), ctx
        )
        if fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        return response

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {
            self.config.tenant_id.lower(),
            self.config.tenant_domain.lower(),
            "common",
            "organizations",
        }

    # --- endpoints ---

    def _discovery(self, request: Request, ctx: RequestContext, tenant: str) -> Response:
        # MSAL refuses non-https endpoints, so always advertise https (see microsoft.md D.6).
        base = "https://" + request.host
        tid = self.config.tenant_id
        doc = {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"https://{self.config.graph_host}/oidc/userinfo",
            "authorization_endpoint": f"{self.sign_in_base(base)}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/{tenant}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "emulator.invalid",
            "cloud_graph_host_name": self.config.graph_host,
            "msgraph_host": self.config.graph_host,
        }
        return json_response(doc)

    def _jwks(self, request: Request, ctx: RequestContext, tenant: str) -> Response:
        return json_response(self.signer.jwks())

    def _logout(self, request: Request, ctx: RequestContext, tenant: str) -> Response:
        target = request.values.get("post_logout_redirect_uri")
        # Only back to the app's own origins: anything else would make this an open redirect.
        if target and (self.redirect_uri_registered(target) or _origin(target) in self._registered_origins()):
            return Response(status=302, headers={"Location": target})
        return _with_page_headers(Response(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Signed out</title>"
            "<p>You have signed out (Microsoft emulator).</p>",
            content_type="text/html; charset=utf-8",
        ))

    # --- authorize ---

    def sign_in_base(self, base: str) -> str:
        """The origin browsers use for the authorize page: the sign-in listener when there is one."""
        return (self.config.sign_in_base_url or base).rstrip("/")

    def redirect_uri_registered(self, uri: str) -> bool:
        """Is `uri` one of the app registration's redirect URIs (see EmulatorConfig.redirect_uris)?"""
        if self.config.redirect_uris is not None:
            return uri in self.config.redirect_uris
        try:
            parts = urlsplit(uri)
            host = parts.hostname
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and host in _LOOPBACK_HOSTS and not parts.fragment

    def _registered_origins(self) -> set[str]:
        return {_origin(u) for u in self.config.redirect_uris or ()}

    def _form_action_origins(self) -> list[str]:
        """The origins of the registered redirect URIs (CSP form-action of the sign-in page)."""
        uris = self.config.redirect_uris
        if uris is None:
            return ["http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*"]
        return sorted({_origin(u) for u in uris})

    def _authorize(self, request: Request, ctx: RequestContext, tenant: str) -> Response:
        params = request.form if request.method == "POST" else request.args
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id != self.config.client_id:
            return self._error_page(
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
                f"'{self.config.tenant_domain}'."
            )
        if not redirect_uri:
            return self._error_page(
                "AADSTS900144: The request body must contain the following parameter: 'redirect_uri'."
            )
        if not self.redirect_uri_registered(redirect_uri):
            return self._error_page(
                f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'."
            )
        response_mode = params.get("response_mode", "query")
        state = params.get("state")

        def fail(error: str, description: str) -> Response:
            return self._auth_response(
                redirect_uri, response_mode, {"error": error, "error_description": description, "state": state}
            )

        if params.get("response_type") != "code":
            return fail(
                "unsupported_response_type",
                "AADSTS70005: response_type 'token' is not enabled for the "
                "application. Only 'code' is supported by the Foyer emulator.",
            )
        if not params.get("scope"):
            return fail(
                "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'scope'."
            )
        method = params.get("code_challenge_method")
        if params.get("code_challenge") and (method or "plain") not in ("S256", "plain"):
            return fail("invalid_request", "AADSTS501491: Invalid size of Code_Challenge parameter.")
        if params.get("prompt") == "none":
            return fail("login_required", "AADSTS50058: A silent sign-in request was sent but no user is signed in.")
        if request.method == "GET":
            return self._sign_in_page(request, params)
        if params.get("action") == "cancel":
            return fail("access_denied", "AADSTS65004: User declined to consent to access the app.")
        try:
            user = self.user(params.get("user", ""))
        except KeyError:
            return self._sign_in_page(request, params, error="Choose an account.")
        scopes = params.get("scope", "").split()
        now = self._emulator.clock.time()
        code = "1.A" + secrets.token_urlsafe(48)
        with self._emulator.lock:
            self.auth_codes[code] = AuthCode(
                code=code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                user_oid=user.oid,
                scopes=scopes,
                nonce=params.get("nonce"),
                code_challenge=params.get("code_challenge"),
                code_challenge_method=method or ("plain" if params.get("code_challenge") else None),
                issued_at=now,
            )
            consented = self.consents.setdefault((user.oid, client_id), set())
            consented.update(s for s in (graph_scope(x) for x in scopes) if s)
            self.sign_ins.append({"user": user.upn, "client_id": client_id, "scopes": scopes, "at": now})
        logger.info("Emulator sign-in by %s for client %s", user.upn, client_id)
        return self._auth_response(
            redirect_uri, response_mode, {"code": code, "state": state, "session_state": new_guid()}
        )

    def _auth_response(self, redirect_uri: str, response_mode: str, values: dict[str, str | None]) -> Response:
        # Only ever reached with a registered redirect URI (checked first in _authorize).
        values = {k: v for k, v in values.items() if v is not None}
        if response_mode == "form_post":
            inputs = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in values.items()
            )
            page = (
                "<!doctype html><html lang=en><head><meta charset=utf-8><title>Working...</title></head><body>"
                f'<form method="POST" name="hiddenform" action="{html.escape(redirect_uri)}">{inputs}'
                "<noscript><p>Script is disabled. Click Submit to continue.</p></noscript>"
                '<input type="submit" value="Submit"></form>'
                f"<script>{_AUTO_SUBMIT}</script></body></html>"
            )
            # As Entra does, the page submits itself; the CSP allows exactly that script and that target.
            return _with_page_headers(
                Response(page, content_type="text/html; charset=utf-8"),
                form_action=f"{_origin(redirect_uri)}",
                script=f"'{_AUTO_SUBMIT_HASH}'",
            )
        separator = "#" if response_mode == "fragment" else ("&" if "?" in redirect_uri else "?")
        return Response(status=302, headers={"Location": redirect_uri + separator + urlencode(values)})

    def _sign_in_page(self, request: Request, params: Any, *, error: str | None = None) -> Response:
        hint = (params.get("login_hint") or "").lower()
        users = sorted(self.users.values(), key=lambda u: (u.upn.lower() != hint, 0))
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items(multi=True)
            if k not in ("user", "action")
        )
        buttons = "".join(
            f'<li><button type="submit" name="user" value="{html.escape(u.oid)}">'
            f"Sign in as {html.escape(u.display_name)} &lt;{html.escape(u.upn)}&gt; and accept</button></li>"
            for u in users
        )
        scopes = html.escape(params.get("scope", ""))
        notice = f'<p role="alert">{html.escape(error)}</p>' if error else ""
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Sign in to your account "
            "(Microsoft emulator)</title></head><body>"
            "<h1>Sign in (Microsoft emulator)</h1>"
            "<p>This is Foyer's offline Microsoft emulator, not Microsoft. Pick an emulated account; signing in "
            f"also consents to: <code>{scopes}</code></p>{notice}"
            f'<form method="post" action="{html.escape(request.script_root + request.path)}">{hidden}<ul>{buttons}</ul>'
            '<button type="submit" name="action" value="cancel">Cancel</button></form></body></html>'
        )
        response = Response(page, content_type="text/html; charset=utf-8")
        return _with_page_headers(response, form_action=" ".join(["'self'", *self._form_action_origins()]))

    def _error_page(self, message: str) -> Response:
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Sign in error (Microsoft emulator)"
            f"</title></head><body><h1>Sorry, but we're having trouble signing you in.</h1><p>{html.escape(message)}"
            "</p></body></html>"
        )
        return _with_page_headers(Response(page, status=400, content_type="text/html; charset=utf-8"))

    # --- token ---

    def _token(self, request: Request, ctx: RequestContext, tenant: str) -> Response:
        try:
            return json_response(
                self._redeem(request), headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
            )
        except OAuthError as exc:
            return self._oauth_error_response(exc, ctx)

    def _client_credentials(self, request: Request) -> tuple[str, str | None]:
        form = request.form
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id = client_id or (auth.username or "")
            secret = secret or auth.password
        return client_id, secret

    def _redeem(self, request: Request) -> dict[str, Any]:
        form = request.form
        client_id, secret = self._client_credentials(request)
        if client_id != self.config.client_id:
            raise OAuthError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found "
                f"in the directory '{self.config.tenant_domain}'.",
            )
        if secret is None:
            raise OAuthError(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                status=401,
            )
        if not hmac.compare_digest(secret.encode(), self.config.client_secret.encode()):
            raise OAuthError(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID, for a secret added "
                f"to app '{client_id}'.",
                status=401,
            )
        grant_type = form.get("grant_type")
        with self._emulator.lock:
            if grant_type == "authorization_code":
                return self._redeem_code(form, client_id)
            if grant_type == "refresh_token":
                return self._redeem_refresh_token(form, client_id)
        raise OAuthError(
            "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )

    def _redeem_code(self, form: Any, client_id: str) -> dict[str, Any]:
        now = self._emulator.clock.time()
        record = self.auth_codes.get(form.get("code", ""))
        if record is None:
            raise OAuthError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if record.redeemed:
            raise OAuthError(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry "
                "with a new valid code or use an existing refresh token.",
            )
        if now - record.issued_at > self.config.auth_code_lifetime:
            raise OAuthError(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired "
                "due to inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if record.client_id != client_id:
            raise OAuthError(
                "invalid_grant", 70000, "The provided authorization code was issued to a different client."
            )
        if form.get("redirect_uri") != record.redirect_uri:
            raise OAuthError(
                "invalid_grant",
                70000,
                "The provided value for the input parameter 'redirect_uri' is "
                "not valid. It must match the redirect_uri used in the authorization request.",
            )
        if record.code_challenge:
            verifier = form.get("code_verifier", "")
            if record.code_challenge_method == "S256":
                expected = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
            else:
                expected = verifier
            if not verifier or not hmac.compare_digest(expected, record.code_challenge):
                raise OAuthError(
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                )
        record.redeemed = True
        user = self.users[record.user_oid]
        return self._token_response(
            user, client_id, record.scopes, nonce=record.nonce, client_info=form.get("client_info") == "1"
        )

    def _redeem_refresh_token(self, form: Any, client_id: str) -> dict[str, Any]:
        now = self._emulator.clock.time()
        record = self.refresh_tokens.get(form.get("refresh_token", ""))
        if record is None:
            raise OAuthError(
                "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.", suberror="bad_token"
            )
        if record.client_id != client_id:
            raise OAuthError("invalid_grant", 70000, "Provided grant is invalid or malformed.", suberror="bad_token")
        valid_from = self.tokens_valid_from.get(record.user_oid)
        if valid_from is not None and record.issued_at <= valid_from:
            issued = iso_utc(_dt(record.issued_at), fraction_digits=0)
            since = iso_utc(_dt(valid_from), fraction_digits=0)
            raise OAuthError(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh "
                "auth token is needed. The user might have changed or reset their password. The grant was "
                f"issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) "
                f"for this user is '{since}'.",
                suberror="bad_token",
            )
        if now - record.issued_at > self.config.refresh_token_lifetime:
            raise OAuthError(
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was "
                f"issued on {iso_utc(_dt(record.issued_at))} and was inactive for "
                f"{self.config.refresh_token_lifetime // 86400}.00:00:00.",
                suberror="bad_token",
            )
        if record.redeemed and self.config.single_use_refresh_tokens:
            raise OAuthError(
                "invalid_grant", 70000, "The refresh token has already been redeemed.", suberror="bad_token"
            )
        requested = form.get("scope", "").split()
        wanted = {s.lower() for s in (graph_scope(x) for x in requested) if s}
        if ".default" in wanted:
            wanted = {s.lower() for s in record.scopes}
        if not wanted <= {s.lower() for s in record.scopes}:
            raise OAuthError(
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the "
                f"application with ID '{client_id}'. Send an interactive authorization request for this "
                "user and resource.",
                suberror="consent_required",
            )
        record.redeemed = True
        user = self.users[record.user_oid]
        return self._token_response(
            user, client_id, requested, nonce=None, client_info=form.get("client_info") == "1", consented=record.scopes
        )

    def _token_response(
        self,
        user: EmulatedUser,
        client_id: str,
        requested: list[str],
        *,
        nonce: str | None,
        client_info: bool,
        consented: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        lowered = {s.lower() for s in requested}
        access_token, expires_in, granted = self._new_access_token(user, client_id, requested)
        result: dict[str, Any] = {
            "token_type": "Bearer",
            # Echo the requested (non-reserved) scopes, so MSAL's cache finds the token again silently.
            "scope": " ".join(s for s in requested if s.lower() not in ("openid", "profile", "offline_access")),
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        }
        if "offline_access" in lowered:
            token = "1.A" + secrets.token_urlsafe(64)
            self.refresh_tokens[token] = RefreshTokenRecord(
                token=token,
                client_id=client_id,
                user_oid=user.oid,
                scopes=frozenset(consented or granted),
                issued_at=self._emulator.clock.time(),
            )
            result["refresh_token"] = token
        if "openid" in lowered:
            result["id_token"] = self._id_token(user, client_id, nonce, email="email" in lowered)
        if client_info:
            result["client_info"] = b64url_json({"uid": user.oid, "utid": self.config.tenant_id})
        return result

    def _new_access_token(
        self, user: EmulatedUser, client_id: str, requested: list[str], *, lifetime: int | None = None
    ) -> tuple[str, int, frozenset[str]]:
        granted: set[str] = set()
        for scope in requested:
            short = graph_scope(scope)
            if short is None:
                continue
            if short.lower() == ".default":
                granted.update(self.config.default_app_scopes)
            else:
                granted.add(short)
        now = self._emulator.clock.time()
        lifetime = self.config.access_token_lifetime if lifetime is None else lifetime
        claims = {
            "aud": GRAPH_APP_ID,
            "iss": f"https://sts.emulator.invalid/{self.config.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + lifetime),
            "app_displayname": "Foyer",
            "appid": client_id,
            "name": user.display_name,
            "oid": user.oid,
            "scp": " ".join(sorted(granted)),
            "sub": b64url(hashlib.sha256(f"{user.oid}:{client_id}".encode()).digest()[:24]),
            "tid": self.config.tenant_id,
            "unique_name": user.upn,
            "upn": user.upn,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        token = self.signer.sign(claims)
        self.access_tokens[token] = AccessTokenRecord(
            token=token,
            client_id=client_id,
            user_oid=user.oid,
            scopes=frozenset(granted),
            issued_at=now,
            expires_at=now + lifetime,
        )
        return token, lifetime, frozenset(granted)

    def _id_token(self, user: EmulatedUser, client_id: str, nonce: str | None, *, email: bool) -> str:
        now = int(self._emulator.clock.time())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": f"https://{self.config.login_host}/{self.config.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.display_name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "sub": b64url(hashlib.sha256(f"{user.oid}:{client_id}:sub".encode()).digest()[:24]),
            "tid": self.config.tenant_id,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if nonce:
            # MSAL sends sha256(nonce) and compares the claim with that hash, so echo it verbatim.
            claims["nonce"] = nonce
        if email:
            claims["email"] = user.mail
        return self.signer.sign(claims)

    def _oauth_error_response(self, exc: OAuthError, ctx: RequestContext) -> Response:
        now = self._emulator.clock.now()
        trace_id, correlation_id = new_guid(), new_guid()
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        body: dict[str, Any] = {
            "error": exc.error,
            "error_description": f"AADSTS{exc.code}: {exc.message} Trace ID: {trace_id} Correlation ID: "
            f"{correlation_id} Timestamp: {timestamp}",
            "error_codes": [exc.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://{self.config.login_host}/error?code={exc.code}",
        }
        if exc.suberror:
            body["suberror"] = exc.suberror
        return json_response(body, status=exc.status, headers={"Cache-Control": "no-store, no-cache"})


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@functools.cache
def _url_map() -> Map:
    """The routing table, compiled once per process (werkzeug compiles each rule, ~0.1 s per map)."""
    return Map(
        [
            Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="discovery", methods=["GET"]),
            Rule("/<tenant>/discovery/v2.0/keys", endpoint="jwks", methods=["GET"]),
            Rule("/<tenant>/oauth2/v2.0/authorize", endpoint="authorize", methods=["GET", "POST"]),
            Rule("/<tenant>/oauth2/v2.0/token", endpoint="token", methods=["POST"]),
            Rule("/<tenant>/oauth2/v2.0/logout", endpoint="logout", methods=["GET", "POST"]),
        ]
    )
