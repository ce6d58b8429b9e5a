"""An attendee's journey with the keyboard only: register for a published event with custom questions,
see the confirmation, open the personal link, cancel. Tab / Shift+Tab move, Space ticks, Enter
activates; nothing is clicked. Every page is audited. Once with JavaScript (htmx swaps the result
into the event page) and once without (plain form posts and redirects)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Event,
    EventStatus,
    Question,
    QuestionKind,
    Registration,
    RegistrationState,
    Role,
)
from app.services.accounts import accounts
from app.services.registration import registrations
from tests.mail import queued_emails

TITLE = "Accessible design clinic"
SLUG = "accessible-design-clinic"
MAX_TABS = 80


def _require_endpoints(live_server, *endpoints: str) -> None:
    missing = [e for e in endpoints if e not in live_server.app.view_functions]
    if missing:
        pytest.xfail(f"not built yet: {', '.join(missing)}")


def _published_event(app) -> int:
    """An organizer's published event (Berlin) with a required text, a required choice and a checkbox."""
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.admin, password="a long secret pw",
                                     name="Olive Organizer")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=14)
        event = Event(title=TITLE, slug=SLUG, description="Bring your **questions**.", timezone="Europe/Berlin",
                      starts_at=start, ends_at=start + timedelta(hours=1), status=EventStatus.published,
                      published_at=datetime.now(UTC), capacity=20, owner_id=owner.id)
        event.questions = [
            Question(position=0, kind=QuestionKind.short_text, label="Organization", required=True),
            Question(position=1, kind=QuestionKind.single_choice, label="Which session?",
                     options=["Morning", "Afternoon"], required=True),
            Question(position=2, kind=QuestionKind.checkbox, label="I need captions"),
        ]
        db.session.add(event)
        db.session.commit()
        return event.id


def _is_focused(target: Locator) -> bool:
    return target.evaluate("el => el === document.activeElement")


def tab_to(page: Page, target: Locator, *, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus, as a keyboard user would."""
    expect(target).to_be_visible()
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(MAX_TABS):
        if _is_focused(target):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{target} never received the focus after {MAX_TABS} presses of {key}")


def _type_into(page: Page, target: Locator, text: str) -> None:
    tab_to(page, target)
    page.keyboard.type(text)


def _register_with_keyboard(page: Page, audit) -> None:
    form = page.locator("#register-form")
    _type_into(page, form.get_by_label("First name"), "Ada")
    _type_into(page, form.get_by_label("Last name"), "Lovelace")
    _type_into(page, form.get_by_label("Email", exact=True), "ada@example.org")
    _type_into(page, form.get_by_label("Organization"), "Analytical Engines")
    # Into the radio group, then the arrow keys choose within it (the way radios work).
    tab_to(page, form.get_by_role("radio", name="Morning"))
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    expect(form.get_by_role("radio", name="Afternoon")).to_be_checked()
    tab_to(page, form.get_by_role("checkbox", name="I need captions"))
    page.keyboard.press("Space")
    # Overshoot to the consent box, then come back with Shift+Tab: both directions work.
    consent = form.get_by_role("checkbox", name=re.compile("I have read the"))
    tab_to(page, form.get_by_role("button", name="Register"))
    tab_to(page, consent, backwards=True)
    page.keyboard.press("Space")
    expect(consent).to_be_checked()
    expect(form.get_by_role("checkbox", name="I need captions")).to_be_checked()
    tab_to(page, form.get_by_role("button", name="Register"))
    page.keyboard.press("Enter")
    # The page never shows the personal link (it would reveal who is registered): it goes by email.
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.get_by_text("ada@example.org")).to_be_visible()
    audit()


def _journey(page: Page, visit, audit, live_server, *, javascript: bool) -> None:
    _require_endpoints(live_server, "public_registration.register_POST", "public_registration_manage.manage_GET")
    app = live_server.app
    event_id = _published_event(app)
    visit(f"/events/{SLUG}")
    expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()

    _register_with_keyboard(page, audit)
    with app.app_context():
        reg = db.session.scalar(select(Registration).where(Registration.event_id == event_id))
        assert reg.state == RegistrationState.confirmed
        assert {a.question_label: a.value for a in reg.answers} == {
            "Organization": "Analytical Engines", "Which session?": "Afternoon", "I need captions": True}
        emails = queued_emails()
        zone = reg.timezone
    # foyer.js put the browser's zone into the time-zone field; without it the event's zone stays.
    assert zone == ("Europe/London" if javascript else "Europe/Berlin")
    (confirmation,) = emails
    emailed_link = re.search(r"(http://localhost:\d+/r/\S+)", confirmation["text"]).group(1)

    # The attendee follows the personal link from the confirmation email.
    visit(emailed_link.removeprefix(live_server.base_url))
    expect(page.get_by_role("heading", name="Your registration", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="You’re registered", level=2)).to_be_visible()
    expect(page.get_by_text(f"({zone})").first).to_be_visible()  # the attendee's own zone, named
    expect(page.get_by_text("(Europe/Berlin)").first).to_be_visible()  # and the event's
    expect(page.get_by_role("link", name=re.compile("Download the calendar invitation"))).to_be_visible()
    audit()

    tab_to(page, page.get_by_role("link", name="Cancel my registration…"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Cancel your registration?")).to_be_visible()
    audit()
    tab_to(page, page.get_by_role("button", name="Yes, cancel my registration"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Your registration is cancelled.")
    expect(page.get_by_role("heading", name="Cancelled", level=2)).to_be_visible()
    expect(page.get_by_role("link", name="Cancel my registration…")).to_have_count(0)
    audit()
    with app.app_context():
        assert db.session.scalar(select(Registration.state).where(Registration.event_id == event_id)) == "cancelled"


@pytest.mark.spread_over_databases("context_options")  # the browser decides the difference
@pytest.mark.parametrize("context_options", [{}, {"java_script_enabled": False}], ids=["js", "no-js"])
def test_register_manage_and_cancel_with_the_keyboard(page, visit, audit, live_server, context_options):
    _journey(page, visit, audit, live_server, javascript=context_options.get("java_script_enabled", True))


@pytest.mark.spread_over_databases("context_options")  # the browser decides the difference
@pytest.mark.parametrize("context_options", [{}, {"java_script_enabled": False}], ids=["js", "no-js"])
def test_a_mistyped_time_zone_is_explained_and_kept(page, visit, audit, live_server, context_options):
    """The attendee's zone is typed (common zones suggested); a typo gets a suggestion, linked to the field."""
    javascript = context_options.get("java_script_enabled", True)
    app = live_server.app
    _published_event(app)
    visit(f"/events/{SLUG}")
    form = page.locator("#register-form")
    zone = form.get_by_label("Your time zone")
    expect(zone).to_have_value("Europe/London" if javascript else "Europe/Berlin")
    expect(form.get_by_role("link", name=re.compile("see all time zones"))).to_have_attribute("href", "/time-zones")
    form.get_by_label("First name").fill("Ada")
    form.get_by_label("Last name").fill("Lovelace")
    form.get_by_label("Email", exact=True).fill("ada@example.org")
    form.get_by_label("Organization").fill("Analytical Engines")
    form.get_by_role("radio", name="Morning").check()
    zone.fill("Europe/Amsterdm")
    form.get_by_role("checkbox", name=re.compile("I have read the")).check()
    if javascript:  # leaving the field checks it at once (htmx); let those checks finish before submitting
        expect(form.get_by_text("did you mean Europe/Amsterdam?")).to_be_visible()
        page.wait_for_load_state("networkidle")
    form.get_by_role("button", name="Register").click()
    expect(page.get_by_role("alert")).to_contain_text("Please correct the highlighted fields.")
    page.wait_for_load_state("networkidle")
    zone = form.get_by_label("Your time zone")
    expect(form.get_by_text("did you mean Europe/Amsterdam?")).to_be_visible()
    expect(zone).to_have_value("Europe/Amsterdm")
    expect(zone).to_have_attribute("aria-invalid", "true")
    expect(zone).to_have_accessible_description(re.compile("is not a time zone we know; did you mean Europe/Amsterdam"))
    expect(form.get_by_label("Organization")).to_have_value("Analytical Engines")
    audit()
    zone.fill("Europe/Amsterdam")
    expect(form.get_by_role("checkbox", name=re.compile("I have read the"))).to_be_checked()  # kept, too
    if javascript:
        zone.blur()
        expect(form.get_by_text("did you mean Europe/Amsterdam?")).to_have_count(0)
        page.wait_for_load_state("networkidle")
    form.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    with app.app_context():
        assert db.session.scalar(select(Registration.timezone)) == "Europe/Amsterdam"
    visit("/time-zones")
    expect(page.get_by_role("heading", name="Time zones", level=1)).to_be_visible()
    expect(page.get_by_text("America/Argentina/ComodRivadavia", exact=True)).to_be_visible()
    audit()


def test_a_field_left_while_another_is_being_checked_is_checked_too(page, visit, audit, live_server):
    """Leaving fields quickly: the second field's check waits for the first one's answer instead of being dropped."""
    _published_event(live_server.app)
    held = []
    page.route(lambda url: "field=q_" in url, lambda route: held.append(route))  # Organization's check is held
    visit(f"/events/{SLUG}")
    form = page.locator("#register-form")
    form.get_by_label("Organization").fill("Analytical Engines")
    zone = form.get_by_label("Your time zone")
    zone.fill("Europe/Amsterdm")  # leaves Organization: its check is sent and held
    for _ in range(200):  # up to 10 s on a busy machine
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    form.get_by_role("checkbox", name=re.compile("I have read the")).check()  # leaves the time zone
    page.wait_for_timeout(200)
    expect(form.get_by_text("did you mean Europe/Amsterdam?")).to_have_count(0)  # queued behind Organization's
    held[0].continue_()
    expect(form.get_by_text("did you mean Europe/Amsterdam?")).to_be_visible()
    expect(zone).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Organization")).to_have_value("Analytical Engines")
    expect(form.get_by_label("Organization")).not_to_have_attribute("aria-invalid", "true")
    page.wait_for_load_state("networkidle")
    audit()


def _register_people(app, event_id: int, *names: str) -> list[str]:
    """Sign people up through the engine; returns their personal-link tokens."""
    tokens = []
    with app.app_context():
        for name in names:
            first, last = name.split(" ", 1)
            event = db.session.get(Event, event_id)
            outcome = registrations.register(event, registrations.RegistrationData(
                first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="Asia/Tokyo",
                answers={q.id: "Morning" if q.options else "Acme" for q in event.questions if q.required}))
            db.session.commit()
            tokens.append(outcome.manage_token)
    return tokens


def test_organizer_table_bulk_cancel_and_attendee_erasure_pass_the_audit(page, visit, audit, live_server):
    _require_endpoints(live_server, "organizer_registrations.registrations_GET")
    app = live_server.app
    event_id = _published_event(app)
    with app.app_context():
        db.session.get(Event, event_id).capacity = 2
        db.session.commit()
    ada, bob, cleo = _register_people(app, event_id, "Ada Lovelace", "Bob Babbage", "Cleo Curie")

    visit("/login")
    page.get_by_label("Email").fill("organizer@example.org")
    page.get_by_label("Password").fill("a long secret pw")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    visit(f"/manage/events/{event_id}")
    page.get_by_role("link", name="Registrations", exact=True).click()
    expect(page.get_by_role("heading", name="Registrations", level=1)).to_be_visible()
    expect(page.get_by_text("2 confirmed · 1 on the waitlist")).to_be_visible()
    audit()

    page.get_by_label("Tick Ada Lovelace").check()
    page.get_by_label("Tick Bob Babbage").check()
    page.get_by_label("With the selected").select_option("cancel")
    page.get_by_role("button", name="Apply to ticked").click()
    expect(page.get_by_role("status")).to_contain_text(
        "2 people were cancelled. 1 person was promoted from the waitlist.")
    expect(page.get_by_text("1 confirmed · 0 on the waitlist")).to_be_visible()
    audit()

    page.get_by_label("Search by name or email").fill("cleo")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("table")).to_contain_text("cleo@example.org")
    expect(page.get_by_role("table")).not_to_contain_text("ada@example.org")
    audit()

    # Cleo deletes her data from her personal link; the organizer is left with a count.
    visit(f"/r/{cleo}/erase")
    page.get_by_role("button", name="Delete my data").click()
    expect(page.get_by_text("Tick the box to confirm")).to_be_visible()
    audit()
    page.get_by_label(re.compile("I understand")).check()
    page.get_by_role("button", name="Delete my data").click()
    expect(page.get_by_role("heading", name="Your data has been deleted")).to_be_visible()
    audit()
    visit(f"/manage/events/{event_id}/registrations")
    expect(page.get_by_text("1 registration erased at the attendee’s request")).to_be_visible()
    expect(page.get_by_role("table")).not_to_contain_text("cleo@example.org")
