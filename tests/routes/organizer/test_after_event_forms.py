"""Bad input on the after-event forms gets a clear answer, never a 500: the organizer's survey form, the
recording actions on someone else's event or recording, and the attendee's feedback form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventRecording, FeedbackResponse, Registration, RegistrationState
from tests.database import fingerprint


def _ended_event(app, make_event, owner, **values):
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    event = make_event(owner, starts_at=end - timedelta(hours=1), ends_at=end)
    with app.app_context():
        row = db.session.get(Event, event.id)
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()
    return event


def test_survey_form_refuses_bad_questions(app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _ended_event(app, make_event, organizer)
    url = f"/manage/events/{event.id}"
    cases = [
        ({"questions-0-label": "Q", "questions-0-kind": "telepathy"}, "Not a valid choice"),
        ({"questions-0-label": "x" * 301, "questions-0-kind": "short_text"},
         "Question can be at most 300 characters long"),
        ({"questions-0-label": "Pick", "questions-0-kind": "multiple_choice", "questions-0-options": "A\na"},
         "Question 1: Give at least two different options"),
    ]
    for data, message in cases:
        response = client.submit(f"{url}/feedback", {"enabled": "y", **data})
        assert response.status_code == 422 and message in response.get_data(as_text=True), message
    # More questions than the three slots: the first three are kept, not a crash.
    extra = {"enabled": "y"}
    for i in range(5):
        extra |= {f"questions-{i}-label": f"Q{i}?", f"questions-{i}-kind": "short_text"}
    assert client.submit(f"{url}/feedback", extra).status_code == 303
    with app.app_context():
        saved = db.session.get(Event, event.id).feedback_questions
        assert [q["label"] for q in saved] == ["Q0?", "Q1?", "Q2?"]
    # On, but the follow-up that carries it is off: the overview says so.
    assert "The survey goes out with the follow-up, which is off" in client.get(url).get_data(as_text=True)


@pytest.mark.db_agnostic
def test_recording_actions_on_other_events_are_404(app, client, auth, make_event, make_user):
    organizer = auth.login_as_organizer()
    mine = _ended_event(app, make_event, organizer)
    other_owner = make_user("other@example.org")
    theirs = _ended_event(app, make_event, other_owner)
    with app.app_context():
        db.session.add(EventRecording(event_id=theirs.id, graph_id="r", content_type="video/mp4", size_bytes=1,
                                      stored_name="x.media"))
        db.session.commit()
        rec_id = db.session.scalar(select(EventRecording.id))
    for path in (f"/manage/events/{mine.id}/recordings/{rec_id}/approve",
                 f"/manage/events/{theirs.id}/recordings/{rec_id}/approve",
                 f"/manage/events/{mine.id}/recordings/{rec_id}/decline"):
        assert client.submit(path, {}).status_code == 404, path
    assert client.get(f"/manage/events/{theirs.id}/recordings/{rec_id}/media").status_code == 404
    # A meeting-less event: a clear message, no import queued.
    response = client.submit(f"/manage/events/{mine.id}/recordings/import",
                             follow_redirects=True)
    assert "no Teams meeting" in response.get_data(as_text=True)


def test_after_event_buttons_sent_without_their_token_are_refused_kindly_and_change_nothing(
        app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _ended_event(app, make_event, organizer, join_url="https://teams.microsoft.com/l/meetup-join/x")
    with app.app_context():
        db.session.add(EventRecording(event_id=event.id, graph_id="r", content_type="video/mp4", size_bytes=1,
                                      stored_name="x.media"))
        db.session.commit()
        rec_id = db.session.scalar(select(EventRecording.id))
        before = fingerprint()
    url = f"/manage/events/{event.id}"
    for path in (f"{url}/recordings/import", f"{url}/recordings/{rec_id}/approve",
                 f"{url}/recordings/{rec_id}/decline", f"{url}/attendance/import"):
        response = client.post(path, data={"share_transcript": "y"})
        assert response.status_code == 400, path
        assert "This form has expired" in response.get_data(as_text=True), path
    with app.app_context():
        assert fingerprint() == before


def test_feedback_form_takes_odd_input_without_crashing(app, client, auth, make_event):
    from app.services.registration import registrations

    organizer = auth.login_as_organizer()
    event = _ended_event(app, make_event, organizer, feedback_enabled=True, feedback_questions=[
        {"label": "Topics", "kind": "multiple_choice", "options": ["A", "B"], "required": True},
        {"label": "Agree?", "kind": "checkbox", "options": [], "required": False}])
    with app.app_context():
        reg = Registration(event_id=event.id, state=RegistrationState.confirmed, email="ada@example.org",
                           first_name="Ada", last_name="L", timezone="UTC", attended=True, manage_token_hash="1" * 64)
        db.session.add(reg)
        db.session.flush()
        token = registrations.manage_token_for(reg)
        db.session.commit()
    url = f"/r/{token}/feedback"
    for data in ({"rating": "x"}, {"rating": "3", "q_1": "C"}, {"rating": "3", "q_1": ["A", "Z"]},
                 {"rating": ["1", "2"]}, {"rating": "0", "q_1": "A"}):
        response = client.submit(url, data)
        assert response.status_code == 422, data
    assert client.submit(url, {"rating": "5", "q_1": ["B", "A"], "q_2": "y"}).status_code == 303
    with app.app_context():
        row = db.session.scalar(select(FeedbackResponse))
        assert row.answers == [{"label": "Topics", "kind": "multiple_choice", "value": ["A", "B"]},
                               {"label": "Agree?", "kind": "checkbox", "value": True}]
