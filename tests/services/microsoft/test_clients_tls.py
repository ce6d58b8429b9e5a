"""Foyer's Microsoft clients against the emulator over loopback TLS, configured only by environment
variables: happy paths, token refresh on 401, throttling, outages, revocation and HMAC rejection."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import ConnectionStatus, MicrosoftConnection
from app.services.microsoft.acs import AcsIdentityClient, AcsSettings, EmailMessage
from app.services.microsoft.errors import AcsError, GraphError, ReconnectRequired
from app.services.microsoft.graph import EventDetails, MeetingOptions


def _details(title="Quarterly town hall"):
    start = datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 10:00 in Berlin, the day clocks change
    return EventDetails(subject=title, body_html="<p>Hello</p>", start=start, end=start + timedelta(hours=1),
                        timezone="Europe/Berlin", transaction_id="9a3b3c1e-1111-4222-8333-444455556666")


def test_graph_calendar_event_with_teams_meeting_round_trip(connected, emulator):
    graph = connected.graph
    me = graph.get_me()
    assert me.user_principal_name == "foyer.service@contoso.emulator.invalid"

    ref = graph.create_event(_details())
    assert ref.join_url and "%3a" in ref.join_url  # stored verbatim, escapes and all
    stored = emulator.graph.events[ref.id]
    assert stored["subject"] == "Quarterly town hall" and stored["isOnlineMeeting"] is True
    assert stored["onlineMeetingProvider"] == "teamsForBusiness"

    again = graph.create_event(_details())  # same transactionId: Graph does not make a second one
    assert again.id == ref.id

    emulator.clock.advance(emulator.config.meeting_lookup_delay)  # Teams has set the meeting up
    meeting = graph.get_online_meeting_by_join_url(ref.join_url)
    assert meeting.join_web_url == ref.join_url
    assert meeting.join_meeting_id and meeting.passcode
    updated = graph.update_online_meeting(meeting.id, MeetingOptions(lobby_scope="everyone",
                                                                     allowed_presenters="organizer"))
    assert updated.lobby_scope == "everyone" and updated.allowed_presenters == "organizer"

    graph.update_event(ref.id, _details("Renamed town hall"))
    assert emulator.graph.events[ref.id]["subject"] == "Renamed town hall"
    graph.cancel_event(ref.id, "Sorry, we have to cancel.")
    assert ref.id in emulator.graph.deleted_events and ref.id not in emulator.graph.events
    [cancel] = emulator.requests_for("graph", path=f"/v1.0/me/events/{ref.id}/cancel")
    assert cancel.status == 202


def test_expired_access_token_is_refreshed_once_and_saved(connected, emulator):
    connected.graph.get_me()
    before = db.session.get(MicrosoftConnection, 1).last_refresh_at
    emulator.entra.expire_access_tokens()
    assert connected.graph.get_me().id
    db.session.rollback()  # end the read snapshot: the token store writes on its own connection
    assert db.session.get(MicrosoftConnection, 1).last_refresh_at > before
    statuses = [r.status for r in emulator.requests_for("graph", path="/v1.0/me")]
    assert statuses[-2:] == [401, 200]


def test_throttling_with_fractional_retry_after_is_honoured(connected, emulator):
    emulator.faults.add(kind="status", group="graph", path="/v1.0/me", status=429, retry_after="0.5", count=2)
    started = time.monotonic()
    assert connected.graph.get_me().id
    assert time.monotonic() - started >= 1.0  # two waits of 0.5 s, never earlier
    statuses = [r.status for r in emulator.requests_for("graph", path="/v1.0/me")]
    assert statuses == [429, 429, 200]


def test_outage_without_retry_after_backs_off_then_recovers(connected, emulator):
    emulator.faults.add(kind="status", group="graph", path="/v1.0/me", status=503, count=2)
    assert connected.graph.get_me().id
    assert [r.status for r in emulator.requests_for("graph", path="/v1.0/me")] == [503, 503, 200]


def test_long_throttling_is_handed_back_as_a_transient_error(connected, emulator):
    emulator.faults.add(kind="status", group="graph", path="/v1.0/me", status=429, retry_after="120")
    with pytest.raises(GraphError) as caught:
        connected.graph.get_me()
    assert caught.value.transient and caught.value.retry_after == 120.0 and caught.value.status == 429


def test_revoked_refresh_token_means_reconnect(connected, emulator):
    emulator.entra.revoke_refresh_tokens()
    emulator.entra.expire_access_tokens()
    with pytest.raises(ReconnectRequired) as caught:
        connected.graph.get_me()
    assert "AADSTS50173" in caught.value.code
    db.session.rollback()  # end the read snapshot: the token store writes on its own connection
    row = db.session.get(MicrosoftConnection, 1)
    assert row.status == ConnectionStatus.needs_reconnect and "50173" in row.last_error


def test_tokens_never_stored_in_plain_text(connected):
    dump = db.session.get(MicrosoftConnection, 1).token_cache_encrypted
    assert dump.startswith("gAAAA") and "refresh" not in dump.lower()


def test_acs_identity_lifecycle(tls_ctx, emulator):
    identity = tls_ctx.extensions["microsoft"].acs_identity
    user_id = identity.create_user()
    issued = identity.issue_token(user_id, scopes=["voip", "chat"], minutes=60)
    assert issued.token and timedelta(minutes=55) < issued.expires_on - datetime.now(UTC) <= timedelta(minutes=61)
    assert emulator.acs.token_is_valid(issued.token)
    identity.revoke_tokens(user_id)
    assert not emulator.acs.token_is_valid(issued.token)
    identity.delete_user(user_id)


def test_acs_rejects_requests_signed_with_the_wrong_key(tls_ctx, emulator):
    clients = tls_ctx.extensions["microsoft"]
    settings = AcsSettings.from_connection_string(tls_ctx.config["ACS_CONNECTION_STRING"])
    forged = AcsIdentityClient(AcsSettings(settings.endpoint, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="),
                               session=clients.session, verify=clients.verify, retry_total=0)
    with pytest.raises(AcsError) as caught:
        forged.create_user()
    assert caught.value.status == 401
    assert emulator.acs.rejected_signatures


def _final_status(email, operation_id: str) -> str:
    """Poll an operation until ACS reports a terminal status."""
    for _ in range(10):
        status = email.operation_status(operation_id).status
        if status in ("Succeeded", "Failed", "Canceled"):
            return status
    raise AssertionError(f"operation {operation_id} still {status}")


def test_acs_email_is_sent_with_our_operation_id(tls_ctx, emulator):
    email = tls_ctx.extensions["microsoft"].acs_email
    operation_id = "3f0c6f4e-0000-4000-8000-000000000001"
    result = email.submit(EmailMessage(to=[("ada@example.org", "Ada")], subject="Hello", plain_text="Hi",
                                       html="<p>Hi</p>"), operation_id=operation_id)
    assert result.operation_id == operation_id and result.status in ("NotStarted", "Running")
    [sent] = emulator.acs.sent_emails
    assert sent.sender == "events@foyer.example" and sent.to == [{"address": "ada@example.org", "displayName": "Ada"}]
    assert sent.client_operation_id == operation_id
    assert _final_status(email, operation_id) == "Succeeded"
    assert email.operation_status("3f0c6f4e-0000-4000-8000-00000000dead") is None  # never sent: ACS says so


def test_acs_email_failure_and_throttling_surface_as_errors(tls_ctx, emulator):
    email = tls_ctx.extensions["microsoft"].acs_email
    bounced = email.submit(EmailMessage(to=[("x@bounce.invalid", "")], subject="S", plain_text="T", html="<p>T</p>"),
                           operation_id="3f0c6f4e-0000-4000-8000-000000000002")
    assert _final_status(email, bounced.operation_id) == "Failed"
    emulator.faults.add(kind="status", group="acs", path="/emails:send", status=429, retry_after="7", count=1)
    with pytest.raises(AcsError) as caught:
        email.submit(EmailMessage(to=[("ada@example.org", "")], subject="S", plain_text="T", html="<p>T</p>"),
                     operation_id="3f0c6f4e-0000-4000-8000-000000000003")
    assert caught.value.status == 429 and caught.value.transient and caught.value.retry_after == 7.0


def test_sms_results_per_recipient(tls_ctx, emulator):
    sms = tls_ctx.extensions["microsoft"].acs_sms
    results = sms.send(["+18005550101", "+18005550102"], "Starts in 1 hour")
    assert [r.successful for r in results] == [True, True]
    assert len(emulator.acs.sms_messages) >= 1


def test_a_retry_after_of_seconds_is_handed_back_at_once_not_slept_through(connected, emulator):
    emulator.faults.add(kind="status", group="graph", path="/v1.0/me", status=429, retry_after="5", count=1)
    started = time.monotonic()
    with pytest.raises(GraphError) as caught:
        connected.graph.get_me()
    assert time.monotonic() - started < 1.0  # the worker is free for other jobs meanwhile
    assert caught.value.transient and caught.value.retry_after == 5.0
    assert [r.status for r in emulator.requests_for("graph", path="/v1.0/me")] == [429]
