"""The emulator itself: configuration, the well-known credentials, dispatch by host, faults, request log.

One `Emulator` is one WSGI application serving three "hosts":

* Entra ID at `https://login.emulator.invalid/{tenant}` (OIDC discovery, authorize, token, JWKS),
* Graph at `https://graph.emulator.invalid/v1.0`,
* ACS at `https://acs.emulator.invalid/` (identities, email, SMS; HMAC-signed).

Requests are routed by their Host header. When the emulator is reached on an address it does not
know (e.g. `https://127.0.0.1:8443` from `server.py`), it routes by path instead, which works because
the three path spaces are disjoint: `/v1.0/...` and `/beta/...` go to Graph; `/identities`,
`/teamsUser`, `/emails` and `/sms` to ACS; everything else (`/{tenant}/...`) to Entra. So on loopback
all three base URLs share one origin. `/_emulator/...` (inspection and control) answers on every host.

With a `state_path` the emulator keeps its state in a file (persistence.py), so a served emulator
(`flask emulator serve`) survives restarts and every Foyer process sees the same tokens and meetings.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.wrappers import Request, Response

from ._util import Clock, JwtSigner, external_base, new_guid
from .faults import Fault, FaultSet
from .persistence import StateFile

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .acs import AcsService
    from .entra import EntraService
    from .graph import GraphService

logger = logging.getLogger(__name__)

#: Environment variable holding fault rules (see faults.py); read only when an Emulator is built.
FAULTS_ENV = "FOYER_EMULATOR_FAULTS"
#: WSGI environ key set by the in-process transport so faults can raise instead of hanging.
IN_PROCESS_KEY = "foyer.emulator.in_process"

#: A fixed, documented 32-byte ACS access key, so configuration can hard-code the connection string.
WELL_KNOWN_ACS_KEY = base64.b64encode(b"foyer-emulator-acs-access-key-01").decode("ascii")


class EmulatedTimeout(Exception):  # noqa: N818 - mirrors requests' ReadTimeout
    """Raised in-process when a timeout fault fires; the transport turns it into ReadTimeout."""


class EmulatedDrop(Exception):  # noqa: N818
    """Raised in-process when a drop fault fires; the transport turns it into ConnectionError."""


@dataclass(frozen=True)
class EmulatedUser:
    """A user of the emulated tenant who can sign in on the authorize page."""

    upn: str
    display_name: str
    oid: str
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None

    @property
    def mail(self) -> str:
        """Graph's `mail` property; the UPN in this tenant."""
        return self.upn


DEFAULT_USERS: tuple[EmulatedUser, ...] = (
    EmulatedUser(
        "foyer.service@contoso.emulator.invalid",
        "Foyer Service Account",
        "5e1f4d2a-0000-4000-8000-000000000001",
        "Foyer",
        "Service Account",
        "Service account",
    ),
    EmulatedUser(
        "adele.vance@contoso.emulator.invalid", "Adele Vance", "5e1f4d2a-0000-4000-8000-000000000002", "Adele", "Vance"
    ),
    EmulatedUser(
        "megan.bowen@contoso.emulator.invalid", "Megan Bowen", "5e1f4d2a-0000-4000-8000-000000000003", "Megan", "Bowen"
    ),
    EmulatedUser(
        "alex.wilber@contoso.emulator.invalid", "Alex Wilber", "5e1f4d2a-0000-4000-8000-000000000004", "Alex", "Wilber"
    ),
)

#: Graph permissions granted when a client asks for `https://graph.microsoft.com/.default`.
DEFAULT_APP_SCOPES = ("User.Read", "Calendars.ReadWrite", "OnlineMeetings.ReadWrite", "OnlineMeetingArtifact.Read.All")


@dataclass
class EmulatorConfig:
    """Everything tunable about the emulator. The defaults need no configuration at all."""

    # --- identity of the emulated tenant and app registration (well-known, not secret) ---
    tenant_id: str = "c0ffee00-f0e0-4000-8000-000000000001"
    tenant_domain: str = "contoso.emulator.invalid"
    client_id: str = "f0e0c11e-0000-4000-8000-000000000001"
    client_secret: str = "foyer-emulator-client-secret"  # noqa: S105 - a published emulator credential
    #: The app registration's redirect URIs (Foyer's connect and staff sign-in callbacks); an authorize
    #: request naming any other gets AADSTS50011. None (for tests) accepts only http(s) URIs on a
    #: loopback host (localhost, 127.0.0.1, [::1]); never another host or scheme.
    redirect_uris: tuple[str, ...] | None = None
    #: Where browsers reach the authorize page (e.g. `http://localhost:8444`, a plain-HTTP listener that
    #: serves only it, since browsers do not trust the emulator's CA); advertised as
    #: `authorization_endpoint` in discovery. None: the authorize page of the origin that was asked.
    sign_in_base_url: str | None = None
    users: tuple[EmulatedUser, ...] = DEFAULT_USERS
    # --- hosts ---
    login_host: str = "login.emulator.invalid"
    graph_host: str = "graph.emulator.invalid"
    acs_host: str = "acs.emulator.invalid"
    # --- tokens ---
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 90 * 24 * 3600
    #: Entra keeps a redeemed refresh token valid (and issues a new one); set True to model single use.
    single_use_refresh_tokens: bool = False
    auth_code_lifetime: int = 600
    default_app_scopes: tuple[str, ...] = DEFAULT_APP_SCOPES
    # --- graph ---
    #: Check delegated scopes per endpoint (403 when missing).
    enforce_scopes: bool = True
    graph_page_size: int = 10
    graph_max_batch: int = 20
    teams_base_url: str = "https://teams.microsoft.com"
    #: Seconds after creation before `GET /me/onlineMeetings?$filter=JoinWebUrl eq '…'` finds a meeting
    #: (Teams sets a new meeting up asynchronously); in-process tests may set 0 or advance the clock.
    meeting_lookup_delay: float = 3.0
    # --- ACS ---
    acs_access_key: str = WELL_KNOWN_ACS_KEY
    acs_resource_id: str = "ac5e0000-0000-4000-8000-000000000001"
    email_per_minute: int = 30
    email_per_hour: int = 100
    email_max_recipients: int = 50
    email_max_request_bytes: int = 10 * 1024 * 1024
    #: Recipients at these domains (or these exact addresses) make the send operation end `Failed`.
    email_fail_domains: tuple[str, ...] = ("bounce.invalid",)
    email_fail_addresses: tuple[str, ...] = ()
    #: Emails whose bodies and attachments are kept (the newest ones); older ones keep only the envelope.
    mailbox_bodies_kept: int = 200
    #: Status polls before an operation is terminal: NotStarted -> Running -> Succeeded/Failed.
    email_polls_to_complete: int = 2
    #: `retry-after` (int seconds) on the 202 and on non-terminal polls, as the real service sends it.
    #: azure-core treats 0 as "absent" and falls back to the client's polling_interval, which keeps
    #: tests fast; a positive value makes clients wait that long between polls. None leaves it out.
    email_retry_after: int | None = 0
    #: Senders the resource accepts; None accepts any.
    email_allowed_senders: tuple[str, ...] | None = None
    #: Recipients whose delivery report says `Suppressed` (the resource's suppression list); the send
    #: itself succeeds, as on the real service.
    email_suppressed_domains: tuple[str, ...] = ("suppressed.invalid",)
    email_suppressed_addresses: tuple[str, ...] = ()
    sms_fail_numbers: tuple[str, ...] = ()
    #: Accepted SMS whose delivery report says `Failed` (the carrier could not deliver).
    sms_undelivered_numbers: tuple[str, ...] = ()
    #: Post queued delivery reports to the Event Grid subscriptions as soon as they are made (in a
    #: background thread); False leaves them queued until `acs.deliver_reports()` is called.
    auto_deliver_reports: bool = False
    #: Seconds an Event Grid webhook has to answer (the real service waits up to 30).
    event_grid_timeout: float = 30.0
    hmac_max_skew_seconds: int = 15 * 60
    # --- faults and housekeeping ---
    #: Fault rules (faults.py syntax); None means "read FOYER_EMULATOR_FAULTS from the environment".
    faults: str | None = None
    #: How long a network "timeout" fault hangs when the fault gives no duration.
    timeout_fault_seconds: float = 30.0
    max_logged_requests: int = 5000
    max_logged_body_bytes: int = 64 * 1024
    seed: int | None = None


@dataclass(frozen=True)
class EmulatorEndpoints:
    """The three base URLs and the ACS connection string for one way of reaching the emulator."""

    authority: str
    graph_base_url: str
    acs_endpoint: str
    acs_connection_string: str
    login_base_url: str


@dataclass
class RecordedRequest:
    """One request as the emulator received it (Authorization values are truncated)."""

    service: str
    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    body_size: int
    received_at: float
    request_id: str
    status: int | None = None
    faults: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for `/_emulator/requests`."""
        return {
            "service": self.service,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body_size": self.body_size,
            "received_at": self.received_at,
            "request_id": self.request_id,
            "status": self.status,
            "faults": self.faults,
        }


@dataclass
class RequestContext:
    """Per-request facts a service needs beyond the werkzeug Request."""

    request_id: str
    base_url: str
    in_process: bool
    nested: bool = False


class Service(Protocol):
    """What each emulated service (entra, graph, acs) provides to the dispatcher."""

    name: str

    def dispatch(self, request: Request, ctx: RequestContext) -> Response: ...

    def fault_response(self, fault: Fault, ctx: RequestContext) -> Response: ...

    def reset(self) -> None: ...


_ACS_PREFIXES = ("/identities", "/teamsUser", "/emails", "/sms")
_GRAPH_PREFIXES = ("/v1.0/", "/beta/", "/v1.0", "/beta")


class Emulator:
    """A stateful, thread-safe emulator of the Microsoft services Foyer uses.

    Build one per test (cheap) or one per process. Its `wsgi_app` serves every emulated host; use
    `emulator_session()` (transport.py) to reach it in-process, or `EmulatorServer` (server.py) to
    serve it over loopback TLS.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        state_path: str | os.PathLike[str] | None = None,
    ) -> None:
        from .acs import AcsService
        from .entra import EntraService
        from .graph import GraphService
        from .inspection import Inspector

        self.config = config or EmulatorConfig()
        self.clock = Clock()
        #: Guards all service state; handlers hold it only while touching state, never while sleeping.
        self.lock = threading.RLock()
        self.faults = FaultSet(seed=self.config.seed)
        self.requests: deque[RecordedRequest] = deque(maxlen=self.config.max_logged_requests)
        self._stopping = threading.Event()
        self.entra: EntraService = EntraService(self)
        self.graph: GraphService = GraphService(self)
        self.acs: AcsService = AcsService(self)
        self._services: dict[str, Service] = {"entra": self.entra, "graph": self.graph, "acs": self.acs}
        self._inspector = Inspector(self)
        spec = self.config.faults
        if spec is None:
            spec = (os.environ if environ is None else environ).get(FAULTS_ENV, "")
        if spec:
            self.faults.add_spec(spec)
        self.state_file: StateFile | None = None
        if state_path is not None:
            self.state_file = StateFile(self, state_path)
            if not self.state_file.load():
                # A key of its own (not the per-process one), saved at once so tokens verify after a restart.
                self.entra.signer = _fresh_signer()
            self.state_file.save()

    @property
    def services(self) -> dict[str, Service]:
        """The emulated services by name (entra, graph, acs)."""
        return self._services

    def save_state(self) -> None:
        """Write the state file now (no-op without a `state_path`)."""
        if self.state_file is not None:
            self.state_file.save()

    # --- well-known credentials and base URLs (in-process hostnames) ---

    @property
    def tenant_id(self) -> str:
        """Directory (tenant) id of the emulated tenant."""
        return self.config.tenant_id

    @property
    def client_id(self) -> str:
        """Application (client) id of Foyer's app registration."""
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        """Client secret of Foyer's app registration."""
        return self.config.client_secret

    @property
    def service_account_upn(self) -> str:
        """UPN of the service account that owns Foyer's Teams meetings (the first user)."""
        return self.config.users[0].upn

    @property
    def acs_access_key(self) -> str:
        """Base64 ACS access key that every ACS request must be HMAC-signed with."""
        return self.config.acs_access_key

    @property
    def authority(self) -> str:
        """MSAL authority (in-process hostname)."""
        return self.endpoints().authority

    @property
    def graph_base_url(self) -> str:
        """Graph v1.0 base URL (in-process hostname)."""
        return self.endpoints().graph_base_url

    @property
    def acs_endpoint(self) -> str:
        """ACS resource endpoint (in-process hostname)."""
        return self.endpoints().acs_endpoint

    @property
    def acs_connection_string(self) -> str:
        """ACS connection string (in-process hostname)."""
        return self.endpoints().acs_connection_string

    @property
    def hosts(self) -> tuple[str, str, str]:
        """The reserved hostnames served in-process."""
        return (self.config.login_host, self.config.graph_host, self.config.acs_host)

    def endpoints(self, base_url: str | None = None) -> EmulatorEndpoints:
        """Base URLs for reaching the emulator: by hostname (default) or all on one `base_url` origin."""
        if base_url:
            base = base_url.rstrip("/")
            login, graph, acs = base, base, base
        else:
            login = f"https://{self.config.login_host}"
            graph = f"https://{self.config.graph_host}"
            acs = f"https://{self.config.acs_host}"
        return EmulatorEndpoints(
            authority=f"{login}/{self.config.tenant_id}",
            graph_base_url=f"{graph}/v1.0",
            acs_endpoint=f"{acs}/",
            acs_connection_string=f"endpoint={acs}/;accesskey={self.config.acs_access_key}",
            login_base_url=login,
        )

    # --- lifecycle ---

    def reset(self) -> None:
        """Forget all state: tokens, events, meetings, emails, identities, faults, log, clock offset."""
        with self.lock:
            for service in self._services.values():
                service.reset()
            self.faults.clear()
            self.requests.clear()
            self.clock.reset()
        self.save_state()

    def close(self) -> None:
        """Release requests hanging in timeout/latency faults (call before stopping a server)."""
        self._stopping.set()

    def reopen(self) -> None:
        """Undo `close()`, so faults sleep again (e.g. when the emulator outlives one server)."""
        self._stopping.clear()

    def sleep(self, seconds: float) -> None:
        """Sleep for a fault, waking early if the emulator is closed."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # --- WSGI ---

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for every emulated host."""
        request = Request(environ)
        if request.path == "/_emulator" or request.path.startswith("/_emulator/"):
            response = self._inspector.handle(request)
            if request.method != "GET":
                self.save_state()
        else:
            service = self.service_for(request)
            response = self.handle(service, request)
            # Entra's GETs (discovery, keys, the sign-in page) change nothing; every other call may.
            if not (service == "entra" and request.method in ("GET", "HEAD")):
                self.save_state()
        return response(environ, start_response)

    def service_for(self, request: Request) -> str:
        """Which service a request is for: by Host header, else by path (loopback, one port)."""
        host = request.host.split(":", 1)[0].lower()
        by_host = {self.config.login_host: "entra", self.config.graph_host: "graph", self.config.acs_host: "acs"}
        if host in by_host:
            return by_host[host]
        path = request.path
        if any(path == p or path.startswith(p + "/") or path.startswith(p + ":") for p in _ACS_PREFIXES):
            return "acs"
        if any(path == p or path.startswith(p) for p in _GRAPH_PREFIXES):
            return "graph"
        return "entra"

    def handle(self, service_name: str, request: Request, *, nested: bool = False) -> Response:
        """Run one request through the fault layer and its service; records it in `requests`."""
        service = self._services[service_name]
        in_process = bool(request.environ.get(IN_PROCESS_KEY))
        ctx = RequestContext(
            request_id=new_guid(),
            base_url=external_base(request),
            in_process=in_process,
            nested=nested,
        )
        record = self._record(service_name, request, ctx)
        decision = self.faults.decide(service_name, request.method, request.path)
        record.faults = [f.id for f in decision.fired]
        for action in decision.actions:
            self._apply_action(action)
        if decision.latency:
            self.sleep(decision.latency)
        fault = decision.terminal
        if fault is None:
            response = service.dispatch(request, ctx)
        elif fault.kind == "status":
            response = service.fault_response(fault, ctx)
        else:
            response = self._lose_response(service, fault, request, ctx)
        record.status = response.status_code
        return response

    def _lose_response(self, service: Service, fault: Fault, request: Request, ctx: RequestContext) -> Response:
        """Timeout/drop faults: optionally do the work, then make sure the client gets nothing useful."""
        if fault.process:
            service.dispatch(request, ctx)
        if ctx.nested:
            # A $batch item cannot time out on its own; Graph reports it as a gateway timeout.
            return service.fault_response(Fault(kind="status", status=504), ctx)
        if ctx.in_process:
            logger.info("Emulator fault %s: %s %s %s", fault.id, fault.kind, request.method, request.path)
            raise EmulatedTimeout(request.url) if fault.kind == "timeout" else EmulatedDrop(request.url)
        if fault.kind == "drop":
            sock = request.environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return service.fault_response(Fault(kind="status", status=503), ctx)
        self.sleep(fault.latency or self.config.timeout_fault_seconds)
        return service.fault_response(Fault(kind="status", status=504), ctx)

    def _apply_action(self, fault: Fault) -> None:
        if fault.kind == "expire-tokens":
            self.entra.expire_access_tokens()
        elif fault.kind == "revoke-tokens":
            self.entra.revoke_refresh_tokens()

    def _record(self, service_name: str, request: Request, ctx: RequestContext) -> RecordedRequest:
        body = request.get_data(cache=True)
        headers = {key: _redact(key, value) for key, value in request.headers.items()}
        record = RecordedRequest(
            service=service_name,
            method=request.method,
            host=request.host,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            headers=headers,
            body=body[: self.config.max_logged_body_bytes],
            body_size=len(body),
            received_at=self.clock.time(),
            request_id=ctx.request_id,
        )
        self.requests.append(record)
        logger.debug("Emulator %s %s %s%s", service_name, request.method, request.host, request.path)
        return record

    def requests_for(self, service: str | None = None, *, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by service and/or exact path (a convenience for tests)."""
        return [
            r
            for r in list(self.requests)
            if (service is None or r.service == service) and (path is None or r.path == path)
        ]


def _fresh_signer() -> JwtSigner:
    """A signer with a newly generated RSA key."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ._util import b64url

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return JwtSigner((key, b64url(os.urandom(16))))


def _redact(key: str, value: str) -> str:
    """Keep the auth scheme for debugging but never store credentials in the log."""
    if key.lower() in ("authorization", "cookie"):
        scheme = value.split(" ", 1)[0]
        return f"{scheme} <redacted>"
    return value
