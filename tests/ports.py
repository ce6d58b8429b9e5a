"""Free TCP ports for servers a test starts in another process (or binds by number later).

A port found by binding to port 0 comes from the kernel's ephemeral range, which every outgoing
connection on the machine also draws from (database connections, browsers, load generators, other test
workers): between the test finding it and the server binding it, a connection elsewhere can take it
("Address already in use"). So ports are picked at random below that range, where only listeners live,
and checked free. A server the test runs in its own process binds port 0 itself and needs none of this.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: Linux's default when /proc does not say; the ephemeral range starts here.
EPHEMERAL_START = 32768
LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_START


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, pair: bool = False) -> int:
    """A free port below the ephemeral range (with `pair`, its successor is free too)."""
    highest = max(LOWEST + 100, _ephemeral_start() - 2)
    pick = random.SystemRandom()
    for _ in range(500):
        port = pick.randint(LOWEST, highest)
        if _bindable(port) and (not pair or _bindable(port + 1)):
            return port
    raise RuntimeError("no free port below the ephemeral range")
