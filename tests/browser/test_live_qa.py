"""Browser test: a Q&A round and a poll beside the call, with two attendees and a moderator in three
separate browser contexts. One attendee asks (moderated first: the other does not see it yet), the
moderator sees it arrive without reloading, approves and answers it, launches a poll; both attendees see
both arrive, upvote and vote, and the moderator sees the upvotes and votes come in and closes the poll.
Every state of every page passes the audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import Event, EventStatus, LiveSettings, Registration, RegistrationState, Role, User
from app.services.accounts import accounts
from app.services.attendance import join_links
from app.services.live import polls
from tests.browser.conftest import htmx_settled

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_live%40thread.v2/0"
#: The live server's pages poll every 2 seconds (LIVE_POLL_SECONDS): what the other side did shows within that.
POLLED = 6_000


def _seed(app) -> tuple[int, str, str]:
    """An event whose call is open, moderated Q&A, two confirmed attendees and a prepared poll."""
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.organizer, password="a long secret pw",
                                     name="Olive Organizer")
        now = datetime.now(UTC).replace(microsecond=0)
        event = Event(title="Garden club live", slug="garden-club-live", timezone="Europe/Berlin",
                      starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1),
                      status=EventStatus.published, published_at=now, owner_id=owner.id, join_url=TEAMS_URL)
        db.session.add(event)
        db.session.flush()
        db.session.add(LiveSettings(event_id=event.id, allow_anonymous=True, moderate_questions=True))
        tokens = []
        for n, (email, first, last) in enumerate([("ada@example.org", "Ada", "Lovelace"),
                                                  ("grace@example.org", "Grace", "Hopper")]):
            reg = Registration(event_id=event.id, email=email, first_name=first, last_name=last,
                               timezone="Europe/London", manage_token_hash=str(n) * 64,
                               state=RegistrationState.confirmed)
            reg.event = event
            db.session.add(reg)
            db.session.flush()
            tokens.append(join_links.join_token_for(reg))
        polls.create_poll(event, "Which day suits you?", ["Monday", "Friday"], multiple=False,
                          actor=db.session.get(User, owner.id))
        db.session.commit()
        return event.id, *tokens


def _about(action: str, subject: str) -> re.Pattern:
    """A button's accessible name: its visible action, then (visually hidden) what it acts on."""
    return re.compile(rf"^{re.escape(action)}\W+{re.escape(subject)}")


def _browser_conftest(config: pytest.Config):
    """The browser tests' conftest as pytest loaded it (importing it again would make a second module,
    with a stash key of its own)."""
    return next(plugin for plugin in config.pluginmanager.get_plugins()
                if str(getattr(plugin, "__file__", "")).endswith("tests/browser/conftest.py"))


def _attendee_context(browser, live_server, browser_errors, axe_source, request: pytest.FixtureRequest):
    """A separate browser context (an attendee's), watched and audited like `page`."""
    conftest = _browser_conftest(request.config)
    ctx = browser.new_context(base_url=live_server.base_url, locale="en-GB", timezone_id="Europe/London")
    ctx.set_default_timeout(10_000)
    tab = ctx.new_page()
    watch = conftest.PageWatch(page=tab, errors=browser_errors, axe_source=axe_source, javascript=True)
    watch.attach()
    request.node.stash.setdefault(conftest.PAGE_WATCHES, []).append(watch)
    yield tab
    ctx.close()


attendee_page = pytest.fixture(_attendee_context, name="attendee_page")
second_attendee_page = pytest.fixture(_attendee_context, name="second_attendee_page")


def test_a_qa_round_and_a_poll_between_two_attendees_and_a_moderator(live_server, page: Page, visit, audit,
                                                                     attendee_page: Page, second_attendee_page: Page):
    event_id, token, other_token = _seed(live_server.app)
    attendee, other = attendee_page, second_attendee_page

    # The moderator signs in and opens the live page.
    visit("/login")
    page.get_by_label("Email").fill("organizer@example.org")
    page.get_by_label("Password").fill("a long secret pw")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    visit(f"/manage/events/{event_id}")
    page.get_by_role("link", name="Questions and polls").click()
    expect(page.get_by_role("heading", name="Questions and polls", level=1)).to_be_visible()
    audit()

    # The attendee asks on the join page; only they see it while it waits for a moderator.
    assert attendee.goto(f"/j/{token}").ok
    expect(attendee.get_by_role("heading", name="Questions and polls")).to_be_visible()
    audit(attendee)
    attendee.get_by_role("button", name="Join the call").click()
    stage = attendee.get_by_role("region", name="You would be in the call now")
    expect(stage).to_be_visible()
    # On a wide screen the questions and polls sit beside the call, not below it.
    panel = attendee.get_by_role("region", name="Questions and polls").bounding_box()
    assert panel["x"] > stage.bounding_box()["x"] + stage.bounding_box()["width"] - 1
    audit(attendee)
    attendee.get_by_label("Your question").fill("Will the slides be shared afterwards?")
    attendee.get_by_role("button", name="Send question").click()
    expect(attendee.get_by_role("status")).to_contain_text("once a moderator approves it")
    feed = attendee.locator("#live-feed")
    expect(feed).to_contain_text("waiting for a moderator")
    expect(attendee.get_by_label("Your question")).to_have_value("")
    audit(attendee)
    # The other attendee, in the call too, does not see a question that waits for a moderator.
    assert other.goto(f"/j/{other_token}").ok
    other.get_by_role("button", name="Join the call").click()
    other_feed = other.locator("#live-feed")
    expect(other_feed).to_contain_text("No questions yet")
    expect(other_feed).not_to_contain_text("Will the slides")
    audit(other)

    # The moderator's list shows it without a reload; approve it, then answer it in writing.
    moderation = page.locator("#moderation")
    expect(moderation).to_contain_text("Will the slides be shared afterwards?", timeout=POLLED)
    expect(moderation).to_contain_text("Waiting for approval (1)")
    audit()
    page.get_by_role("button", name=_about("Approve", "Will the slides")).click()
    expect(moderation).to_contain_text("Open (1)")
    page.locator("#moderation summary", has_text="Answer").click()
    page.get_by_label("Written answer").fill("Yes, by email after the event.")
    # The list refreshes itself while the moderator writes: the answer and the focus stay.
    with page.expect_response(re.compile(r"/live/questions$"), timeout=POLLED):
        pass
    htmx_settled(page)
    expect(page.get_by_label("Written answer")).to_have_value("Yes, by email after the event.")
    expect(page.get_by_label("Written answer")).to_be_focused()
    audit()
    page.get_by_role("button", name="Save answer").click()
    expect(moderation).to_contain_text("Answered (1)")
    # And launch the poll prepared before the event.
    page.get_by_role("button", name=_about("Launch", "Which day suits you?")).click()
    expect(page.locator("#polls-list")).to_contain_text("open for votes")
    audit()

    # The attendee sees the answer and the poll arrive; upvotes and votes.
    expect(feed).to_contain_text("Yes, by email after the event.", timeout=POLLED)
    expect(feed.get_by_role("heading", name="Which day suits you?")).to_be_visible(timeout=POLLED)
    audit(attendee)
    upvote = feed.get_by_role("button", name=re.compile(r"^Upvote"))
    upvote.click()
    expect(feed.get_by_role("button", name=re.compile(r"^Upvote"))).to_have_attribute("aria-pressed", "true")
    feed.get_by_role("radio", name="Friday").check()
    # The feed refreshes itself before the attendee sends the vote: the choice stays.
    with attendee.expect_response(re.compile(r"/live$"), timeout=POLLED):
        pass
    htmx_settled(attendee)
    expect(feed.get_by_role("radio", name="Friday")).to_be_checked()
    feed.get_by_role("button", name=_about("Vote", "Which day suits you?")).click()
    expect(feed).to_contain_text("You voted.")
    results = feed.get_by_role("table", name="Results of “Which day suits you?”")
    expect(results.get_by_role("row", name="Friday 1 100%")).to_be_visible()
    expect(feed.get_by_role("img", name=re.compile(r"^Bar chart of the results: Monday, 0 votes"))).to_be_visible()
    audit(attendee)

    # The other attendee sees the approved question with its answer, upvotes it and votes Monday.
    expect(other_feed).to_contain_text("Yes, by email after the event.", timeout=POLLED)
    other_feed.get_by_role("button", name=re.compile(r"^Upvote")).click()
    expect(other_feed.get_by_role("button", name=re.compile(r"^Upvote.*\(2\)$"))).to_have_attribute(
        "aria-pressed", "true")
    other_feed.get_by_role("radio", name="Monday").check()
    other_feed.get_by_role("button", name=_about("Vote", "Which day suits you?")).click()
    other_results = other_feed.get_by_role("table", name="Results of “Which day suits you?”")
    expect(other_results.get_by_role("row", name="Monday 1 50%")).to_be_visible()
    expect(other_results.get_by_role("row", name="Friday 1 50%")).to_be_visible()
    audit(other)

    # The moderator sees the vote come in, and closes the poll; the attendee sees it closed.
    polls_list = page.locator("#polls-list")
    expect(polls_list).to_contain_text("2 voters", timeout=POLLED)
    expect(moderation).to_contain_text("2 upvotes", timeout=POLLED)
    page.get_by_role("button", name=_about("Close poll", "Which day suits you?")).click()
    expect(polls_list).to_contain_text("closed")
    audit()
    expect(feed).to_contain_text("This poll has closed", timeout=POLLED)
    audit(attendee)
