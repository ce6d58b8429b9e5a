"""Staff invitations are emailed, and "forgot password" on the sign-in page: both through the one message
pipeline, to ACS (the in-process emulator), with one-time expiring links that never enter the message log,
a neutral answer that tells nobody which addresses have accounts, and old sessions and passwords ended."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from app.extensions import db
from app.models import AuditEntry, Message, OutboxItem, Role, User
from app.services.outbox import outbox
from tests.conftest import PASSWORD

NEW_PASSWORD = "a brand new passphrase"
RESET_LINK = re.compile(r"http://localhost(/password/reset/[A-Za-z0-9_-]{40,})")
INVITE_LINK = re.compile(r"http://localhost(/invitation/[A-Za-z0-9_-]{40,})")
NEUTRAL = "If that address belongs to an active staff account"


@pytest.fixture
def emulator(app):
    return app.extensions["microsoft"].emulator


@pytest.fixture
def other_client(app, client):
    """A second browser."""
    second = app.test_client()
    second.__class__ = client.__class__
    return second


def drain(app) -> None:
    with app.app_context():
        for _ in range(5):
            if not outbox.drain(limit=500):
                break
        db.session.remove()


def mails_to(emulator, address: str) -> list:
    return [e for e in emulator.acs.sent_emails if e.to[0]["address"] == address]


def forgot(client, email: str):
    return client.submit("/login/forgot", {"email": email})


def _audit(app, action: str) -> list[AuditEntry]:
    with app.app_context():
        return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


@pytest.mark.db_agnostic
def test_sign_in_page_offers_forgot_password(client, make_user):
    make_user("someone@example.org")
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/login/forgot"' in page and "Forgot your password?" in page
    form = client.get("/login/forgot").get_data(as_text=True)
    assert '<label for="email"' in form and 'name="csrf_token"' in form


def test_the_answer_is_the_same_for_known_and_unknown_addresses(app, client, emulator, make_user):
    make_user("known@example.org")
    known, unknown = forgot(client, "known@example.org"), forgot(client, "nobody@example.org")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["Location"] == unknown.headers["Location"] == "/login/forgot/sent"
    page = client.get("/login/forgot/sent").get_data(as_text=True)
    assert NEUTRAL in page and "known@example.org" not in page
    again = forgot(client, "known@example.org")  # asked again at once: same answer, no second email
    assert again.headers["Location"] == "/login/forgot/sent"
    drain(app)
    assert len(mails_to(emulator, "known@example.org")) == 1 and not mails_to(emulator, "nobody@example.org")
    # A typo is asked again; it reveals nothing either.
    assert forgot(client, "").status_code == 422


def test_reset_link_works_once_ends_sessions_and_the_old_password(app, client, other_client, emulator, make_user):
    user = make_user("forgetful@example.org")
    assert other_client.submit("/login", {"email": "forgetful@example.org", "password": PASSWORD}).status_code == 303
    assert other_client.get("/manage/events/").status_code == 200  # signed in elsewhere
    forgot(client, "forgetful@example.org")
    drain(app)

    (mail,) = mails_to(emulator, "forgetful@example.org")
    assert mail.subject == "Reset your Foyer password" and "<!DOCTYPE html>" in mail.html
    path = RESET_LINK.search(mail.plain_text).group(1)
    assert path in mail.html and "(UTC)" in mail.plain_text
    with app.app_context():  # the message log (and /admin/messages) never holds the link; the database only a hash
        (message,) = db.session.scalars(select(Message).where(Message.kind == "password_reset")).all()
        assert message.status.value == "sent" and message.event_id is None
        token = path.rsplit("/", 1)[-1]
        assert token not in message.body_text and token not in message.body_html
        stored = db.session.scalars(select(OutboxItem.payload)).all()
        assert not [p for p in stored if token in str(p)]
        assert token not in (db.session.get(User, user.id).invite_token_hash or "")

    page = client.get(path)
    assert page.status_code == 200 and "Choose a new password" in page.get_data(as_text=True)
    short = client.submit(path, {"password": "short", "confirm": "short"})
    assert short.status_code == 422 and "at least" in short.get_data(as_text=True).lower()
    done = client.submit(path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/login"

    assert client.get(path).status_code == 404  # used up
    assert client.submit(path, {"password": "another passphrase", "confirm": "another passphrase"}).status_code \
        in (400, 404)
    assert other_client.get("/manage/events/").status_code in (302, 303)  # the other session has ended
    assert client.submit("/login", {"email": "forgetful@example.org", "password": PASSWORD}).status_code == 422
    assert client.submit("/login", {"email": "forgetful@example.org", "password": NEW_PASSWORD}).status_code == 303
    assert len(_audit(app, "user.password_reset_requested")) == 1 and len(_audit(app, "user.password_reset")) == 1


def test_reset_link_expires_and_asking_never_locks_the_account(app, client, emulator, make_user):
    make_user("late@example.org")
    forgot(client, "late@example.org")
    drain(app)
    path = RESET_LINK.search(mails_to(emulator, "late@example.org")[0].plain_text).group(1)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "late@example.org"))
        assert timedelta(minutes=55) < user.invite_expires_at - datetime.now(UTC) <= timedelta(hours=1)
        user.invite_expires_at = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
    expired = client.get(path)
    assert expired.status_code == 404 and "not valid" in expired.get_data(as_text=True)
    # Asking for a link did not change the password: it still signs in.
    assert client.submit("/login", {"email": "late@example.org", "password": PASSWORD}).status_code == 303


def test_deactivated_accounts_get_no_link(app, client, emulator, make_user):
    user = make_user("gone@example.org")
    with app.app_context():
        db.session.get(User, user.id).is_active_account = False
        db.session.commit()
    assert forgot(client, "gone@example.org").headers["Location"] == "/login/forgot/sent"
    drain(app)
    assert not mails_to(emulator, "gone@example.org")


def test_forgot_password_is_rate_limited(app, client, make_user):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    try:
        codes = [forgot(client, "someone@example.org").status_code for _ in range(4)]
    finally:
        app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"
    assert codes[:3] == [303, 303, 303] and codes[3] == 429


def test_invitation_is_emailed_with_a_working_link(app, client, other_client, auth, emulator):
    auth.login_as_admin()
    response = client.submit("/admin/users/invite",
                             {"email": "invited@example.org", "name": "Ivy", "role": "organizer"})
    assert response.status_code == 303
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "does not email" not in shown and "emailed this link to invited@example.org" in shown
    drain(app)

    (mail,) = mails_to(emulator, "invited@example.org")
    assert mail.subject == "You're invited to Foyer" and "as an organizer" in mail.plain_text
    path = INVITE_LINK.search(mail.plain_text).group(1)
    assert path in mail.html
    with app.app_context():
        (message,) = db.session.scalars(select(Message).where(Message.kind == "staff_invite")).all()
        assert path not in message.body_text and message.status.value == "sent"
    assert "invited@example.org" in client.get("/admin/messages?kind=staff_invite").get_data(as_text=True)
    assert len(_audit(app, "user.invitation_sent")) == 1

    done = other_client.submit(path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303
    assert other_client.get(path).status_code == 404  # once


@pytest.mark.db_agnostic
def test_invitation_and_reset_links_are_redacted_from_request_logs(app, caplog):
    token = "Zx8_k2LmQp4rS6tUv9wXy1zA3bC5dE7fG0hJ2kL4mN6"
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for path in (f"/invitation/{token}", f"/password/reset/{token}"):
            requests.get(base + path, timeout=10)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) == 2, lines
    assert all("[redacted]" in line and token not in line for line in lines), lines


def test_invited_admin_is_told_their_role(app, client, auth, emulator):
    auth.login_as_admin()
    client.submit("/admin/users/invite", {"email": "boss@example.org", "name": "Boss", "role": Role.admin.value})
    drain(app)
    (mail,) = mails_to(emulator, "boss@example.org")
    assert "as an admin" in mail.plain_text
