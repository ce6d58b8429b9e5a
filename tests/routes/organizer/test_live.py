"""The organizer's live page over HTTP: Q&A settings, moderation (approve, answer in writing or live,
pin, dismiss), polls (prepare, launch, close, remove, results), the CSV exports, and the attendee's
data: in their own export, gone on erasure, purged by retention (votes kept as anonymous counts)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.models import (
    Event,
    LiveQuestion,
    LiveQuestionStatus,
    LiveQuestionVote,
    LiveSettings,
    Poll,
    PollStatus,
    PollVote,
    Registration,
)
from app.services.registration import registrations
from tests.database import every_row_as_text
from tests.live_helpers import attendee, open_event


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def organizer(auth):
    return auth.login_as_organizer("org@example.org")


@pytest.fixture
def event(make_event, organizer):
    return open_event(make_event, organizer)


def _ask(client, token, body):
    response = client.submit(f"/j/{token}/questions", {"ask-body": body})
    assert response.status_code == 303, _text(response)


def _question_id(app, body) -> int:
    with app.app_context():
        return db.session.scalar(select(LiveQuestion.id).where(LiveQuestion.body == body))


def _live(event) -> str:
    return f"/manage/events/{event.id}/live"


def _post(client, event, path, data=None, *, htmx=False):
    url = f"{_live(event)}{path}"
    if htmx:
        return client.htmx("POST", url, data=data or {})
    return client.submit(url, data or {})


def _create_poll(client, event, prompt="Which day?", options="Monday\nFriday", multiple=False) -> int:
    data = {"prompt": prompt, "options": options}
    if multiple:
        data["multiple"] = "y"
    response = _post(client, event, "/polls", data)
    assert response.status_code == 303, _text(response)
    return int(response.headers["Location"].rsplit("#poll-", 1)[1])


# --- the page and settings ------------------------------------------------------------------------------


@pytest.mark.db_agnostic
def test_the_event_page_links_to_the_live_page(app, client, event):
    assert f'href="{_live(event)}"' in _text(client.get(f"/manage/events/{event.id}"))
    page = client.get(_live(event))
    assert page.status_code == 200 and "Questions and polls" in _text(page) and "No polls yet." in _text(page)


@pytest.mark.db_agnostic
def test_other_organizers_and_anonymous_visitors_are_kept_out(app, client, auth, event):
    auth.logout()
    assert client.get(_live(event)).status_code == 302
    auth.login_as_organizer("other@example.org")
    assert client.get(_live(event)).status_code == 404
    assert client.get(f"/manage/events/{event.id}/questions.csv").status_code == 404
    assert client.submit(f"{_live(event)}/polls", {"prompt": "X", "options": "a\nb"}).status_code == 404


def test_settings_turn_on_anonymous_questions_and_moderation(app, client, event):
    response = _post(client, event, "/settings", {"allow_anonymous": "y", "moderate_questions": "y"})
    assert response.status_code == 303
    with app.app_context():
        settings = db.session.get(LiveSettings, event.id)
        assert settings.allow_anonymous and settings.moderate_questions
    _, token = attendee(app, event.id)
    assert 'name="ask-anonymous"' in _text(client.get(f"/j/{token}"))
    _post(client, event, "/settings", {})
    assert 'name="ask-anonymous"' not in _text(client.get(f"/j/{token}"))


# --- moderation -----------------------------------------------------------------------------------------


def test_a_moderated_question_is_approved_then_answered_in_writing(app, client, event):
    _post(client, event, "/settings", {"moderate_questions": "y"})
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    _ask(client, ada, "Is it recorded?")
    qid = _question_id(app, "Is it recorded?")
    page = _text(client.get(_live(event)))
    assert "Waiting for approval (1)" in page and "Ada Lovelace" in page
    fragment = _post(client, event, f"/questions/{qid}/approve", htmx=True)
    assert fragment.status_code == 200 and _text(fragment).lstrip().startswith('<section id="moderation"')
    assert "Open (1)" in _text(fragment)
    assert "Is it recorded?" in _text(client.get(f"/j/{bob}"))
    response = _post(client, event, f"/questions/{qid}/answer", {"answer": "Yes, <i>and</i> shared."})
    assert response.status_code == 303 and response.headers["Location"].endswith("#moderation")
    seen = _text(client.get(f"/j/{bob}"))
    assert "Yes, &lt;i&gt;and&lt;/i&gt; shared." in seen and "<strong>Answer</strong>" in seen
    with app.app_context():
        question = db.session.get(LiveQuestion, qid)
        assert question.status == LiveQuestionStatus.answered and question.answered_by_id is not None


def test_answered_live_needs_no_text_but_an_answer_needs_one_or_the_other(app, client, event):
    _, ada = attendee(app, event.id)
    _ask(client, ada, "What about SMS?")
    qid = _question_id(app, "What about SMS?")
    empty = _post(client, event, f"/questions/{qid}/answer", {"answer": "  "}, htmx=True)
    assert empty.status_code == 422 and "mark the question as answered live" in _text(empty)
    too_long = _post(client, event, f"/questions/{qid}/answer", {"answer": "x" * 2001})
    assert too_long.status_code == 422 and "2,000" in _text(too_long)
    assert _post(client, event, f"/questions/{qid}/answer", {"live": "y"}).status_code == 303
    assert "Answered live" in _text(client.get(f"/j/{ada}"))


def test_pinned_questions_come_first_and_dismissed_ones_disappear(app, client, event):
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    _ask(client, ada, "Older question")
    _ask(client, ada, "Newer question")
    _ask(client, ada, "Rude question")
    newer, rude = _question_id(app, "Newer question"), _question_id(app, "Rude question")
    _post(client, event, f"/questions/{newer}/pin", {"pinned": "1"})
    feed = _text(client.get(f"/j/{bob}"))
    assert feed.index("Newer question") < feed.index("Older question") and "<strong>Pinned</strong>" in feed
    _post(client, event, f"/questions/{rude}/dismiss")
    assert "Rude question" not in _text(client.get(f"/j/{bob}"))
    assert "Rude question" not in _text(client.get(f"/j/{ada}"))  # its asker no longer sees it either
    assert "Dismissed (1)" in _text(client.get(_live(event)))
    _post(client, event, f"/questions/{newer}/pin", {"pinned": "0"})
    with app.app_context():
        assert not db.session.get(LiveQuestion, newer).pinned


def test_answering_an_answered_question_again_is_allowed_but_approving_it_is_a_conflict(app, client, event):
    _, ada = attendee(app, event.id)
    _ask(client, ada, "Twice?")
    qid = _question_id(app, "Twice?")
    _post(client, event, f"/questions/{qid}/answer", {"live": "y"})
    response = _post(client, event, f"/questions/{qid}/approve", htmx=True)
    assert response.status_code == 409 and "answered already" in _text(response)


def test_unknown_questions_and_another_events_questions_are_404(app, client, event, make_event, organizer):
    other = open_event(make_event, organizer, title="Other")
    _, ada = attendee(app, other.id)
    _ask(client, ada, "Elsewhere")
    elsewhere = _question_id(app, "Elsewhere")
    assert _post(client, event, f"/questions/{elsewhere}/approve").status_code == 404
    assert _post(client, event, "/questions/999999/dismiss").status_code == 404


@pytest.mark.db_agnostic
def test_the_questions_list_polls_itself(app, client, event):
    fragment = client.get(f"{_live(event)}/questions", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 10s"' in _text(fragment) and "<html" not in _text(fragment)
    assert client.get(f"{_live(event)}/questions").status_code == 303


# --- polls ----------------------------------------------------------------------------------------------


def test_a_poll_is_prepared_launched_voted_and_closed(app, client, event):
    poll_id = _create_poll(client, event)
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    assert "Which day?" not in _text(client.get(f"/j/{ada}"))  # prepared, not launched
    launched = _post(client, event, f"/polls/{poll_id}/launch", htmx=True)
    assert launched.status_code == 200 and "open for votes" in _text(launched)
    with app.app_context():
        monday, friday = (o.id for o in db.session.get(Poll, poll_id).options)
    csrf = client.csrf_token(f"/j/{ada}")
    client.post(f"/j/{ada}/polls/{poll_id}/vote", data={"choice": monday, "csrf_token": csrf})
    client.post(f"/j/{bob}/polls/{poll_id}/vote", data={"choice": friday, "csrf_token": csrf})
    results = _text(client.get(f"{_live(event)}/polls", headers={"HX-Request": "true"}))
    assert "2 voters" in results and "<th scope=\"row\">Monday</th><td>1</td><td>50%</td>" in results
    assert _post(client, event, f"/polls/{poll_id}/close").status_code == 303
    with app.app_context():
        assert db.session.get(Poll, poll_id).status == PollStatus.closed
    late = client.post(f"/j/{ada}/polls/{poll_id}/vote", data={"choice": friday, "csrf_token": csrf})
    assert late.status_code == 409
    closed_again = _post(client, event, f"/polls/{poll_id}/close", htmx=True)
    assert closed_again.status_code == 409 and "Only an open poll can be closed." in _text(closed_again)


def test_preparing_a_poll_with_htmx_refreshes_the_list(app, client, event):
    response = _post(client, event, "/polls", {"prompt": "Lunch?", "options": "Pizza\nSalad", "multiple": "y"},
                     htmx=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "foyer:polls-refresh"
    assert "Poll “Lunch?” prepared." in _text(response)
    assert "Multiple choice" in _text(client.get(_live(event)))


@pytest.mark.db_agnostic
@pytest.mark.parametrize(("data", "message"), [
    ({"prompt": "", "options": "a\nb"}, "Enter the poll&#39;s question."),
    ({"prompt": "One?", "options": "only one"}, "at least 2 answers"),
    ({"prompt": "Dupes?", "options": "Yes\nyes"}, "Each answer must be different."),
    ({"prompt": "Many?", "options": "\n".join(str(i) for i in range(11))}, "at most 10 answers"),
    ({"prompt": "Long?", "options": "a\n" + "b" * 201}, "at most 200 characters"),
    ({"prompt": "x" * 301, "options": "a\nb"}, "at most 300 characters"),
])
def test_bad_polls_are_refused_with_a_message(app, client, event, data, message):
    response = _post(client, event, "/polls", data)
    assert response.status_code == 422 and message in _text(response)
    with app.app_context():
        assert db.session.scalar(select(Poll)) is None


def test_only_prepared_polls_can_be_removed(app, client, event):
    poll_id = _create_poll(client, event)
    other_id = _create_poll(client, event, "Other?")
    assert _post(client, event, f"/polls/{poll_id}/delete").status_code == 303
    _post(client, event, f"/polls/{other_id}/launch")
    refused = _post(client, event, f"/polls/{other_id}/delete")
    assert refused.status_code == 409 and "cannot be removed" in _text(refused)
    with app.app_context():
        assert [p.id for p in db.session.scalars(select(Poll))] == [other_id]
    assert _post(client, event, "/polls/999999/launch").status_code == 404


# --- exports and personal data --------------------------------------------------------------------------


def _round(app, client, event) -> tuple[int, str, int, str, int]:
    """Ada asks and votes, Bob upvotes and votes; returns ids and tokens."""
    ada_id, ada = attendee(app, event.id)
    bob_id, bob = attendee(app, event.id, "Bob", "Babbage")
    _ask(client, ada, "=HYPERLINK(\"evil\") Ada's secret question")
    qid = _question_id(app, "=HYPERLINK(\"evil\") Ada's secret question")
    csrf = client.csrf_token(f"/j/{bob}")
    client.post(f"/j/{bob}/questions/{qid}/upvote", data={"csrf_token": csrf})
    poll_id = _create_poll(client, event, "Favourite engine?", "Analytical\nDifference")
    _post(client, event, f"/polls/{poll_id}/launch")
    with app.app_context():
        analytical, difference = (o.id for o in db.session.get(Poll, poll_id).options)
    client.post(f"/j/{ada}/polls/{poll_id}/vote", data={"choice": analytical, "csrf_token": csrf})
    client.post(f"/j/{bob}/polls/{poll_id}/vote", data={"choice": difference, "csrf_token": csrf})
    return ada_id, ada, bob_id, bob, poll_id


def test_questions_and_poll_results_are_exported_as_csv(app, client, event):
    _round(app, client, event)
    questions = client.get(f"/manage/events/{event.id}/questions.csv")
    assert questions.status_code == 200 and questions.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(questions.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0]["Question"] == "'=HYPERLINK(\"evil\") Ada's secret question"  # neutralised
    assert rows[0]["Asked by"] == "Ada Lovelace" and rows[0]["Upvotes"] == "1"
    polls_csv = client.get(f"/manage/events/{event.id}/polls.csv")
    rows = list(csv.DictReader(io.StringIO(polls_csv.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["Answer"], r["Votes"], r["Voters"]) for r in rows] == [("Analytical", "1", "2"),
                                                                       ("Difference", "1", "2")]
    assert 'filename="' in polls_csv.headers["Content-Disposition"]


def test_the_attendees_own_export_holds_their_questions_and_votes(app, client, event):
    ada_id, *_ = _round(app, client, event)
    with app.app_context():
        token = registrations.manage_token_for(db.session.get(Registration, ada_id))
        db.session.commit()
    data = json.loads(client.get(f"/r/{token}/data.json").get_data(as_text=True))
    assert data["questions"][0]["asked"].endswith("Ada's secret question")
    assert data["poll_votes"] == [{"poll": "Favourite engine?", "choices": ["Analytical"],
                                   "at": data["poll_votes"][0]["at"]}]


def test_erasure_removes_questions_and_upvotes_and_keeps_votes_anonymous(app, client, event):
    ada_id, _, bob_id, _, poll_id = _round(app, client, event)
    with app.app_context():
        token = registrations.manage_token_for(db.session.get(Registration, ada_id))
        bob_token = registrations.manage_token_for(db.session.get(Registration, bob_id))
        db.session.commit()
    assert client.submit(f"/r/{token}/erase", {"confirm": "y"}).status_code == 303
    assert client.submit(f"/r/{bob_token}/erase", {"confirm": "y"}).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(LiveQuestion)) is None
        assert db.session.scalar(select(LiveQuestionVote)) is None
        votes = db.session.scalars(select(PollVote).where(PollVote.poll_id == poll_id)).all()
        assert len(votes) == 2 and all(v.registration_id is None for v in votes)
        assert "secret question" not in "\n".join(every_row_as_text())
    assert "2 voters" in _text(client.get(_live(event)))


def test_retention_purges_questions_and_keeps_poll_counts(app, client, event):
    _, _, _, _, poll_id = _round(app, client, event)
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.retention_days = 1
        row.ends_at = datetime.now(UTC) - timedelta(days=2)
        row.starts_at = row.ends_at - timedelta(hours=1)
        db.session.commit()
    jobs.purge_personal_data(app)
    with app.app_context():
        assert db.session.scalar(select(LiveQuestion)) is None
        assert db.session.scalar(select(LiveQuestionVote)) is None
        votes = db.session.scalars(select(PollVote).where(PollVote.poll_id == poll_id)).all()
        assert len(votes) == 2 and all(v.registration_id is None for v in votes)
        text = "\n".join(every_row_as_text())
        assert "secret question" not in text and "Lovelace" not in text
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/manage/events/{event.id}/polls.csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert [r["Votes"] for r in rows] == ["1", "1"]
