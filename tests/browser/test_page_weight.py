"""Public pages stay light: at most 50 KB over the wire on a first visit with an empty cache, images
aside, and the call bundle is fetched by no page but the join page.

Counted as Chromium counts it: every response's headers plus its body as transferred (compressed
where Foyer compresses), for everything the page loads except images.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page

from app.extensions import db
from app.models import Event, EventStatus, Role
from app.services.accounts import accounts
from app.services.registration import registrations

BUDGET = 50 * 1024
CALL_BUNDLE = "/static/build/"
DESCRIPTION = ("Join us for an afternoon of talks about **how we build things together**.\n\n"
               "## Agenda\n\n1. Welcome\n2. What we learned this year\n3. Questions\n\n") * 3


def _seed(app) -> dict[str, str]:
    """A full catalogue page (20 events) and a registration; returns the pages to weigh."""
    with app.app_context():
        owner = accounts.create_user("organizer@example.org", role=Role.organizer, password=None, name="Olive")
        start = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=3)
        events = []
        for n in range(20):
            event = Event(title=f"Community call {n + 1}", slug=f"community-call-{n + 1}", timezone="Europe/Berlin",
                          description=DESCRIPTION, starts_at=start + timedelta(days=n),
                          ends_at=start + timedelta(days=n, hours=1), capacity=100, waitlist_enabled=True,
                          status=EventStatus.published, published_at=datetime.now(UTC), owner_id=owner.id)
            db.session.add(event)
            events.append(event)
        db.session.flush()
        with app.test_request_context():
            outcome = registrations.register(events[0], registrations.RegistrationData(
                first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/London"))
            manage = registrations.manage_url(outcome.manage_token)
        db.session.commit()
        slug = events[0].slug
    return {"catalogue": "/", "event page": f"/events/{slug}", "registration form": f"/events/{slug}/register",
            "privacy notice": "/privacy", "personal manage page": manage}


def _weigh(page: Page, visit, path: str) -> tuple[int, list[str]]:
    """Bytes transferred for one first visit (cache off), and every URL the page fetched."""
    finished = []

    def record(request) -> None:
        finished.append(request)

    page.on("requestfinished", record)
    visit(path)
    page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", record)
    total = 0
    for request in finished:
        if request.resource_type == "image":
            continue
        sizes = request.sizes()
        total += sizes["responseHeadersSize"] + sizes["responseBodySize"]
    return total, [r.url for r in finished]


@pytest.mark.parametrize("context_options", [{"extra_http_headers": {"Cache-Control": "no-cache"}}])
def test_public_pages_weigh_at_most_50_kb_and_never_load_the_call_bundle(live_server, page: Page, context, visit):
    pages = _seed(live_server.app)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})

    weights = {}
    for name, path in pages.items():
        weight, urls = _weigh(page, visit, path)
        weights[name] = weight
        assert not [u for u in urls if CALL_BUNDLE in u], f"the {name} loaded the call bundle"
        assert any(u.endswith(".js") for u in urls), f"the {name} loaded no script: nothing was measured"
    print("transferred per first visit (bytes):", weights)
    over = {name: weight for name, weight in weights.items() if weight > BUDGET}
    assert not over, f"over {BUDGET} bytes: {over}"
