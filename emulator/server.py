"""Serve an emulator on 127.0.0.1 over TLS with a private CA, in background threads.

All three services share one origin (`https://127.0.0.1:<port>`) and are told apart by path (see
core.py). The ACS SDKs insist on https, and MSAL insists on https authorities, hence TLS. Point
`REQUESTS_CA_BUNDLE` (or Foyer's MICROSOFT_CA_BUNDLE) at `server.ca_bundle_path`.

With `ca_dir` the CA (`emulator-ca.pem` and its key `emulator-ca.key`, mode 0600) is made once and
reused, so clients keep trusting the emulator across restarts; without it the CA is thrown away.

With `sign_in_port` a second, plain-HTTP listener on `localhost` serves only the authorize page (GET
and its form POST) to browsers, which cannot trust the private CA: the cross-origin hop a person
makes to Entra. Everything else (Graph, ACS, tokens, `/_emulator`) is only on the TLS listener.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

from .core import Emulator, EmulatorEndpoints

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Log requests at debug level through our logger instead of werkzeug's INFO access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s %s", self.command, self.path, code)

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("emulator server: " + format, *args)


CA_FILE = "emulator-ca.pem"
CA_KEY_FILE = "emulator-ca.key"


def _load_or_create_ca(directory: Path):  # noqa: ANN202 - trustme.CA, imported lazily
    """The CA kept in `directory`, made on first use (its key readable only by this user)."""
    import trustme

    cert_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
    if cert_path.exists() and key_path.exists():
        return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Foyer Microsoft emulator")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(ca.private_key_pem.bytes())
    ca.cert_pem.write_to_path(str(cert_path))
    return ca


class SignInApp:
    """The sign-in listener's WSGI app: the authorize page and its form POST, nothing else (404)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        parts = path.split("/")
        # /{tenant}/oauth2/v2.0/authorize
        if len(parts) == 5 and parts[0] == "" and parts[2:] == ["oauth2", "v2.0", "authorize"] and environ.get(
            "REQUEST_METHOD"
        ) in ("GET", "POST"):
            return self.emulator.wsgi_app(environ, start_response)
        response = Response("Not Found", status=404, content_type="text/plain; charset=utf-8")
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        return response(environ, start_response)


class EmulatorServer:
    """A TLS server for one emulator; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca_dir: str | os.PathLike[str] | None = None,
        sign_in_port: int | None = None,
    ) -> None:
        self.emulator = emulator or Emulator()
        self.host = host
        self._requested_port = port
        self._ca_dir = Path(ca_dir) if ca_dir else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._requested_sign_in_port = sign_in_port
        self._sign_in_server: BaseWSGIServer | None = None
        self._sign_in_thread: threading.Thread | None = None
        self.ca_bundle_path: str = ""

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.server_port

    @property
    def base_url(self) -> str:
        """`https://127.0.0.1:<port>`: the one origin serving Entra, Graph and ACS."""
        return f"https://{self.host}:{self.port}"

    @property
    def endpoints(self) -> EmulatorEndpoints:
        """Authority, Graph base URL and ACS endpoint/connection string for this server."""
        return self.emulator.endpoints(self.base_url)

    def start(self) -> EmulatorServer:
        """Create the CA and certificate, bind, and serve in a daemon thread."""
        if self._server is not None:
            return self
        directory = self._ca_dir
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="foyer-emulator-ca-")
            directory = Path(self._tempdir.name)
        ca = _load_or_create_ca(directory)
        cert = ca.issue_cert(self.host, "localhost", *self.emulator.hosts)
        self.ca_bundle_path = str(directory / CA_FILE)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._server = make_server(
            self.host,
            self._requested_port,
            self.emulator.wsgi_app,
            threaded=True,
            ssl_context=context,
            request_handler=_QuietHandler,
        )
        server = self._server
        # A short poll interval keeps stop() fast (werkzeug's default is 0.5 s per shutdown).
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), name="foyer-emulator", daemon=True
        )
        self._thread.start()
        if self._requested_sign_in_port is not None:
            self._start_sign_in()
        logger.info("Microsoft emulator serving on %s (CA bundle %s)", self.base_url, self.ca_bundle_path)
        return self

    def _start_sign_in(self) -> None:
        self._sign_in_server = make_server(
            self.host,
            self._requested_sign_in_port or 0,
            SignInApp(self.emulator),
            threaded=True,
            request_handler=_QuietHandler,
        )
        server = self._sign_in_server
        self._sign_in_thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), name="foyer-emulator-sign-in", daemon=True
        )
        self._sign_in_thread.start()
        if self.emulator.config.sign_in_base_url is None:
            self.emulator.config.sign_in_base_url = self.sign_in_base_url
        logger.info("Microsoft emulator sign-in page on %s", self.sign_in_base_url)

    @property
    def sign_in_base_url(self) -> str:
        """`http://localhost:<port>` of the sign-in listener (after start with `sign_in_port`)."""
        if self._sign_in_server is None:
            raise RuntimeError("no sign-in listener")
        return f"http://localhost:{self._sign_in_server.server_port}"

    def stop(self) -> None:
        """Stop serving, release hanging fault sleeps, and remove the temporary CA."""
        if self._server is None:
            return
        self.emulator.close()
        if self._sign_in_server is not None:
            self._sign_in_server.shutdown()
            self._sign_in_server.server_close()
            if self._sign_in_thread is not None:
                self._sign_in_thread.join(timeout=5)
            self._sign_in_server = None
            self._sign_in_thread = None
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self.emulator.reopen()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
