"""The public registration form over HTTP with real CSRF: without JavaScript and with htmx, invalid and
hostile input, closed events, duplicates that reveal nothing, the honeypot, address confirmation,
the rate limit, and the organizer/admin settings that shape registration."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    Event,
    EventStatus,
    Question,
    QuestionKind,
    Registration,
    RegistrationState,
    Role,
    Setting,
    User,
)
from app.services.core.settings import update_privacy_notice
from app.services.registration import registrations
from tests.mail import queued_emails

CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def event_with(app, make_event, owner):
    """A published event; `questions=True` adds one question of every kind."""

    def _make(questions: bool = False, **columns) -> Event:
        columns.setdefault("status", EventStatus.published)
        columns.setdefault("published_at", datetime.now(UTC))
        event = make_event(owner, **columns)
        if questions:
            with app.app_context():
                row = db.session.get(Event, event.id)
                row.questions = [
                    Question(position=0, kind=QuestionKind.short_text, label="Company", required=True,
                             help_text="Where you work"),
                    Question(position=1, kind=QuestionKind.long_text, label="Anything else?"),
                    Question(position=2, kind=QuestionKind.single_choice, label="Track", options=["Dev", "Ops"],
                             required=True),
                    Question(position=3, kind=QuestionKind.multiple_choice, label="Topics",
                             options=["APIs", "Security", "UX"]),
                    Question(position=4, kind=QuestionKind.checkbox, label="I accept the code of conduct",
                             required=True),
                ]
                db.session.commit()
        return event

    return _make


def _question_ids(app, event) -> dict[str, int]:
    with app.app_context():
        return {q.label: q.id for q in db.session.get(Event, event.id).questions}


def _form(email="ada@example.org", **extra) -> dict:
    data = {"first_name": "Ada", "last_name": "Lovelace", "email": email, "timezone": "Asia/Tokyo", "consent": "y"}
    data.update(extra)
    return data


def _answers(app, event, **by_label) -> dict:
    ids = _question_ids(app, event)
    return {f"q_{ids[label]}": value for label, value in by_label.items()}


def _full_answers(app, event) -> dict:
    return _answers(app, event, Company="Analytical Engines Ltd", Track="Ops", Topics=["APIs", "UX"],
                    **{"I accept the code of conduct": "y"})


def _register(client, event, data, **kwargs):
    return client.submit(f"/events/{event.slug}/register", data, **kwargs)


def _count(app, model=Registration) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _emails(app, to: str | None = None) -> list[dict]:
    with app.app_context():
        return [p for p in queued_emails() if to is None or p["to"] == to]


# --- the form ------------------------------------------------------------------------------------------


@pytest.mark.db_agnostic
def test_event_page_shows_the_form_with_every_question_kind(client, app, event_with):
    event = event_with(questions=True, capacity=10)
    page = _text(client.get(f"/events/{event.slug}"))
    form = page.split('id="register-form"')[1].split("</form>")[0]
    ids = _question_ids(app, event)
    assert f'action="/events/{event.slug}/register"' in page and 'method="post"' in page
    assert f'hx-post="/events/{event.slug}/register"' in page
    for name in ("first_name", "last_name", "email", "timezone", "consent"):
        assert f'name="{name}"' in form
    assert f'<input aria-describedby="q_{ids["Company"]}-help"' in form and "Where you work" in form
    assert '<textarea' in form and f'name="q_{ids["Anything else?"]}"' in form
    assert form.count('type="radio"') == 2 and "<legend>Track" in form and "(required)" in form
    assert form.count(f'name="q_{ids["Topics"]}" type="checkbox"') == 3
    assert f'name="q_{ids["I accept the code of conduct"]}" required type="checkbox"' in form
    # The attendee's zone: a text input starting at the event's zone (the page's script puts the device's
    # zone in its place), a short list of common zones, and a link to all of them instead of ~600 options.
    zone_input = re.search(r'<input [^>]*name="timezone"[^>]*>', form).group(0)
    assert 'aria-describedby="timezone-help"' in zone_input and 'data-default-browser-zone="prefer"' in zone_input
    assert 'list="timezone-common"' in zone_input and f'value="{event.timezone}"' in zone_input
    assert '<datalist id="timezone-common"><option>UTC</option>' in form
    assert form.count("<option") < 40 and "<select" not in form.split('name="timezone"')[1].split("</div>")[0]
    assert 'href="/time-zones" target="_blank"' in form and "see all time zones" in form
    assert 'href="/privacy" target="_blank"' in form
    assert re.search(r'<div class="honeypot" hidden>.*name="homepage"', form, re.S)
    assert f'hx-post="/events/{event.slug}/register/validate?field=email"' in form


def test_registration_without_javascript_redirects_to_the_result(client, app, event_with, make_user):
    admin = make_user("admin@example.org", role=Role.admin)
    with app.app_context():
        update_privacy_notice("We keep your name and email.", actor=db.session.get(User, admin.id))
        update_privacy_notice("We keep your name and email until the event ends.", actor=db.session.get(User, admin.id))
        db.session.commit()
    event = event_with(questions=True, capacity=10)
    response = _register(client, event, _form(**_full_answers(app, event)))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/events/{event.slug}/registered"

    result = client.get(f"/events/{event.slug}/registered")
    page = _text(result)
    # The page never shows the personal link: it goes only to the address, so a page can't reveal who is registered.
    assert "Check your inbox" in page and "ada@example.org" in page and "/r/" not in page
    assert result.headers["Cache-Control"] == "no-store" and result.headers["Referrer-Policy"] == "no-referrer"
    mail = _emails(app, "ada@example.org")[0]
    link = re.search(r"http://localhost/r/([A-Za-z0-9_-]{43})", mail["text"])
    assert link, mail["text"]
    # The email gives the time in the attendee's own zone, named.
    assert "(Asia/Tokyo)" in mail["text"]
    with app.app_context():
        reg = db.session.scalars(select(Registration)).one()
        assert (reg.state, reg.email, reg.timezone, reg.consent_version) == (
            RegistrationState.confirmed, "ada@example.org", "Asia/Tokyo", 2)
        assert {a.question_label: a.value for a in reg.answers} == {
            "Company": "Analytical Engines Ltd", "Track": "Ops", "Topics": ["APIs", "UX"],
            "I accept the code of conduct": True}
        assert registrations.by_manage_token(link.group(1)).id == reg.id
    manage = _text(client.get(f"/r/{link.group(1)}"))
    assert "You’re registered" in manage
    assert [m["subject"] for m in _emails(app, "ada@example.org")] == [f"You're registered: {event.title}"]


def test_registration_with_htmx_swaps_in_the_result(client, app, event_with):
    event = event_with(capacity=1)
    token = client.csrf_token(f"/events/{event.slug}")
    response = client.post(f"/events/{event.slug}/register", data=_form() | {"csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = _text(response)
    assert "<html" not in body and 'id="register-result"' in body and "Check your inbox" in body
    assert "autofocus" in body
    assert response.headers["HX-Push-Url"] == f"/events/{event.slug}/registered"

    second = client.post(f"/events/{event.slug}/register", data=_form("bob@example.org") | {"csrf_token": token},
                         headers={"HX-Request": "true"})
    assert "Check your inbox" in _text(second)
    with app.app_context():
        states = dict(db.session.execute(select(Registration.email, Registration.state)).all())
    assert states == {"ada@example.org": RegistrationState.confirmed, "bob@example.org": RegistrationState.waitlisted}
    assert "number 1 in line" in _emails(app, "bob@example.org")[0]["text"]


@pytest.mark.db_agnostic
def test_invalid_input_rerenders_with_errors_and_stores_nothing(client, app, event_with):
    event = event_with(questions=True)
    bad = _form("not-an-email", first_name="", timezone="Mars/Base", consent="") | _answers(
        app, event, Company="", Track="Marketing", Topics=["APIs", "Gossip"])
    response = _register(client, event, bad)
    assert response.status_code == 422
    page = _text(response)
    for message in ("Enter your first name.", "Enter a valid email address", "‘Mars/Base’ is not a time zone we know.",
                    "Please agree to the privacy notice", "Answer this question.", "Choose one of the options listed.",
                    "Choose from the options listed.", "Tick this box to continue."):
        assert message in page, message
    assert 'aria-invalid="true"' in page and 'aria-describedby="first_name-error"' in page
    assert 'value="not-an-email"' in page and 'value="Mars/Base"' in page  # what was typed is kept
    assert _count(app) == 0 and _emails(app) == []

    fragment = client.post(f"/events/{event.slug}/register", data=bad | {"csrf_token": client.csrf_token()},
                           headers={"HX-Request": "true"})
    assert fragment.status_code == 422
    assert _text(fragment).lstrip().startswith("<form") and "Enter your first name." in _text(fragment)


@pytest.mark.db_agnostic
def test_a_mistyped_time_zone_gets_a_suggestion_and_nothing_typed_is_lost(client, app, event_with):
    event = event_with()
    response = _register(client, event, _form(timezone="Europe/Amsterdm", first_name="Ada <3"))
    assert response.status_code == 422
    page = _text(response)
    assert "‘Europe/Amsterdm’ is not a time zone we know; did you mean Europe/Amsterdam?" in page
    zone_input = re.search(r'<input [^>]*name="timezone"[^>]*>', page).group(0)
    assert 'value="Europe/Amsterdm"' in zone_input and 'aria-invalid="true"' in zone_input
    assert 'aria-describedby="timezone-help timezone-error"' in zone_input and 'id="timezone-error"' in page
    assert 'data-default-browser-zone="prefer"' not in zone_input  # the script leaves a typed zone alone
    assert 'value="Ada &lt;3"' in page and 'value="ada@example.org"' in page
    assert _count(app) == 0

    blank = _register(client, event, _form(timezone="  "))
    assert blank.status_code == 422 and "Enter your time zone, like Europe/Paris." in _text(blank)
    huge = _register(client, event, _form(timezone="x" * 5000))
    assert huge.status_code == 422 and "is not a time zone we know" in _text(huge)
    assert _count(app) == 0


def test_a_time_zone_typed_loosely_is_stored_in_its_exact_spelling(client, app, event_with):
    event = event_with()
    response = _register(client, event, _form(timezone="  america/new york "))
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(Registration.timezone)).one() == "America/New_York"


@pytest.mark.db_agnostic
def test_every_time_zone_is_listed_on_a_page_of_its_own(client):
    from zoneinfo import available_timezones

    response = client.get("/time-zones")
    assert response.status_code == 200
    assert response.cache_control.public and response.cache_control.max_age == 86400
    page = _text(response)
    listed = set(re.findall(r"<li><code>([^<]+)</code></li>", page))
    assert {"Europe/Amsterdam", "America/Argentina/ComodRivadavia", "UTC", "Pacific/Auckland"} <= listed
    assert len(listed) > 500 and listed <= available_timezones()
    assert "<h1>Time zones</h1>" in page and 'href="#region-europe"' in page and 'id="region-europe"' in page


@pytest.mark.db_agnostic
def test_inline_validation_returns_one_field(client, app, event_with):
    event = event_with()
    token = client.csrf_token(f"/events/{event.slug}")
    url = f"/events/{event.slug}/register/validate"
    bad = client.post(url + "?field=email", data={"csrf_token": token, "email": "nope@"},
                      headers={"HX-Request": "true"})
    assert bad.status_code == 200
    body = _text(bad)
    assert body.strip().startswith('<div class="field') and 'id="email-error"' in body and "<form" not in body
    good = client.post(url + "?field=email", data={"csrf_token": token, "email": "ok@example.org"},
                       headers={"HX-Request": "true"})
    assert "error" not in _text(good) and 'value="ok@example.org"' in _text(good)
    assert client.post(url + "?field=csrf_token", data={"csrf_token": token}).status_code == 204
    assert client.post(url + "?field=nonsense", data={"csrf_token": token}).status_code == 204
    assert _count(app) == 0


@pytest.mark.db_agnostic
def test_register_page_works_on_its_own(client, event_with):
    event = event_with()
    page = _text(client.get(f"/events/{event.slug}/register"))
    assert f"<h1>Register: {event.title}</h1>" in page and 'id="register-form"' in page


# --- closed, cancelled, full ------------------------------------------------------------------------


@pytest.mark.parametrize(("columns", "message"), [
    ({"registration_closes_at": datetime.now(UTC) - timedelta(minutes=1)}, "Registration for this event has closed."),
    ({"registration_opens_at": datetime.now(UTC) + timedelta(days=1)}, "Registration has not opened yet."),
    ({"status": EventStatus.cancelled, "cancelled_at": datetime.now(UTC)}, "this event has been cancelled"),
    ({"capacity": 0, "waitlist_enabled": False}, "fully booked"),
])
def test_closed_cancelled_or_full_events_say_so_and_store_nothing(client, app, event_with, columns, message):
    event = event_with(**columns)
    # The session's token, as a form loaded while the event was still open carries it.
    response = _register(client, event, _form())
    assert response.status_code == 422
    assert message in _text(response)
    assert _count(app) == 0 and _emails(app) == []


def test_full_event_without_waitlist_shows_no_form(client, event_with):
    event = event_with(capacity=0, waitlist_enabled=False)
    page = _text(client.get(f"/events/{event.slug}"))
    assert "Fully booked" in page and 'id="register-form"' not in page


@pytest.mark.db_agnostic
def test_forged_or_missing_csrf_changes_nothing_and_keeps_what_was_typed(client, app, event_with):
    event = event_with()
    for token in ({"csrf_token": "forged"}, {}):
        response = client.post(f"/events/{event.slug}/register", data=_form() | token)
        page = _text(response)
        assert response.status_code == 422 and "has to be sent again" in page
        assert 'value="Ada"' in page and 'value="ada@example.org"' in page
    assert _count(app) == 0 and _emails(app) == []


def test_a_form_left_open_past_the_token_lifetime_comes_back_as_typed_and_then_works(client, app, event_with,
                                                                                      monkeypatch, clock):
    event = event_with()
    monkeypatch.setitem(app.config, "WTF_CSRF_TIME_LIMIT", 1)
    token = client.csrf_token(f"/events/{event.slug}")
    clock.shift(2.1)  # itsdangerous timestamps have one-second resolution
    response = client.post(f"/events/{event.slug}/register", data=_form() | {"csrf_token": token})
    page = _text(response)
    assert response.status_code == 422 and "open for a long time" in page
    assert 'value="Ada"' in page and 'value="Lovelace"' in page and 'value="ada@example.org"' in page
    assert _count(app) == 0
    fresh = CSRF_FIELD.search(page).group(1)
    assert fresh != token
    again = client.post(f"/events/{event.slug}/register", data=_form() | {"csrf_token": fresh})
    assert again.status_code == 303 and _count(app) == 1


@pytest.mark.db_agnostic
def test_other_forms_with_an_expired_token_say_so_kindly(client, app, make_user, monkeypatch, clock):
    make_user("org@example.org")
    monkeypatch.setitem(app.config, "WTF_CSRF_TIME_LIMIT", 1)
    token = client.csrf_token("/login")
    clock.shift(2.1)
    response = client.post("/login", data={"csrf_token": token, "email": "org@example.org",
                                           "password": "correct horse battery"})
    assert response.status_code == 400
    assert "This form has expired" in _text(response) and "submit it again" in _text(response)
    assert "Traceback" not in _text(response)


@pytest.mark.db_agnostic
def test_drafts_are_not_found(client, app, make_event, owner):
    event = make_event(owner)
    assert client.get(f"/events/{event.slug}/register").status_code == 404
    assert client.post(f"/events/{event.slug}/register", data=_form() | {"csrf_token": client.csrf_token()}
                       ).status_code == 404
    assert _count(app) == 0


# --- privacy: duplicates and the honeypot ---------------------------------------------------------------


def _strip_request_noise(page, email: str) -> str:
    """The page minus what differs between any two requests (CSRF tokens carry a timestamp)."""
    text = re.sub(re.escape(email), email, _text(page), flags=re.IGNORECASE)
    text = re.sub(r'"X-CSRFToken": "[^"]*"', "", text)
    return re.sub(r'name="csrf_token"[^>]*value="[^"]*"', "", text)


@pytest.mark.parametrize("columns", [
    pytest.param({}, id="open"),
    pytest.param({"require_email_verification": True}, id="address-confirmation"),
    pytest.param({"approval_required": True}, id="approval"),
    pytest.param({"capacity": 1, "waitlist_enabled": True}, id="waitlist"),
])
def test_repeat_signup_reads_exactly_like_a_new_one(client, app, event_with, columns):
    """A new sign-up and a repeat with the same address get the same page, over HTML and htmx."""
    event = event_with(**columns)
    if "capacity" in columns:
        _register(client, event, _form("first@example.org"))  # the repeat lands on the waitlist
    first = client.get(_register(client, event, _form("ada@example.org")).headers["Location"])
    again = _register(client, event, _form("ADA@example.org"))
    assert again.status_code == 303
    repeat = client.get(again.headers["Location"])
    assert "Check your inbox" in _text(first)
    assert _strip_request_noise(first, "ada@example.org") == _strip_request_noise(repeat, "ada@example.org")

    token = client.csrf_token(f"/events/{event.slug}")
    fragments = [client.post(f"/events/{event.slug}/register", data=_form(email) | {"csrf_token": token},
                             headers={"HX-Request": "true"}) for email in ("grace@example.org", "GRACE@example.org")]
    assert [f.status_code for f in fragments] == [200, 200]
    assert _strip_request_noise(fragments[0], "grace@example.org") == _strip_request_noise(
        fragments[1], "grace@example.org")
    assert _count(app) == (3 if "capacity" in columns else 2)  # one row per address, repeats add none


def test_repeat_signup_resends_the_link_but_never_floods(client, app, event_with):
    event = event_with(require_email_verification=True)
    _register(client, event, _form("ada@example.org"))
    _register(client, event, _form("ADA@example.org"))
    assert _count(app) == 1
    subjects = [m["subject"] for m in _emails(app, "ada@example.org")]
    assert subjects == [f"Confirm your email address: {event.title}"] * 2
    # A flood does not become a flood of emails.
    for _ in range(3):
        _register(client, event, _form("ada@example.org"))
    assert len(_emails(app, "ada@example.org")) == 2 and _count(app) == 1


def test_repeat_signup_on_an_open_event_resends_the_personal_link(client, app, event_with):
    event = event_with()
    _register(client, event, _form())
    repeat = _register(client, event, _form())
    assert "Check your inbox" in _text(client.get(repeat.headers["Location"]))
    last = _emails(app, "ada@example.org")[-1]
    assert last["subject"] == f"Your registration link: {event.title}" and "/r/" in last["text"]
    assert _count(app) == 1


@pytest.mark.db_agnostic
def test_honeypot_pretends_success_and_stores_nothing(client, app, event_with):
    event = event_with()
    response = _register(client, event, _form(homepage="http://spam.example"))
    assert response.status_code == 303
    assert "Check your inbox" in _text(client.get(response.headers["Location"]))
    assert _count(app) == 0 and _emails(app) == []


# --- hostile input -------------------------------------------------------------------------------------


def test_hostile_text_is_stored_safely_and_rendered_inert(client, app, event_with):
    event = event_with(questions=True)
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    data = _form(first_name=hostile, last_name="O'Brien\r\nBcc: victim@example.org",
                 **_answers(app, event, Company="\u202eevil\u0000 Corp", Track="Dev",
                            **{"Anything else?": "a" * 4000, "I accept the code of conduct": "y"}))
    response = _register(client, event, data)
    assert response.status_code == 303
    with app.app_context():
        reg = db.session.scalars(select(Registration)).one()
        assert reg.first_name == hostile
        assert reg.last_name == "O'Brien Bcc: victim@example.org"
        assert {a.question_label: a.value for a in reg.answers}["Company"] == "evil Corp"
    mail = _emails(app)[0]
    assert "\n" not in mail["name"] and "<script>" in mail["text"]  # plain text; the HTML part escapes it
    page = _text(client.get(f"/events/{event.slug}/registered"))
    assert "<script>alert" not in page and "<img src=x" not in page


@pytest.mark.db_agnostic
def test_very_long_values_are_refused_with_a_message(client, app, event_with):
    event = event_with()
    response = _register(client, event, _form(first_name="x" * 5000, email="a" * 400 + "@example.org"))
    assert response.status_code == 422
    assert "First name can be at most 100 characters long (you entered 5,000)." in _text(response)
    assert "Field cannot be longer" not in _text(response)
    assert _count(app) == 0


# --- address confirmation ------------------------------------------------------------------------------


def _verify_link(app, to: str) -> str:
    text = [m for m in _emails(app, to) if m["subject"].startswith("Confirm")][-1]["text"]
    return re.search(r"http://localhost(/registrations/verify/\S+)", text).group(1)


def test_confirming_the_address_completes_the_registration(client, app, event_with):
    event = event_with(require_email_verification=True, capacity=5)
    _register(client, event, _form())
    link = _verify_link(app, "ada@example.org")
    page = client.get(link)
    assert page.status_code == 200 and "Confirm my address" in _text(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    with app.app_context():
        assert db.session.scalars(select(Registration)).one().state == RegistrationState.unverified

    response = client.submit(link, {})
    assert response.status_code == 303
    result = _text(client.get(response.headers["Location"]))
    assert "You’re registered" in result and "/r/" in result
    with app.app_context():
        assert db.session.scalars(select(Registration)).one().state == RegistrationState.confirmed
    assert "already confirmed" in _text(client.get(link))
    assert client.get("/registrations/verify/" + "x" * 43).status_code == 404


def test_organization_only_event_refuses_outside_addresses(client, app, event_with, auth):
    auth.login_as_admin()
    saved = client.submit("/admin/branding/organization", {"domains": "staff.example.org\n@Example.edu"})
    assert saved.status_code == 303
    with app.app_context():
        assert db.session.get(Setting, "organization").value == {"domains": ["staff.example.org", "example.edu"]}
    assert "staff.example.org" in _text(client.get("/admin/branding"))
    bad = client.submit("/admin/branding/organization", {"domains": "example.org, <b>nope</b>"})
    assert bad.status_code == 422 and "is not a domain name" in _text(bad)

    event = event_with(who_can_register="organization")
    page = _text(client.get(f"/events/{event.slug}"))
    assert "staff.example.org, example.edu" in page
    refused = _register(client, event, _form("someone@gmail.example"))
    assert refused.status_code == 422 and "only open to members of the organization" in _text(refused)
    accepted = _register(client, event, _form("member@staff.example.org"))
    assert "Check your inbox" in _text(client.get(accepted.headers["Location"]))
    with app.app_context():
        assert db.session.scalars(select(Registration.state)).all() == [RegistrationState.unverified]


# --- rate limit -----------------------------------------------------------------------------------------


def test_registration_posts_are_rate_limited_per_client(client, app, event_with, monkeypatch):
    monkeypatch.setitem(app.config, "REGISTRATION_RATE_LIMIT", "2 per minute")
    event = event_with()
    token = client.csrf_token(f"/events/{event.slug}")
    statuses = [client.post(f"/events/{event.slug}/register",
                            data=_form(f"p{i}@example.org") | {"csrf_token": token}).status_code for i in range(3)]
    assert statuses == [303, 303, 429]
    assert _count(app) == 2


# --- organizer settings ---------------------------------------------------------------------------------


def test_organizer_sets_who_can_register_and_verification(client, app, auth):
    user = auth.login_as_organizer()
    form = {"title": "Members' call", "timezone": "Europe/Berlin", "starts_at": "2031-05-01T10:00",
            "ends_at": "2031-05-01T11:00", "capacity": "5", "waitlist_enabled": "y", "reminders": ["60"],
            "who_can_register": "organization", "require_email_verification": "y", "attendee_lobby": "bypass"}
    response = client.submit("/manage/events/new", form)
    assert response.status_code == 303, _text(response)
    with app.app_context():
        event = db.session.scalars(select(Event).where(Event.owner_id == user.id)).one()
        assert (event.who_can_register, event.require_email_verification) == ("organization", True)
        event_id = event.id
    edit = _text(client.get(f"/manage/events/{event_id}/edit"))
    assert '<option selected value="organization">' in edit
    assert re.search(r'<input [^>]*checked id="require_email_verification"', edit)


def test_capacity_edit_promotes_from_the_waitlist_and_refuses_going_below_seats(client, app, auth, event_with):
    user = auth.login_as_organizer()
    event = event_with(capacity=1)
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.owner_id = user.id
        db.session.commit()
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        _register(client, event, _form(email))
    url = f"/manage/events/{event.id}/edit"

    def edit(capacity: str):
        local = event.starts_at.astimezone(event.zone)
        return client.submit(url, {
            "title": event.title, "timezone": event.timezone, "starts_at": f"{local:%Y-%m-%dT%H:%M}",
            "ends_at": f"{event.ends_at.astimezone(event.zone):%Y-%m-%dT%H:%M}", "capacity": capacity,
            "waitlist_enabled": "y", "reminders": ["60"], "who_can_register": "everyone", "attendee_lobby": "bypass",
            "slug": event.slug})

    assert edit("2").status_code == 303
    with app.app_context():
        states = dict(db.session.execute(select(Registration.email, Registration.state)).all())
        assert states == {"a@example.org": RegistrationState.confirmed, "b@example.org": RegistrationState.confirmed,
                          "c@example.org": RegistrationState.waitlisted}
    refused = edit("1")
    assert refused.status_code == 422 and "2 people already have a seat" in _text(refused)
    with app.app_context():
        assert db.session.get(Event, event.id).capacity == 2


# --- minimum fill time ---------------------------------------------------------------------------------


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'id="{name}" name="{name}" type="hidden" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def test_a_form_sent_back_at_once_is_returned_and_a_second_press_goes_through(client, app, event_with, monkeypatch,
                                                                               clock):
    # A long minimum, so the quick post is quick however slow the machine is.
    monkeypatch.setitem(app.config, "REGISTRATION_MIN_FILL_SECONDS", 60)
    event = event_with()
    page = _text(client.get(f"/events/{event.slug}/register"))
    form = _form() | {"csrf_token": _hidden(page, "csrf_token"), "started": _hidden(page, "started")}

    quick = client.post(f"/events/{event.slug}/register", data=form)
    assert quick.status_code == 422
    body = _text(quick)
    assert "That was quick! Please check your details, then press Register again." in body
    assert 'value="ada@example.org"' in body  # nothing typed is lost
    assert _hidden(body, "started") == form["started"]  # the clock keeps running from the first view
    assert _count(app) == 0 and _emails(app) == []

    monkeypatch.setitem(app.config, "REGISTRATION_MIN_FILL_SECONDS", 1)
    clock.shift(1.1)  # the person takes a moment, measured from the first view
    done = client.post(f"/events/{event.slug}/register", data=form | {"started": _hidden(body, "started")})
    assert done.status_code == 303 and _count(app) == 1


@pytest.mark.db_agnostic
@pytest.mark.parametrize("started", ["", "forged.value.here", "c2hvd24.ZzZzZz.bad-signature"])
def test_a_missing_or_forged_start_stamp_counts_as_too_quick(client, app, event_with, monkeypatch, started):
    monkeypatch.setitem(app.config, "REGISTRATION_MIN_FILL_SECONDS", 1)
    event = event_with()
    page = _text(client.get(f"/events/{event.slug}"))
    response = client.post(f"/events/{event.slug}/register",
                           data=_form() | {"csrf_token": _hidden(page, "csrf_token"), "started": started})
    assert response.status_code == 422 and "press Register again" in _text(response)
    assert _hidden(_text(response), "started") != started  # a fresh, valid stamp: a person can go on
    assert _count(app) == 0


def test_the_form_follows_question_edits_at_once(client, app, event_with):
    """Form classes are reused between requests; an edited question set must never be served stale."""
    event = event_with(questions=True)
    ids = _question_ids(app, event)
    assert client.get(f"/events/{event.slug}/register").status_code == 200  # builds and keeps the class
    with app.app_context():
        row = db.session.get(Event, event.id)
        track = db.session.get(Question, ids["Track"])
        track.options = ["Dev", "Ops", "Marketing"]
        track.label = "Which track?"
        row.questions.remove(db.session.get(Question, ids["Company"]))
        row.questions.append(Question(position=9, kind=QuestionKind.short_text, label="Team name", required=True))
        db.session.commit()
    ids = _question_ids(app, event)
    form = _text(client.get(f"/events/{event.slug}/register")).split('id="register-form"')[1]
    assert "<legend>Which track?" in form and 'value="Marketing"' in form and "Team name" in form
    assert "Company" not in form

    answers = _answers(app, event, **{"Which track?": "Marketing", "I accept the code of conduct": "y"})
    missing = _register(client, event, _form() | answers)
    assert missing.status_code == 422 and "Answer this question." in _text(missing)  # the new required one
    response = _register(client, event, _form() | _answers(
        app, event, **{"Which track?": "Marketing", "Team name": "Engines", "I accept the code of conduct": "y"}))
    assert response.status_code == 303
    with app.app_context():
        reg = db.session.scalar(select(Registration))
        assert {a.question_label: a.value for a in reg.answers} == {
            "Which track?": "Marketing", "Team name": "Engines", "I accept the code of conduct": True}
