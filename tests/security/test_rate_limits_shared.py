"""Rate limits hold across processes: gunicorn with three workers on one database lets exactly the
configured number of sign-in attempts through, whichever worker takes each request (a per-process
counter would let up to three times as many through). On both databases."""

from __future__ import annotations

import os
import re
import time

import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import RateLimitCounter
from app.services.core.crypto import generate_key
from tests.security.gunicorn import gunicorn

LIMIT = 5
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def test_login_limit_is_shared_by_every_worker_process(app, database_url, repo_root, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "WEB_CONCURRENCY": "3", "SECRET_KEY": "s" * 40,
           "ENCRYPTION_KEYS": generate_key(), "OUTBOX_DRAIN_AFTER_REQUEST": "0",
           "LOGIN_RATE_LIMIT": f"{LIMIT} per minute", "LOG_LEVEL": "WARNING"}
    statuses = []
    with gunicorn(repo_root, env, first_path="/login") as served:
        base = served.base_url
        time.sleep(1)  # let every worker finish booting, so requests spread over all three
        for i in range(4 * LIMIT):
            with requests.Session() as http:
                token = CSRF.search(http.get(f"{base}/login", timeout=10).text).group(1)
                # A different address each time, so only the per-client limit applies.
                answer = http.post(f"{base}/login", timeout=10, allow_redirects=False, data={
                    "csrf_token": token, "email": f"nobody{i}@example.org", "password": "not the password"})
                statuses.append(answer.status_code)
    output = served.output
    assert set(statuses) <= {422, 429}, output
    assert statuses.count(422) == LIMIT and statuses[:LIMIT] == [422] * LIMIT, statuses
    if database_url.startswith("postgresql"):
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(RateLimitCounter)) >= 1
