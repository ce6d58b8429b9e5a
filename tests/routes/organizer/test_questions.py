"""Registration questions: added, edited, removed and reordered, with htmx (fragment only) and without."""

from __future__ import annotations

import pytest

from app.models import QuestionKind

from .conftest import hx


@pytest.fixture
def event_with_questions(auth, make_event):
    owner = auth.login_as_organizer()
    return make_event(owner, questions=3)


def _urls(event, question=None):
    base = f"/manage/events/{event.id}/questions"
    return base if question is None else f"{base}/{question.id}"


def _labels(events_in_db):
    [event] = events_in_db()
    assert [q.position for q in event.questions] == list(range(len(event.questions)))  # dense
    return [q.label for q in event.questions]


def _assert_fragment(response, status=200):
    body = response.get_data(as_text=True)
    assert response.status_code == status, body
    assert "HX-Request" in response.headers["Vary"]
    assert body.lstrip().startswith('<section id="questions"') and "<html" not in body
    return body


def test_htmx_add_returns_only_the_section(client, event_with_questions, events_in_db):
    event = event_with_questions
    response = hx(client, "POST", _urls(event), data={"new-question-label": "Company",
                                                       "new-question-kind": "short_text"})
    body = _assert_fragment(response)
    assert "Company" in body
    assert _labels(events_in_db) == ["Question 1", "Question 2", "Question 3", "Company"]


def test_plain_add_redirects_to_the_questions_section(client, event_with_questions, events_in_db):
    event = event_with_questions
    response = client.submit(_urls(event), {"new-question-label": "Company", "new-question-kind": "checkbox"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/manage/events/{event.id}/edit#questions"
    assert _labels(events_in_db)[-1] == "Company"


@pytest.mark.db_agnostic
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"new-question-kind": "single_choice", "new-question-options": "Only one"}, "at least two different options"),
        ({"new-question-kind": "multiple_choice", "new-question-options": "Same\n same \n\n"},
         "at least two different options"),
        ({"new-question-kind": "essay"}, "Not a valid choice"),
        ({"new-question-kind": "short_text", "new-question-label": ""}, "Write the question."),
        ({"new-question-kind": "short_text", "new-question-label": "x" * 301}, "at most 300 characters long"),
    ],
)
def test_invalid_question_is_refused_in_place(client, event_with_questions, events_in_db, data, message):
    event = event_with_questions
    payload = {"new-question-label": "Pick one <b>now</b>", **data}
    body = _assert_fragment(hx(client, "POST", _urls(event), data=payload), status=422)
    assert message in body
    if payload["new-question-label"] == "Pick one <b>now</b>":
        assert 'value="Pick one &lt;b&gt;now&lt;/b&gt;"' in body
    assert len(_labels(events_in_db)) == 3

    page = client.submit(_urls(event), payload)
    assert page.status_code == 422 and message in page.get_data(as_text=True)
    assert "<html" in page.get_data(as_text=True)


def test_edit_question_with_and_without_htmx(client, event_with_questions, events_in_db):
    event = event_with_questions
    question = events_in_db()[0].questions[1]
    prefix = f"question-{question.id}-"
    response = hx(client, "POST", _urls(event, question), data={
        prefix + "label": "Your role", prefix + "kind": "multiple_choice", prefix + "options": "Dev\nOps",
        prefix + "required": "y"})
    _assert_fragment(response)
    saved = events_in_db()[0].questions[1]
    assert (saved.label, saved.kind, saved.options, saved.required) == ("Your role", QuestionKind.multiple_choice,
                                                                        ["Dev", "Ops"], True)
    bad = hx(client, "POST", _urls(event, question), data={prefix + "label": "Your role",
                                                          prefix + "kind": "single_choice", prefix + "options": ""})
    body = _assert_fragment(bad, status=422)
    assert '<details open>' in body and "at least two different options" in body
    plain = client.submit(_urls(event, question), {prefix + "label": "Role", prefix + "kind": "short_text"})
    assert plain.status_code == 303
    saved = events_in_db()[0].questions[1]
    assert (saved.label, saved.options) == ("Role", [])


def test_remove_question_keeps_positions_dense(client, event_with_questions, events_in_db):
    event = event_with_questions
    first, second, _ = events_in_db()[0].questions
    page = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    assert "Yes, remove this question" in page  # the confirmation step, inside a disclosure
    body = _assert_fragment(hx(client, "POST", _urls(event, second) + "/delete"))
    assert "Question 2" not in body
    assert _labels(events_in_db) == ["Question 1", "Question 3"]
    response = client.submit(_urls(event, first) + "/delete", {})
    assert response.status_code == 303
    assert _labels(events_in_db) == ["Question 3"]


def test_reorder_questions_with_and_without_htmx(client, event_with_questions, events_in_db):
    event = event_with_questions
    first, second, third = events_in_db()[0].questions
    body = _assert_fragment(hx(client, "POST", _urls(event, third) + "/move", data={"direction": "up"}))
    assert body.index("Question 3") < body.index("Question 2")
    assert _labels(events_in_db) == ["Question 1", "Question 3", "Question 2"]
    response = client.submit(_urls(event, first) + "/move", {"direction": "down"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/edit#questions")
    assert _labels(events_in_db) == ["Question 3", "Question 1", "Question 2"]
    # Moving past either end changes nothing; nonsense directions are refused.
    _assert_fragment(hx(client, "POST", _urls(event, third) + "/move", data={"direction": "up"}))
    _assert_fragment(hx(client, "POST", _urls(event, third) + "/move", data={"direction": "sideways"}), 422)
    assert _labels(events_in_db) == ["Question 3", "Question 1", "Question 2"]


@pytest.mark.db_agnostic
def test_question_of_another_event_is_not_found(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    mine = make_event(me)
    theirs = make_event(me, questions=1)
    [_, other] = events_in_db()
    question = other.questions[0]
    for suffix, data in (("", {f"question-{question.id}-label": "x", f"question-{question.id}-kind": "checkbox"}),
                         ("/delete", {}), ("/move", {"direction": "up"})):
        response = hx(client, "POST", f"/manage/events/{mine.id}/questions/{question.id}{suffix}", data=data)
        assert response.status_code == 404
    assert events_in_db()[1].questions[0].label == "Question 1"
    assert theirs.id == other.id


@pytest.mark.db_agnostic
def test_questions_of_a_cancelled_event_are_read_only(client, auth, make_event, events_in_db):
    from app.models import EventStatus
    me = auth.login_as_organizer()
    event = make_event(me, questions=1, status=EventStatus.cancelled)
    response = hx(client, "POST", f"/manage/events/{event.id}/questions",
                           data={"new-question-label": "Late", "new-question-kind": "short_text"})
    assert response.status_code == 422
    assert "cancelled" in response.get_data(as_text=True)
    assert _labels(events_in_db) == ["Question 1"]


@pytest.mark.db_agnostic
def test_each_question_has_its_move_edit_and_remove_controls_named_after_it(client, event_with_questions):
    event = event_with_questions
    page = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    start = page.index('<section id="questions"')
    section = page[start:page.index("</section>", start)]
    item = '<li class="question-item" id="question-'
    first, last = section.index(item), section.rindex(item)
    # The first cannot move up and the last cannot move down; each button says which question it moves.
    assert ('value="up" class="button small" disabled>Move up<span class="visually-hidden">: Question 1</span>'
            in section[:first + 2000])
    assert 'value="down" class="button small" disabled>Move down<span class="visually-hidden">: Question 3</span>' \
        in section[last:]
    assert section[first:last].count(" disabled>") == 1
    assert f'hx-post="/manage/events/{event.id}/questions/' in section and 'hx-target="#questions"' in section
    assert "<summary>Edit<span class=\"visually-hidden\"> “Question 2”</span></summary>" in section
    assert "Remove the question “Question 2”? Answers people already gave to it will no longer be shown." in section
    assert section.count("Yes, remove this question") == 3 and section.count('name="csrf_token"') == 3 * 3 + 1
