import logging
import time

import pytest

from app.extensions import db
from app.models import Role, Setting, User
from app.services.accounts import setup_code as setup_codes
from tests.first_run import setup_code


@pytest.mark.db_agnostic
def test_first_visit_goes_to_setup(client):
    response = client.get("/login")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/setup")


def test_setup_creates_first_admin_and_signs_in(client, app):
    response = client.submit("/setup", {"setup_code": setup_code(app), "name": "Ada", "email": "Ada@Example.org",
                                        "password": "a long secret pw", "confirm": "a long secret pw"})
    assert response.status_code == 303
    assert client.get("/manage/events/").status_code == 200
    with app.app_context():
        admin = db.session.query(User).one()
        assert admin.email == "ada@example.org" and admin.role == Role.admin
        assert admin.password_hash.startswith("$argon2id$")


@pytest.mark.db_agnostic
def test_setup_is_gone_once_a_user_exists(client, make_user):
    make_user("someone@example.org")
    assert client.get("/setup").status_code == 404
    response = client.post("/setup", data={"email": "evil@example.org", "password": "x" * 12, "confirm": "x" * 12})
    assert response.status_code in (400, 404)


@pytest.mark.db_agnostic
def test_setup_rejects_short_password_with_field_error(client, app):
    response = client.submit("/setup", {"setup_code": setup_code(app), "email": "ada@example.org",
                                        "password": "short", "confirm": "short"})
    assert response.status_code == 422
    assert "Use at least 10 characters." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(User).count() == 0


@pytest.mark.db_agnostic
def test_login_with_wrong_password_says_so_without_revealing_account(client, make_user):
    make_user("org@example.org")
    for email in ("org@example.org", "nobody@example.org"):
        response = client.submit("/login", {"email": email, "password": "wrong password"})
        assert response.status_code == 422
        assert "do not match an active account" in response.get_data(as_text=True)


@pytest.mark.db_agnostic
def test_deactivated_user_cannot_sign_in(client, make_user):
    make_user("gone@example.org", active=False)
    response = client.submit("/login", {"email": "gone@example.org", "password": "correct horse battery"})
    assert response.status_code == 422


@pytest.mark.db_agnostic
def test_login_redirects_only_to_local_next(client, make_user):
    make_user("org@example.org")
    response = client.submit("/login", {"email": "org@example.org", "password": "correct horse battery",
                                        "next": "//evil.example/steal"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/manage/events/"


@pytest.mark.db_agnostic
def test_post_without_csrf_token_is_refused_kindly(client, make_user):
    make_user("org@example.org")
    response = client.post("/login", data={"email": "org@example.org", "password": "correct horse battery"})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_password_change_ends_other_sessions(app, client, auth):
    auth.login_as_organizer()
    other = app.test_client()
    other.__class__ = client.__class__
    signed_in = other.submit("/login", {"email": "organizer@example.org", "password": "correct horse battery"})
    assert signed_in.status_code == 303
    response = client.submit("/account/password", {"current_password": "correct horse battery",
                                                   "password": "another long pw", "confirm": "another long pw"})
    assert response.status_code == 303
    assert client.get("/manage/events/").status_code == 200
    assert other.get("/manage/events/").status_code == 302


@pytest.mark.db_agnostic
def test_password_change_with_wrong_current_password_shows_field_error(client, auth):
    auth.login_as_organizer()
    response = client.submit("/account/password", {"current_password": "nope nope nope",
                                                   "password": "another long pw", "confirm": "another long pw"})
    assert response.status_code == 422
    assert "That is not your current password." in response.get_data(as_text=True)


def test_logout_ends_session(client, auth):
    auth.login_as_organizer()
    assert auth.logout().status_code == 303
    assert client.get("/manage/events/").status_code == 302


@pytest.mark.db_agnostic
def test_anonymous_is_sent_to_login_from_manage_pages(client, make_user):
    make_user("x@example.org")
    response = client.get("/manage/events/")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_login_is_throttled_per_client(app, client, make_user, monkeypatch):
    make_user("org@example.org")
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "3 per minute")
    codes = [client.submit("/login", {"email": "org@example.org", "password": "wrong password"}).status_code
             for _ in range(4)]
    assert codes == [422, 422, 422, 429]
    page = client.submit("/login", {"email": "org@example.org", "password": "correct horse battery"})
    assert page.status_code == 429
    assert "Too many requests" in page.get_data(as_text=True)


def _copy_cookies(source, target) -> None:
    for cookie in source._cookies.values():
        target.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


def test_signing_out_ends_the_session_on_the_server(app, client, auth):
    auth.login_as_organizer()
    thief = app.test_client()
    _copy_cookies(client, thief)  # a copy of the session cookie taken while signed in
    assert thief.get("/manage/events/").status_code == 200
    assert auth.logout().status_code == 303
    assert thief.get("/manage/events/").status_code == 302  # the copy is dead too
    assert client.get("/manage/events/").status_code == 302


@pytest.mark.db_agnostic
def test_a_session_ends_after_its_absolute_lifetime(app, client, auth, monkeypatch):
    auth.login_as_organizer()
    assert client.get("/manage/events/").status_code == 200
    lifetime = app.config["SESSION_LIFETIME_HOURS"] * 3600
    assert lifetime <= 24 * 3600 and app.permanent_session_lifetime.total_seconds() == lifetime
    later = time.time() + lifetime + 60
    monkeypatch.setattr(time, "time", lambda: later)  # the clock, not Foyer: activity does not stretch it
    assert client.get("/manage/events/").status_code == 302


ATTACKER, OWNER = {"REMOTE_ADDR": "203.0.113.9"}, {"REMOTE_ADDR": "198.51.100.7"}


def _login_from(client, where: dict, password: str):
    return client.submit("/login", {"email": "org@example.org", "password": password}, environ_base=where)


def test_wrong_passwords_from_elsewhere_never_lock_the_owner_out(app, client, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "10 per minute")
    make_user("org@example.org")
    attacker = app.test_client()
    attacker.__class__ = client.__class__
    answers = [_login_from(attacker, ATTACKER, f"guess number {i}").status_code for i in range(12)]
    assert answers[:5] == [422] * 5 and set(answers[5:]) == {429}  # the guessing client is held back
    assert _login_from(client, OWNER, "correct horse battery").status_code == 303  # the owner is not


def test_a_client_that_keeps_failing_waits_longer_each_time(app, client, make_user, monkeypatch):
    from app import ratelimit

    make_user("org@example.org")
    for _ in range(ratelimit.FREE_FAILURES):
        assert _login_from(client, ATTACKER, "wrong password").status_code == 422
    refused = _login_from(client, ATTACKER, "correct horse battery")  # even the right one, from this client
    assert refused.status_code == 429 and "Try again in 30 seconds" in refused.get_data(as_text=True)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 31)
    assert _login_from(client, ATTACKER, "still wrong").status_code == 422
    refused = _login_from(client, ATTACKER, "correct horse battery")
    assert refused.status_code == 429 and "Try again in 1 minute" in refused.get_data(as_text=True)
    monkeypatch.setattr(time, "time", lambda: now + 31 + 61)
    assert _login_from(client, ATTACKER, "correct horse battery").status_code == 303


def _setup(client, code: str | None, email: str = "ada@example.org"):
    data = {"name": "Ada", "email": email, "password": "a long secret pw", "confirm": "a long secret pw"}
    if code is not None:
        data["setup_code"] = code
    return client.submit("/setup", data)


def test_setup_needs_the_one_time_code_printed_at_start(app, client, caplog):
    caplog.set_level(logging.WARNING, logger="app.services.accounts.setup_code")
    printed = setup_codes.announce(app)  # what the web server does when it starts
    assert printed and printed in caplog.text and "/setup" in caplog.text
    assert setup_codes.announce(app) is None  # a second process of the same start keeps that code
    page = client.get("/setup").get_data(as_text=True)
    assert 'name="setup_code"' in page and "Setup code" in page
    assert _setup(client, None, "mallory@example.org").status_code == 422  # whoever comes first is not enough
    wrong = _setup(client, "AAAA-BBBB-CCCC-DDDD", "mallory@example.org")
    assert wrong.status_code == 422 and "not the current setup code" in wrong.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(User).count() == 0
    assert _setup(client, printed.lower().replace("-", " ")).status_code == 303  # forgiving about case and dashes
    with app.app_context():
        assert [u.email for u in db.session.query(User)] == ["ada@example.org"]
        assert db.session.get(Setting, setup_codes.SETTING_KEY) is None  # used up
    assert setup_codes.announce(app) is None


def test_the_setup_code_command_replaces_the_code_and_create_admin_still_works(app, client):
    first = setup_code(app)
    second = setup_code(app)
    assert first != second
    assert "not the current setup code" in _setup(client, first).get_data(as_text=True)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["foyer", "create-admin", "root@example.org", "--password", "a long secret pw"])
    assert result.exit_code == 0, result.output
    assert _setup(client, second).status_code == 404  # set up from the command line: the page is gone
    refused = runner.invoke(args=["foyer", "setup-code"])
    assert refused.exit_code != 0 and "already set up" in refused.output


def test_with_rate_limits_turned_off_wrong_passwords_hold_no_one_back(app, client, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_ENABLED", False)
    make_user("org@example.org")
    assert [_login_from(client, ATTACKER, "wrong password").status_code for _ in range(7)] == [422] * 7
    assert _login_from(client, ATTACKER, "correct horse battery").status_code == 303
