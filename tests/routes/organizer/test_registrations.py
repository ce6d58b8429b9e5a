"""The organizer's registrations page over HTTP with real CSRF: counts, filters, search, paging, one-row and
bulk actions (plain posts and htmx), capacity changes that promote, refusals, and other people's events."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Registration
from app.models import RegistrationState as S
from app.services.registration import registrations
from tests.mail import queued_emails

from .conftest import hx


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def organizer(auth):
    return auth.login_as_organizer("org@example.org")


@pytest.fixture
def event(app, make_event, organizer):
    """A published event with two seats, a waitlist and a question."""
    made = make_event(organizer, status=EventStatus.published, published_at=datetime.now(UTC), capacity=2,
                      title="Spring call", starts_at=datetime(2031, 3, 3, 13, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 3, 3, 14, 0, tzinfo=UTC))
    with app.app_context():
        row = db.session.get(Event, made.id)
        row.questions = [Question(position=0, kind=QuestionKind.short_text, label="Company")]
        db.session.commit()
    return made


@pytest.fixture
def register(app):
    """Register people through the engine; returns their ids in order."""

    def _register(event, *people: str, company: str = "Acme") -> list[int]:
        ids = []
        with app.app_context():
            for person in people:
                row = db.session.get(Event, event.id)
                first, last = person.split(" ", 1)
                outcome = registrations.register(row, registrations.RegistrationData(
                    first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="UTC",
                    answers={row.questions[0].id: company} if row.questions else {}))
                db.session.commit()
                ids.append(outcome.registration.id)
        return ids

    return _register


def _states(app, *ids) -> list[S]:
    with app.app_context():
        return [db.session.get(Registration, i).state for i in ids]


def _url(event, suffix: str = "") -> str:
    return f"/manage/events/{event.id}/registrations{suffix}"


def test_page_shows_counts_seats_and_rows_in_the_event_zone(client, event, register):
    register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie")
    response = client.get(_url(event))
    assert response.status_code == 200
    page = _text(response)
    assert "<strong>0</strong> of 2 seats left" in page
    assert "2 confirmed · 1 on the waitlist · 0 awaiting approval" in page
    assert "All (3)" in page and "Confirmed (2)" in page and "Waitlisted (1)" in page
    assert "ada@example.org" in page and "Company: Acme" in page
    assert "Registered (Europe/Berlin)" in page
    assert "Move to confirmed<span class=\"visually-hidden\"> Cleo Curie" in page
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.db_agnostic
def test_the_event_page_links_to_the_registrations(client, event):
    assert f'href="/manage/events/{event.id}/registrations"' in _text(client.get(f"/manage/events/{event.id}"))


def test_filter_and_search(client, event, register):
    register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie")
    page = _text(client.get(_url(event, "?state=waitlisted")))
    assert "cleo@example.org" in page and "ada@example.org" not in page
    page = _text(client.get(_url(event, "?q=BABB")))
    assert "bob@example.org" in page and "ada@example.org" not in page
    page = _text(client.get(_url(event, "?q=ada+love")))
    assert "ada@example.org" in page and "bob@example.org" not in page
    page = _text(client.get(_url(event, "?q=%25_%27%3Cscript%3E&state=nonsense&page=-4")))
    assert "No registrations match" in page and "<script>" not in page


def test_paging_50_per_page(app, client, event, register, make_event, organizer):
    with app.app_context():
        db.session.get(Event, event.id).capacity = None
        db.session.commit()
    register(event, *[f"P{i:03d} Person" for i in range(52)])
    first = _text(client.get(_url(event)))
    assert first.count('name="ids"') == 50 and "page 1 of 2" in first and "Next page" in first
    second = _text(client.get(_url(event, "?page=2")))
    assert second.count('name="ids"') == 2 and "Previous page" in second
    assert _text(client.get(_url(event, "?page=99"))).count('name="ids"') == 2  # past the end: the last page


def test_other_organizers_events_and_registrations_are_404(app, client, auth, make_user, make_event, event, register):
    (ada,) = register(event, "Ada Lovelace")
    other = make_event(make_user("other@example.org"), status=EventStatus.published)
    assert client.get(_url(other)).status_code == 404
    # A registration id of this event under another event's URL (or vice versa) is not found either.
    assert client.submit(f"/manage/events/{other.id}/registrations/{ada}/move").status_code == 404
    assert client.get(_url(event, "/999999/cancel")).status_code == 404
    auth.logout()
    assert client.get(_url(event)).status_code in (302, 303)


def test_move_from_waitlist_needs_a_free_seat(app, client, event, register):
    ada, bob, cleo = register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie")
    response = client.submit(_url(event, f"/{cleo}/move"))
    assert response.status_code == 303
    page = _text(client.get(response.headers["Location"]))
    assert "Cleo Curie: No seat is free" in page
    assert _states(app, cleo) == [S.waitlisted]


def test_cancel_with_note_promotes_and_says_so(app, client, event, register):
    ada, bob, cleo = register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie")
    page = _text(client.get(_url(event, f"/{ada}/cancel")))
    assert "Cancel the registration of Ada Lovelace?" in page
    response = client.submit(_url(event, f"/{ada}/cancel"), {"message": "Sorry, <b>room</b> change"})
    assert response.status_code == 303
    assert _states(app, ada, cleo) == [S.cancelled, S.confirmed]
    page = _text(client.get(response.headers["Location"]))
    assert "1 person was cancelled. 1 person was promoted from the waitlist." in page
    with app.app_context():
        texts = [p["text"] for p in queued_emails(to="ada@example.org") if "cancelled" in p["subject"]]
    assert any("Sorry, <b>room</b> change" in t for t in texts)


def test_approve_and_deny_with_message(app, client, event, register):
    with app.app_context():
        db.session.get(Event, event.id).approval_required = True
        db.session.commit()
    ada, bob = register(event, "Ada Lovelace", "Bob Babbage")
    assert _states(app, ada, bob) == [S.pending, S.pending]
    response = client.submit(_url(event, f"/{ada}/approve"), {"state": "pending"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(_url(event, "?state=pending"))
    assert _states(app, ada) == [S.confirmed]
    # Approving twice is refused with a clear message.
    response = client.submit(_url(event, f"/{ada}/approve"))
    assert "Only registrations awaiting approval can be approved." in _text(client.get(response.headers["Location"]))
    response = client.submit(_url(event, f"/{bob}/deny"), {"message": "Members only, sorry."})
    assert response.status_code == 303
    assert _states(app, bob) == [S.denied]
    with app.app_context():
        denied = [p["text"] for p in queued_emails(to="bob@example.org") if "declined" in p["subject"]]
    assert any("Members only, sorry." in t for t in denied)


def test_overlong_deny_message_is_422(app, client, event, register):
    with app.app_context():
        db.session.get(Event, event.id).approval_required = True
        db.session.commit()
    (ada,) = register(event, "Ada Lovelace")
    response = client.submit(_url(event, f"/{ada}/deny"), {"message": "x" * 2001})
    assert response.status_code == 422
    assert "aria-invalid" in _text(response)
    assert _states(app, ada) == [S.pending]


def test_bulk_without_javascript_reports_done_refused_and_promoted(app, client, event, register):
    ada, bob, cleo, dan = register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie", "Dan Dirac")
    response = client.submit(_url(event, "/bulk"), {"ids": [str(ada), str(cleo)], "action": "cancel"})
    assert response.status_code == 303
    assert _states(app, ada, bob, cleo, dan) == [S.cancelled, S.confirmed, S.cancelled, S.confirmed]
    page = _text(client.get(response.headers["Location"]))
    assert "2 people were cancelled. 1 person was promoted from the waitlist." in page
    # Refusals are named one by one and do not stop the others.
    response = client.submit(_url(event, "/bulk"), {"ids": [str(ada), str(bob)], "action": "cancel"})
    page = _text(client.get(response.headers["Location"]))
    assert "1 person was cancelled." in page and "Ada Lovelace: This registration is already cancelled." in page
    assert _states(app, bob) == [S.cancelled]


def test_bulk_with_htmx_swaps_the_table(app, client, event, register):
    with app.app_context():
        db.session.get(Event, event.id).approval_required = True
        db.session.commit()
    ada, bob, cleo = register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie")
    response = hx(client, "POST", _url(event, "/bulk"),
                  data={"ids": [str(ada), str(bob), str(cleo)], "action": "approve", "state": "pending"})
    assert response.status_code == 200
    body = _text(response)
    assert body.lstrip().startswith('<div id="registrations-board">') and "<html" not in body
    # Two seats: the third approval lands on the waitlist, and the message says so.
    assert "2 people were approved. 1 person was approved onto the waitlist: the event is full." in body
    assert "<strong>0</strong> of 2 seats left" in body
    assert _states(app, ada, bob, cleo) == [S.confirmed, S.confirmed, S.waitlisted]
    assert response.headers["Vary"] == "HX-Request" or "HX-Request" in response.headers["Vary"]


def test_bulk_needs_a_selection_and_an_action(app, client, event, register):
    (ada,) = register(event, "Ada Lovelace")
    response = client.submit(_url(event, "/bulk"), {"action": "cancel"})
    assert response.status_code == 422
    assert "Select at least one registration." in _text(response)
    response = client.submit(_url(event, "/bulk"), {"ids": [str(ada)], "action": "explode"})
    assert response.status_code == 422 and "Choose an action." in _text(response)
    response = client.submit(_url(event, "/bulk"), {"ids": ["abc"], "action": "cancel"})
    assert response.status_code == 422
    response = hx(client, "POST", _url(event, "/bulk"), data={"action": "cancel"})
    assert response.status_code == 422 and "Select at least one registration." in _text(response)
    assert _states(app, ada) == [S.confirmed]


def test_bulk_ignores_other_events_registrations(app, client, make_user, make_event, event, register):
    other = make_event(make_user("other@example.org"), status=EventStatus.published, published_at=datetime.now(UTC))
    (theirs,) = register(other, "Olga Other")
    response = client.submit(_url(event, "/bulk"), {"ids": [str(theirs)], "action": "cancel"})
    assert response.status_code == 422
    assert "None of the selected registrations belong to this event." in _text(response)
    assert _states(app, theirs) == [S.confirmed]


def test_raising_capacity_promotes_and_says_how_many(app, client, event, register):
    ids = register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie", "Dan Dirac", "Eve Euler")
    response = client.submit(_url(event, "/capacity"), {"capacity": "4"})
    assert response.status_code == 303
    page = _text(client.get(response.headers["Location"]))
    assert "Capacity set to 4. 2 people were promoted from the waitlist." in page
    assert _states(app, *ids) == [S.confirmed] * 4 + [S.waitlisted]
    response = client.submit(_url(event, "/capacity"), {"capacity": ""})
    assert "Capacity set to unlimited. 1 person was promoted" in _text(client.get(response.headers["Location"]))


def test_capacity_below_seats_taken_or_invalid_is_422(app, client, event, register):
    register(event, "Ada Lovelace", "Bob Babbage")
    response = client.submit(_url(event, "/capacity"), {"capacity": "1"})
    assert response.status_code == 422
    assert re.search(r"2 people already have a seat", _text(response))
    for bad in ("-3", "lots", "99999999999"):
        response = client.submit(_url(event, "/capacity"), {"capacity": bad})
        assert response.status_code == 422, bad
    with app.app_context():
        assert db.session.get(Event, event.id).capacity == 2


def test_actions_without_csrf_change_nothing(app, client, event, register):
    ada, bob, cleo = register(event, "Ada Lovelace", "Bob Babbage", "Cleo Curie")
    assert client.post(_url(event, f"/{ada}/cancel"), data={}).status_code == 400
    assert client.post(_url(event, "/bulk"), data={"ids": [str(ada)], "action": "cancel"}).status_code == 400
    assert client.post(_url(event, "/capacity"), data={"capacity": "9"}).status_code == 400
    assert _states(app, ada) == [S.confirmed]
