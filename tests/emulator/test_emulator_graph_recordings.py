"""Graph meeting recordings and transcripts in the emulator, as strict as Microsoft documents them: the
delegated scope per artifact, the meeting's organizer only, resources with exactly the v1.0 properties,
`/content` as bytes with their Content-Type, transcripts as WebVTT and no other format."""

from __future__ import annotations

import pytest

from emulator.graph_facts import properties
from tests.emulator.test_emulator_graph import _event_body

RECORDING_SCOPES = ["OnlineMeetings.ReadWrite", "Calendars.ReadWrite", "OnlineMeetingRecording.Read.All",
                    "OnlineMeetingTranscript.Read.All"]
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v Adele Vance>Hello.</v>\n"


@pytest.fixture
def seeded(target, sign_in):
    """A Teams event of the service account with one recording and one transcript; a token with both scopes."""
    token = sign_in(target, target.msal_app(), RECORDING_SCOPES)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    event = target.session.post(target.graph + "/me/events", json=_event_body(), headers=headers, timeout=5).json()
    meeting = target.emulator.graph.meeting_by_join_url(event["onlineMeeting"]["joinUrl"])
    recording = target.emulator.graph.add_recording(meeting["id"], b"\x00mp4 bytes" * 100)
    transcript = target.emulator.graph.add_transcript(meeting["id"], VTT, recording=recording)
    base = f"{target.graph}/me/onlineMeetings/{meeting['id']}"
    return {"headers": headers, "base": base, "recording": recording, "transcript": transcript, "meeting": meeting}


def test_list_get_and_content_of_recordings_and_transcripts(target, seeded):
    get = lambda path, **kw: target.session.get(seeded["base"] + path, headers=seeded["headers"], timeout=5, **kw)  # noqa: E731
    listed = get("/recordings")
    assert listed.status_code == 200
    item = listed.json()["value"][0]
    assert set(item) <= set(properties("callRecording")) and item["id"] == seeded["recording"]["id"]
    assert item["recordingContentUrl"].endswith(f"/recordings/{item['id']}/content")
    one = get(f"/recordings/{item['id']}")
    assert one.status_code == 200 and one.json()["@odata.context"].endswith("/recordings/$entity")
    content = get(f"/recordings/{item['id']}/content")
    assert content.status_code == 200 and content.headers["Content-Type"] == "video/mp4"
    assert content.content == b"\x00mp4 bytes" * 100

    transcripts = get("/transcripts").json()["value"]
    assert set(transcripts[0]) <= set(properties("callTranscript"))
    # The transcript of the same call carries the recording's contentCorrelationId.
    assert transcripts[0]["contentCorrelationId"] == seeded["recording"]["contentCorrelationId"]
    vtt = get(f"/transcripts/{transcripts[0]['id']}/content", params={"$format": "text/vtt"})
    assert vtt.status_code == 200 and vtt.headers["Content-Type"].startswith("text/vtt") and vtt.text == VTT
    docx = get(f"/transcripts/{transcripts[0]['id']}/content", params={"$format": "application/msword"})
    assert docx.status_code == 400 and docx.json()["error"]["code"] == "BadRequest"
    assert get("/recordings/not-a-recording").status_code == 404


@pytest.mark.parametrize(("scope", "path"), [("OnlineMeetingTranscript.Read.All", "/recordings"),
                                             ("OnlineMeetingRecording.Read.All", "/transcripts")])
def test_each_artifact_needs_its_own_delegated_scope(target, sign_in, seeded, scope, path):
    token = sign_in(target, target.msal_app(), ["OnlineMeetings.ReadWrite", scope])["access_token"]
    response = target.session.get(seeded["base"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 403 and response.json()["error"]["code"] == "Forbidden"


def test_only_the_organizer_reads_a_meetings_recordings(target, sign_in, seeded):
    other = target.emulator.config.users[1].oid
    token = sign_in(target, target.msal_app(), RECORDING_SCOPES, user=other)["access_token"]
    response = target.session.get(seeded["base"] + f"/recordings/{seeded['recording']['id']}/content",
                                  headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 404
