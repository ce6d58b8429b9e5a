"""The production configuration (not the test one) over https: cookie flags, HSTS, a fresh session at
sign-in, and rate limits that count the real client behind a proxy but cannot be dodged without one."""

from __future__ import annotations

import re

import pytest

from app import create_app
from app.config import Config
from app.extensions import db
from app.models import Role
from app.schema import migrate_to_latest
from app.services.accounts import accounts
from app.services.core.crypto import generate_key

BASE = "https://events.example.org"
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _production_app(tmp_path, **environ: str):
    app = create_app(Config, instance_path=tmp_path / "instance", environ={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'foyer.db'}", "SECRET_KEY": "p" * 24 + "Zq8v7wX2pL0sN4mB9cD1eF3g",
        "ENCRYPTION_KEYS": generate_key(), "PUBLIC_BASE_URL": BASE, **environ})
    migrate_to_latest(app)
    with app.app_context():
        accounts.create_user("org@example.org", role=Role.organizer, password=PASSWORD, name="Org")
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def production(tmp_path):
    yield from _production_app(tmp_path)


def _login(client, password: str = PASSWORD, headers: dict | None = None, email: str = "org@example.org"):
    """Sign in as a browser does from the sign-in page, which sends no Referer (no-referrer policy)."""
    page = client.get("/login", base_url=BASE, headers=headers or {})
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    return client.post("/login", base_url=BASE, headers=headers or {},
                       data={"csrf_token": token, "email": email, "password": password})


def test_session_cookie_is_secure_httponly_lax_and_hsts_is_on(production):
    response = production.test_client().get("/login", base_url=BASE)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(production.config["SESSION_COOKIE_NAME"] + "=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_signing_in_starts_a_fresh_session(production):
    client = production.test_client()
    client.get("/login", base_url=BASE)
    with client.session_transaction(base_url=BASE) as session:
        session["planted"] = "by someone who set this browser's cookie"  # session fixation attempt
        before = dict(session)
    assert _login(client).status_code == 303
    with client.session_transaction(base_url=BASE) as session:
        after = dict(session)
    assert "planted" not in after and "_user_id" in after
    assert after.get("csrf_token") != before.get("csrf_token")
    client.post("/logout", base_url=BASE, data={"csrf_token": CSRF.search(
        client.get("/manage/events/", base_url=BASE).get_data(as_text=True)).group(1)})
    with client.session_transaction(base_url=BASE) as session:
        assert "_user_id" not in session


def test_behind_a_proxy_limits_count_each_real_client(tmp_path):
    for app in _production_app(tmp_path, PROXY_FIX_HOPS="1", LOGIN_RATE_LIMIT="2 per minute"):
        client = app.test_client()
        first = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        assert [_login(client, "wrong password", first).status_code for _ in range(3)] == [422, 422, 429]
        other = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"}
        assert _login(client, "wrong password", other, email="someone@example.org").status_code == 422
        # Another client is not held back by the first one's guesses at the same account.
        assert _login(client, "wrong password", other).status_code == 422


def test_without_a_proxy_a_forged_forwarded_header_does_not_dodge_the_limit(tmp_path):
    for app in _production_app(tmp_path, LOGIN_RATE_LIMIT="2 per minute"):
        client = app.test_client()
        codes = [_login(client, "wrong password", {"X-Forwarded-For": f"203.0.113.{n}"},
                        email=f"guess{n}@example.org").status_code for n in range(3)]
        assert codes == [422, 422, 429]
