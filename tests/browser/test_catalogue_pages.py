"""The catalogue in a browser: search (htmx swaps the results and updates the address; without
JavaScript the same form is a plain GET), upcoming/past tabs and tag links, and an event page with its
JSON-LD data block under the CSP. Every page is audited with axe."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import Event, EventStatus, EventTag, Role
from app.services.accounts import accounts


def _seed(app) -> None:
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.organizer, password=None, name="Olive")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        for title, days, tags in (("Kubernetes for beginners", 3, ["cloud", "beginners"]),
                                  ("Accessible forms clinic", 5, ["accessibility"]),
                                  ("Cloud cost review", -10, ["cloud"])):
            event = Event(title=title, slug=title.lower().replace(" ", "-"), timezone="Europe/Berlin",
                          description=f"All about **{title.lower()}**.", starts_at=now + timedelta(days=days),
                          ends_at=now + timedelta(days=days, hours=1), status=EventStatus.published,
                          published_at=now - timedelta(days=30), owner_id=owner.id, capacity=30)
            event.tag_rows = [EventTag(tag=t) for t in tags]
            db.session.add(event)
        db.session.commit()


def _titles(page: Page) -> list[str]:
    return page.locator(".event-card h2").all_inner_texts()


def test_search_tabs_and_tags_with_javascript(page: Page, visit, audit, live_server):
    _seed(live_server.app)
    visit("/")
    assert _titles(page) == ["Kubernetes for beginners", "Accessible forms clinic"]
    expect(page.get_by_role("link", name="Upcoming")).to_have_attribute("aria-current", "page")

    search = page.get_by_role("searchbox", name="Search events")
    search.fill("kubernetes")
    # htmx swaps only the results, and the address follows so the result can be shared or reloaded.
    expect(page.locator(".event-card h2")).to_have_text(["Kubernetes for beginners"])
    expect(page).to_have_url(re.compile(r"\?q=kubernetes$"))
    expect(page.get_by_role("status")).to_contain_text("1 upcoming event matching “kubernetes”")
    assert search.evaluate("el => el === document.activeElement")  # typing was never interrupted
    audit()

    search.fill("nothing like this")
    expect(page.locator(".empty")).to_contain_text("No upcoming events match “nothing like this”")
    audit()
    search.fill("")  # one search, after the typing pause (Enter as well would race it)
    expect(page.locator(".event-card h2")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"\?q=$"))

    page.get_by_role("link", name="Past").click()
    expect(page).to_have_url(re.compile(r"\?when=past$"))
    expect(page.get_by_role("link", name="Past")).to_have_attribute("aria-current", "page")
    assert _titles(page) == ["Cloud cost review"]
    audit()

    page.get_by_role("link", name="Upcoming").click()
    # The tab's results are in before a tag is picked from them (the past tab lists its own tag links).
    expect(page.get_by_role("link", name="Upcoming")).to_have_attribute("aria-current", "page")
    page.get_by_role("navigation", name="Filter by tag").get_by_role("link", name="cloud").click()
    expect(page).to_have_url(re.compile(r"\?tag=cloud$"))
    assert _titles(page) == ["Kubernetes for beginners"]
    audit()

    page.get_by_role("link", name="Kubernetes for beginners").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kubernetes for beginners")
    audit()
    # A link shared elsewhere opens the page whole: its head carries the JSON-LD data block.
    visit("/events/kubernetes-for-beginners")
    data = page.locator('script[type="application/ld+json"]').text_content()
    assert '"@type":"Event"' in data.replace(" ", "")
    audit()  # console errors (a CSP refusal would be one) fail the test as well


@pytest.mark.parametrize("context_options", [{"java_script_enabled": False}])
def test_search_and_tabs_without_javascript(page: Page, visit, audit, live_server):
    _seed(live_server.app)
    visit("/")
    page.get_by_role("searchbox", name="Search events").fill("forms")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"\?q=forms$"))
    assert _titles(page) == ["Accessible forms clinic"]
    audit()
    page.get_by_role("link", name="Past").click()
    expect(page).to_have_url(re.compile(r"\?when=past&q=forms$|\?q=forms&when=past$"))
    expect(page.locator(".empty")).to_contain_text("No past events match “forms”")
    audit()
