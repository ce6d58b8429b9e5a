"""After the event in the browser, audited on every page: the organizer watches for the imported recording
on the event's overview and approves it (sharing the transcript), which sends the follow-up; an attendee
plays the recording (captions from the transcript) from that email, opens the feedback link, is told what
is missing, and sends a rating and an answer."""

from __future__ import annotations

import io
import re
import wave
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import (
    ConnectionStatus,
    Event,
    EventRecording,
    EventStatus,
    FeedbackResponse,
    MicrosoftConnection,
    Registration,
    RegistrationState,
    Role,
)
from app.services.accounts import accounts
from app.services.after_event import recordings
from app.services.outbox import outbox

PASSWORD = "a long secret pw"
FEEDBACK_LINK = re.compile(r"http://localhost:\d+/r/[A-Za-z0-9_\-]+/feedback")


def _silence() -> bytes:
    """One second of silence as a WAV file: a recording the browser really plays."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000)
    return buffer.getvalue()


def _ended_event_with_a_recording(app) -> int:
    """An event that ended an hour ago: attendance imported (Ada attended), the follow-up and the feedback
    survey on, and the meeting's recording imported and awaiting the organizer (as the worker leaves it).
    """
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.admin, password=PASSWORD, name="Olive")
        db.session.add(MicrosoftConnection(id=1, status=ConnectionStatus.connected,
                                           granted_scopes="onlinemeetingrecording.read.all "
                                                          "onlinemeetingtranscript.read.all"))
        end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
        event = Event(title="Recorded meetup", slug="recorded-meetup", timezone="Europe/Berlin",
                      starts_at=end - timedelta(hours=1), ends_at=end, status=EventStatus.published,
                      published_at=end - timedelta(days=5), owner_id=owner.id, online_meeting_id="meeting-1",
                      followup_enabled=True, attendance_imported_at=end + timedelta(minutes=20),
                      recordings_state="found", feedback_enabled=True,
                      feedback_questions=[{"label": "What should we do next time?", "kind": "long_text",
                                           "options": [], "required": False}])
        db.session.add(event)
        db.session.flush()
        db.session.add(Registration(event_id=event.id, state=RegistrationState.confirmed, email="ada@example.org",
                                    first_name="Ada", last_name="Lovelace", timezone="UTC", attended=True,
                                    attendance_seconds=3000, manage_token_hash="0" * 64))
        folder = recordings.folder()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "a1.media").write_bytes(_silence())
        (folder / "a1.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\n<v Olive>Welcome.</v>\n")
        db.session.add(EventRecording(event_id=event.id, graph_id="rec-1", recorded_at=end - timedelta(minutes=55),
                                      content_type="audio/wav", size_bytes=len(_silence()), stored_name="a1.media",
                                      transcript_stored_name="a1.vtt"))
        db.session.commit()
        return event.id


def test_organizer_approves_the_recording_and_an_attendee_sends_feedback(page, visit, audit, live_server):
    app = live_server.app
    event_id = _ended_event_with_a_recording(app)
    visit("/login")
    page.get_by_label("Email").fill("organizer@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()

    visit(f"/manage/events/{event_id}")
    recording = page.get_by_role("article", name=re.compile(r"^Recording 1"))
    expect(recording).to_contain_text("awaiting your approval")
    expect(page.get_by_text("The follow-up waits")).to_be_visible()
    recording.get_by_label("Show the transcript to attendees as captions").check()
    recording.get_by_role("button", name="Approve for the follow-up").click()
    expect(page.get_by_text("Recording approved. The follow-up is going out with its link now.")).to_be_visible()
    expect(page.get_by_role("article", name=re.compile(r"^Recording 1"))).to_contain_text(
        "approved: attendees can watch it")
    audit()
    with app.app_context():
        assert db.session.scalar(select(EventRecording.share_transcript)) is True
        while outbox.drain(limit=200):
            pass
    sent = app.extensions["microsoft"].emulator.acs.sent_emails
    ada = [e for e in sent if e.to[0]["address"] == "ada@example.org"]
    assert len(ada) == 1 and "/recording" in ada[0].plain_text
    link = FEEDBACK_LINK.search(ada[0].plain_text).group(0)

    visit(link.replace("/feedback", "/recording"))  # the attendee watches, captions from the transcript
    expect(page.get_by_role("heading", name="Recording of Recorded meetup", level=1)).to_be_visible()
    player = page.locator("video.recording-player")
    expect(player.locator("track[kind=captions]")).to_have_count(1)
    page.wait_for_function("document.querySelector('video.recording-player').readyState >= 1")
    assert page.evaluate("document.querySelector('video.recording-player').duration") > 0.9

    feedback = page  # the attendee follows the link in their email
    visit(link)
    expect(feedback.get_by_role("heading", name="How was Recorded meetup?", level=1)).to_be_visible()
    feedback.get_by_role("button", name="Send feedback").click()
    expect(feedback.get_by_text("Choose a rating from 1 to 5.")).to_be_visible()
    audit()
    feedback.get_by_label("4 – Very good").check()
    feedback.get_by_label("What should we do next time?").fill("More live demos, please.")
    feedback.get_by_role("button", name="Send feedback").click()
    expect(feedback.get_by_text("Thank you, your feedback has reached the organizer")).to_be_visible()
    audit()
    with app.app_context():
        row = db.session.scalar(select(FeedbackResponse))
        assert row.rating == 4 and row.answers[0]["value"] == "More live demos, please."

    visit(f"/manage/events/{event_id}")
    section = page.get_by_role("region", name="Feedback")
    expect(section).to_contain_text("More live demos, please.")
    expect(section.get_by_role("table", name="Ratings")).to_be_visible()
