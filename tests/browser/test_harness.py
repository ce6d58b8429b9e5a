"""The browser-test harness itself: the pages that exist pass the audit, and the audit and the
error watch really catch what they are meant to catch."""

import pytest
from playwright.sync_api import expect

from tests.first_run import setup_code

PASSWORD = "a long secret pw"


def test_first_run_pages_pass_the_accessibility_audit(page, visit, audit):
    visit("/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.goto("/login")  # no user yet: sign-in sends people to first-run setup
    expect(page).to_have_url("/setup")
    expect(page.get_by_role("heading", name="Set up Foyer")).to_be_visible()
    audit()


def test_invalid_setup_shows_errors_that_pass_the_audit(page, visit, audit, live_server):
    visit("/setup")
    page.get_by_label("Setup code").fill(setup_code(live_server.app))
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Repeat the password").fill("short")
    page.get_by_role("button", name="Create admin account").click()
    expect(page.get_by_text("Use at least 10 characters.")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("aria-invalid", "true")
    audit()


def test_audit_fails_on_a_serious_violation(page, audit):
    page.set_content('<html lang="en"><title>t</title><main><img src="data:,"><h1>Hi</h1></main></html>')
    with pytest.raises(pytest.fail.Exception, match=r"image-alt"):
        audit()


def test_csp_violations_and_console_errors_are_caught(page, visit, browser_errors):
    visit("/")
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = '1'; document.body.append(s); }")
    page.evaluate("() => console.error('something broke')")
    page.evaluate("() => 0")  # a round trip, so the console events above have arrived
    assert any("Content Security Policy" in e for e in browser_errors.found), browser_errors.found
    assert any("something broke" in e for e in browser_errors.found), browser_errors.found
    browser_errors.found.clear()  # expected here; anywhere else they fail the test


def test_http_errors_are_caught(page, browser_errors):
    page.goto("/no-such-page")
    assert any("HTTP 404" in e and "/no-such-page" in e for e in browser_errors.found), browser_errors.found
    browser_errors.found.clear()


@pytest.mark.parametrize("context_options", [{"java_script_enabled": False}], ids=["no-js"])
def test_audit_without_javascript_checks_what_the_page_shows(page, audit):
    # axe cannot run in a page without JavaScript; the harness audits a copy of its HTML instead.
    bad = '<!doctype html><html lang="en"><title>t</title><main><h1>Hi</h1><img src="data:,"></main></html>'
    page.route("**/broken", lambda route: route.fulfill(status=200, content_type="text/html", body=bad))
    page.goto("/broken")
    with pytest.raises(pytest.fail.Exception, match=r"image-alt"):
        audit()
    page.goto("/")
    audit()  # and a real page passes
