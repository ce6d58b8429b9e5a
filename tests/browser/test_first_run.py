"""The first hour with Foyer, in a real browser: first-run setup, sign-in, an event with two custom
registration questions, publishing, and the event on the public pages. Once with JavaScript (htmx
swaps the questions section in place) and once without (every action is a plain form post)."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.first_run import setup_code

ADMIN_EMAIL = "ada@example.org"
PASSWORD = "a long secret pw"
TITLE = "Spring community call"
ZONE = "Europe/Berlin"
QUESTIONS = [
    {"label": "What would you like to ask the speakers?", "kind": "Long text"},
    {"label": "Which session will you attend?", "kind": "Single choice", "options": "Morning\nAfternoon",
     "required": True},
]


def _require_endpoints(live_server, *endpoints: str) -> None:
    missing = [e for e in endpoints if e not in live_server.app.view_functions]
    if missing:
        pytest.xfail(f"not built yet: {', '.join(missing)}")


def _set_up_and_sign_in(page: Page, visit, audit, live_server) -> None:
    visit("/login")  # the first visitor is sent to setup
    expect(page).to_have_url(re.compile(r"/setup$"))
    page.get_by_label("Setup code").fill(setup_code(live_server.app))  # as printed in the server's log
    page.get_by_label("Your name").fill("Ada Admin")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create admin account").click()
    expect(page.get_by_role("status")).to_contain_text("Your admin account is ready")
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    audit()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You have been signed out")
    expect(page).to_have_url(re.compile(r"/login$"))
    audit()
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    audit()


def _create_event(page: Page, audit) -> None:
    page.get_by_role("link", name="New event").click()
    expect(page.get_by_role("heading", name="New event", level=1)).to_be_visible()
    audit()
    starts = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=30)).replace(hour=18, minute=0, second=0, microsecond=0)
    page.get_by_label("Title", exact=True).fill(TITLE)
    page.get_by_label("Description", exact=True).fill("Meet the **team** and hear what is next.")
    page.get_by_label("Time zone", exact=True).select_option(ZONE)
    page.get_by_label("Starts", exact=True).fill(starts.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends", exact=True).fill((starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Capacity", exact=True).fill("50")
    page.get_by_role("button", name="Create event").click()
    expect(page.get_by_role("heading", name=f"Edit “{TITLE}”", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Event created as a draft")
    audit()


def _add_questions(page: Page, audit) -> None:
    section = page.get_by_role("region", name="Registration questions")
    expect(section.get_by_text("No custom questions yet.")).to_be_visible()
    for number, question in enumerate(QUESTIONS, start=1):
        form = page.get_by_role("form", name="Add a question")
        form.get_by_label("Question", exact=True).fill(question["label"])
        form.get_by_label("Kind").select_option(label=question["kind"])
        if "options" in question:
            form.get_by_label("Options").fill(question["options"])
        if question.get("required"):
            form.get_by_label("Answer required").check()
        form.get_by_role("button", name="Add question").click()
        expect(section.get_by_role("heading", name=question["label"], level=3)).to_be_visible()
        expect(section.get_by_role("listitem").filter(has=page.get_by_role("heading", level=3))).to_have_count(number)
        audit()
    items = section.locator(".question-list > li")
    expect(items.nth(0)).to_contain_text(QUESTIONS[0]["label"])
    expect(items.nth(1)).to_contain_text(QUESTIONS[1]["label"])
    expect(items.nth(1)).to_contain_text("required")


def _publish(page: Page, audit) -> None:
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=TITLE).click()
    expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    expect(page.get_by_text("Visible to the public once published.")).to_be_visible()
    audit()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published")
    expect(page.get_by_role("button", name="Unpublish")).to_be_visible()
    for question in QUESTIONS:
        expect(page.get_by_text(question["label"])).to_be_visible()
    audit()


def _see_it_in_public(page: Page, audit) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events", exact=True, level=1)).to_be_visible()
    audit()
    page.get_by_role("link", name=TITLE).click()
    expect(page).to_have_url(re.compile(r"/events/spring-community-call$"))
    expect(page.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    expect(page.get_by_text(f"({ZONE})").first).to_be_visible()
    expect(page.locator(".description strong")).to_have_text("team")  # the Markdown was rendered
    audit()


def _journey(page: Page, visit, audit, live_server) -> None:
    _set_up_and_sign_in(page, visit, audit, live_server)
    _require_endpoints(live_server, "organizer_events.event_new_GET", "organizer_questions.questions_POST",
                       "organizer_events.event_publish_POST", "public.event_GET")
    _create_event(page, audit)
    _add_questions(page, audit)
    _publish(page, audit)
    _see_it_in_public(page, audit)


def test_first_run_to_published_event(page, visit, audit, live_server):
    _journey(page, visit, audit, live_server)


@pytest.mark.parametrize("context_options", [{"java_script_enabled": False}], ids=["no-js"])
def test_first_run_to_published_event_without_javascript(page, visit, audit, live_server):
    _journey(page, visit, audit, live_server)
