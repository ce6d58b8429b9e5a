"""Small helpers shared by the emulator's services: clock, ids, JSON responses, JWT signing."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.wrappers import Request, Response

logger = logging.getLogger(__name__)


class Clock:
    """Wall-clock time with an adjustable offset, so tests can age tokens and quota windows.

    Only the emulator reads this clock; client libraries (MSAL, azure-core) keep using real time.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """Seconds since the epoch, including any offset added by `advance`."""
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        """The current (possibly advanced) time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    @property
    def offset(self) -> float:
        """Seconds added by `advance` so far."""
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's notion of time forward (e.g. to expire tokens)."""
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        """Forget any offset."""
        with self._lock:
            self._offset = 0.0


def new_guid() -> str:
    """A random GUID in Microsoft's lower-case 8-4-4-4-12 form."""
    return str(uuid.uuid4())


def b64url(data: bytes) -> str:
    """Padding-less base64url, as JWTs and MSAL's client_info use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    """Base64url of compact JSON."""
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def iso_utc(moment: datetime, *, fraction_digits: int = 7, suffix: str = "Z") -> str:
    """Format an aware datetime as UTC ISO-8601 with Microsoft's 7-digit fractions (or none)."""
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction_digits:
        base += "." + f"{moment.microsecond:06d}0"[:fraction_digits]
    return base + suffix


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, *, content_type: str | None = None
) -> Response:
    """A JSON response; `body=None` gives an empty body (e.g. 202/204)."""
    data = b"" if body is None else json.dumps(body).encode("utf-8")
    response = Response(data, status=status)
    if body is not None:
        response.headers["Content-Type"] = content_type or "application/json; charset=utf-8"
    elif "Content-Type" in response.headers:
        del response.headers["Content-Type"]
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def read_json(request: Request) -> tuple[Any, str | None]:
    """Parse the request body as JSON; returns (value, None) or (None, error message)."""
    raw = request.get_data(cache=True)
    if not raw:
        return None, None
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"Unable to read JSON request payload: {exc}"


def external_base(request: Request, *, force_https: bool = False) -> str:
    """The base URL the client used to reach us (scheme + Host header), without a trailing slash.

    Links the emulator hands out (nextLink, Operation-Location, discovery endpoints) are built from
    this so they work both in-process (`https://graph.emulator.invalid`) and over loopback TLS.
    """
    scheme = "https" if force_https else request.scheme
    return f"{scheme}://{request.host}"


_KEY_LOCK = threading.Lock()
_KEY: tuple[rsa.RSAPrivateKey, str] | None = None


def _process_signing_key() -> tuple[rsa.RSAPrivateKey, str]:
    """One RSA key per process, made on first use: generating 2048-bit keys costs ~0.3 s each."""
    global _KEY
    with _KEY_LOCK:
        if _KEY is None:
            _KEY = (rsa.generate_private_key(public_exponent=65537, key_size=2048), b64url(uuid.uuid4().bytes))
        return _KEY


class JwtSigner:
    """Signs RS256 JWTs with a throwaway RSA key and publishes the matching JWKS.

    MSAL does not verify id_token signatures, but Foyer's "sign in with Microsoft" may; real keys
    keep that path honest without any network access.
    """

    def __init__(self, key: tuple[rsa.RSAPrivateKey, str] | None = None) -> None:
        self._key, self.kid = key or _process_signing_key()

    def to_pem(self) -> tuple[bytes, str]:
        """The private key (PKCS#8 PEM) and key id, so a served emulator keeps its key across restarts."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return pem, self.kid

    @classmethod
    def from_pem(cls, pem: bytes, kid: str) -> JwtSigner:
        """A signer with a key saved by `to_pem`."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA key")
        return cls((key, kid))

    def sign(self, claims: dict[str, Any]) -> str:
        """Return a compact RS256 JWT for `claims`."""
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode("ascii") + "." + b64url(signature)

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK Set."""
        numbers = self._key.public_key().public_numbers()

        def _int(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _int(numbers.n),
                    "e": _int(numbers.e),
                }
            ]
        }


def decode_jwt_claims(token: str) -> dict[str, Any] | None:
    """Decode a JWT's payload without verifying it (the emulator trusts its own registry instead)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        value = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError):
        return None
    return value if isinstance(value, dict) else None
