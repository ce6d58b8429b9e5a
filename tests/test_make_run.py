"""`make run` as people type it, where a test can run it quickly: refusing ports that are taken.

The journey through a running `make run` is tests/browser/test_make_run_journey.py (its three processes
started as the Makefile starts them)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT,  # noqa: S603, S607
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def set_up() -> None:
    if shutil.which("make") is None or _make("-q", "setup").returncode != 0:
        pytest.skip("make run's set-up (virtualenv, npm, the call bundle) is not done in this checkout")


@pytest.mark.parametrize("taken", ["web", "emulator", "sign-in page"])
def test_make_run_refuses_a_taken_port_and_starts_nothing(set_up, taken):
    web, emulator = free_port(), free_port(pair=True)
    busy = {"web": web, "emulator": emulator, "sign-in page": emulator + 1}[taken]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy))
        listener.listen()
        done = _make("run", "HOST=127.0.0.1", f"PORT={web}", f"EMULATOR_PORT={emulator}")
    assert done.returncode != 0
    assert f"Port {busy} on 127.0.0.1 is already in use: is Foyer already running?" in done.stderr
    assert "Foyer is running" not in done.stdout
    for port in (web, emulator, emulator + 1):  # nothing was started
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port
