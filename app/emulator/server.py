"""Serve an emulator on 127.0.0.1 over TLS with a throwaway CA, in a background thread.

All three services share one origin (`https://127.0.0.1:<port>`) and are told apart by path (see
core.py). The ACS SDKs insist on https, and MSAL insists on https authorities, hence TLS. Point
`REQUESTS_CA_BUNDLE` at `server.ca_bundle_path`: on this machine that variable is set globally and
it overrides `verify=` inside MSAL and requests.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .core import Emulator, EmulatorEndpoints

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Log requests at debug level through our logger instead of werkzeug's INFO access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s %s", self.command, self.path, code)

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("emulator server: " + format, *args)


class EmulatorServer:
    """A TLS server for one emulator; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.emulator = emulator or Emulator()
        self.host = host
        self._requested_port = port
        self._ca_dir = Path(ca_dir) if ca_dir else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
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
        # trustme is a development dependency (requirements-dev.txt); Foyer's runtime imports the
        # emulator package without ever serving it over TLS, so import it only here.
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost", *self.emulator.hosts)
        directory = self._ca_dir
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="foyer-emulator-ca-")
            directory = Path(self._tempdir.name)
        directory.mkdir(parents=True, exist_ok=True)
        bundle = directory / "emulator-ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        self.ca_bundle_path = str(bundle)
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
        logger.info("Microsoft emulator serving on %s (CA bundle %s)", self.base_url, self.ca_bundle_path)
        return self

    def stop(self) -> None:
        """Stop serving, release hanging fault sleeps, and remove the temporary CA."""
        if self._server is None:
            return
        self.emulator.close()
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
