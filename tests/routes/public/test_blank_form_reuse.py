"""The event page's blank registration form is rendered once for what it shows and reused
(`routes.public.registration.blank_registration_form`), even with the page reuse off.

What it shows is its key, so no change is ever missed: every view still gets its own working token and
a fresh "shown at" stamp, and an edited question, another language, a full event with a waitlist or an
organization-only event each show at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Registration
from app.services.core import page_cache
from tests.conftest import CSRF_RE

STARTED = re.compile(r'name="started" type="hidden" value="([^"]+)"')
FORM = {"first_name": "Ada", "last_name": "Lovelace", "timezone": "Europe/London", "consent": "y"}
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


@pytest.fixture(autouse=True)
def no_page_reuse(app) -> Iterator[None]:
    """Every view renders its page afresh: only the form's reuse is under test."""
    pages = page_cache.event_pages(app)
    before = pages.max_age
    pages.max_age = 0
    page_cache.form_fragments(app).clear()
    yield
    pages.max_age = before


@pytest.fixture
def event(make_user, make_event) -> Event:
    owner = make_user("owner@example.org")
    return make_event(owner, title="Reused form call", status=EventStatus.published,
                      published_at=datetime.now(UTC), capacity=1, waitlist_enabled=True, questions=1)


def _token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def _form(html: str) -> str:
    start = html.index('<form id="register-form"')
    return html[start:html.index("</form>", start)]


def _answer_field(app, event: Event) -> str:
    with app.app_context():
        return f"q_{db.session.get(Event, event.id).questions[0].id}"


def test_each_view_gets_its_own_token_and_stamp_and_its_form_works(app, event, clock):
    url = f"/events/{event.slug}"
    first, second = app.test_client(), app.test_client()
    one = first.get(url).get_data(as_text=True)
    clock.shift(5)
    two = second.get(url).get_data(as_text=True)

    assert len(page_cache.form_fragments(app)) == 1  # rendered once, reused for the second view
    assert _token(one) != _token(two)
    assert STARTED.search(one).group(1) != STARTED.search(two).group(1)
    # Apart from the per-visitor values it is the very same form.
    blank = re.compile(r'value="[^"]+"|"X-CSRFToken": "[^"]+"')
    assert blank.sub("", _form(one)) == blank.sub("", _form(two))

    answer = _answer_field(app, event)
    for client, html, email in ((first, one, "ada@example.org"), (second, two, "grace@example.org")):
        response = client.post(f"{url}/register", data={
            **FORM, answer: "Hello", "email": email, "csrf_token": _token(html),
            "started": STARTED.search(html).group(1)})
        assert response.status_code == 303, response.get_data(as_text=True)
    # The first seat went to Ada; Grace, on the waitlist, was registered through the reused form as well.
    with app.app_context():
        states = sorted(r.state.value for r in db.session.scalars(select(Registration).filter_by(event_id=event.id)))
    assert states == ["confirmed", "waitlisted"]
    # Someone else's token is still refused.
    stolen = app.test_client().post(f"{url}/register", data={
        **FORM, answer: "Hello", "email": "eve@example.org", "csrf_token": _token(one),
        "started": STARTED.search(one).group(1)})
    assert stolen.status_code == 422


def test_an_edited_question_shows_on_the_next_view(app, event):
    url = f"/events/{event.slug}"
    assert "Question 1" in _form(app.test_client().get(url).get_data(as_text=True))
    with app.app_context():
        question = db.session.get(Event, event.id).questions[0]
        question.label = "Your favourite algorithm"
        question.required = True
        db.session.add(Question(event_id=event.id, position=1, kind=QuestionKind.single_choice,
                                label="Lunch", options=["Soup", "Salad"]))
        db.session.commit()

    form = _form(app.test_client().get(url).get_data(as_text=True))
    assert "Question 1" not in form
    assert "Your favourite algorithm" in form and "Lunch" in form and "Salad" in form
    assert len(page_cache.form_fragments(app)) == 2


def test_the_form_follows_the_visitors_language(app, event):
    url = f"/events/{event.slug}"
    english = _form(app.test_client().get(url).get_data(as_text=True))
    german = _form(app.test_client().get(url, headers=GERMAN).get_data(as_text=True))
    assert "First name" in english and "First name" not in german
    assert "Vorname" in german
    assert "First name" in _form(app.test_client().get(url).get_data(as_text=True))


def test_a_full_event_with_a_waitlist_offers_the_waitlist_at_once(app, event):
    url = f"/events/{event.slug}"
    visitor = app.test_client()
    html = visitor.get(url).get_data(as_text=True)
    assert "Join the waitlist" not in _form(html)
    response = visitor.post(f"{url}/register", data={
        **FORM, _answer_field(app, event): "Hi", "email": "ada@example.org", "csrf_token": _token(html)})
    assert response.status_code == 303

    assert "Join the waitlist" in _form(app.test_client().get(url).get_data(as_text=True))


def test_an_organization_only_event_names_the_domains_as_they_are_now(app, client, auth, event):
    with app.app_context():
        db.session.get(Event, event.id).who_can_register = "organization"
        db.session.commit()
    url = f"/events/{event.slug}"
    auth.login_as_admin()
    saved = client.submit("/admin/branding/organization", {"domains": "example.org"})
    assert saved.status_code == 303, saved.get_data(as_text=True)
    assert "example.org" in _form(app.test_client().get(url).get_data(as_text=True))

    saved = client.submit("/admin/branding/organization", {"domains": "example.com"})
    assert saved.status_code == 303
    form = _form(app.test_client().get(url).get_data(as_text=True))
    assert "example.com" in form and "example.org" not in form
