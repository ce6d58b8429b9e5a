"""Microsoft's answer arrives cross-site (Entra's form_post), without the SameSite=Lax session cookie: in a
real browser, Foyer posts it again from its own origin and finishes the connect in the browser that
started it; the same answer replayed where no such flow was started is refused with a clear page."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl

from playwright.sync_api import expect

from tests.browser.test_first_run import _set_up_and_sign_in
from tests.browser.test_microsoft_connection import SERVICE_ACCOUNT, emulator  # noqa: F401 (fixture)

CROSS_SITE = "http://entra.test/answer"


def _cross_site_post(page, action: str, fields: dict[str, str]) -> None:
    """Post `fields` to `action` from another site, as Entra's answer page does."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    body = (f'<!doctype html><html lang="en"><title>Answer</title><main><form method="post" action="{action}">'
            f'{inputs}<button type="submit">Send</button></form></main></html>')
    page.route(CROSS_SITE, lambda route: route.fulfill(status=200, content_type="text/html", body=body))
    page.goto(CROSS_SITE)
    page.get_by_role("button", name="Send").click()


def test_cross_site_answer_finishes_the_connect_only_in_the_starting_browser(page, visit, audit, live_server,
                                                                              browser_errors, emulator):  # noqa: F811
    _set_up_and_sign_in(page, visit, audit)  # ends signed in as the first admin
    visit("/admin/microsoft/")

    # Stop Microsoft's same-origin answer (the emulator's page is on Foyer's origin) and keep its fields.
    captured: dict[str, str] = {}

    def capture(route):
        captured.update(parse_qsl(route.request.post_data or ""))
        route.abort("aborted")

    page.route("**/admin/microsoft/callback", capture)
    page.get_by_role("button", name="Connect the emulated service account", exact=True).click()
    choice = re.compile(rf"Sign in as Foyer Service Account <{re.escape(SERVICE_ACCOUNT)}>")
    page.get_by_role("button", name=choice).click()
    page.wait_for_timeout(500)
    page.unroute("**/admin/microsoft/callback")
    assert captured.get("code") and captured.get("state")

    # Posted cross-site, the answer carries no cookie: Foyer's page posts it again, with the session.
    posts: list[tuple[bool, bool]] = []  # (resubmitted, carried a cookie)
    page.on("request", lambda r: posts.append(("foyer_resubmitted=1" in (r.post_data or ""),
                                               "cookie" in r.headers)) if r.url.endswith("/callback") else None)
    _cross_site_post(page, live_server.url("/admin/microsoft/callback"), captured)
    expect(page).to_have_url(re.compile(r"/admin/microsoft/\?outcome=connected$"))
    assert posts == [(False, False), (True, True)]
    expect(page.get_by_role("status")).to_contain_text("Microsoft 365 is connected.")
    audit()

    # Signed out, the same answer is a flow this browser no longer holds: refused, with a clear page.
    browser_errors.allow(r"HTTP 400 for POST .*/admin/microsoft/callback")
    page.get_by_role("button", name="Sign out").click()
    _cross_site_post(page, live_server.url("/admin/microsoft/callback"), captured)
    expect(page.get_by_role("heading", name="This sign-in was not started in this browser")).to_be_visible()
    audit()
