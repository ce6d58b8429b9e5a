"""Configuration read from the environment (and `.env` when present).

Nothing here runs at import time: `create_app` instantiates the config class, and only then are
environment variables read. Every variable is documented in README.md with its default.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


_TENANT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _tenant_in(authority: str) -> str:
    """The tenant id in an authority URL's path, or "" when it names a domain, `organizations`, `common` …"""
    segment = authority.rstrip("/").rsplit("/", 1)[-1]
    return segment if _TENANT_ID.match(segment) else ""


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def instance_secret(instance_path: Path, name: str, nbytes: int = 32, *, fernet: bool = False) -> str:
    """Return a secret kept in `instance/<name>`, creating it (mode 0600) on first use."""
    path = instance_path / name
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() if fernet else secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


#: The emulator's default TLS port is the web port plus this (5000 -> 8443; `make run PORT=8080` -> 11523).
EMULATOR_PORT_OFFSET = 3443


def _local_base_url(host: str | None, port: str | None) -> str:
    """Foyer's address when PUBLIC_BASE_URL is not set: where `make run HOST=… PORT=…` serves it."""
    host = host or "localhost"
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - listening everywhere; links still go to this host
        host = "localhost"
    return f"http://{host}:{port or 5000}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Config:
    """Production-capable defaults; every value can be overridden from the environment."""

    TESTING = False

    def __init__(self, instance_path: Path, environ: dict[str, str] | None = None) -> None:
        if environ is None:
            load_dotenv(override=False)
            environ = dict(os.environ)
        env = environ.get
        self.INSTANCE_PATH = instance_path
        #: Which of these came from the environment (the deploy check wants them there, the same on every host).
        self.SET_IN_ENVIRONMENT = {name for name in ("SECRET_KEY", "ENCRYPTION_KEYS", "PUBLIC_BASE_URL") if env(name)}
        self.SECRET_KEY = env("SECRET_KEY") or instance_secret(instance_path, "secret_key")
        self.SQLALCHEMY_DATABASE_URI = env("DATABASE_URL") or f"sqlite:///{instance_path / 'foyer.db'}"
        if self.SQLALCHEMY_DATABASE_URI.startswith("postgres://"):
            self.SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://" + self.SQLALCHEMY_DATABASE_URI[11:]
        elif self.SQLALCHEMY_DATABASE_URI.startswith("postgresql://"):
            self.SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://" + self.SQLALCHEMY_DATABASE_URI[13:]
        self.SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
        self.PUBLIC_BASE_URL = (env("PUBLIC_BASE_URL") or _local_base_url(env("HOST"), env("PORT"))).rstrip("/")
        self.SESSION_COOKIE_SECURE = _bool(env("SESSION_COOKIE_SECURE"), self.PUBLIC_BASE_URL.startswith("https://"))
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        #: A staff session ends this many hours after sign-in, however busy (a copied cookie dies with it).
        self.SESSION_LIFETIME_HOURS = max(1, _int(env("SESSION_LIFETIME_HOURS"), 12))
        self.PERMANENT_SESSION_LIFETIME = timedelta(hours=self.SESSION_LIFETIME_HOURS)
        self.REMEMBER_COOKIE_DURATION = timedelta(hours=self.SESSION_LIFETIME_HOURS)
        self.WTF_CSRF_TIME_LIMIT = _int(env("CSRF_TIME_LIMIT"), 3600 * 8)
        #: Flask-WTF's extra https check wants a same-origin Referer, but staff, manage and join pages send
        #: none (Referrer-Policy: no-referrer keeps personal links out of it), so every form posted from
        #: them would fail. The token and the SameSite=Lax session cookie are the protection.
        self.WTF_CSRF_SSL_STRICT = False
        self.MAX_CONTENT_LENGTH = _int(env("MAX_UPLOAD_MB"), 8) * 1024 * 1024
        self.UPLOAD_FOLDER = Path(env("UPLOAD_FOLDER") or instance_path / "uploads")
        #: Copies of the Teams meetings' recordings and transcripts (see services/after_event/recordings.py).
        self.RECORDING_FOLDER = Path(env("RECORDING_FOLDER") or instance_path / "recordings")
        self.RECORDING_MAX_MB = _int(env("RECORDING_MAX_MB"), 4096)
        #: Foyer's own database by default, so every process shares the counts (app/ratelimit.py).
        self.RATELIMIT_STORAGE_URI = env("RATELIMIT_STORAGE_URI") or "database://"
        self.RATELIMIT_ENABLED = _bool(env("RATELIMIT_ENABLED"), True)
        self.LOGIN_RATE_LIMIT = env("LOGIN_RATE_LIMIT") or "10 per minute;50 per hour"
        self.REGISTRATION_RATE_LIMIT = env("REGISTRATION_RATE_LIMIT") or "20 per minute;200 per hour"
        #: A registration sent back sooner than this after the form was shown is asked to press again.
        self.REGISTRATION_MIN_FILL_SECONDS = float(env("REGISTRATION_MIN_FILL_SECONDS") or 3)
        #: Compression only where a view asks for it (`compress.compressed()`): static files and public
        #: pages that echo nothing from the request. A response that carries a CSRF or call token *and*
        #: echoes input (forms with errors, filtered lists, JSON) is never compressed (BREACH).
        self.COMPRESS_REGISTER = False
        self.COMPRESS_MIMETYPES = ["text/html", "text/css", "text/javascript", "application/javascript"]
        #: How long a web process reuses an anonymous event page it rendered (0 turns reuse off).
        self.PUBLIC_PAGE_CACHE_SECONDS = float(env("PUBLIC_PAGE_CACHE_SECONDS") or 1)
        #: How long a process keeps the settings it read (branding, languages, the email quota…; 0: never).
        self.SETTINGS_CACHE_SECONDS = float(env("SETTINGS_CACHE_SECONDS") or 2)
        #: Join-session requests (ACS token issuance) per client address.
        self.JOIN_SESSION_RATE_LIMIT = env("JOIN_SESSION_RATE_LIMIT") or "10 per minute;60 per hour"
        #: Questions an attendee may ask beside the call, per join link (not per address: a whole office
        #: may share one), and upvotes and poll votes per join link.
        self.LIVE_QUESTION_RATE_LIMIT = env("LIVE_QUESTION_RATE_LIMIT") or "5 per minute;40 per hour"
        self.LIVE_VOTE_RATE_LIMIT = env("LIVE_VOTE_RATE_LIMIT") or "60 per minute"
        #: How often the Q&A and poll panels beside the call, and the moderation page, ask for news.
        self.LIVE_POLL_SECONDS = min(max(_int(env("LIVE_POLL_SECONDS"), 10), 2), 120)
        #: Event Grid posts one request per delivery report; a large send's reports come in a burst.
        self.ACS_WEBHOOK_RATE_LIMIT = env("ACS_WEBHOOK_RATE_LIMIT") or "1200 per minute"
        #: REST API calls per token (per client address without one).
        self.API_RATE_LIMIT = env("API_RATE_LIMIT") or "120 per minute;3000 per hour"
        #: REST API calls per client address, whatever token they carry (guessing tokens included).
        self.API_ADDRESS_RATE_LIMIT = env("API_ADDRESS_RATE_LIMIT") or "600 per minute"
        #: How long Foyer waits for a webhook receiver to connect and to answer (seconds each).
        self.WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS") or 10)
        #: Accept plain http:// webhook endpoints on loopback addresses (local development and tests).
        #: Off by default: endpoints must be https:// on a public host.
        self.WEBHOOK_ALLOW_HTTP_LOOPBACK = _bool(env("WEBHOOK_ALLOW_HTTP_LOOPBACK"), False)
        #: Lifetime of an attendee's ACS token in minutes (ACS allows 60–1440; never longer than the event needs).
        self.JOIN_TOKEN_MINUTES = max(60, min(1440, _int(env("JOIN_TOKEN_MINUTES"), 60)))
        self.PROXY_FIX_HOPS = _int(env("PROXY_FIX_HOPS"), 0)
        self.PASSWORD_MIN_LENGTH = _int(env("PASSWORD_MIN_LENGTH"), 10)
        self.LOG_LEVEL = env("LOG_LEVEL") or "INFO"
        self.ARGON2_TIME_COST = _int(env("ARGON2_TIME_COST"), 3)
        self.ARGON2_MEMORY_KIB = _int(env("ARGON2_MEMORY_KIB"), 65536)
        self.ARGON2_PARALLELISM = _int(env("ARGON2_PARALLELISM"), 4)
        self.OUTBOX_POLL_SECONDS = float(env("OUTBOX_POLL_SECONDS") or 5)
        self.OUTBOX_BATCH = _int(env("OUTBOX_BATCH"), 50)
        #: Recipients an organizer message (or an event-changed/cancelled notice) queues per committed
        #: transaction: the SQLite write lock is held for one batch at a time, not the whole send.
        self.BROADCAST_BATCH_SIZE = max(1, _int(env("BROADCAST_BATCH_SIZE"), 100))
        #: How long a worker's claim on an item lasts; a worker that dies mid-job leaves its items to
        #: be taken over once the lease has run out.
        self.OUTBOX_LEASE_SECONDS = float(env("OUTBOX_LEASE_SECONDS") or 300)
        #: Also perform queued work right after each request that queued some (handy for a single
        #: `flask run`; production runs `flask worker` and may turn this off).
        self.OUTBOX_DRAIN_AFTER_REQUEST = _bool(env("OUTBOX_DRAIN_AFTER_REQUEST"), True)
        #: How often the worker looks for due reminders.
        self.REMINDER_SWEEP_SECONDS = float(env("REMINDER_SWEEP_SECONDS") or 60)
        #: Languages attendees may choose (codes with a catalog in app/translations, English always there),
        #: and the default below: the first choice, until an admin saves one (Admin → Languages).
        self.LANGUAGES = [c.strip() for c in (env("LANGUAGES") or "en,de").split(",") if c.strip()] or ["en"]
        #: The language when a visitor's browser asks for none of them (and of registrations made before languages).
        self.DEFAULT_LANGUAGE = (env("DEFAULT_LANGUAGE") or "en").strip()
        if self.DEFAULT_LANGUAGE not in self.LANGUAGES:
            self.LANGUAGES.insert(0, self.DEFAULT_LANGUAGE)
        self._microsoft(env)
        #: The secret Event Grid's webhook deliveries (ACS delivery reports) must carry; default: one
        #: generated in instance/ (set it in the environment when several hosts serve Foyer).
        self.ACS_WEBHOOK_SECRET = env("ACS_WEBHOOK_SECRET") or instance_secret(instance_path, "acs_webhook_secret")
        #: Fernet keys for secrets at rest, newest first; default: one generated in instance/.
        keys = env("ENCRYPTION_KEYS") or instance_secret(instance_path, "encryption_key", fernet=True)
        self.ENCRYPTION_KEYS = [k.strip() for k in keys.split(",") if k.strip()]


    def _microsoft(self, env) -> None:
        """Microsoft endpoints and credentials. The defaults are Foyer's built-in emulator, served by
        `flask emulator serve` on loopback TLS (its well-known, non-secret credentials and its CA in
        instance/emulator/), so Foyer runs with no Azure account; real values switch to Microsoft with
        no code change.
        """
        from app.services.microsoft import builtin  # noqa: PLC0415 — the emulator is loaded only when it is used

        #: The emulator's TLS port (Entra, Graph, ACS) and, one above it, its browser sign-in page.
        self.EMULATOR_PORT = _int(env("EMULATOR_PORT"), _int(env("PORT"), 5000) + EMULATOR_PORT_OFFSET)
        self.EMULATOR_SIGN_IN_PORT = self.EMULATOR_PORT + 1
        self.EMULATOR_DIR = self.INSTANCE_PATH / "emulator"
        #: True when no Microsoft endpoint is configured: the built-in emulator service is used.
        endpoints = ("ENTRA_AUTHORITY", "GRAPH_BASE_URL", "ACS_CONNECTION_STRING")
        self.MICROSOFT_EMULATED = not any(env(n) for n in endpoints)
        local = builtin.served_at(f"https://127.0.0.1:{self.EMULATOR_PORT}")
        self.ENTRA_AUTHORITY = (env("ENTRA_AUTHORITY") or local.authority).rstrip("/")
        self.ENTRA_CLIENT_ID = env("ENTRA_CLIENT_ID") or local.client_id
        self.ENTRA_CLIENT_SECRET = env("ENTRA_CLIENT_SECRET") or local.client_secret
        #: The tenant whose staff may use "Sign in with Microsoft": configured, else the authority's when its
        #: path is a tenant id; an authority by domain name or `organizations` names none, and the
        #: connected service account's id token (`tid`) decides (services/accounts/sso.py).
        self.ENTRA_TENANT_ID = (env("ENTRA_TENANT_ID") or _tenant_in(self.ENTRA_AUTHORITY)).lower()
        self.GRAPH_BASE_URL = (env("GRAPH_BASE_URL") or local.graph_base_url).rstrip("/")
        self.ACS_CONNECTION_STRING = env("ACS_CONNECTION_STRING") or local.acs_connection_string
        #: Where a person's browser signs in: the authority, or the emulator's sign-in page (another
        #: origin); the connect and sign-in pages allow their forms to go there (CSP form-action).
        self.MICROSOFT_SIGN_IN_ORIGIN = (
            f"http://localhost:{self.EMULATOR_SIGN_IN_PORT}" if self.MICROSOFT_EMULATED
            else _origin(self.ENTRA_AUTHORITY)
        )
        self.ACS_SENDER_ADDRESS = env("ACS_SENDER_ADDRESS") or builtin.SENDER_ADDRESS
        self.ACS_SMS_SENDER = env("ACS_SMS_SENDER") or ""
        #: A CA bundle for Microsoft endpoints (e.g. an emulator served over TLS with a private CA).
        self.MICROSOFT_CA_BUNDLE = env("MICROSOFT_CA_BUNDLE") or (
            str(self.EMULATOR_DIR / "emulator-ca.pem") if self.MICROSOFT_EMULATED else ""
        )
        self.MICROSOFT_TIMEOUT = float(env("MICROSOFT_TIMEOUT") or 10)
        #: Seconds after a send before the email operation's final status is read from ACS.
        self.ACS_STATUS_POLL_SECONDS = float(env("ACS_STATUS_POLL_SECONDS") or 30)
        #: Fault rules for the built-in emulator (see emulator/README.md); ignored for real Microsoft.
        self.FOYER_EMULATOR_FAULTS = env("FOYER_EMULATOR_FAULTS") or ""


class TestConfig(Config):
    """Settings for the test suite: a database chosen by the fixture, fast password hashing."""

    TESTING = True
    __test__ = False  # a config, not a pytest test class

    def __init__(self, instance_path: Path, environ: dict[str, str] | None = None) -> None:
        super().__init__(instance_path, environ if environ is not None else {})
        self.SQLALCHEMY_DATABASE_URI = "sqlite://"
        # Limits stay on (so throttling is testable) but are generous; a test lowers one as needed.
        self.LOGIN_RATE_LIMIT = "1000 per minute"
        self.REGISTRATION_RATE_LIMIT = "1000 per minute"
        # Tests post forms at once; the minimum fill time has its own tests that turn it on.
        self.REGISTRATION_MIN_FILL_SECONDS = 0
        self.JOIN_SESSION_RATE_LIMIT = "1000 per minute"
        self.LIVE_QUESTION_RATE_LIMIT = "1000 per minute"
        self.LIVE_VOTE_RATE_LIMIT = "1000 per minute"
        self.PUBLIC_BASE_URL = "http://localhost"
        # Cheap hashing keeps hundreds of sign-ins fast; the production profile is asserted separately.
        self.ARGON2_TIME_COST = 1
        self.ARGON2_MEMORY_KIB = 1024
        self.ARGON2_PARALLELISM = 1
        self.ACS_STATUS_POLL_SECONDS = 0.0
        # Tests drain the outbox explicitly (as the worker would), so each step is observable.
        self.OUTBOX_DRAIN_AFTER_REQUEST = False
        if self.MICROSOFT_EMULATED:
            # An emulator inside each test app, reached through a transport adapter (no sockets).
            from app.services.microsoft import builtin  # noqa: PLC0415 — the emulator is loaded only when it is used

            local = builtin.in_process()
            self.ENTRA_AUTHORITY = local.authority
            self.ENTRA_TENANT_ID = local.tenant_id
            self.GRAPH_BASE_URL = local.graph_base_url
            self.ACS_CONNECTION_STRING = local.acs_connection_string
            self.MICROSOFT_CA_BUNDLE = ""
            self.MICROSOFT_SIGN_IN_ORIGIN = ""


#: Values that show up in tutorials and .env templates; a real deployment never uses one.
WELL_KNOWN_SECRETS = {"dev", "development", "secret", "changeme", "change-me", "please-change-me", "secret-key",
                      "your-secret-key", "foyer", "test", "testing"}


def deploy_problems(config, *, debug: bool) -> tuple[list[str], list[str]]:
    """What stands between this configuration and a safe production deployment.

    Returns (problems, warnings): problems make `flask foyer deploy-check` fail; warnings are advice.
    """
    problems: list[str] = []
    warnings: list[str] = []
    if debug or config.get("DEBUG"):
        problems.append("Debug mode is on (FLASK_DEBUG): it exposes an interactive debugger. Turn it off.")
    if config.get("TESTING"):
        problems.append("The test configuration is loaded.")
    secret = str(config.get("SECRET_KEY") or "")
    from_env = config.get("SET_IN_ENVIRONMENT", set())
    if "SECRET_KEY" not in from_env:
        problems.append("SECRET_KEY is not set: set a long random value (the same on every host).")
    elif secret.lower() in WELL_KNOWN_SECRETS or len(secret) < 32:
        problems.append("SECRET_KEY is a default or too short: use at least 32 random characters.")
    if "ENCRYPTION_KEYS" not in from_env:
        problems.append("ENCRYPTION_KEYS is not set: generate one with `flask foyer rotate-key --print-new-key`.")
    base_url = str(config.get("PUBLIC_BASE_URL") or "")
    if "PUBLIC_BASE_URL" not in from_env:
        problems.append("PUBLIC_BASE_URL is not set: emails and calendar invites need Foyer's public address.")
    elif not base_url.startswith("https://"):
        problems.append(f"PUBLIC_BASE_URL ({base_url}) is not https: attendees' links would travel in the clear.")
    if not config.get("SESSION_COOKIE_SECURE") or not config.get("REMEMBER_COOKIE_SECURE"):
        problems.append("Cookies are not marked Secure: serve Foyer over https (SESSION_COOKIE_SECURE).")
    if not config.get("SESSION_COOKIE_HTTPONLY") or config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        problems.append("The session cookie must be HttpOnly with SameSite=Lax or Strict.")
    if not config.get("RATELIMIT_ENABLED", True):
        problems.append("Rate limits are turned off (RATELIMIT_ENABLED).")
    if str(config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite"):
        warnings.append("The database is SQLite: fine for one host; use PostgreSQL to run several web hosts.")
    if str(config.get("RATELIMIT_STORAGE_URI", "")).startswith("memory://"):
        warnings.append("Rate limits are counted per process (memory://): with several processes set "
                        "RATELIMIT_STORAGE_URI to shared storage such as redis://.")
    if config.get("OUTBOX_DRAIN_AFTER_REQUEST"):
        warnings.append("Web processes also do queued Microsoft work after each response "
                        "(OUTBOX_DRAIN_AFTER_REQUEST): a slow or refusing Microsoft then ties them up. Set it "
                        "to false and run one `flask worker`.")
    from app.services.microsoft import builtin  # noqa: PLC0415 — the emulator is loaded only when it is used

    if builtin.answers_for(config):
        warnings.append("Microsoft is emulated: no Teams meetings are created and no email is delivered.")
    return problems, warnings
