"""Join sessions issued against the emulator served over loopback TLS (Foyer configured only by
environment variables): the ACS identity is created once and reused, token lifetimes stay within ACS's
bounds and the event's needs, every request passes the emulator's HMAC check, the endpoint is
rate-limited, revoked links and other people's tokens are refused, and no token reaches the logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState, Role, User
from app.services.attendance import join_links
from app.services.registration import registrations

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_tls%40thread.v2/0?context=%7b%7d"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def tls_client(tls_app, emulator, client):
    """An HTTP client (the shared CSRF-aware kind) of the app whose Microsoft endpoints are https://127.0.0.1:PORT."""
    tls_app.test_client_class = type(client)
    return tls_app.test_client()


def _seed(tls_app, *, starts_in: timedelta, length: timedelta = timedelta(hours=1), people: int = 1) -> list[str]:
    """An open event with `people` confirmed registrations; returns their join tokens."""
    with tls_app.app_context():
        owner = User(email="owner@example.org", role=Role.organizer, name="Owner")
        db.session.add(owner)
        db.session.flush()
        start = _now() + starts_in
        event = Event(title="TLS call", slug="tls-call", timezone="Europe/Berlin", starts_at=start,
                      ends_at=start + length, status=EventStatus.published, published_at=_now(), owner_id=owner.id,
                      join_url=TEAMS_URL)
        db.session.add(event)
        db.session.flush()
        found = []
        for i in range(people):
            reg = Registration(event_id=event.id, email=f"p{i}@example.org", first_name=f"Person{i}", last_name="T",
                               timezone="UTC", manage_token_hash=f"{i:064d}", state=RegistrationState.confirmed)
            reg.event = event
            db.session.add(reg)
            db.session.flush()
            found.append(join_links.join_token_for(reg))
        db.session.commit()
        return found


def _session(client: FlaskClient, token: str):
    csrf = client.csrf_token(f"/j/{token}")
    return client.post(f"/j/{token}/session", headers={"X-CSRFToken": csrf})


def _acs_bodies(emulator, suffix: str) -> list[dict]:
    return [json.loads(r.body or b"{}") for r in emulator.requests if r.service == "acs" and r.path.endswith(suffix)]


def test_identity_is_created_once_and_reused_across_joins(tls_app, tls_client, emulator, caplog):
    caplog.set_level(logging.DEBUG)
    (token,) = _seed(tls_app, starts_in=timedelta(minutes=-5))
    first = _session(tls_client, token)
    assert first.status_code == 200, first.get_data(as_text=True)
    second = _session(tls_client, token)
    body, again = first.get_json(), second.get_json()
    assert body["userId"] == again["userId"] and body["userId"] in emulator.acs.identities
    assert body["endpoint"].startswith("https://127.0.0.1:") and body["meetingLink"] == TEAMS_URL
    assert len(emulator.acs.identities) == 1
    assert emulator.acs.token_is_valid(body["token"]) and emulator.acs.token_is_valid(again["token"])
    # Every ACS request was signed with the access key and passed the emulator's HMAC check.
    acs = [r for r in emulator.requests if r.service == "acs"]
    assert [r.status for r in acs] == [201, 200, 200]
    assert emulator.acs.rejected_signatures == 0
    assert _acs_bodies(emulator, ":issueAccessToken")[0]["scopes"] == ["voip.join", "chat.join"]
    # The token never reaches the logs.
    assert body["token"] not in caplog.text and token not in caplog.text


def test_expiry_is_60_minutes_by_default_and_never_longer_than_the_event_needs(tls_app, tls_client, emulator,
                                                                                monkeypatch):
    (token,) = _seed(tls_app, starts_in=timedelta(minutes=-5), length=timedelta(hours=3))
    body = _session(tls_client, token).get_json()
    assert _acs_bodies(emulator, ":issueAccessToken")[-1]["expiresInMinutes"] == 60
    expires = datetime.fromisoformat(body["expiresOn"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(minutes=61)

    # A longer configured lifetime is cut to what the event still needs (the rest of it plus the grace period).
    monkeypatch.setitem(tls_app.config, "JOIN_TOKEN_MINUTES", 1440)
    _session(tls_client, token)
    minutes = _acs_bodies(emulator, ":issueAccessToken")[-1]["expiresInMinutes"]
    assert 3 * 60 + 30 - 5 - 1 <= minutes <= 3 * 60 + 30 - 5 + 1


def test_a_short_remainder_still_gets_acs_minimum_lifetime(tls_app, tls_client, emulator, monkeypatch):
    monkeypatch.setitem(tls_app.config, "JOIN_TOKEN_MINUTES", 1440)
    (token,) = _seed(tls_app, starts_in=timedelta(minutes=-80))  # 10 minutes of grace left
    assert _session(tls_client, token).status_code == 200
    assert _acs_bodies(emulator, ":issueAccessToken")[-1]["expiresInMinutes"] == 60  # ACS refuses less


def test_rate_limit_on_token_issuance(tls_app, tls_client, emulator, monkeypatch):
    monkeypatch.setitem(tls_app.config, "JOIN_SESSION_RATE_LIMIT", "3 per minute")
    (token,) = _seed(tls_app, starts_in=timedelta(minutes=-5))
    codes = [_session(tls_client, token).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert len(_acs_bodies(emulator, ":issueAccessToken")) == 3  # refused requests never reach ACS


def test_revoked_and_other_peoples_links_are_refused(tls_app, tls_client, emulator):
    first, second = _seed(tls_app, starts_in=timedelta(minutes=-5), people=2)
    assert _session(tls_client, second).get_json()["displayName"] == "Person1 T"
    with tls_app.app_context():
        reg = db.session.get(Registration, join_links.by_join_token(first).registration.id)
        actor = db.session.query(User).first()
        new = join_links.reissue(reg, actor=actor)
        db.session.commit()
        reg_id = reg.id
    refused = _session(tls_client, first)
    assert refused.status_code == 409 and refused.get_json()["state"] == "revoked"
    body = _session(tls_client, new).get_json()
    assert body["displayName"] == "Person0 T"
    # A made-up token, or the hash of a real one, is unknown.
    with tls_app.app_context():
        stored_hash = db.session.get(Registration, reg_id).join_token_hash
    for bogus in ("A" * 43, stored_hash):
        assert tls_client.post(f"/j/{bogus}/session",
                               headers={"X-CSRFToken": tls_client.csrf_token("/")}).status_code == 404
    assert len(emulator.acs.identities) == 2


def test_acs_throttling_is_a_retryable_answer_not_an_error_page(tls_app, tls_client, emulator):
    (token,) = _seed(tls_app, starts_in=timedelta(minutes=-5))
    # Asked to come back in 50 ms, the SDK retries at once rather than backing off for seconds.
    emulator.faults.add(kind="status", group="acs", path="/identities", status=503, count=20, retry_after="0.05")
    response = _session(tls_client, token)
    assert response.status_code == 503 and response.get_json()["retry"] is True
    with tls_app.app_context():
        reg = db.session.get(Registration, join_links.by_join_token(token).registration.id)
        assert reg.acs_user_id is None and reg.first_joined_at is None  # nothing recorded for a failed join


def test_registrations_service_emails_the_join_link(tls_app, emulator):
    """The confirmation email names the join link (checked on the TLS-configured app, too)."""
    with tls_app.app_context():
        owner = User(email="owner@example.org", role=Role.organizer, name="Owner")
        db.session.add(owner)
        db.session.flush()
        start = _now() + timedelta(days=1)
        event = Event(title="Mail call", slug="mail-call", timezone="UTC", starts_at=start,
                      ends_at=start + timedelta(hours=1), status=EventStatus.published, published_at=_now(),
                      owner_id=owner.id)
        db.session.add(event)
        db.session.commit()
        outcome = registrations.register(event, registrations.RegistrationData(
            first_name="Ada", last_name="L", email="ada@example.org", timezone="UTC"))
        db.session.commit()
        link = join_links.join_url(outcome.registration)
        from tests.mail import queued_emails

        (mail,) = queued_emails()
        assert link in mail["text"] and link in mail["html"]
