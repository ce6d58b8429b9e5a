"""Attendee call tokens: least-privilege scopes, tokens that follow the registration (revoked through the
worker when the place or the event goes, the ACS identity deleted on erasure), no session for an
unpublished or cancelled event, and a join page that never reveals the manage link."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, OutboxItem, Registration
from app.services.outbox import outbox
from app.services.registration import privacy, registrations
from tests.mail import queued_emails

JOIN_LINK = re.compile(r"http://localhost/j/([A-Za-z0-9_-]{40,})")
TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def event(make_event, owner):
    """A published event with a Teams meeting whose call is open now."""
    start = _now() - timedelta(minutes=5)
    return make_event(owner, status=EventStatus.published, published_at=_now(), title="Spring call",
                      starts_at=start, ends_at=start + timedelta(hours=1), join_url=TEAMS_URL)


@pytest.fixture
def joined(app, client, event):
    """Register Ada, join the call once; returns (registration id, join token, call token)."""
    with app.app_context():
        outcome = registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/Berlin"))
        db.session.commit()
        reg_id = outcome.registration.id
        text = queued_emails(to="ada@example.org")[-1]["text"]
    token = JOIN_LINK.search(text).group(1)
    response = _session(client, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return reg_id, token, response.get_json()["token"]


def _session(client, token):
    return client.post(f"/j/{token}/session", headers={"X-CSRFToken": client.csrf_token(f"/j/{token}")})


def _manage_token(app, reg_id) -> str:
    with app.app_context():
        token = registrations.manage_token_for(db.session.get(Registration, reg_id))
        db.session.commit()
        return token


def _acs_paths(emulator) -> list[str]:
    return [r.path for r in emulator.requests_for("acs")]


# --- scopes -------------------------------------------------------------------------------------------------


def test_attendee_token_carries_only_the_join_scopes(app, joined):
    _, _, call_token = joined
    emulator = app.extensions["microsoft"].emulator
    assert emulator.acs.token_scopes(call_token) == ["voip.join", "chat.join"]


# --- tokens follow the registration ----------------------------------------------------------------------


def _cancel_by_attendee(app, client, auth, event, reg_id):
    token = _manage_token(app, reg_id)
    assert client.submit(f"/r/{token}/cancel", {}).status_code == 303


def _cancel_by_organizer(app, client, auth, event, reg_id):
    auth.login("owner@example.org")
    url = f"/manage/events/{event.id}/registrations/{reg_id}/cancel"
    assert client.submit(url, {"message": ""}).status_code == 303


def _deny(app, client, auth, event, reg_id):
    auth.login("owner@example.org")
    url = f"/manage/events/{event.id}/registrations/{reg_id}/deny"
    assert client.submit(url, {"message": ""}).status_code == 303


def _cancel_event(app, client, auth, event, reg_id):
    auth.login("owner@example.org")
    response = client.submit(f"/manage/events/{event.id}/cancel", {"reason": "The speaker is ill."})
    assert response.status_code == 303


def _unpublish(app, client, auth, event, reg_id):
    auth.login("owner@example.org")
    response = client.submit(f"/manage/events/{event.id}/unpublish", {})
    assert response.status_code == 303


@pytest.mark.parametrize("trigger", [_cancel_by_attendee, _cancel_by_organizer, _deny, _cancel_event, _unpublish],
                         ids=["attendee-cancels", "organizer-cancels", "denied", "event-cancelled",
                              "event-unpublished"])
def test_call_tokens_are_revoked_through_the_worker(app, client, auth, event, joined, trigger):
    reg_id, token, call_token = joined
    emulator = app.extensions["microsoft"].emulator
    acs_user = emulator.acs.identities and next(iter(emulator.acs.identities))
    trigger(app, client, auth, event, reg_id)
    # Never in the request: the revocation waits in the outbox.
    assert emulator.acs.token_is_valid(call_token)
    assert f"/identities/{acs_user}/:revokeAccessTokens" not in _acs_paths(emulator)
    with app.app_context():
        kinds = [i.kind for i in db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "acs.revoke_tokens"))]
        assert kinds == ["acs.revoke_tokens"]
        outbox.drain()  # what the worker does
    assert f"/identities/{acs_user}/:revokeAccessTokens" in _acs_paths(emulator)
    assert not emulator.acs.token_is_valid(call_token)
    assert _session(client, token).status_code == 409  # and no new one


def test_erasure_deletes_the_acs_identity_through_the_worker(app, client, joined):
    reg_id, _, call_token = joined
    emulator = app.extensions["microsoft"].emulator
    acs_user = next(iter(emulator.acs.identities))
    manage = _manage_token(app, reg_id)
    assert client.submit(f"/r/{manage}/erase", {"confirm": "y"}).status_code == 303
    assert emulator.acs.identities[acs_user].deleted is False
    with app.app_context():
        outbox.drain()
    assert emulator.acs.identities[acs_user].deleted is True
    assert not emulator.acs.token_is_valid(call_token)
    assert any(p == f"/identities/{acs_user}" for p in _acs_paths(emulator))


def test_someone_who_never_joined_queues_nothing(app, client, event, auth):
    with app.app_context():
        outcome = registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Grace", last_name="Hopper", email="grace@example.org", timezone="Europe/Berlin"))
        db.session.commit()
        reg_id = outcome.registration.id
    _cancel_by_organizer(app, client, auth, event, reg_id)
    with app.app_context():
        assert not db.session.scalars(select(OutboxItem).where(OutboxItem.kind.like("acs.%"))).all()


# --- no session for an event that is not live ------------------------------------------------------------


def test_unpublished_event_issues_no_session_and_the_page_says_why(app, client, joined, event):
    _, token, _ = joined
    with app.app_context():
        db.session.get(Event, event.id).status = EventStatus.draft
        db.session.commit()
    response = _session(client, token)
    assert response.status_code == 409
    body = response.get_json()
    assert body["state"] == "unpublished" and "taken this event offline" in body["error"]
    page = client.get(f"/j/{token}").get_data(as_text=True)
    assert "This event is offline for now" in page and "Join the call" not in page and "Open in Teams" not in page


def test_cancelled_event_issues_no_session(app, client, joined, event):
    _, token, _ = joined
    with app.app_context():
        db.session.get(Event, event.id).status = EventStatus.cancelled
        db.session.commit()
    response = _session(client, token)
    assert response.status_code == 409 and response.get_json()["state"] == "cancelled"


# --- the join page never opens the manage page ------------------------------------------------------------


def test_join_page_does_not_reveal_the_manage_link(app, client, joined):
    reg_id, token, _ = joined
    page = client.get(f"/j/{token}").get_data(as_text=True)
    manage = _manage_token(app, reg_id)
    assert manage not in page and 'href="/r/' not in page and "/r/" not in page
    assert "use the link in your confirmation email" in page


def test_retention_purge_deletes_the_acs_identities_through_the_worker(app, joined, event):
    _, _, call_token = joined
    emulator = app.extensions["microsoft"].emulator
    acs_user = next(iter(emulator.acs.identities))
    with app.app_context():
        privacy.purge_event(db.session.get(Event, event.id))
        db.session.commit()
        assert emulator.acs.identities[acs_user].deleted is False  # not in the purge itself
        outbox.drain()
    assert emulator.acs.identities[acs_user].deleted is True and not emulator.acs.token_is_valid(call_token)
