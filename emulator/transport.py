"""In-process transport: a requests adapter that hands each request to the emulator's WSGI app.

Mount it on a `requests.Session` and give that session to MSAL (`http_client=`), to the ACS SDKs
(`transport=RequestsTransport(session=...)`) and to Foyer's Graph client. Nothing touches a socket, and
only the emulator's reserved hostnames are mounted, so any other URL still goes to the network (where
the test tripwire catches it).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse
from werkzeug.test import Client

from .core import IN_PROCESS_KEY, EmulatedDrop, EmulatedTimeout

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger(__name__)


class EmulatorAdapter(BaseAdapter):
    """Serve `requests` calls from the emulator's WSGI app instead of the network."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__()
        self.emulator = emulator

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Run the request through the WSGI app and build a `requests.Response` from the result."""
        url = request.url or ""
        body = _body_bytes(request.body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "host")}
        parts = urlsplit(url)
        client = Client(self.emulator.wsgi_app, use_cookies=False)
        try:
            result = client.open(
                parts.path or "/",
                base_url=f"{parts.scheme}://{parts.netloc}",
                query_string=parts.query,
                method=request.method or "GET",
                headers=headers,
                data=body,
                environ_overrides={
                    IN_PROCESS_KEY: True,
                    # The HMAC check needs the target as sent, still percent-encoded.
                    "REQUEST_URI": request.path_url,
                    "RAW_URI": request.path_url,
                },
                buffered=True,
            )
        except EmulatedTimeout as exc:
            raise requests.exceptions.ReadTimeout(f"Read timed out (emulated) for {url}", request=request) from exc
        except EmulatedDrop as exc:
            raise requests.exceptions.ConnectionError(
                f"Connection aborted (emulated drop) for {url}", request=request
            ) from exc
        data = result.get_data()
        result.close()
        return self._build_response(request, result.status_code, result.headers.items(), data, stream=stream)

    def _build_response(
        self,
        request: requests.PreparedRequest,
        status: int,
        header_items: Iterable[tuple[str, str]],
        data: bytes,
        *,
        stream: bool,
    ) -> requests.Response:
        header_list = list(header_items)
        raw = HTTPResponse(
            body=io.BytesIO(data),
            headers=header_list,
            status=status,
            preload_content=False,
            decode_content=False,
            request_url=request.url,
        )
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.raw = raw
        response.reason = raw.reason or _REASONS.get(status, "")
        response.url = request.url or ""
        response.request = request
        response.encoding = get_encoding_from_headers(response.headers)
        response.connection = self
        if not stream:
            _ = response.content  # read now, like HTTPAdapter does for non-streamed responses
        return response

    def close(self) -> None:
        """Nothing to release; present for the adapter interface."""


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else chunk for chunk in body)


def mount_emulator(session: requests.Session, emulator: Emulator) -> requests.Session:
    """Mount the emulator's hostnames on an existing session; returns the session."""
    adapter = EmulatorAdapter(emulator)
    for host in emulator.hosts:
        # The trailing slash keeps e.g. https://graph.emulator.invalid.example.com on the network adapter.
        session.mount(f"https://{host}/", adapter)
    return session


def emulator_session(emulator: Emulator) -> requests.Session:
    """A new `requests.Session` that serves the emulator's hostnames in-process."""
    return mount_emulator(requests.Session(), emulator)
