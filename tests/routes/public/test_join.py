"""The personal join link over HTTP: every state of the page (time controlled by the event's schedule),
the join link in the confirmation email and invite, session issuance against the in-process emulator
(identity reused, CSRF, rate limit), presence records, revoked and rotated links, other people's links,
and the organizer's copy / revoke-and-reissue / who-is-in-the-call pages."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState
from app.services.attendance import join_links
from app.services.outbox import outbox
from app.services.registration import registrations
from tests.database import statements
from tests.mail import queued_emails

JOIN_LINK = re.compile(r"http://localhost/j/([A-Za-z0-9_-]{40,})")
TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def event(make_event, owner):
    """A published event with a Teams meeting, starting in two hours."""
    start = _now() + timedelta(hours=2)
    return make_event(owner, status=EventStatus.published, published_at=_now(), capacity=1, title="Spring call",
                      starts_at=start, ends_at=start + timedelta(hours=1), join_url=TEAMS_URL)


def _set_times(app, event_id: int, *, starts_in: timedelta, length: timedelta = timedelta(hours=1), **extra) -> None:
    """Control time: move the event so that 'now' falls where the test wants it."""
    with app.app_context():
        row = db.session.get(Event, event_id)
        row.starts_at = _now() + starts_in
        row.ends_at = row.starts_at + length
        for key, value in extra.items():
            setattr(row, key, value)
        db.session.commit()


@pytest.fixture
def register(app):
    """Register someone through the engine; returns the registration id and the join token from their email."""

    def _register(event, email="ada@example.org", first="Ada", last="Lovelace") -> tuple[int, str | None]:
        with app.app_context():
            row = db.session.get(Event, event.id)
            outcome = registrations.register(row, registrations.RegistrationData(
                first_name=first, last_name=last, email=email, timezone="Asia/Tokyo"))
            db.session.commit()
            reg_id = outcome.registration.id
            texts = [m["text"] for m in queued_emails(to=email)]
        found = JOIN_LINK.search(texts[-1]) if texts else None
        return reg_id, found.group(1) if found else None

    return _register


def _reg(app, reg_id) -> Registration:
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        db.session.expunge(reg)
        return reg


def _session(client, token, csrf=None):
    csrf = csrf or client.csrf_token(f"/j/{token}")
    return client.post(f"/j/{token}/session", headers={"X-CSRFToken": csrf})


# --- the link in emails and invites ------------------------------------------------------------------


def test_confirmation_email_and_invite_carry_the_join_link_not_teams_nor_manage(app, client, event, register):
    reg_id, token = register(event)
    assert token is not None, "the confirmation email has no join link"
    with app.app_context():
        (mail,) = queued_emails()
        text = mail["text"]
        invite = [a for a in mail["attachments"] if a["name"] == "invite.ics"][0]
        reg = db.session.get(Registration, reg_id)
        # Only the hash is looked up; the token itself is stored encrypted, never in plain.
        assert reg.join_token_hash and token not in (reg.join_token_hash, reg.join_token_encrypted)
        assert reg.join_token_hash != reg.manage_token_hash
    assert f"http://localhost/j/{token}" in text and TEAMS_URL not in text
    vevent = Calendar.from_ical(base64.b64decode(invite["contentInBase64"])).walk("VEVENT")[0]
    assert str(vevent["LOCATION"]) == f"http://localhost/j/{token}"
    assert str(vevent["URL"]) == f"http://localhost/j/{token}"
    assert "teams.microsoft.com" not in str(vevent["DESCRIPTION"])
    # The manage page links to the same join page and offers the same invite.
    manage = client.get(f"/r/{_manage_token(app, reg_id)}")
    assert f"/j/{token}" in _text(manage)
    ics = client.get(f"/r/{_manage_token(app, reg_id)}/invite.ics")
    assert str(Calendar.from_ical(ics.data).walk("VEVENT")[0]["LOCATION"]) == f"http://localhost/j/{token}"


def _manage_token(app, reg_id) -> str:
    with app.app_context():
        return registrations.manage_token_for(db.session.get(Registration, reg_id))


def test_waitlisted_email_has_no_join_link_until_promoted(app, client, event, register):
    register(event)
    waiting_id, token = register(event, email="grace@example.org", first="Grace", last="Hopper")
    assert token is None
    assert _reg(app, waiting_id).state == RegistrationState.waitlisted


# --- the state machine ------------------------------------------------------------------------------------


def test_too_early_shows_a_countdown_in_the_attendees_zone_and_polls(app, client, event, register):
    _, token = register(event)
    response = client.get(f"/j/{token}")
    page = _text(response)
    assert response.status_code == 200
    assert "The call opens soon" in page and "Join the call" not in page
    assert "(Asia/Tokyo)" in page  # the attendee's zone, not the event's
    assert 'hx-get="/j/' in page and "every 15s" in page and "data-countdown-to=" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # Only the hash of the join token is stored: the page never prints it back except in its own URLs.
    assert _session(client, token).status_code == 409


def test_days_ahead_the_join_page_shows_the_date_not_a_countdown_in_hours(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(days=6, hours=1))
    page = _text(client.get(f"/j/{token}"))
    assert "Opens in 6 days, on <time" in page and "(Asia/Tokyo)</time>." in page
    assert "data-countdown-to=" not in page  # no "144 h 59 min" ticking


def test_polling_opens_the_call_when_the_window_opens(app, client, event, register):
    _, token = register(event)
    assert 'data-state="too_early"' in _text(client.get(f"/j/{token}/status"))
    # Sixteen minutes before the start the default window (15 minutes) is still shut; fourteen, it is open.
    _set_times(app, event.id, starts_in=timedelta(minutes=16))
    assert 'data-state="too_early"' in _text(client.get(f"/j/{token}/status"))
    _set_times(app, event.id, starts_in=timedelta(minutes=14))
    fragment = _text(client.get(f"/j/{token}/status"))
    assert 'data-state="open"' in fragment and 'data-autostart="true"' in fragment and "hx-trigger" not in fragment
    assert "<html" not in fragment  # a fragment, swapped in without a reload


def test_organizer_chosen_window_is_honoured(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=25), join_opens_minutes=30)
    assert 'data-state="open"' in _text(client.get(f"/j/{token}"))
    _set_times(app, event.id, starts_in=timedelta(minutes=25), join_opens_minutes=5)
    assert 'data-state="too_early"' in _text(client.get(f"/j/{token}"))


def test_open_page_offers_join_and_open_in_teams(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    page = _text(client.get(f"/j/{token}"))
    assert "Join the call" in page and "You join as <strong>Ada Lovelace</strong>" in page
    assert TEAMS_URL.replace("&", "&amp;") in page and "Open in Teams" in page
    assert f"/j/{token}/device-check" in page
    with app.app_context():
        reg = db.session.scalars(select(Registration)).one()
        assert join_links.device_check_url(reg) == f"http://localhost/j/{token}/device-check"
    check = client.get(f"/j/{token}/device-check")
    assert check.status_code == 200 and "Start the check" in _text(check)
    assert "media-src 'self' blob: mediastream:" in check.headers["Content-Security-Policy"]


def test_the_join_page_and_its_status_panel_write_nothing(app, client, event, register):
    """A view, too early or open, only reads: a crowd opening its links takes no write lock."""
    _, token = register(event)
    for starts_in in (timedelta(hours=2), timedelta(minutes=-5)):
        _set_times(app, event.id, starts_in=starts_in)
        with statements(app, commits=True) as sent:
            assert client.get(f"/j/{token}").status_code == 200
            assert client.get(f"/j/{token}/status").status_code == 200
        assert [s for s in sent if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "COMMIT")] == []
        assert [s for s in sent if s.startswith("SELECT")], "the page read nothing: nothing was measured"


def test_ended_page_thanks_and_links_the_recording(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(hours=-3), recording_url="https://example.org/recording")
    page = _text(client.get(f"/j/{token}"))
    assert "This event has ended" in page and 'href="https://example.org/recording"' in page
    assert "Join the call" not in page
    assert _session(client, token).get_json()["state"] == "ended"


def test_grace_period_after_the_end_keeps_the_link_working(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-70), join_grace_minutes=30)  # ended 10 minutes ago
    assert 'data-state="open"' in _text(client.get(f"/j/{token}"))
    _set_times(app, event.id, starts_in=timedelta(minutes=-70), join_grace_minutes=5)
    assert 'data-state="ended"' in _text(client.get(f"/j/{token}"))


def test_cancelled_registration_and_cancelled_event(app, client, event, register):
    reg_id, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    with app.app_context():
        registrations.cancel(db.session.get(Registration, reg_id))
        db.session.commit()
    page = _text(client.get(f"/j/{token}"))
    assert "Your registration is no longer active" in page and "Open in Teams" not in page
    assert _session(client, token).status_code == 409

    other_id, other = register(event, email="grace@example.org", first="Grace", last="Hopper")
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.status = EventStatus.cancelled
        row.cancellation_reason = "The speaker is ill."
        db.session.commit()
    page = _text(client.get(f"/j/{other}"))
    assert "This event has been cancelled" in page and "The speaker is ill." in page
    assert _session(client, other).get_json()["state"] == "cancelled"


@pytest.mark.parametrize("state, words", [
    (RegistrationState.waitlisted, "You are on the waitlist"),
    (RegistrationState.pending, "approves each registration by hand"),
])
def test_not_confirmed_explains(app, client, event, register, state, words):
    reg_id, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    with app.app_context():
        db.session.get(Registration, reg_id).state = state  # e.g. an organizer moved them back
        db.session.commit()
    page = _text(client.get(f"/j/{token}"))
    assert "Your place is not confirmed yet" in page and words in page and "Join the call" not in page
    response = _session(client, token)
    assert response.status_code == 409 and response.get_json()["state"] == "not_confirmed"


@pytest.mark.db_agnostic
def test_unknown_and_malformed_links_get_the_same_404(client):
    for token in ("x" * 43, "short", "a" * 200):
        response = client.get(f"/j/{token}")
        assert response.status_code == 404 and "This join link does not work" in _text(response)
        assert response.headers["Cache-Control"] == "no-store"
    csrf = client.csrf_token("/")
    assert client.post("/j/" + "x" * 43 + "/session", headers={"X-CSRFToken": csrf}).status_code == 404


# --- sessions (in-process emulator) ------------------------------------------------------------------------


def test_session_is_issued_for_an_open_link_and_the_identity_is_reused(app, client, event, register):
    reg_id, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    first = _session(client, token)
    assert first.status_code == 200, _text(first)
    body = first.get_json()
    assert set(body) == {"userId", "token", "expiresOn", "displayName", "meetingLink", "endpoint", "meetingId",
                         "passcode"}
    assert body["displayName"] == "Ada Lovelace" and body["meetingLink"] == TEAMS_URL
    assert body["userId"].startswith("8:acs:") and body["endpoint"] == "https://acs.emulator.invalid/"
    assert first.headers["Cache-Control"] == "no-store" and first.headers["Referrer-Policy"] == "no-referrer"
    emulator = app.extensions["microsoft"].emulator
    assert emulator.acs.token_is_valid(body["token"])
    second = _session(client, token).get_json()
    assert second["userId"] == body["userId"] and emulator.acs.token_is_valid(second["token"])  # same identity
    assert len(emulator.acs.identities) == 1
    reg = _reg(app, reg_id)
    assert reg.acs_user_id == body["userId"] and reg.first_joined_at is not None and reg.last_seen_at is not None


def test_session_needs_the_csrf_token(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    response = client.post(f"/j/{token}/session")
    assert response.status_code == 400
    assert not app.extensions["microsoft"].emulator.acs.identities


def test_session_is_rate_limited(app, client, event, register, monkeypatch):
    monkeypatch.setitem(app.config, "JOIN_SESSION_RATE_LIMIT", "2 per minute")
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    csrf = client.csrf_token(f"/j/{token}")
    assert [_session(client, token, csrf).status_code for _ in range(3)] == [200, 200, 429]


def test_meeting_not_ready_is_a_retryable_503(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5), join_url=None)
    response = _session(client, token)
    assert response.status_code == 503 and response.get_json()["retry"] is True


def test_meeting_id_and_passcode_are_the_locator_when_there_is_no_join_url(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5), join_url=None, join_meeting_id="123456789012",
               join_passcode="Ab3dEf")
    page = _text(client.get(f"/j/{token}"))
    assert "Join a meeting with an ID" in page and "123456789012" in page and "Ab3dEf" in page
    response = _session(client, token)
    assert response.status_code == 200, _text(response)
    body = response.get_json()
    assert body["meetingLink"] == "" and (body["meetingId"], body["passcode"]) == ("123456789012", "Ab3dEf")


def test_acs_failure_is_a_clear_retryable_message(app, client, event, register):
    _, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    emulator = app.extensions["microsoft"].emulator
    # Asked to come back in 50 ms, the SDK retries at once rather than backing off for seconds.
    emulator.faults.add(kind="status", group="acs", path="/identities", status=503, count=10, retry_after="0.05")
    response = _session(client, token)
    assert response.status_code == 503
    assert response.get_json() == {"error": "We could not connect you to the call service just now. Please try again.",
                                   "state": "open", "retry": True}


def test_other_peoples_tokens_are_refused(app, client, event, register):
    _, ada = register(event)
    with app.app_context():
        db.session.get(Event, event.id).capacity = 5
        db.session.commit()
    _, grace = register(event, email="grace@example.org", first="Grace", last="Hopper")
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    # Each link is its own: Grace's session is Grace's, and a manage token is not a join token.
    assert _session(client, grace).get_json()["displayName"] == "Grace Hopper"
    assert _session(client, ada).get_json()["displayName"] == "Ada Lovelace"
    with app.app_context():
        manage = registrations.manage_token_for(db.session.scalars(select(Registration)).first())
    assert client.get(f"/j/{manage}").status_code == 404
    assert client.post(f"/j/{manage}/session", headers={"X-CSRFToken": client.csrf_token("/")}).status_code == 404


def test_presence_heartbeat_and_leaving(app, client, event, register, auth):
    reg_id, token = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    csrf = client.csrf_token(f"/j/{token}")
    # Reporting in before ever joining records nothing.
    assert client.post(f"/j/{token}/presence", headers={"X-CSRFToken": csrf}).status_code == 409
    assert _session(client, token, csrf).status_code == 200
    assert client.post(f"/j/{token}/presence", headers={"X-CSRFToken": csrf}).status_code == 204
    auth.login("owner@example.org")
    page = _text(client.get(f"/manage/events/{event.id}/in-call"))
    assert "In the call now: 1" in page and "Ada Lovelace" in page
    assert "Attendees go straight in (no lobby)." in page
    csrf = client.csrf_token(f"/j/{token}")  # signing in started a new session
    assert client.post(f"/j/{token}/presence", data={"left": "1"}, headers={"X-CSRFToken": csrf}).status_code == 204
    page = _text(client.get(f"/manage/events/{event.id}/in-call"))
    assert "In the call now: 0" in page and "1 registrant joined from Foyer at least once" in page
    assert _reg(app, reg_id).last_left_at is not None


# --- organizer: copy, revoke and reissue ----------------------------------------------------------------


def test_organizer_copies_and_reissues_a_join_link(app, client, event, register, auth):
    reg_id, old = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    auth.login("owner@example.org")
    listing = _text(client.get(f"/manage/events/{event.id}/registrations"))
    assert f"/manage/events/{event.id}/registrations/{reg_id}/join-link" in listing
    url = f"/manage/events/{event.id}/registrations/{reg_id}/join-link"
    page = _text(client.get(url))
    assert f'value="http://localhost/j/{old}"' in page and "Copy join link" in page
    assert client.get(url).headers["Cache-Control"] == "no-store"

    response = client.submit(url, {})
    assert response.status_code == 303
    page = _text(client.get(url))
    new = JOIN_LINK.search(page).group(1)
    assert new != old
    # The old link now says it was replaced (and cannot join); the new one works; the attendee got it by email.
    revoked = client.get(f"/j/{old}")
    assert revoked.status_code == 410 and "This link has been replaced" in _text(revoked)
    assert re.search(r"(?<![\w-])Ada(?![\w-])|Lovelace", _text(revoked)) is None  # a random token may hold "Ada"
    old_session = _session(client, old)
    assert old_session.status_code == 409
    emulator = app.extensions["microsoft"].emulator
    assert not emulator.acs.identities  # never joined: no identity, nothing to revoke
    assert _session(client, new).status_code == 200
    with app.app_context():
        (mail,) = [m for m in queued_emails() if m["kind"] == "join_link"]
    assert f"http://localhost/j/{new}" in mail["text"] and "no longer works" in mail["text"]
    assert f"http://localhost/j/{new}" in mail["html"] and mail["subject"].startswith("Your new join link")


def test_reissue_needs_csrf_and_a_confirmed_registration(app, client, event, register, auth):
    reg_id, token = register(event)
    auth.login("owner@example.org")
    url = f"/manage/events/{event.id}/registrations/{reg_id}/join-link"
    assert client.post(url, data={}).status_code in (400, 422)
    with app.app_context():
        registrations.cancel(db.session.get(Registration, reg_id))
        db.session.commit()
    assert "has no join link" in _text(client.get(url))
    response = client.submit(url, {})
    assert response.status_code == 303
    assert "Only confirmed registrations have a join link." in _text(client.get(url))


def test_other_organizers_cannot_see_join_links(app, client, event, register, auth, make_user):
    reg_id, _ = register(event)
    auth.login_as_organizer("other@example.org")
    assert client.get(f"/manage/events/{event.id}/registrations/{reg_id}/join-link").status_code == 404
    assert client.get(f"/manage/events/{event.id}/in-call").status_code == 404


# --- event settings ---------------------------------------------------------------------------------------


@pytest.mark.db_agnostic
def test_join_settings_are_validated_on_the_event_form(app, client, event, auth):
    auth.login("owner@example.org")
    url = f"/manage/events/{event.id}/edit"
    page = _text(client.get(url))
    assert 'name="call_experience"' in page and 'name="join_opens_minutes"' in page
    assert 'name="recording_url"' in page and 'name="join_grace_minutes"' in page


def test_reissue_revokes_call_tokens_issued_from_the_old_link(app, client, event, register, auth, clock):
    reg_id, old = register(event)
    _set_times(app, event.id, starts_in=timedelta(minutes=-5))
    stolen = _session(client, old).get_json()["token"]
    emulator = app.extensions["microsoft"].emulator
    assert emulator.acs.token_is_valid(stolen)
    auth.login("owner@example.org")
    url = f"/manage/events/{event.id}/registrations/{reg_id}/join-link"
    assert client.submit(url, {}).status_code == 303
    with app.app_context():
        outbox.drain()  # what the worker does
    assert not emulator.acs.token_is_valid(stolen)
    new = JOIN_LINK.search(_text(client.get(url))).group(1)
    clock.shift(1.1)  # ACS revokes tokens issued up to the revocation instant (whole seconds in the emulator)
    fresh = _session(client, new).get_json()
    assert fresh["userId"] == _reg(app, reg_id).acs_user_id and emulator.acs.token_is_valid(fresh["token"])
