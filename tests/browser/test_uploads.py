"""Too-large uploads with JavaScript on: the file is refused beside its field, and nothing else typed in
the form is lost, whether the page catches it before sending or the server answers 413."""

from __future__ import annotations

from playwright.sync_api import expect

from app.extensions import db
from app.models import Role
from app.services.accounts import accounts

PASSWORD = "a long secret pw"


def _sign_in_admin(page, visit, app) -> None:
    with app.app_context():
        accounts.create_user("admin@example.org", role=Role.admin, password=PASSWORD)
        db.session.commit()
    visit("/login")
    page.get_by_label("Email").fill("admin@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()


def _big_file(megabytes: float) -> dict:
    size = int(megabytes * 1024 * 1024)
    return {"name": "huge-logo.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"0" * size}


def test_a_file_over_the_field_limit_is_refused_beside_the_field(page, visit, audit, live_server):
    _sign_in_admin(page, visit, live_server.app)
    visit("/admin/branding")
    page.get_by_label("Site name").fill("Typed and kept")
    logo = page.get_by_label("Logo", exact=True)
    logo.set_input_files(_big_file(3))
    expect(page.get_by_role("alert")).to_contain_text("“huge-logo.png” is 3 MB; the limit is 2 MB")
    expect(logo).to_have_attribute("aria-invalid", "true")
    assert logo.evaluate("el => el.files.length") == 0  # the form can be saved without it
    expect(page.get_by_label("Site name")).to_have_value("Typed and kept")
    audit()


def test_a_413_from_the_server_is_shown_beside_the_field(page, visit, audit, live_server, browser_errors):
    browser_errors.allow(r"HTTP 413 for POST .*/admin/branding")
    browser_errors.allow(r"Response Status Error Code 413 from /admin/branding")  # htmx logs what it did not swap
    app = live_server.app
    _sign_in_admin(page, visit, app)
    visit("/admin/branding")
    page.get_by_label("Site name").fill("Typed and kept")
    logo = page.get_by_label("Logo", exact=True)
    logo.evaluate("el => el.removeAttribute('data-max-bytes')")  # a page older than the server's limit
    limit = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    try:
        logo.set_input_files(_big_file(1.5))
        page.get_by_role("button", name="Save branding").click()
        expect(page.locator("#logo-size-error")).to_contain_text("The upload is too large")
    finally:
        app.config["MAX_CONTENT_LENGTH"] = limit
    expect(logo).to_be_focused()
    expect(page.get_by_label("Site name")).to_have_value("Typed and kept")
    audit()
