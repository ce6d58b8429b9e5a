"""Personal links never reach request logs: the development server's log and gunicorn's access log
(run for real with the repository's gunicorn.conf.py) show `/r/[redacted]`, never the token."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import requests
from werkzeug.serving import make_server

from app.services.crypto import generate_key
from tests.security.gunicorn import gunicorn

TOKEN = "Zx8_k2LmQp4rS6tUv9wXy1zA3bC5dE7fG0hJ2kL4mN6"


def test_development_server_log_redacts_link_tokens(app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for path in (f"/r/{TOKEN}", f"/j/{TOKEN}", f"/registrations/verify/{TOKEN}"):
            requests.get(base + path, timeout=10)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) == 3, lines
    assert all("[redacted]" in line and TOKEN not in line for line in lines), lines


def test_gunicorn_access_log_redacts_link_tokens(repo_root, tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'foyer.db'}", "WEB_CONCURRENCY": "1",
           "SECRET_KEY": "x" * 40, "OUTBOX_DRAIN_AFTER_REQUEST": "0", "ENCRYPTION_KEYS": generate_key()}
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=repo_root, env=env,
                   check=True, capture_output=True)
    with gunicorn(repo_root, env, first_path=f"/r/{TOKEN}?x=1") as served:
        pass
    output = served.output
    access = [line for line in output.splitlines() if "GET /r/" in line]
    assert access and '" 404 ' in access[0], output  # an unknown link: the friendly 404, logged redacted
    assert all("/r/[redacted]" in line for line in access) and TOKEN not in output
