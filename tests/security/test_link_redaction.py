"""Personal links never reach request logs: the development server's log and gunicorn's access log
(run for real with the repository's gunicorn.conf.py) show `/r/[redacted]`, never the token."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading

import pytest
import requests
from werkzeug.serving import make_server

from app.logs import redact_links
from app.services.core.crypto import generate_key
from tests.security.gunicorn import gunicorn

TOKEN = "Zx8_k2LmQp4rS6tUv9wXy1zA3bC5dE7fG0hJ2kL4mN6"


@pytest.mark.db_agnostic
def test_development_server_log_redacts_link_tokens(app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for path in (f"/r/{TOKEN}", f"/j/{TOKEN}", f"/registrations/verify/{TOKEN}", f"/invitation/{TOKEN}"):
            requests.get(base + path, timeout=10)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) == 4, lines
    assert all("[redacted]" in line and TOKEN not in line for line in lines), lines


def test_gunicorn_access_log_redacts_link_tokens(repo_root, tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'foyer.db'}", "WEB_CONCURRENCY": "1",
           "SECRET_KEY": "x" * 40, "OUTBOX_DRAIN_AFTER_REQUEST": "0", "ENCRYPTION_KEYS": generate_key()}
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=repo_root, env=env,
                   check=True, capture_output=True)
    with gunicorn(repo_root, env, first_path=f"/r/{TOKEN}?x=1") as served:
        # A page reached from a personal link names it in the Referer header, which the log also prints.
        requests.get(f"{served.base_url}/robots.txt", timeout=30,
                     headers={"Referer": f"{served.base_url}/j/{TOKEN}"})
    output = served.output
    access = [line for line in output.splitlines() if "GET /r/" in line]
    assert access and '" 404 ' in access[0], output  # an unknown link: the friendly 404, logged redacted
    assert all("/r/[redacted]" in line for line in access) and TOKEN not in output
    referred = [line for line in output.splitlines() if "GET /robots.txt" in line]
    assert referred and "/j/[redacted]" in referred[0], output


def _sample_path(rule: str) -> str:
    """The rule with every token argument filled with TOKEN and every other argument with a plain value."""
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", lambda m: TOKEN if "token" in m.group(1) else "7", rule)


@pytest.mark.db_agnostic
def test_every_token_bearing_route_is_redacted(app):
    token_rules = [rule.rule for rule in app.url_map.iter_rules()
                   if any("token" in argument for argument in rule.arguments)]
    assert any(rule.startswith("/invitation/") for rule in token_rules)  # the walk finds the staff links
    for rule in token_rules:
        line = f'127.0.0.1 - - "GET {_sample_path(rule)}?next=/x HTTP/1.1" 200'
        cleaned = redact_links(line)
        assert TOKEN not in cleaned and "[redacted]" in cleaned, (rule, cleaned)


def test_query_string_tokens_and_invitation_links_are_redacted():
    assert redact_links(f"/invitation/{TOKEN}") == "/invitation/[redacted]"
    assert TOKEN not in redact_links(f"GET /somewhere?token={TOKEN}&a=1")
    assert redact_links("/events/spring-meetup") == "/events/spring-meetup"  # ordinary paths are left alone
