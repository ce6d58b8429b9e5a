"""A real webhook receiver for tests: a threaded HTTP server on 127.0.0.1 that records every POST,
answers with scripted statuses, verifies signatures the way docs/api.md tells receivers to, and
processes each delivery id once (the idempotency receivers are asked to implement).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    #: Statuses to answer with, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)
    #: Delivery ids already processed (a second POST of one is acknowledged and ignored).
    processed: list[str] = field(default_factory=list)
    #: When set, the handler signals `got_request` and holds its answer until `release` is set.
    hold: bool = False
    got_request: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


def verify(secret: str, received: Received, *, tolerance: int = 300) -> bool:
    """A receiver's check, written from the documentation (not Foyer's code)."""
    parts = dict(p.split("=", 1) for p in received.headers["Foyer-Signature"].split(","))
    timestamp = int(parts["t"])
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def start(path: str = "/hooks/foyer") -> tuple[Receiver, ThreadingHTTPServer]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = Received({k: v for k, v in self.headers.items()}, body)
            with receiver.lock:
                receiver.received.append(got)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                delivery = got.headers.get("Foyer-Delivery-Id", "")
                if 200 <= status < 300 and delivery not in receiver.processed:
                    receiver.processed.append(delivery)
            if receiver.hold:
                receiver.got_request.set()
                receiver.release.wait(30)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
