"""The registration form embedded in another website, in Chromium: a page served from another origin
(127.0.0.1 on its own port, while Foyer is on localhost: another site, so none of Foyer's cookies reach
the frame) includes embed.js; the person registers inside the frame and sees "check your inbox" there,
and the frame follows its content's height. The embedded page itself is audited too."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Frame, Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState, Role
from app.services.accounts import accounts
from app.services.core import settings

SLUG = "garden-open-day"
ACCENT = "#7a1f5c"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_website(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A website of its own: static files on http://127.0.0.1:<free port>."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, name="other-website", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", tmp_path
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def _event_and_listed_website(app, origin: str) -> None:
    with app.app_context():
        admin = accounts.create_user("admin@example.org", role=Role.admin, password="a long secret pw", name="Ann")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=10)
        db.session.add(Event(title="Garden open day", slug=SLUG, description="Come and see.", timezone="Europe/Paris",
                             starts_at=start, ends_at=start + timedelta(hours=2), status=EventStatus.published,
                             published_at=datetime.now(UTC), capacity=30, owner_id=admin.id))
        settings.save_embed_origins([origin], actor=admin)
        db.session.commit()


def _content_height(frame: Frame) -> int:
    return frame.evaluate("() => Math.ceil(document.documentElement.getBoundingClientRect().height)")


def _frame_fits(page: Page, height: int) -> None:
    """Wait until the host page's frame is as tall as its content (embed.js got the height message)."""
    page.wait_for_function(
        "h => Math.abs(document.querySelector('iframe').getBoundingClientRect().height - h) <= 1", arg=height)


def test_registration_in_a_frame_on_another_website(page: Page, live_server, other_website, visit):
    origin, root = other_website
    app = live_server.app
    _event_and_listed_website(app, origin)
    frame_url = live_server.url(f"/embed/events/{SLUG}/register")
    (root / "index.html").write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Friends of the garden</title><link rel="icon" href="data:,"></head>
<body><main><h1>Friends of the garden</h1><p>Our open day is coming.</p>
<div data-foyer-register="{frame_url}" data-accent="{ACCENT}">
  <a href="{live_server.url(f'/events/{SLUG}/register')}">Register for Garden open day</a>
</div>
<p id="after">Text after the form.</p>
<script src="{live_server.url('/static/js/embed.js')}" async></script>
</main></body></html>""", encoding="utf-8")

    page.goto(f"{origin}/index.html")
    iframe = page.locator("iframe")
    expect(iframe).to_have_attribute("title", "Register for Garden open day")
    frame = page.frame_locator("iframe")
    expect(frame.get_by_role("heading", name="Register: Garden open day")).to_be_visible()
    inner = next(f for f in page.frames if f.url.startswith(frame_url))
    assert "parent=http%3A%2F%2F127.0.0.1" in inner.url and "accent=7a1f5c" in inner.url

    # The frame grows from its starting height to fit the whole form: no scroll bar inside it.
    form_height = _content_height(inner)
    _frame_fits(page, form_height)
    assert form_height > 700  # taller than the 40rem (640px) embed.js starts with
    # The snippet's accent colour, not the site's, on the button.
    register = frame.get_by_role("button", name="Register")
    assert register.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(122, 31, 92)"

    frame.get_by_label("First name").fill("Rosa")
    frame.get_by_label("Last name").fill("Gardener")
    frame.get_by_label("Email").fill("rosa@example.org")
    frame.get_by_label("I have read the privacy notice").check()
    register.click()

    expect(frame.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(frame.get_by_text("rosa@example.org")).to_be_visible()
    assert page.url == f"{origin}/index.html"  # the host page stayed where it was
    # The result is shorter than the form: the frame shrinks with it.
    result_height = _content_height(inner)
    assert result_height < form_height
    _frame_fits(page, result_height)

    with app.app_context():
        reg = db.session.scalars(select(Registration)).one()
        assert (reg.email, reg.first_name, reg.state) == ("rosa@example.org", "Rosa", RegistrationState.confirmed)
    assert page.context.cookies(live_server.base_url) == []  # Foyer set no cookie in the frame

    # The embedded page on its own, audited as a page.
    visit(f"/embed/events/{SLUG}/register?accent=7a1f5c")
