"""Anonymous event pages are reused for a moment by each web process (app/services/core/page_cache.py).

Every visitor still gets a working form of their own (their CSRF token, a fresh "shown at" stamp);
a change saved in this process shows on the next view; a change made by another process shows once
the page's age limit passes; signed-in staff and flash messages are never served a shared page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from app.extensions import db
from app.models import Event, EventStatus, Speaker
from app.services.core import page_cache
from tests.conftest import CSRF_RE

STARTED = re.compile(r'name="started" type="hidden" value="([^"]+)"')
FORM = {"first_name": "Ada", "last_name": "Lovelace", "timezone": "Europe/London", "consent": "y"}


@pytest.fixture
def event(make_user, make_event) -> Event:
    owner = make_user("owner@example.org")
    return make_event(owner, title="Cached call", status=EventStatus.published, published_at=datetime.now(UTC),
                      capacity=10)


@pytest.fixture
def wait(app) -> Iterator[Callable[[float], None]]:
    """`wait(seconds)` ages the cached pages without sleeping (the cache reads time.monotonic, which
    time-machine does not move). Meanwhile the cache's clock stands still, so a slow machine's own delays
    between two requests do not age a page as well."""
    pages = page_cache.event_pages(app)
    real_clock, waited = pages._clock, [0.0]
    start = real_clock()
    pages._clock = lambda: start + waited[0]

    def _wait(seconds: float) -> None:
        waited[0] += seconds

    yield _wait
    pages._clock = real_clock


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
