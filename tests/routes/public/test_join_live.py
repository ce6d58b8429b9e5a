"""Q&A and polls beside the call, from the attendee's join link over HTTP: asking (with and without
htmx), anonymous questions, moderation before display, upvotes, the per-link rate limit, the join
window, voting once per registration, results, and bad input that never becomes a 500; all of it, and
what the join page's scripts say, in the attendee's language."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    Event,
    LiveQuestion,
    LiveQuestionStatus,
    LiveSettings,
    Poll,
    PollStatus,
    PollVote,
    Registration,
    User,
)
from app.services.attendance import join_links
from app.services.live import polls
from tests.live_helpers import attendee, move_event, open_event, registration_for


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def event(make_event, owner):
    return open_event(make_event, owner)


def _ask(client, token, body, **extra):
    return client.submit(f"/j/{token}/questions", {"ask-body": body, **extra})


def _settings(app, event_id, **values):
    with app.app_context():
        db.session.merge(LiveSettings(event_id=event_id, **{"allow_anonymous": False, "moderate_questions": False,
                                                            **values}))
        db.session.commit()


def _poll(app, owner, event_id, prompt="Which day?", options=("Monday", "Friday"), *, multiple=False,
          status=PollStatus.open) -> tuple[int, list[int]]:
    with app.app_context():
        poll = polls.create_poll(db.session.get(Event, event_id), prompt, list(options), multiple=multiple,
                                 actor=db.session.get(User, owner.id))
        poll.status = status
        db.session.commit()
        return poll.id, [o.id for o in poll.options]


# --- asking -----------------------------------------------------------------------------------------


def test_the_join_page_offers_questions_while_the_call_is_open(app, client, event):
    _, token = attendee(app, event.id)
    page = _text(client.get(f"/j/{token}"))
    assert 'id="live"' in page and "Ask a question" in page and "No questions yet." in page
    assert 'name="ask-anonymous"' not in page  # anonymous asking is off by default


def test_a_question_asked_without_javascript_shows_to_everyone_with_its_asker(app, client, event):
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    response = _ask(client, ada, "  Will the <b>slides</b> be shared?  ")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/j/{ada}#live")
    page = _text(client.get(f"/j/{bob}"))
    assert "Will the &lt;b&gt;slides&lt;/b&gt; be shared?" in page and "<b>slides</b>" not in page
    assert "Ada Lovelace" in page


def test_asking_with_htmx_answers_with_a_fresh_form_and_refreshes_the_feed(app, client, event):
    _, token = attendee(app, event.id)
    response = client.htmx("POST", f"/j/{token}/questions", data={"ask-body": "Hello?"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "foyer:live-refresh"
    body = _text(response)
    assert body.lstrip().startswith('<form id="ask-form"') and "Your question was sent." in body
    feed = client.get(f"/j/{token}/live", headers={"HX-Request": "true"})
    assert feed.status_code == 200 and "Hello?" in _text(feed) and 'hx-trigger="every 10s' in _text(feed)
    assert "<html" not in _text(feed) and feed.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("body", ["   ", "\x00\x01\x1f", "\u202e\n\t"])
def test_a_blank_question_is_refused_with_a_message(app, client, event, body):
    _, token = attendee(app, event.id)
    empty = _ask(client, token, body)
    assert empty.status_code == 422 and "Type your question first." in _text(empty)
    with app.app_context():
        assert db.session.scalar(select(LiveQuestion)) is None


def test_a_too_long_question_is_refused_with_a_message(app, client, event):
    _, token = attendee(app, event.id)
    long = client.htmx("POST", f"/j/{token}/questions", data={"ask-body": "x" * 501})
    assert long.status_code == 422 and "at most 500 characters" in _text(long)
    with app.app_context():
        assert db.session.scalar(select(LiveQuestion)) is None


def test_anonymous_questions_only_when_the_organizer_allows_them(app, client, event):
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    refused = _ask(client, ada, "Who pays?", **{"ask-anonymous": "y"})
    assert refused.status_code == 422 and "does not take anonymous questions" in _text(refused)
    _settings(app, event.id, allow_anonymous=True)
    assert 'name="ask-anonymous"' in _text(client.get(f"/j/{ada}"))
    assert _ask(client, ada, "Who pays?", **{"ask-anonymous": "y"}).status_code == 303
    others = _text(client.get(f"/j/{bob}"))
    assert "Who pays?" in others and "Anonymous" in others and "Ada Lovelace" not in others
    with app.app_context():
        question = db.session.scalar(select(LiveQuestion))
        assert question.anonymous and question.registration_id == registration_for(ada).id


def test_moderated_questions_show_only_to_their_asker_until_approved(app, client, event):
    _settings(app, event.id, moderate_questions=True)
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    sent = client.htmx("POST", f"/j/{ada}/questions", data={"ask-body": "Is it recorded?"})
    assert "once a moderator approves it" in _text(sent)
    mine = _text(client.get(f"/j/{ada}"))
    assert "Is it recorded?" in mine and "waiting for a moderator" in mine
    assert "Is it recorded?" not in _text(client.get(f"/j/{bob}"))
    with app.app_context():
        question = db.session.scalar(select(LiveQuestion))
        assert question.status == LiveQuestionStatus.pending
        question.status = LiveQuestionStatus.approved
        db.session.commit()
    assert "Is it recorded?" in _text(client.get(f"/j/{bob}"))


def test_questions_are_rate_limited_per_join_link(app, client, event, monkeypatch):
    monkeypatch.setitem(app.config, "LIVE_QUESTION_RATE_LIMIT", "2 per minute")
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    assert [_ask(client, ada, f"Question {i}").status_code for i in range(3)] == [303, 303, 429]
    # Someone else from the same address still has their own budget.
    assert _ask(client, bob, "Mine").status_code == 303


def test_no_questions_outside_the_join_window(app, client, event):
    _, token = attendee(app, event.id)
    csrf = client.csrf_token(f"/j/{token}")
    move_event(app, event.id, starts_in=timedelta(hours=3))
    page = _text(client.get(f"/j/{token}"))
    assert 'id="live" hidden' in page and "Ask a question" not in page
    response = client.post(f"/j/{token}/questions", data={"ask-body": "Too early", "csrf_token": csrf})
    assert response.status_code == 409 and "open only while the call is" in _text(response)
    feed = client.get(f"/j/{token}/live", headers={"HX-Request": "true"})
    assert "Questions and polls are closed" in _text(feed) and "hx-trigger" not in _text(feed)
    with app.app_context():
        assert db.session.scalar(select(LiveQuestion)) is None


def test_a_page_loaded_before_the_call_opens_gets_the_panel_when_it_does(app, client, event):
    _, token = attendee(app, event.id)
    move_event(app, event.id, starts_in=timedelta(hours=3))
    page = _text(client.get(f"/j/{token}"))
    assert f'hx-get="/j/{token}/live/panel" hx-trigger="every 15s"' in page and "Ask a question" not in page
    waiting = client.get(f"/j/{token}/live/panel", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 15s"' in _text(waiting) and "Ask a question" not in _text(waiting)
    move_event(app, event.id, starts_in=timedelta(minutes=-1))
    opened = _text(client.get(f"/j/{token}/live/panel", headers={"HX-Request": "true"}))
    assert opened.lstrip().startswith('<section id="live"') and "Ask a question" in opened
    move_event(app, event.id, starts_in=timedelta(hours=-5))
    ended = _text(client.get(f"/j/{token}/live/panel", headers={"HX-Request": "true"}))
    assert "hx-trigger" not in ended and "Ask a question" not in ended  # the slot stops asking
    assert client.get(f"/j/{token}/live/panel").status_code == 303


def test_unknown_or_replaced_links_cannot_take_part(app, client, event, owner):
    reg_id, token = attendee(app, event.id)
    csrf = client.csrf_token(f"/j/{token}")
    assert client.post("/j/" + "x" * 43 + "/questions", data={"ask-body": "Hi", "csrf_token": csrf}).status_code == 404
    with app.app_context():
        join_links.reissue(db.session.get(Registration, reg_id), actor=db.session.get(User, owner.id))
        db.session.commit()
    assert client.post(f"/j/{token}/questions", data={"ask-body": "Hi", "csrf_token": csrf}).status_code == 410


def test_questions_need_the_csrf_token(app, client, event):
    _, token = attendee(app, event.id)
    assert client.post(f"/j/{token}/questions", data={"ask-body": "Hi"}).status_code == 400


def test_the_feed_url_without_htmx_goes_to_the_page(app, client, event):
    _, token = attendee(app, event.id)
    response = client.get(f"/j/{token}/live")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/j/{token}#live")


# --- upvotes ----------------------------------------------------------------------------------------


def test_upvotes_count_once_per_attendee_and_can_be_taken_back(app, client, event):
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    _ask(client, ada, "First question")
    _ask(client, ada, "Second question")
    with app.app_context():
        first, second = db.session.scalars(select(LiveQuestion.id).order_by(LiveQuestion.id)).all()
    csrf = client.csrf_token(f"/j/{bob}")
    response = client.post(f"/j/{bob}/questions/{second}/upvote", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#question-{second}")
    feed = _text(client.post(f"/j/{ada}/questions/{second}/upvote",
                             headers={"HX-Request": "true", "X-CSRFToken": csrf}))
    # The most upvoted question comes first, and each button says whether this attendee upvoted.
    assert feed.index("Second question") < feed.index("First question")
    assert f'id="upvote-{second}" aria-pressed="true"' in feed and "(2)" in feed
    again = client.post(f"/j/{bob}/questions/{second}/upvote", headers={"HX-Request": "true", "X-CSRFToken": csrf})
    assert f'id="upvote-{second}" aria-pressed="false"' in _text(again) and "(1)" in _text(again)


def test_upvoting_a_waiting_or_unknown_question_is_refused_cleanly(app, client, event):
    _settings(app, event.id, moderate_questions=True)
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    _ask(client, ada, "Pending one")
    with app.app_context():
        pending = db.session.scalar(select(LiveQuestion.id))
    csrf = client.csrf_token(f"/j/{bob}")
    response = client.post(f"/j/{bob}/questions/{pending}/upvote", headers={"HX-Request": "true", "X-CSRFToken": csrf})
    assert response.status_code == 409 and "cannot be upvoted" in _text(response)
    assert client.post(f"/j/{bob}/questions/999999/upvote", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"/j/{bob}/questions/99999999999999/upvote", data={"csrf_token": csrf}).status_code == 404


def test_another_events_question_cannot_be_upvoted(app, client, event, make_event, owner):
    other = open_event(make_event, owner, title="Other")
    _, ada = attendee(app, other.id)
    _ask(client, ada, "Elsewhere")
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    with app.app_context():
        elsewhere = db.session.scalar(select(LiveQuestion.id))
    csrf = client.csrf_token(f"/j/{bob}")
    assert client.post(f"/j/{bob}/questions/{elsewhere}/upvote", data={"csrf_token": csrf}).status_code == 404


# --- polls ------------------------------------------------------------------------------------------


def test_attendees_see_launched_polls_only(app, client, event, owner):
    _poll(app, owner, event.id, "Draft poll?", status=PollStatus.draft)
    _poll(app, owner, event.id, "Open poll?")
    _, token = attendee(app, event.id)
    page = _text(client.get(f"/j/{token}"))
    assert "Open poll?" in page and "Draft poll?" not in page
    assert 'type="radio" name="choice"' in page and "Choose one answer" in page


def test_a_vote_counts_once_per_registration_and_shows_the_results(app, client, event, owner):
    poll_id, (monday, friday) = _poll(app, owner, event.id)
    _, ada = attendee(app, event.id)
    _, bob = attendee(app, event.id, "Bob", "Babbage")
    csrf = client.csrf_token(f"/j/{ada}")
    response = client.post(f"/j/{ada}/polls/{poll_id}/vote", data={"choice": str(friday), "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#poll-{poll_id}")
    again = client.post(f"/j/{ada}/polls/{poll_id}/vote", data={"choice": str(monday), "csrf_token": csrf},
                        headers={"HX-Request": "true"})
    assert again.status_code == 409 and "voted in this poll already" in _text(again)
    client.post(f"/j/{bob}/polls/{poll_id}/vote", data={"choice": str(friday), "csrf_token": csrf})
    feed = _text(client.get(f"/j/{ada}/live", headers={"HX-Request": "true"}))
    assert "You voted." in feed and "2 voters" in feed
    assert "<th scope=\"row\">Friday</th><td>2</td><td>100%</td>" in feed
    assert "Monday, 0 votes (0%); Friday, 2 votes (100%)." in feed  # the chart's text alternative
    with app.app_context():
        assert len(db.session.scalars(select(PollVote)).all()) == 2


def test_the_database_refuses_a_second_vote(app, event, owner):
    poll_id, _ = _poll(app, owner, event.id)
    reg_id, _ = attendee(app, event.id)
    with app.app_context():
        db.session.add(PollVote(poll_id=poll_id, registration_id=reg_id))
        db.session.commit()
        db.session.add(PollVote(poll_id=poll_id, registration_id=reg_id))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_multiple_choice_takes_several_answers_single_choice_one(app, client, event, owner):
    multi_id, (a, b, c) = _poll(app, owner, event.id, "Topics?", ("Graph", "ACS", "Entra"), multiple=True)
    single_id, (yes, no) = _poll(app, owner, event.id, "Recording?", ("Yes", "No"))
    _, token = attendee(app, event.id)
    csrf = client.csrf_token(f"/j/{token}")
    both = client.post(f"/j/{token}/polls/{single_id}/vote", data={"choice": [str(yes), str(no)], "csrf_token": csrf})
    assert both.status_code == 422 and "Choose from the poll&#39;s answers." in _text(both)
    assert client.post(f"/j/{token}/polls/{multi_id}/vote",
                       data={"choice": [str(a), str(c)], "csrf_token": csrf}).status_code == 303
    with app.app_context():
        result = polls.results(db.session.get(Poll, multi_id))
        assert [(r.option.label, r.votes) for r in result.options] == [("Graph", 1), ("ACS", 0), ("Entra", 1)]


@pytest.mark.parametrize("choice", ["", "abc", "99999999999999999999", "-1"])
def test_bad_choices_are_refused_not_a_500(app, client, event, owner, choice):
    poll_id, _ = _poll(app, owner, event.id)
    _, token = attendee(app, event.id)
    csrf = client.csrf_token(f"/j/{token}")
    response = client.post(f"/j/{token}/polls/{poll_id}/vote", data={"choice": choice, "csrf_token": csrf},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422 and "role=\"alert\"" in _text(response)


def test_closed_draft_and_unknown_polls_take_no_votes(app, client, event, owner):
    closed_id, (closed_option, _) = _poll(app, owner, event.id, "Closed?", status=PollStatus.closed)
    draft_id, (draft_option, _) = _poll(app, owner, event.id, "Draft?", status=PollStatus.draft)
    _, token = attendee(app, event.id)
    csrf = client.csrf_token(f"/j/{token}")
    closed = client.post(f"/j/{token}/polls/{closed_id}/vote", data={"choice": closed_option, "csrf_token": csrf})
    assert closed.status_code == 409 and "This poll has closed." in _text(closed)
    draft = client.post(f"/j/{token}/polls/{draft_id}/vote", data={"choice": draft_option, "csrf_token": csrf})
    assert draft.status_code == 409
    assert client.post(f"/j/{token}/polls/424242/vote", data={"choice": "1", "csrf_token": csrf}).status_code == 404
    # A closed poll shows its results to everyone.
    assert "This poll has closed: the results." in _text(client.get(f"/j/{token}"))


# --- in the attendee's language ------------------------------------------------------------------------

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
ROOT = Path(__file__).resolve().parents[3]


def _script_strings(page: str) -> dict:
    """What the join page hands its scripts (a JSON data block, not code: the CSP allows no inline script)."""
    found = re.search(r'<script type="application/json" id="join-strings">(.*?)</script>', page, re.S)
    assert found, "no #join-strings on the page"
    return json.loads(found.group(1))


def test_in_german_the_panel_its_messages_and_the_scripts_strings_are_german(app, client, event, owner):
    _settings(app, event.id, allow_anonymous=True, moderate_questions=True)
    poll_id, _ = _poll(app, owner, event.id, "Welcher Tag?", ("Montag", "Freitag"))
    _, ada = attendee(app, event.id)
    page = _text(client.get(f"/j/{ada}", headers=GERMAN))
    assert '<html lang="de">' in page  # join.js hands this language to the call composite
    assert "Fragen und Umfragen" in page and "Eine Frage stellen" in page and "Frage senden" in page
    assert "Bis zu 500 Zeichen. Die Moderation gibt Fragen frei, bevor alle sie sehen." in page
    assert "Ihre Frage" in page and "Anonym fragen" in page and "Noch keine Fragen." in page
    assert "Wählen Sie eine Antwort" in page and "Abstimmen" in page
    assert "Ask a question" not in page and "Send question" not in page

    strings = _script_strings(page)
    assert strings["joining"] == "Wird verbunden…" and strings["joinAgain"] == "Erneut am Anruf teilnehmen"
    assert strings["failed"] == "{problem} Versuchen Sie es erneut oder verwenden Sie „In Teams öffnen“."
    assert strings["callNotConnectedCode"] == ("Der Anruf konnte keine Verbindung zur Besprechung herstellen "
                                               "(Code {code}).")

    # The messages of a refused action, and the panel after one, are German too.
    blank = client.htmx("POST", f"/j/{ada}/questions", data={"ask-body": " "},
                        headers=GERMAN)
    assert blank.status_code == 422
    assert "Ihre Frage wurde nicht gesendet." in _text(blank) and "Geben Sie zuerst Ihre Frage ein." in _text(blank)
    sent = client.htmx("POST", f"/j/{ada}/questions",
                       data={"ask-body": "Wer zahlt?", "ask-anonymous": "y"}, headers=GERMAN)
    assert "Alle sehen sie, sobald die Moderation sie freigegeben hat." in _text(sent)
    feed = _text(client.get(f"/j/{ada}/live", headers={"HX-Request": "true", **GERMAN}))
    assert "Anonym (Sie)" in feed and "wartet auf Freigabe durch die Moderation: nur Sie sehen sie" in feed
    nothing = client.htmx("POST", f"/j/{ada}/polls/{poll_id}/vote", data={},
                          headers=GERMAN)
    assert nothing.status_code == 422 and "Wählen Sie eine Antwort." in _text(nothing)

    # Too early, the page's scripts only count down (the words to join come with the open state).
    move_event(app, event.id, starts_in=timedelta(hours=3))
    early = _text(client.get(f"/j/{ada}", headers=GERMAN))
    assert _script_strings(early) == {"hours": "{n} Std.", "minutes": "{n} Min.", "seconds": "{n} Sek."}
    refused = client.post(f"/j/{ada}/session", headers={"X-CSRFToken": client.csrf_token(f"/j/{ada}"), **GERMAN})
    assert refused.status_code == 409 and refused.get_json()["error"] == "Der Anruf ist noch nicht geöffnet."


def test_in_english_the_scripts_strings_are_the_english_they_always_were(app, client, event):
    _, ada = attendee(app, event.id)
    page = _text(client.get(f"/j/{ada}"))
    strings = _script_strings(page)
    assert '<html lang="en">' in page and strings["joining"] == "Joining…" and strings["join"] == "Join the call"
    assert strings["failed"] == "{problem} Try again, or use “Open in Teams”."
    # Every string is one the scripts know (join.js, or the call bundle it hands them to), so each has
    # an English fallback there.
    scripts = (ROOT / "app/static/js/join.js").read_text() + (ROOT / "frontend/join-call.js").read_text()
    assert [key for key in strings if not re.search(rf"\b{key}:", scripts)] == []
