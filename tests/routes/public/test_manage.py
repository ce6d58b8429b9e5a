"""The attendee's personal link over HTTP with real CSRF: what it shows, editing, cancelling and leaving
the waitlist (with promotion), the invitation and calendar links, export and erasure, unknown links."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from icalendar import Calendar

from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Registration, RegistrationState
from app.services.attendance import join_links
from app.services.registration import registrations
from tests.mail import queued_emails


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def event(app, make_event, owner):
    """A published event (Berlin) with a text question and a choice question, two seats."""
    made = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=2,
                      title="Spring call", starts_at=datetime(2031, 3, 3, 13, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 3, 3, 14, 0, tzinfo=UTC))
    with app.app_context():
        row = db.session.get(Event, made.id)
        row.questions = [
            Question(position=0, kind=QuestionKind.short_text, label="Company", required=True),
            Question(position=1, kind=QuestionKind.single_choice, label="Track", options=["Dev", "Ops"]),
        ]
        db.session.commit()
    return made


@pytest.fixture
def register(app):
    """Register someone through the engine; returns (registration id, manage token)."""

    def _register(event, email="ada@example.org", first="Ada", last="Lovelace", zone="Asia/Tokyo",
                  company="Analytical Engines") -> tuple[int, str]:
        with app.app_context():
            row = db.session.get(Event, event.id)
            ids = {q.label: q.id for q in row.questions}
            answers = {ids["Company"]: company} if "Company" in ids else {}
            outcome = registrations.register(row, registrations.RegistrationData(
                first_name=first, last_name=last, email=email, timezone=zone, answers=answers))
            db.session.commit()
            return outcome.registration.id, outcome.manage_token

    return _register


def _reg(app, reg_id) -> Registration | None:
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        if reg is not None:
            _ = [a.value for a in reg.answers], reg.state
            db.session.expunge(reg)
        return reg


def test_manage_page_shows_state_and_times_in_both_zones_privately(client, event, register):
    _, token = register(event)
    response = client.get(f"/r/{token}")
    assert response.status_code == 200
    page = _text(response)
    assert "You’re registered" in page and "Your seat is confirmed." in page
    # 13:00 UTC is 22:00 in Tokyo and 14:00 in Berlin; both zones are named.
    assert "22:00–23:00 (Asia/Tokyo)" in page
    assert "14:00–15:00 (Europe/Berlin)" in page
    assert "ada@example.org" in page and "Analytical Engines" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("token", ["nope", "x" * 43, "A" * 500, "%00%0d%0a<script>"])
def test_unknown_link_is_a_friendly_404_that_reveals_nothing(client, event, register, token):
    register(event)
    response = client.get(f"/r/{token}")
    assert response.status_code == 404
    page = _text(response)
    assert "This link does not work" in page
    assert "ada@example.org" not in page and event.title not in page
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get(f"/r/{token}/data.json").status_code == 404
    assert client.get(f"/r/{token}/invite.ics").status_code == 404


def test_one_link_cannot_reach_another_registration(client, event, register):
    _, ada = register(event)
    _, bob = register(event, email="bob@example.org", first="Bob", last="Babbage")
    assert "bob@example.org" not in _text(client.get(f"/r/{ada}"))
    assert "ada@example.org" not in _text(client.get(f"/r/{bob}"))


def test_waitlisted_person_sees_position_and_no_invite(client, event, register):
    register(event, email="a@example.org")
    register(event, email="b@example.org")
    register(event, email="c@example.org")
    _, token = register(event, email="d@example.org")
    page = _text(client.get(f"/r/{token}"))
    assert "You’re on the waitlist — number 2 in line" in page
    assert "Leave the waitlist…" in page
    assert "Download the calendar invitation" not in page
    response = client.get(f"/r/{token}/invite.ics")
    assert response.status_code == 303  # back to the page, which explains the invite comes with a seat


def test_edit_details_changes_name_zone_and_answers_but_never_email(app, client, event, register):
    reg_id, token = register(event)
    with app.app_context():
        ids = {q.label: q.id for q in db.session.get(Event, event.id).questions}
    response = client.submit(f"/r/{token}/details", {
        "first_name": "Augusta", "last_name": "King", "timezone": "America/New_York",
        f"q_{ids['Company']}": "Difference Engines", f"q_{ids['Track']}": "Ops", "email": "evil@example.org",
    })
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/r/{token}")
    reg = _reg(app, reg_id)
    assert (reg.first_name, reg.last_name, reg.timezone, reg.email) == (
        "Augusta", "King", "America/New_York", "ada@example.org")
    assert {a.question_label: a.value for a in reg.answers} == {"Company": "Difference Engines", "Track": "Ops"}
    assert reg.ics_sequence == 1  # the invitation's ATTENDEE name changed
    assert "Your details are saved." in _text(client.get(f"/r/{token}"))


def test_invalid_edit_is_422_with_field_errors_and_changes_nothing(app, client, event, register):
    reg_id, token = register(event)
    with app.app_context():
        ids = {q.label: q.id for q in db.session.get(Event, event.id).questions}
    response = client.submit(f"/r/{token}/details", {
        "first_name": "", "last_name": "K" * 300, "timezone": "Mars/Olympus",
        f"q_{ids['Company']}": "", f"q_{ids['Track']}": "Sales",
    })
    assert response.status_code == 422
    page = _text(response)
    assert "Enter your first name." in page
    assert "‘Mars/Olympus’ is not a time zone we know." in page
    assert 'value="Mars/Olympus"' in page  # what was typed is kept
    assert "Choose one of the options listed." in page
    assert 'aria-invalid="true"' in page
    reg = _reg(app, reg_id)
    assert (reg.first_name, reg.timezone) == ("Ada", "Asia/Tokyo")


def test_hostile_text_is_stored_inert_and_rendered_escaped(app, client, event, register):
    reg_id, token = register(event)
    with app.app_context():
        ids = {q.label: q.id for q in db.session.get(Event, event.id).questions}
    response = client.submit(f"/r/{token}/details", {
        "first_name": "<script>alert(1)</script>", "last_name": "O'Brien\r\nBcc: x@evil", "timezone": "UTC",
        f"q_{ids['Company']}": "\u202eevil\u0000 <b>co</b>",
    })
    assert response.status_code == 303
    page = _text(client.get(f"/r/{token}"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>co</b>" not in page
    reg = _reg(app, reg_id)
    assert "\r" not in reg.last_name and "\n" not in reg.last_name
    assert reg.answers[0].value == "evil <b>co</b>"


def test_edit_without_csrf_token_changes_nothing(app, client, event, register):
    reg_id, token = register(event)
    response = client.post(f"/r/{token}/details", data={"first_name": "Mallory", "last_name": "X", "timezone": "UTC"})
    assert response.status_code == 400
    assert "form has expired" in _text(response)
    assert _reg(app, reg_id).first_name == "Ada"


def test_cancel_asks_first_then_frees_the_seat_for_the_waitlist(app, client, event, register):
    ada_id, token = register(event)
    register(event, email="b@example.org")
    waiting_id, _ = register(event, email="c@example.org")
    page = _text(client.get(f"/r/{token}/cancel"))
    assert "Cancel your registration?" in page and "Yes, cancel my registration" in page
    assert _reg(app, ada_id).state == RegistrationState.confirmed  # asking changed nothing
    response = client.submit(f"/r/{token}/cancel")
    assert response.status_code == 303
    assert _reg(app, ada_id).state == RegistrationState.cancelled
    assert _reg(app, waiting_id).state == RegistrationState.confirmed
    page = _text(client.get(f"/r/{token}"))
    assert "Your registration is cancelled." in page and "Cancelled" in page
    assert "Cancel my registration…" not in page and "Change your details" not in page
    # A second cancel (e.g. another tab) explains itself and changes nothing.
    response = client.submit(f"/r/{token}/cancel")
    assert response.status_code == 303
    assert "already cancelled" in _text(client.get(f"/r/{token}"))
    # Editing a cancelled registration is refused.
    response = client.submit(f"/r/{token}/details", {"first_name": "X", "last_name": "Y", "timezone": "UTC"})
    assert response.status_code == 303 and _reg(app, ada_id).first_name == "Ada"


def test_leave_the_waitlist(app, client, event, register):
    register(event, email="a@example.org")
    register(event, email="b@example.org")
    reg_id, token = register(event, email="c@example.org")
    assert "Leave the waitlist?" in _text(client.get(f"/r/{token}/cancel"))
    response = client.submit(f"/r/{token}/cancel")
    assert response.status_code == 303
    assert _reg(app, reg_id).state == RegistrationState.cancelled
    assert "You have left the waitlist." in _text(client.get(f"/r/{token}"))


def _join_link(app, reg_id) -> str:
    with app.app_context():
        link = join_links.join_url(db.session.get(Registration, reg_id))
        db.session.commit()
        return link


def test_invite_download_and_cancellation(app, client, event, register):
    reg_id, token = register(event)
    response = client.get(f"/r/{token}/invite.ics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/calendar")
    assert response.headers["Cache-Control"] == "no-store"
    calendar = Calendar.from_ical(response.data)
    (vevent,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(vevent["UID"]) == f"registration-{reg_id}@localhost"
    assert str(vevent["URL"]) == _join_link(app, reg_id)  # the personal join link, not the manage link
    client.submit(f"/r/{token}/cancel")
    calendar = Calendar.from_ical(client.get(f"/r/{token}/invite.ics").data)
    (cancelled,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "CANCEL" and str(cancelled["STATUS"]) == "CANCELLED"
    assert cancelled["SEQUENCE"] > vevent["SEQUENCE"]


def test_calendar_links_are_encoded_not_concatenated(app, client, make_event, owner, register):
    made = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC),
                      title='Q&A #1 "rock" & <roll>?', starts_at=datetime(2031, 6, 1, 8, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 6, 1, 9, 30, tzinfo=UTC))
    reg_id, token = register(made)
    page = _text(client.get(f"/r/{token}"))

    def href(base: str) -> str:
        match = re.search(r'href="(' + re.escape(base) + r'\?[^"]+)"', page)
        assert match, base
        return html.unescape(match.group(1))

    hrefs = {"Google": href("https://calendar.google.com/calendar/render"),
             "Outlook.com": href("https://outlook.live.com/calendar/0/action/compose")}
    google = parse_qs(urlsplit(hrefs["Google"]).query)
    assert google["text"] == ['Q&A #1 "rock" & <roll>?']
    assert google["dates"] == ["20310601T080000Z/20310601T093000Z"]
    assert google["ctz"] == ["Europe/Berlin"]
    assert _join_link(app, reg_id) in google["details"][0]
    outlook = parse_qs(urlsplit(hrefs["Outlook.com"]).query)
    assert outlook["subject"] == ['Q&A #1 "rock" & <roll>?']
    assert outlook["startdt"] == ["2031-06-01T08:00:00+00:00"]


def test_download_my_data(app, client, event, register):
    _, token = register(event)
    response = client.get(f"/r/{token}/data.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.data)
    assert data["registration"]["email"] == "ada@example.org"
    assert data["registration"]["state"] == "confirmed"
    assert data["answers"] == [{"question": "Company", "answer": "Analytical Engines"}]
    assert data["history"][-1]["to"] == "confirmed"
    assert data["event"]["title"] == "Spring call"
    assert any(e["subject"].startswith("You're registered") for e in data["emails"])


def test_erase_needs_confirmation_then_deletes_and_promotes(app, client, event, register):
    ada_id, token = register(event)
    register(event, email="b@example.org")
    waiting_id, _ = register(event, email="c@example.org")
    response = client.submit(f"/r/{token}/erase", {})
    assert response.status_code == 422
    assert "Tick the box" in _text(response)
    assert _reg(app, ada_id) is not None
    response = client.submit(f"/r/{token}/erase", {"confirm": "y"})
    assert response.status_code == 303
    assert "Your data has been deleted" in _text(client.get(response.headers["Location"]))
    assert _reg(app, ada_id) is None
    assert _reg(app, waiting_id).state == RegistrationState.confirmed
    assert client.get(f"/r/{token}").status_code == 404
    with app.app_context():
        assert db.session.get(Event, event.id).erased_registrations == 1
        to = [p["to"] for p in queued_emails()]
        assert "ada@example.org" not in to and "c@example.org" in to


def test_manage_page_after_the_event_was_cancelled(app, client, event, register, owner):
    _, token = register(event)
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.status, row.cancellation_reason, row.ics_sequence = EventStatus.cancelled, "Speaker ill", 1
        row.cancelled_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    page = _text(client.get(f"/r/{token}"))
    # The event's state comes first; nothing suggests a seat, a call or a change.
    heading = re.search(r'<h2 id="state-heading">([^<]*)</h2>', page).group(1)
    assert heading == "This event has been cancelled" and "Speaker ill" in page
    for misleading in ("You’re registered", "Your seat is confirmed", "You join from", "Change your details",
                       "Cancel my registration", "Go to the join page"):
        assert misleading not in page, misleading
    refused = client.submit(f"/r/{token}/details", {"first_name": "Eve", "last_name": "L", "timezone": "UTC"})
    assert refused.status_code == 303
    assert "can no longer be changed" in _text(client.get(f"/r/{token}"))
    assert client.get(f"/r/{token}/cancel").status_code == 303  # no "Cancel your registration?" question
    assert "nothing for you to cancel" in _text(client.get(f"/r/{token}"))
    with app.app_context():
        assert db.session.scalars(select_registrations(event.id)).one().first_name == "Ada"
    calendar = Calendar.from_ical(client.get(f"/r/{token}/invite.ics").data)
    assert str(calendar["METHOD"]) == "CANCEL"


def select_registrations(event_id: int):
    from sqlalchemy import select

    return select(Registration).where(Registration.event_id == event_id)


def test_manage_page_after_the_event_ended(app, client, event, register):
    _, token = register(event)
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.starts_at, row.ends_at = datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
    page = _text(client.get(f"/r/{token}"))
    assert re.search(r'<h2 id="state-heading">This event has ended</h2>', page)
    assert "Your seat is confirmed" not in page and "Change your details" not in page
