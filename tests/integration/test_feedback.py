"""The feedback survey after an event, through the app's HTTP routes and the emulator: the organizer sets
it up (a rating and questions of the registration kinds), the "thank you for joining" follow-up links each
attendee to their own survey page, each registration answers once, the dashboard and the CSV show the
results, and the answers leave with the attendee's erasure and the event's retention purge."""

# ruff: noqa: F811  (pytest fixtures imported from the attendance tests are test arguments here)
from __future__ import annotations

import json
import re

from sqlalchemy import func, select

from app import jobs
from app.extensions import db
from app.models import AuditEntry, Event, FeedbackResponse, Registration
from app.services.registration import privacy

# The attendance tests' fixtures (an ended event with a Teams meeting and five registrants), used as they are.
from tests.integration.test_attendance_import import _seed_reports, ended_event  # noqa: F401
from tests.worker import drain

FEEDBACK_LINK = re.compile(r"http://localhost/r/([A-Za-z0-9_\-]+)/feedback")
SURVEY = {
    "enabled": "y",
    "questions-0-label": "What should the next session cover?", "questions-0-kind": "single_choice",
    "questions-0-options": "More demos\nMore Q&A", "questions-0-required": "y",
    "questions-1-label": "Anything else?", "questions-1-kind": "long_text", "questions-1-options": "",
    "questions-2-label": "", "questions-2-kind": "long_text", "questions-2-options": "",
}


def _survey_and_followup(client, event_id):
    url = f"/manage/events/{event_id}"
    bad = client.submit(f"{url}/feedback", {**SURVEY, "questions-0-options": "Only one"})
    assert bad.status_code == 422 and "Question 1: Give at least two different options" in bad.get_data(as_text=True)
    assert client.submit(f"{url}/feedback", SURVEY).status_code == 303
    # A recording link of the organizer's own: the follow-up does not wait for a Teams recording.
    assert client.submit(f"{url}/followup",
                         {"enabled": "y", "recording_url": "https://video.example.org/r1"}).status_code == 303


def _followup_links(app, emulator, ctx, client):
    _survey_and_followup(client, ctx["event"].id)
    _seed_reports(emulator, ctx)  # Ada and Bob attended; Dan (confirmed) did not
    sent_before = len(emulator.acs.sent_emails)
    jobs.queue_attendance_imports(app)
    drain(app)
    return {e.to[0]["address"]: e for e in emulator.acs.sent_emails[sent_before:]}


def test_attendee_answers_once_and_the_organizer_sees_and_exports_it(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    sent = _followup_links(app, emulator, ctx, client)
    ada = FEEDBACK_LINK.search(sent["ada@example.org"].plain_text)
    assert ada and FEEDBACK_LINK.search(sent["bob@example.org"].plain_text)
    assert not FEEDBACK_LINK.search(sent["dan@example.org"].plain_text)  # no-shows are not asked
    url = ada.group(0).removeprefix("http://localhost")

    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "How would you rate the event?" in html and "More demos" in html and "Anything else?" in html
    missing = client.submit(url, {"q_2": "Great"})
    assert missing.status_code == 422
    assert "Choose a rating from 1 to 5." in missing.get_data(as_text=True)
    assert "Choose one option." in missing.get_data(as_text=True)
    assert client.submit(url, {"rating": "9", "q_1": "More demos"}).status_code == 422
    assert client.submit(url, {"rating": "4", "q_1": "Something else"}).status_code == 422
    done = client.submit(url, {"rating": "4", "q_1": "More demos", "q_2": "Loved the live coding"})
    assert done.status_code == 303
    assert "Thank you, your feedback has reached the organizer" in client.get(url).get_data(as_text=True)
    again = client.submit(url, {"rating": "1", "q_1": "More Q&A"})
    assert again.status_code == 409
    with app.app_context():
        rows = db.session.scalars(select(FeedbackResponse)).all()
        assert len(rows) == 1 and rows[0].rating == 4
        assert [a["value"] for a in rows[0].answers] == ["More demos", "Loved the live coding"]

    bob = FEEDBACK_LINK.search(sent["bob@example.org"].plain_text).group(0).removeprefix("http://localhost")
    assert client.submit(bob, {"rating": "2", "q_1": "More Q&A"}).status_code == 303
    dashboard = client.get(f"/manage/events/{event_id}").get_data(as_text=True)
    assert 'data-feedback-count="2"' in dashboard and "<strong data-feedback-average>3.0</strong>" in dashboard
    assert "Loved the live coding" in dashboard
    with client.get(f"/manage/events/{event_id}/feedback.csv") as csv:
        text = csv.get_data(as_text=True)
    assert csv.status_code == 200 and "What should the next session cover?" in text
    assert "ada@example.org" in text and "Loved the live coding" in text and ",2,More Q&A" in text

    # The survey's questions are fixed once people answered.
    form = {**SURVEY, "questions-1-label": "Something new?"}
    locked = client.submit(f"/manage/events/{event_id}/feedback", form)
    assert locked.status_code == 422 and "can no longer change" in locked.get_data(as_text=True)


def test_no_show_and_strangers_cannot_answer(app, client, emulator, ended_event):
    ctx = ended_event
    _followup_links(app, emulator, ctx, client)
    with app.app_context():
        from app.services.registration import registrations

        dan = registrations.manage_token_for(db.session.get(Registration, ctx["ids"]["Dan"]))
        db.session.commit()
    assert "is not asking for feedback from you" in client.get(f"/r/{dan}/feedback").get_data(as_text=True)
    assert client.submit(f"/r/{dan}/feedback", {"rating": "5", "q_1": "More demos"}).status_code == 403
    assert client.get("/r/no-such-token/feedback").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(FeedbackResponse)) == 0


def test_feedback_is_in_the_attendees_data_and_goes_with_erasure_and_retention(app, client, emulator, ended_event):
    ctx = ended_event
    sent = _followup_links(app, emulator, ctx, client)
    links = {who: FEEDBACK_LINK.search(sent[f"{who}@example.org"].plain_text).group(1) for who in ("ada", "bob")}
    for who, token in links.items():
        assert client.submit(f"/r/{token}/feedback", {"rating": "5", "q_1": "More Q&A", "q_2": f"from {who}"}
                             ).status_code == 303
    mine = json.loads(client.get(f"/r/{links['ada']}/data.json").get_data(as_text=True))
    assert mine["feedback"]["rating"] == 5 and mine["feedback"]["answers"][1]["value"] == "from ada"

    erased = client.submit(f"/r/{links['ada']}/erase", {"confirm": "y"})
    assert erased.status_code == 303
    with app.app_context():
        left = db.session.scalars(select(FeedbackResponse)).all()
        assert [r.answers[1]["value"] for r in left] == ["from bob"]
        privacy.purge_event(db.session.get(Event, ctx["event"].id))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(FeedbackResponse)) == 0
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "privacy.purge"))
        assert entry.details["rows"]["feedback"] == 1
