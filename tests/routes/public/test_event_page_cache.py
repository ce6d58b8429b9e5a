"""Anonymous event pages are reused for a moment by each web process (app/services/core/page_cache.py).

Every visitor still gets a working form of their own (their CSRF token, a fresh "shown at" stamp);
a change saved in this process shows on the next view; a change made by another process shows once
the page's age limit passes; signed-in staff and flash messages are never served a shared page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.models import (
    Event,
    EventSession,
    EventStatus,
    EventTag,
    Question,
    QuestionKind,
    Registration,
    RegistrationAnswer,
    Speaker,
)
from app.services.core import page_cache
from tests.clocks import stand_in_clock
from tests.conftest import CSRF_RE
from tests.database import statements

STARTED = re.compile(r'name="started" type="hidden" value="([^"]+)"')
FORM = {"first_name": "Ada", "last_name": "Lovelace", "timezone": "Europe/London", "consent": "y"}


@pytest.fixture
def event(make_user, make_event) -> Event:
    owner = make_user("owner@example.org")
    return make_event(owner, title="Cached call", status=EventStatus.published, published_at=datetime.now(UTC),
                      capacity=10)


@pytest.fixture
def wait(app) -> Iterator[Callable[[float], None]]:
    """`wait(seconds)` ages the cached pages without sleeping (see `tests.clocks`)."""
    with stand_in_clock(page_cache.event_pages(app)) as aged:
        yield aged


@contextmanager
def max_age(app, seconds: float) -> Iterator[None]:
    pages = page_cache.event_pages(app)
    before = pages.max_age
    pages.max_age = seconds
    try:
        yield
    finally:
        pages.max_age = before


def _token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def test_each_visitor_gets_their_own_token_and_a_form_that_works(app, event):
    first, second = app.test_client(), app.test_client()
    one = first.get(f"/events/{event.slug}").get_data(as_text=True)
    assert len(page_cache.event_pages(app)) == 1
    two = second.get(f"/events/{event.slug}").get_data(as_text=True)

    assert _token(one) != _token(two)
    # Apart from the per-visitor values the second visitor got the very page the first one caused.
    assert re.sub(r'value="[^"]+"|"X-CSRFToken": "[^"]+"', "", one) == \
        re.sub(r'value="[^"]+"|"X-CSRFToken": "[^"]+"', "", two)
    for client, html, email in ((first, one, "ada@example.org"), (second, two, "grace@example.org")):
        response = client.post(f"/events/{event.slug}/register", data={
            **FORM, "email": email, "csrf_token": _token(html), "started": STARTED.search(html).group(1)})
        assert response.status_code == 303, response.get_data(as_text=True)
    # Someone else's token is refused, as without the cache.
    stranger = app.test_client()
    stranger.get("/privacy")
    response = stranger.post(f"/events/{event.slug}/register", data={
        **FORM, "email": "eve@example.org", "csrf_token": _token(one)})
    assert response.status_code == 422 and "has to be sent again" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Event, event.id).confirmed_count == 2


def test_a_reused_page_carries_a_fresh_shown_at_stamp(app, event, clock, wait):
    # Seconds of margin either side, so a busy machine's slow request cannot change the outcome.
    app.config["REGISTRATION_MIN_FILL_SECONDS"] = 30
    try:
        with max_age(app, 600):
            app.test_client().get(f"/events/{event.slug}")  # rendered and kept
            clock.shift(45)
            wait(45)
            visitor = app.test_client()
            html = visitor.get(f"/events/{event.slug}").get_data(as_text=True)
            data = {**FORM, "email": "ada@example.org", "csrf_token": _token(html),
                    "started": STARTED.search(html).group(1)}
            # Posted at once: the stamp is this view's, not the first render's 45 s ago, so it is too quick.
            quick = visitor.post(f"/events/{event.slug}/register", data=data)
            assert quick.status_code == 422 and "Register again" in quick.get_data(as_text=True)
            clock.shift(31)
            assert visitor.post(f"/events/{event.slug}/register", data=data).status_code == 303
    finally:
        app.config["REGISTRATION_MIN_FILL_SECONDS"] = 0


def test_seats_taken_show_within_the_age_limit(app, event, wait):
    visitor = app.test_client()
    url = f"/events/{event.slug}"
    with max_age(app, 0.5):
        html = visitor.get(url).get_data(as_text=True)
        assert "10 seats left" in html
        response = visitor.post(f"{url}/register", data={**FORM, "email": "ada@example.org",
                                                         "csrf_token": _token(html)})
        assert response.status_code == 303
        # A registration does not drop the page (at busy times that would be every view)...
        assert "10 seats left" in app.test_client().get(url).get_data(as_text=True)
        wait(0.6)
        # ...the count is at most the age limit old.
        assert "9 seats left" in app.test_client().get(url).get_data(as_text=True)


def test_changes_saved_here_show_on_the_next_view(app, client, auth, event):
    url = f"/events/{event.slug}"
    with max_age(app, 60):
        assert "Cached call" in app.test_client().get(url).get_data(as_text=True)
        with app.app_context():
            db.session.get(Event, event.id).title = "Renamed call"
            db.session.add(Speaker(event_id=event.id, position=0, name="Grace Hopper"))
            db.session.commit()
        page = app.test_client().get(url).get_data(as_text=True)
        assert "Renamed call" in page and "Grace Hopper" in page

        auth.login_as_admin()
        saved = client.submit("/admin/branding", {"site_name": "Acme Events", "accent_colour": "#0b5394",
                                                  "accent_picker": "#0b5394", "accent_text": "auto",
                                                  "footer_text": "", "logo_alt": ""})
        assert saved.status_code == 303
        assert "Acme Events" in app.test_client().get(url).get_data(as_text=True)


def test_a_change_made_by_another_process_shows_within_the_age_limit(app, database_url, event, wait):
    url = f"/events/{event.slug}"
    other_process = create_engine(database_url)
    try:
        with max_age(app, 0.5):
            assert "Cached call" in app.test_client().get(url).get_data(as_text=True)
            with other_process.begin() as conn:
                conn.execute(text("UPDATE events SET title = 'Moved call' WHERE id = :id"), {"id": event.id})
            # This process has not seen the change: the page it rendered a moment ago is still served.
            assert "Cached call" in app.test_client().get(url).get_data(as_text=True)
            wait(0.6)
            assert "Moved call" in app.test_client().get(url).get_data(as_text=True)
        with max_age(app, 0):
            with other_process.begin() as conn:
                conn.execute(text("UPDATE events SET title = 'Uncached call' WHERE id = :id"), {"id": event.id})
            assert "Uncached call" in app.test_client().get(url).get_data(as_text=True)
            assert len(page_cache.event_pages(app)) == 0
    finally:
        other_process.dispose()


@pytest.mark.db_agnostic
def test_staff_and_flash_messages_are_never_served_a_shared_page(app, client, auth, event):
    url = f"/events/{event.slug}"
    with max_age(app, 60):
        anonymous = app.test_client().get(url).get_data(as_text=True)
        assert "Staff sign-in" in anonymous
        auth.login_as_organizer()
        staff = client.get(url).get_data(as_text=True)
        assert "Sign out" in staff and "Staff sign-in" not in staff
        assert "Sign out" not in app.test_client().get(url).get_data(as_text=True)

        visitor = app.test_client()
        with visitor.session_transaction() as session:
            session["_flashes"] = [("info", "Your registration was cancelled.")]
        assert "Your registration was cancelled." in visitor.get(url).get_data(as_text=True)


def test_a_draft_is_never_served_from_a_page_kept_while_it_was_public(app, event):
    url = f"/events/{event.slug}"
    with max_age(app, 60):
        assert app.test_client().get(url).status_code == 200
        with app.app_context():
            db.session.get(Event, event.id).status = EventStatus.draft
            db.session.commit()
        assert app.test_client().get(url).status_code == 404


# --- an event's speakers, sessions, tags and questions, kept per version ------------------------------


@pytest.fixture
def other_process(database_url, tmp_path) -> Iterator[Flask]:
    """Foyer in another process on the same database: an app object with caches of its own."""
    application = create_app(TestConfig, instance_path=tmp_path / "other", SQLALCHEMY_DATABASE_URI=database_url)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_fresh_view_reads_only_the_event_row_until_another_process_edits_its_children(app, other_process, event):
    url = f"/events/{event.slug}"
    with max_age(app, 0):  # every view rendered afresh
        assert "Grace Hopper" not in app.test_client().get(url).get_data(as_text=True)
        with statements(app) as sent:
            app.test_client().get(url)
        children = ("FROM speakers", "FROM event_sessions", "FROM event_tags", "FROM questions")
        assert any("FROM events" in s for s in sent) and not [s for s in sent for c in children if c in s]

        def edited_elsewhere(change: Callable[[Event], None]) -> str:
            """Make a change in the other process, then view the page in this one."""
            with other_process.app_context():
                change(db.session.get(Event, event.id))
                db.session.commit()
            return app.test_client().get(url).get_data(as_text=True)

        # A child added by id, one added through the event's list, one edited, one removed.
        page = edited_elsewhere(lambda e: db.session.add(Speaker(event_id=e.id, position=0, name="Grace Hopper")))
        assert "Grace Hopper" in page
        page = edited_elsewhere(lambda e: e.tag_rows.append(EventTag(tag="compilers")))
        assert "compilers" in page
        page = edited_elsewhere(lambda e: e.questions.append(Question(position=0, kind=QuestionKind.short_text,
                                                                      label="Your team?")))
        assert "Your team?" in page

        def rename(e: Event) -> None:
            e.questions[0].label = "Your department?"

        page = edited_elsewhere(rename)
        assert "Your department?" in page and "Your team?" not in page
        page = edited_elsewhere(lambda e: db.session.delete(e.speakers[0]))
        assert "Grace Hopper" not in page
        # This process never committed: what it showed followed the event's version alone.
        assert len(page_cache.event_children(app)) >= 1


def test_a_course_page_numbers_sessions_from_the_kept_copy(app, other_process, event):
    url = f"/events/{event.slug}"
    with max_age(app, 0), other_process.app_context():
        e = db.session.get(Event, event.id)
        e.sessions.extend([EventSession(name="Basics", starts_at=e.starts_at, ends_at=e.ends_at),
                           EventSession(name="Testing", starts_at=e.starts_at + timedelta(days=7),
                                        ends_at=e.ends_at + timedelta(days=7))])
        db.session.commit()
    for _ in range(2):  # read, then kept (each session's times are in its event's zone: the kept copy's)
        page = app.test_client().get(url).get_data(as_text=True)
        assert "2 sessions; one registration covers them all." in page
        local = event.starts_at.astimezone(ZoneInfo(event.timezone))
        basics = re.search(r"<li>Basics: <time[^>]*>([^<]*)</time>", page)
        assert basics and basics.group(1).endswith(local.strftime("%H:%M")) and "<li>Testing: <time" in page


def test_a_change_made_around_foyer_shows_within_the_childrens_age_limit(app, database_url, event):
    url = f"/events/{event.slug}"
    other_process = create_engine(database_url)
    try:
        with stand_in_clock(page_cache.event_children(app)) as wait, max_age(app, 0), app.app_context():
            db.session.add(Speaker(event_id=event.id, position=0, name="Grace Hopper"))
            db.session.commit()
            assert "Grace Hopper" in app.test_client().get(url).get_data(as_text=True)
            with other_process.begin() as conn:  # SQL typed by hand: the event's version stays
                conn.execute(text("UPDATE speakers SET name = 'Ada Lovelace'"))
            assert "Grace Hopper" in app.test_client().get(url).get_data(as_text=True)
            wait(page_cache.CHILDREN_MAX_AGE)
            assert "Ada Lovelace" in app.test_client().get(url).get_data(as_text=True)
    finally:
        other_process.dispose()


def test_a_registration_checks_its_answers_against_the_questions_of_the_version_it_is_made_under(
        app, other_process, event):
    url = f"/events/{event.slug}"
    with other_process.app_context():
        e = db.session.get(Event, event.id)
        e.questions.append(Question(position=0, kind=QuestionKind.short_text, label="Your team?"))
        db.session.commit()
        team = e.questions[0].id
    visitor = app.test_client()
    html = visitor.get(url).get_data(as_text=True)  # the page's view keeps the event's questions
    form = {**FORM, "csrf_token": _token(html)}
    with statements(app) as sent:
        response = visitor.post(f"{url}/register", data={**form, "email": "ada@example.org", f"q_{team}": "Compilers"})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert not [s for s in sent if "FROM questions" in s]  # the form and the answers' check used the copy

    # Meanwhile, elsewhere: the question is renamed and a required one is added. A form opened before
    # is sent as it was: the registration is checked against the questions as they are now.
    with other_process.app_context():
        e = db.session.get(Event, event.id)
        e.questions[0].label = "Your department?"
        e.questions.append(Question(position=1, kind=QuestionKind.short_text, label="Your badge name?",
                                    required=True))
        db.session.commit()
        badge = e.questions[1].id
    refused = visitor.post(f"{url}/register", data={**form, "email": "grace@example.org", f"q_{team}": "Navy"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Your badge name?" in page and "Answer this question." in page
    accepted = visitor.post(f"{url}/register", data={**form, "email": "grace@example.org", f"q_{team}": "Navy",
                                                     f"q_{badge}": "Amazing Grace"})
    assert accepted.status_code == 303, accepted.get_data(as_text=True)
    with app.app_context():
        answers = db.session.execute(
            select(RegistrationAnswer.question_label, RegistrationAnswer.value).join(Registration)
            .where(Registration.email == "grace@example.org").order_by(RegistrationAnswer.question_label)).all()
    assert [tuple(row) for row in answers] == [("Your badge name?", "Amazing Grace"), ("Your department?", "Navy")]
