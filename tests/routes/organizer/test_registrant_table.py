"""The registrant table over HTTP: sort by each allowed column (both ways), filter by answers and by
attendance, active search with htmx, links that keep the view, hostile input, and a bounded number of
queries per page whatever the page size."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sa_event

from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Registration
from app.services.registration import registrations

from .conftest import hx


def _text(response) -> str:
    return response.get_data(as_text=True)


def _emails(page: str) -> list[str]:
    """Emails in table order."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return re.findall(r"<td>([^<@]+@example\.org)</td>", body)


@pytest.fixture
def organizer(auth):
    return auth.login_as_organizer("org@example.org")


@pytest.fixture
def event(app, make_event, organizer):
    made = make_event(organizer, status=EventStatus.published, published_at=datetime.now(UTC), capacity=None,
                      title="Table call", starts_at=datetime(2031, 3, 3, 13, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 3, 3, 14, 0, tzinfo=UTC))
    with app.app_context():
        row = db.session.get(Event, made.id)
        row.questions = [
            Question(position=0, kind=QuestionKind.single_choice, label="Track", options=["Dev", "Ops", "Dev Ops"]),
            Question(position=1, kind=QuestionKind.multiple_choice, label="Topics", options=["AI", "Café", 'Say "hi"']),
            Question(position=2, kind=QuestionKind.checkbox, label="Newsletter"),
            Question(position=3, kind=QuestionKind.short_text, label="Company"),
        ]
        db.session.commit()
    return made


PEOPLE = [
    # first, last, track, topics, newsletter, attended seconds (None: unknown)
    ("Zoe", "Adams", "Dev", ["AI"], True, 3000),
    ("Ann", "Young", "Ops", ["Café"], False, None),
    ("Max", "Mills", "Dev Ops", ['Say "hi"', "AI"], True, 0),
    ("Bea", "Cole", "Dev", [], False, 600),
]


@pytest.fixture
def people(app, event):
    """Four registrants through the registration engine, then attendance as an import would set it."""
    ids = []
    with app.app_context():
        row = db.session.get(Event, event.id)
        q = {question.label: question.id for question in row.questions}
        for first, last, track, topics, newsletter, seconds in PEOPLE:
            outcome = registrations.register(row, registrations.RegistrationData(
                first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="UTC",
                answers={q["Track"]: track, q["Topics"]: topics, q["Newsletter"]: "y" if newsletter else "",
                         q["Company"]: "=HYPERLINK(\"x\")"}))
            db.session.commit()
            reg = db.session.get(Registration, outcome.registration.id)
            reg.attended = None if seconds is None else seconds > 0
            reg.attendance_seconds = seconds
            db.session.commit()
            ids.append(reg.id)
        return {"ids": ids, "questions": q}


def _url(event, **args) -> str:
    query = "&".join(f"{k}={v}" for k, v in args.items())
    return f"/manage/events/{event.id}/registrations" + (f"?{query}" if query else "")


@pytest.mark.parametrize(("sort", "direction", "expected"), [
    ("registered", "asc", ["zoe", "ann", "max", "bea"]),
    ("registered", "desc", ["bea", "max", "ann", "zoe"]),
    ("name", "asc", ["zoe", "bea", "max", "ann"]),  # by last name: Adams, Cole, Mills, Young
    ("name", "desc", ["ann", "max", "bea", "zoe"]),
    ("email", "asc", ["ann", "bea", "max", "zoe"]),
    ("attendance", "desc", ["zoe", "bea", "max", "ann"]),  # 3000 s, 600 s, 0 s, unknown
])
def test_sort_by_each_allowed_column(client, event, people, sort, direction, expected):
    page = _text(client.get(_url(event, sort=sort, dir=direction)))
    assert [e.split("@")[0] for e in _emails(page)] == expected
    # The active column says how it is sorted; its link reverses the order.
    assert 'aria-sort="ascending"' in page if direction == "asc" else 'aria-sort="descending"' in page


def test_unknown_sort_key_and_direction_fall_back_to_registration_order(client, event, people):
    response = client.get(_url(event, sort="password_hash", dir="sideways"))
    assert response.status_code == 200
    assert [e.split("@")[0] for e in _emails(_text(response))] == ["zoe", "ann", "max", "bea"]


def test_filter_by_single_choice_answer_is_exact(client, event, people):
    qid = people["questions"]["Track"]
    page = _text(client.get(_url(event, **{f"answer_{qid}": "Dev"})))
    assert sorted(_emails(page)) == ["bea@example.org", "zoe@example.org"]  # not "Dev Ops"
    page = _text(client.get(_url(event, **{f"answer_{qid}": "Dev%20Ops"})))
    assert _emails(page) == ["max@example.org"]


def test_filter_by_multiple_choice_with_accents_and_quotes(client, event, people):
    qid = people["questions"]["Topics"]
    assert _emails(_text(client.get(_url(event, **{f"answer_{qid}": "Caf%C3%A9"})))) == ["ann@example.org"]
    assert _emails(_text(client.get(_url(event, **{f"answer_{qid}": "Say%20%22hi%22"})))) == ["max@example.org"]
    assert sorted(_emails(_text(client.get(_url(event, **{f"answer_{qid}": "AI"}))))) == [
        "max@example.org", "zoe@example.org"]


def test_filter_by_checkbox_yes_and_no(client, event, people):
    qid = people["questions"]["Newsletter"]
    assert sorted(_emails(_text(client.get(_url(event, **{f"answer_{qid}": "yes"}))))) == [
        "max@example.org", "zoe@example.org"]
    assert sorted(_emails(_text(client.get(_url(event, **{f"answer_{qid}": "no"}))))) == [
        "ann@example.org", "bea@example.org"]


def test_answer_filters_outside_the_allow_list_are_ignored(client, event, people):
    track = people["questions"]["Track"]
    company = people["questions"]["Company"]  # free text: not filterable
    for args in ({f"answer_{track}": "Marketing"}, {f"answer_{company}": "Acme"}, {"answer_999999": "Dev"},
                 {"answer_x": "Dev"}):
        response = client.get(_url(event, **args))
        assert response.status_code == 200
        assert len(_emails(_text(response))) == 4


def test_filter_by_attendance(client, event, people):
    assert sorted(_emails(_text(client.get(_url(event, attended="yes"))))) == ["bea@example.org", "zoe@example.org"]
    assert _emails(_text(client.get(_url(event, attended="no")))) == ["max@example.org"]
    assert _emails(_text(client.get(_url(event, attended="unknown")))) == ["ann@example.org"]
    assert len(_emails(_text(client.get(_url(event, attended="maybe"))))) == 4
    page = _text(client.get(_url(event, attended="yes")))
    assert "Yes, 50 min" in page and "Yes, 10 min" in page


def test_filters_combine_and_links_keep_the_view(client, event, people):
    qid = people["questions"]["Track"]
    page = _text(client.get(_url(event, attended="yes", sort="name", dir="desc", **{f"answer_{qid}": "Dev"})))
    assert _emails(page) == ["bea@example.org", "zoe@example.org"]
    # Every heading, state filter and row action carries the filters in a real href.
    assert (f'href="/manage/events/{event.id}/registrations?state=confirmed&amp;sort=name&amp;dir=desc'
            f'&amp;attended=yes&amp;answer_{qid}=Dev"') in page
    assert f'<input type="hidden" name="answer_{qid}" value="Dev">' in page  # posts return to the same view
    assert "Clear search and filters" in page


def test_active_search_answers_htmx_with_the_table_fragment(client, event, people):
    response = hx(client, "GET", _url(event, q="zoe"))
    assert response.status_code == 200
    body = _text(response)
    assert body.lstrip().startswith('<div id="registrations-board">') and "<html" not in body
    assert _emails(body) == ["zoe@example.org"]
    assert "HX-Request" in response.headers.get("Vary", "")
    pushed = hx(client, "GET", _url(event, q="zoe", attended="", sort="registered")).headers["HX-Push-Url"]
    assert pushed == f"/manage/events/{event.id}/registrations?q=zoe"  # the clean address goes to history
    page = _text(client.get(_url(event)))
    assert 'hx-trigger="submit, input changed delay:400ms from:#registrations-search' in page
    assert 'hx-push-url="true"' in page


@pytest.mark.parametrize("q", ["%", "_", "\\", "' OR 1=1 --", "x" * 5000, "\x00\x01zoe", "<script>alert(1)</script>"])
def test_hostile_search_strings_are_harmless(client, event, people, q):
    response = client.get(f"/manage/events/{event.id}/registrations", query_string={"q": q})
    assert response.status_code == 200
    page = _text(response)
    assert "<script>alert(1)</script>" not in page
    if q == "\x00\x01zoe":
        assert _emails(page) == ["zoe@example.org"]  # control characters dropped
    elif q != "x" * 5000:
        assert _emails(page) == []  # wildcards are literal


def test_paging_is_clamped_and_pages_do_not_overlap(app, client, event):
    from tests.insights_helpers import seed_registrations

    with app.app_context():
        seed_registrations(event.id, 120)
    first = _emails(_text(client.get(_url(event, page=1))))
    second = _emails(_text(client.get(_url(event, page=2))))
    last = _text(client.get(_url(event, page=999999999)))
    assert len(first) == 50 and len(second) == 50 and not set(first) & set(second)
    assert "page 3 of 3" in last and len(_emails(last)) == 20
    assert _text(client.get(_url(event, page="-4"))).count("page 1 of 3") == 1


def test_one_page_costs_the_same_number_of_queries_for_10_or_50_rows(app, client, event):
    """No query per row: answers come in one batch, whatever the page holds."""
    from tests.insights_helpers import seed_registrations

    with app.app_context():
        questions = [(q.id, q.label, q.options or [True, False]) for q in db.session.get(Event, event.id).questions
                     if q.kind != QuestionKind.short_text]
        seed_registrations(event.id, 10, questions=questions, seed=1)

    def count_queries(url: str) -> int:
        seen = []
        with app.app_context():
            engine = db.engine

        def _count(*_args):
            seen.append(1)

        sa_event.listen(engine, "before_cursor_execute", _count)
        try:
            assert client.get(url).status_code == 200
        finally:
            sa_event.remove(engine, "before_cursor_execute", _count)
        return len(seen)

    client.get(_url(event))  # the first view also fills the per-process caches (settings); count a steady one
    small = count_queries(_url(event))
    with app.app_context():
        seed_registrations(event.id, 60, questions=questions, seed=2)
    big = count_queries(_url(event))
    assert big == small


def test_another_organizers_event_is_not_found(client, auth, event, people):
    auth.logout()
    auth.login_as_organizer("other@example.org")
    assert client.get(_url(event, sort="name")).status_code == 404
