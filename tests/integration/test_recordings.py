"""Recordings after an event, end to end through the app's HTTP routes and the emulator: the worker imports
the meeting's recording (and transcript) from Graph, the follow-up waits for the organizer, who watches and
approves it; the follow-up then links every attendee to Foyer's copy, with the transcript as captions. A
connection made before Foyer asked for the recording permissions gets a clear state, never a crash."""

# ruff: noqa: F811  (pytest fixtures imported from the attendance tests are test arguments here)
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.models import (
    AuditEntry,
    Event,
    EventRecording,
    MicrosoftConnection,
    OutboxItem,
    RecordingStatus,
    Registration,
)
from app.services.after_event import recordings

# The attendance tests' fixtures (an ended event with a Teams meeting and five registrants), used as they are.
from tests.integration.test_attendance_import import _seed_reports, ended_event  # noqa: F401
from tests.routes.admin.test_microsoft import connect_service_account
from tests.worker import drain

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
VTT = "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Adele Vance>Welcome, everyone.</v>\n"
RECORDING_LINK = re.compile(r"http://localhost/r/([A-Za-z0-9_\-]+)/recording")


def _turn_followup_on(client, event_id):
    url = f"/manage/events/{event_id}"
    assert client.submit(f"{url}/followup", {"enabled": "y", "recording_url": ""}).status_code == 303


def test_recording_is_imported_approved_and_linked_from_the_followup(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    with app.app_context():
        granted = db.session.get(MicrosoftConnection, 1).granted_scopes.split()
        assert {"onlinemeetingrecording.read.all", "onlinemeetingtranscript.read.all"} <= set(granted)
    _turn_followup_on(client, event_id)
    _seed_reports(emulator, ctx)
    recording = emulator.graph.add_recording(ctx["meeting"], VIDEO)
    transcript = emulator.graph.add_transcript(ctx["meeting"], VTT)
    assert set(recording) == {"id", "meetingId", "callId", "contentCorrelationId", "createdDateTime", "endDateTime",
                              "meetingOrganizer"}
    sent_before = len(emulator.acs.sent_emails)

    jobs.queue_attendance_imports(app)
    drain(app)  # attendance, then the recording import it queued
    with app.app_context():
        row = db.session.scalar(select(EventRecording))
        assert row.status == RecordingStatus.pending and row.graph_id == recording["id"]
        assert row.size_bytes == len(VIDEO) and row.content_type == "video/mp4"
        assert (recordings.folder() / row.stored_name).read_bytes() == VIDEO
        assert (recordings.folder() / row.transcript_stored_name).read_text() == VTT
        assert db.session.get(Event, event_id).recordings_state == "found"
        recording_id = row.id
    assert len(emulator.acs.sent_emails) == sent_before  # the follow-up waits for the organizer
    graph_paths = [r.path for r in emulator.requests_for("graph")]
    assert any(p.endswith(f"/recordings/{recording['id']}/content") for p in graph_paths)
    assert any(p.endswith(f"/transcripts/{transcript['id']}/content") for p in graph_paths)

    page = client.get(f"/manage/events/{event_id}").get_data(as_text=True)
    assert 'data-recording-status="pending"' in page and "The follow-up waits" in page
    with client.get(f"/manage/events/{event_id}/recordings/{recording_id}/media") as media:
        assert media.status_code == 200 and media.data == VIDEO and media.mimetype == "video/mp4"

    response = client.submit(f"/manage/events/{event_id}/recordings/{recording_id}/approve",
                             {"share_transcript": "y"})
    assert response.status_code == 303
    drain(app)
    followups = emulator.acs.sent_emails[sent_before:]
    by_address = {e.to[0]["address"]: e for e in followups}
    assert sorted(by_address) == ["ada@example.org", "bob@example.org", "cleo@example.org", "dan@example.org"]
    ada_link = RECORDING_LINK.search(by_address["ada@example.org"].plain_text)
    dan_link = RECORDING_LINK.search(by_address["dan@example.org"].plain_text)  # no-shows get it too
    assert ada_link and dan_link and ada_link.group(1) != dan_link.group(1)

    watch = client.get(ada_link.group(0).removeprefix("http://localhost"))
    html = watch.get_data(as_text=True)
    assert watch.status_code == 200 and watch.headers["Cache-Control"] == "no-store"
    assert "<video" in html and 'kind="captions"' in html
    token = ada_link.group(1)
    with client.get(f"/r/{token}/recording/media", headers={"Range": "bytes=0-99"}) as ranged:
        assert ranged.status_code == 206 and ranged.data == VIDEO[:100]
    with client.get(f"/r/{token}/recording/captions.vtt") as captions:
        assert captions.status_code == 200 and captions.mimetype == "text/vtt" and b"Welcome" in captions.data
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.startswith("recordings."))))
        assert {"recordings.import", "recordings.approve"} <= actions


def test_attendees_see_nothing_before_approval_or_after_a_decline(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    emulator.graph.add_recording(ctx["meeting"], VIDEO)
    assert client.submit(f"/manage/events/{event_id}/recordings/import").status_code == 303
    drain(app)
    with app.app_context():
        from app.services.registration import registrations

        reg = db.session.get(Registration, ctx["ids"]["Ada"])
        token = registrations.manage_token_for(reg)
        recording_id = db.session.scalar(select(EventRecording.id))
        db.session.commit()
    assert client.get(f"/r/{token}/recording").status_code == 404
    assert client.get(f"/r/{token}/recording/media").status_code == 404
    approved = client.submit(f"/manage/events/{event_id}/recordings/{recording_id}/approve", {}, follow_redirects=True)
    assert "Switch on the follow-up" in approved.get_data(as_text=True)  # it is off here
    assert client.get(f"/r/{token}/recording").status_code == 200
    assert client.get(f"/r/{token}/recording/captions.vtt").status_code == 404  # no transcript shared
    client.submit(f"/manage/events/{event_id}/recordings/{recording_id}/decline", {})
    assert client.get(f"/r/{token}/recording").status_code == 404
    assert client.get("/r/not-a-token/recording").status_code == 404


def test_no_recording_yet_waits_then_the_followup_goes_out_without_one(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    _turn_followup_on(client, event_id)
    _seed_reports(emulator, ctx)
    sent_before = len(emulator.acs.sent_emails)
    jobs.queue_attendance_imports(app)
    drain(app)
    with app.app_context():
        event = db.session.get(Event, event_id)
        assert event.recordings_state == "waiting"
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == recordings.IMPORT_KIND))
        assert "no recording" in item.last_error
    assert len(emulator.acs.sent_emails) == sent_before
    assert "Teams has no recording of this meeting yet" in client.get(f"/manage/events/{event_id}").get_data(
        as_text=True)
    # A day after the end, Foyer stops waiting: the meeting was not recorded.
    with app.app_context():
        event = db.session.get(Event, event_id)
        event.starts_at -= recordings.WAIT_FOR_RECORDING
        event.ends_at -= recordings.WAIT_FOR_RECORDING
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == recordings.IMPORT_KIND))
        item.next_attempt_at = event.ends_at
        db.session.commit()
    drain(app)
    with app.app_context():
        assert db.session.get(Event, event_id).recordings_state == "not_recorded"
    followups = emulator.acs.sent_emails[sent_before:]
    assert len(followups) == 4 and not any("/recording" in (e.plain_text or "") for e in followups)


def test_connection_from_before_the_recording_permissions_says_reconnect(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    with app.app_context():  # an installation connected before Foyer asked for the recording permissions
        db.session.get(MicrosoftConnection, 1).granted_scopes = ""
        db.session.commit()
    _turn_followup_on(client, event_id)
    _seed_reports(emulator, ctx)
    emulator.graph.add_recording(ctx["meeting"], VIDEO)
    sent_before = len(emulator.acs.sent_emails)
    jobs.queue_attendance_imports(app)
    drain(app)
    assert len(emulator.acs.sent_emails) - sent_before == 4  # nothing holds the follow-up
    assert not any("/recordings" in r.path for r in emulator.requests_for("graph"))
    page = client.get(f"/manage/events/{event_id}").get_data(as_text=True)
    assert 'data-recordings-state="permission_missing"' in page and "reconnect Microsoft 365" in page
    admin_page = client.get("/admin/microsoft/").get_data(as_text=True)
    assert "Reconnect once to let Foyer import meeting recordings" in admin_page
    assert "OnlineMeetingRecording.Read.All" in admin_page and "Connected" in admin_page
    events_page = client.get("/manage/events/").get_data(as_text=True)  # the admin's landing page says it too
    assert "Reconnect Microsoft 365 once for meeting recordings" in events_page
    with app.app_context():
        assert db.session.get(MicrosoftConnection, 1).status.value == "connected"

    connect_service_account(app, client)  # the admin reconnects once
    assert "Reconnect once" not in client.get("/admin/microsoft/").get_data(as_text=True)
    assert "Reconnect Microsoft 365 once" not in client.get("/manage/events/").get_data(as_text=True)
    assert client.submit(f"/manage/events/{event_id}/recordings/import").status_code == 303
    drain(app)
    with app.app_context():
        assert db.session.scalar(select(EventRecording.status)) == RecordingStatus.pending


@pytest.mark.parametrize("revoked", ["recording", "transcript"])
def test_consent_revoked_in_microsoft_is_a_state_not_a_broken_connection(app, client, emulator, ended_event, revoked):
    """The connection says the scopes were granted, but Entra no longer has the consent (an admin removed it):
    the refresh for that scope gets AADSTS65001; only the recording import notices."""
    ctx = ended_event
    event_id = ctx["event"].id
    emulator.graph.add_recording(ctx["meeting"], VIDEO)
    emulator.graph.add_transcript(ctx["meeting"], VTT)
    name = "onlinemeetingrecording.read.all" if revoked == "recording" else "onlinemeetingtranscript.read.all"
    for record in emulator.entra.refresh_tokens.values():
        record.scopes = frozenset(s for s in record.scopes if s.lower() != name)
    emulator.entra.expire_access_tokens()
    client.submit(f"/manage/events/{event_id}/recordings/import")
    drain(app)
    with app.app_context():
        event = db.session.get(Event, event_id)
        assert db.session.get(MicrosoftConnection, 1).status.value == "connected"
        rows = db.session.scalars(select(EventRecording)).all()
        if revoked == "recording":
            assert event.recordings_state == "permission_missing" and rows == []
        else:  # the recording comes without its transcript
            assert event.recordings_state == "found" and len(rows) == 1 and rows[0].transcript_stored_name is None


def test_retention_purge_deletes_the_recording_files(app, client, emulator, ended_event):
    from app.services.registration import privacy

    ctx = ended_event
    emulator.graph.add_recording(ctx["meeting"], VIDEO)
    emulator.graph.add_transcript(ctx["meeting"], VTT)
    client.submit(f"/manage/events/{ctx['event'].id}/recordings/import")
    drain(app)
    with app.app_context():
        row = db.session.scalar(select(EventRecording))
        files = [recordings.folder() / row.stored_name, recordings.folder() / row.transcript_stored_name]
        assert all(f.exists() for f in files)
        privacy.purge_event(db.session.get(Event, ctx["event"].id))
        assert all(f.exists() for f in files)  # until the commit
        db.session.commit()
        assert not any(f.exists() for f in files) and db.session.scalar(select(EventRecording)) is None
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "privacy.purge"))
        assert entry.details["rows"]["recordings"] == 1


def test_a_recording_too_large_to_copy_is_said_and_the_followup_goes_out(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    _turn_followup_on(client, event_id)
    _seed_reports(emulator, ctx)
    emulator.graph.add_recording(ctx["meeting"], VIDEO)
    app.config["RECORDING_MAX_MB"] = 0  # everything is too large
    sent_before = len(emulator.acs.sent_emails)
    with app.app_context():
        files_before = set(recordings.folder().glob("*"))
    try:
        jobs.queue_attendance_imports(app)
        drain(app)
    finally:
        app.config["RECORDING_MAX_MB"] = 4096
    with app.app_context():
        assert db.session.get(Event, event_id).recordings_state == "too_large"
        assert db.session.scalar(select(EventRecording)) is None
        assert set(recordings.folder().glob("*")) == files_before  # the partial copy is gone
    assert len(emulator.acs.sent_emails) - sent_before == 4
    assert 'data-recordings-state="too_large"' in client.get(f"/manage/events/{event_id}").get_data(as_text=True)


def test_an_import_microsoft_keeps_refusing_fails_clearly_and_releases_the_followup(app, client, emulator,
                                                                                    ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    _turn_followup_on(client, event_id)
    _seed_reports(emulator, ctx)
    # Graph answers the recordings list with a 400 every time: retrying cannot help.
    fault = emulator.faults.add(kind="status", group="graph", path="*/recordings", status=400, code="BadRequest")
    sent_before = len(emulator.acs.sent_emails)
    try:
        jobs.queue_attendance_imports(app)
        drain(app)
    finally:
        emulator.faults.remove(fault.id)
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == recordings.IMPORT_KIND))
        assert item.status.value == "failed", (item.status, item.last_error)
        assert db.session.get(Event, event_id).recordings_state == "failed"
    assert len(emulator.acs.sent_emails) - sent_before == 4
    assert 'data-recordings-state="failed"' in client.get(f"/manage/events/{event_id}").get_data(as_text=True)
