"""Serve the repository's app with its own gunicorn.conf.py on a free loopback port, for tests that
need real worker processes or gunicorn's own access log."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.ports import free_port


@dataclass
class Served:
    base_url: str
    #: Everything gunicorn printed (access and error log), filled in when it has stopped.
    output: str = ""


@contextmanager
def gunicorn(repo_root: Path, env: dict[str, str], *, first_path: str = "/") -> Iterator[Served]:
    """Start gunicorn with `env`, wait until `first_path` answers (that request is made once), stop it after."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=repo_root,
                               env={**env, "FOYER_BIND": f"127.0.0.1:{port}"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(served.base_url + first_path, timeout=30)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline and process.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
        yield served
    finally:
        process.terminate()
        served.output = process.communicate(timeout=30)[0]
