"""The recording import over loopback TLS: the real GraphClient lists the meeting's recordings and
transcripts and streams their content from the emulator; each recording keeps the transcript of its own
call (Graph's contentCorrelationId)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventRecording, EventStatus, MicrosoftConnection, User
from app.services.after_event import recordings
from app.services.microsoft.graph import EventDetails
from app.services.outbox import outbox

#: Larger than one streamed chunk (1 MiB), so the download really comes in pieces.
FIRST = bytes(range(256)) * 5000
SECOND = b"second take" * 1000


def test_recordings_and_their_transcripts_are_streamed_over_tls(connected, emulator, tls_emulator):
    assert "onlinemeetingrecording.read.all" in db.session.get(MicrosoftConnection, 1).granted_scopes
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=1)
    ref = connected.graph.create_event(EventDetails(subject="Recorded call", body_html="<p>x</p>", start=start,
                                                    end=end, timezone="UTC"))
    meeting = connected.graph.get_online_meeting_by_join_url(ref.join_url)
    owner = db.session.scalar(select(User))
    event = Event(title="Recorded call", slug="recorded-call", timezone="UTC", starts_at=start, ends_at=end,
                  owner_id=owner.id, status=EventStatus.published, graph_event_id=ref.id,
                  online_meeting_id=meeting.id, join_url=ref.join_url)
    db.session.add(event)
    db.session.commit()
    first = emulator.graph.add_recording(meeting.id, FIRST, created=start + timedelta(minutes=1))
    # The second through the emulator's control API over HTTP (how a person seeds one for `make run`).
    seeded = requests.post(f"{tls_emulator.base_url}/_emulator/graph/online-meetings/{meeting.id}/recordings",
                           json={"content_base64": base64.b64encode(SECOND).decode(),
                                 "transcript": "WEBVTT\n\nsecond\n",
                                 "created": (start + timedelta(minutes=30)).isoformat()},
                           timeout=10, verify=tls_emulator.ca_bundle_path)
    assert seeded.status_code == 201
    second = seeded.json()["recording"]
    refused = requests.post(f"{tls_emulator.base_url}/_emulator/graph/online-meetings/{meeting.id}/recordings",
                            json={"content_base64": "not base64!"}, timeout=10, verify=tls_emulator.ca_bundle_path)
    assert refused.status_code == 400
    emulator.graph.add_transcript(meeting.id, "WEBVTT\n\nfirst\n", recording=first)

    assert recordings.queue_import(event)
    db.session.commit()
    outbox.drain()

    rows = db.session.scalars(select(EventRecording).order_by(EventRecording.recorded_at)).all()
    assert [r.graph_id for r in rows] == [first["id"], second["id"]]
    assert (recordings.folder() / rows[0].stored_name).read_bytes() == FIRST
    assert (recordings.folder() / rows[1].stored_name).read_bytes() == SECOND
    assert (recordings.folder() / rows[0].transcript_stored_name).read_text() == "WEBVTT\n\nfirst\n"
    assert (recordings.folder() / rows[1].transcript_stored_name).read_text() == "WEBVTT\n\nsecond\n"
    assert db.session.get(Event, event.id).recordings_state == "found"

    # Looking again imports nothing twice.
    assert recordings.queue_import(event) is False
    item = db.session.scalar(select(outbox.OutboxItem).where(outbox.OutboxItem.kind == recordings.IMPORT_KIND))
    outbox.retry_now(item)
    db.session.commit()
    outbox.drain()
    assert len(db.session.scalars(select(EventRecording)).all()) == 2
