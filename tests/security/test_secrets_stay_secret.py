"""Secrets never reach the logs or the database in plain text.

One realistic run — an admin signs in, connects Microsoft 365, publishes an event (Graph provisions the
meeting), an attendee registers and confirms by email, the worker sends the emails through ACS — with
every logger at DEBUG (Foyer's, MSAL's, the Azure SDK's, urllib3's). Afterwards no password, refresh or
access token, ACS key, app secret or personal link token appears in any log record, and no credential
(password, Microsoft token, key) appears in plain text anywhere in the database.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import MicrosoftConnection
from app.services.core import crypto
from app.services.outbox import outbox
from tests.conftest import PASSWORD
from tests.database import every_row_as_text
from tests.mail import queued_emails
from tests.routes.admin.test_microsoft import connect_service_account


def _drain(app) -> None:
    with app.app_context():
        outbox.drain()
        db.session.remove()


def _every_text_value(app) -> str:
    """The whole database as text, the way a dump would show it."""
    with app.app_context():
        return "\n".join(every_row_as_text())


def test_no_secret_in_logs_or_in_the_database(app, client, auth, make_event, caplog):
    caplog.set_level(logging.DEBUG)
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    start = datetime.now(UTC) + timedelta(days=7)
    event = make_event(admin, starts_at=start, ends_at=start + timedelta(hours=1), require_email_verification=True)
    assert client.submit(f"/manage/events/{event.id}/publish").status_code == 303
    _drain(app)  # Graph: create the meeting

    client.get("/logout")
    response = client.submit(f"/events/{event.slug}/register", {
        "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "timezone": "Europe/Berlin",
        "consent": "y"})
    assert response.status_code == 303
    with app.app_context():
        emails = queued_emails()
    verify = re.search(r"/registrations/verify/([A-Za-z0-9_-]+)", emails[-1]["text"]).group(1)
    confirm = f"/registrations/verify/{verify}"
    assert client.submit(confirm, {}).status_code == 303
    with app.app_context():
        emails = queued_emails()
    manage = re.search(r"/r/([A-Za-z0-9_-]{43})", emails[-1]["text"]).group(1)
    _drain(app)  # ACS: send the emails
    assert app.extensions["microsoft"].emulator.acs.sent_emails, "the emails went out through ACS"

    with app.app_context():
        cache = json.loads(crypto.decrypt(db.session.scalar(select(MicrosoftConnection.token_cache_encrypted))))
    refresh_tokens = [entry["secret"] for entry in cache["RefreshToken"].values()]
    access_tokens = [entry["secret"] for entry in cache["AccessToken"].values()]
    acs_key = re.search(r"accesskey=([^;]+)", app.config["ACS_CONNECTION_STRING"]).group(1)
    secrets = {
        "the admin's password": PASSWORD, "the app's secret key": app.config["SECRET_KEY"],
        "the ACS access key": acs_key, "the Entra client secret": app.config["ENTRA_CLIENT_SECRET"],
        "the verification token": verify, "the personal manage token": manage,
        **{f"refresh token {i}": t for i, t in enumerate(refresh_tokens)},
        **{f"access token {i}": t for i, t in enumerate(access_tokens)},
        **{f"encryption key {i}": k for i, k in enumerate(app.config["ENCRYPTION_KEYS"])},
    }
    assert refresh_tokens and access_tokens
    assert len(caplog.records) > 20, "the run logged (so the check below means something)"

    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    leaked = [name for name, value in secrets.items() if value and value in logged]
    assert not leaked, f"in the logs: {leaked}"

    dump = _every_text_value(app)
    credentials = {name: value for name, value in secrets.items() if "token" not in name or "refresh" in name
                   or "access" in name}
    stored_plain = [name for name, value in credentials.items() if value and value in dump]
    assert not stored_plain, f"in the database in plain text: {stored_plain}"
