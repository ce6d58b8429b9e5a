"""Browser test: "Forgot your password?" from the sign-in page to signing in with the new password, the
link read from the email ACS received; an admin's invitation, emailed and accepted. Every page passes
the accessibility audit."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from app.extensions import db
from app.models import Role
from app.services.accounts import accounts
from app.services.outbox import outbox

OLD, NEW = "a long secret pw", "another long secret"
LINK = re.compile(r"https?://[^/\s]+(/(?:password/reset|invitation)/[A-Za-z0-9_-]{40,})")


def _drain(app) -> None:
    with app.app_context():
        while outbox.drain(limit=200):
            pass


def _link_sent_to(app, address: str) -> str:
    _drain(app)
    mails = [e for e in app.extensions["microsoft"].emulator.acs.sent_emails if e.to[0]["address"] == address]
    return LINK.search(mails[-1].plain_text).group(1)


def test_forgot_password_and_invitation_journeys_pass_the_audit(page, visit, audit, live_server):
    app = live_server.app
    with app.app_context():
        accounts.create_user("olive@example.org", role=Role.admin, password=OLD, name="Olive")
        db.session.commit()

    visit("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?", level=1)).to_be_visible()
    audit()
    page.get_by_label("Email").fill("olive@example.org")
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email", level=1)).to_be_visible()
    audit()

    visit(_link_sent_to(app, "olive@example.org"))
    expect(page.get_by_role("heading", name="Choose a new password", level=1)).to_be_visible()
    page.get_by_label("New password").fill(NEW)
    page.get_by_label("Repeat the password").fill(NEW)
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password has been changed")
    audit()
    page.get_by_label("Email").fill("olive@example.org")
    page.get_by_label("Password").fill(NEW)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()

    visit("/admin/users/invite")
    page.get_by_label("Email").fill("ivy@example.org")
    page.get_by_label("Name").fill("Ivy")
    page.get_by_role("button", name="Invite", exact=True).click()
    expect(page.get_by_text("Foyer has also emailed this link to ivy@example.org")).to_be_visible()
    audit()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status").filter(has_text="You have been signed out")).to_be_visible()
    visit(_link_sent_to(app, "ivy@example.org"))
    expect(page.get_by_role("heading", name="Welcome, Ivy", level=1)).to_be_visible()
