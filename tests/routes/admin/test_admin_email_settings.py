"""Admin → Branding → Email sender: the sender name and reply-to address every email goes out with,
and "send me a test email" through the one message pipeline (it shows in Admin → Messages)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, EventStatus, Message, MessageStatus, Role, Setting
from tests.routes.admin.test_admin_branding import _branding, _image
from tests.routes.admin.test_admin_branding import _save as save_branding
from tests.worker import drain


@pytest.fixture
def acs(app):
    return app.extensions["microsoft"].emulator.acs


def save(client, sender_name="", reply_to=""):
    return client.submit("/admin/branding/email", {"sender_name": sender_name, "reply_to": reply_to})


def test_saved_reply_to_and_sender_name_go_with_every_email(app, client, auth, make_event, make_user, acs):
    auth.login_as_admin()
    page = client.get("/admin/branding").get_data(as_text=True)
    assert 'id="email"' in page and "Send me a test email" in page
    response = save(client, "Contoso Events", " Events@Contoso.example ")
    assert response.status_code == 303 and response.headers["Location"].endswith("#email")
    page = client.get("/admin/branding").get_data(as_text=True)
    assert 'value="Contoso Events"' in page and 'value="Events@contoso.example"' in page
    with app.app_context():
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settings.email")) is not None

    # An attendee's registration email carries the admin's reply-to, never the attendee's input.
    owner = make_user("owner@example.org", Role.organizer)
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC))
    auth.logout()
    client.submit(f"/events/{event.slug}/register",
                  {"first_name": "Mallory", "last_name": "X", "email": "mallory@example.org", "timezone": "UTC",
                   "consent": "y"})
    drain(app)
    [sent] = [e for e in acs.sent_emails if e.to[0]["address"] == "mallory@example.org"]
    assert sent.reply_to == [{"address": "Events@contoso.example", "displayName": "Contoso Events"}]
    assert sent.sender == app.config["ACS_SENDER_ADDRESS"]


@pytest.mark.db_agnostic
@pytest.mark.parametrize(("sender_name", "reply_to", "problem"), [
    ("Events\r\nBcc: victim@example.org", "", "single line"),
    ("", "events@example.org\r\nBcc: victim@example.org", "single email address"),
    ("", "events@example.org, other@example.org", "valid email address"),
    ("", "not-an-address", "valid email address"),
    ("x" * 101, "", "100 characters"),
])
def test_header_injection_and_bad_addresses_are_refused_and_nothing_is_lost(app, client, auth, sender_name,
                                                                            reply_to, problem):
    auth.login_as_admin()
    response = save(client, sender_name, reply_to)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert problem in page
    with app.app_context():
        assert db.session.get(Setting, "email") is None
    if reply_to and "\n" not in reply_to:
        assert f'value="{reply_to}"' in page  # what was typed stays in the field


def test_test_email_goes_through_the_pipeline_and_shows_in_messages(app, client, auth, acs):
    admin = auth.login_as_admin()
    save(client, "Foyer team", "help@example.org")
    response = client.submit("/admin/branding/email/test")
    assert response.status_code == 303
    assert "A test email to admin@example.org is queued" in client.get("/admin/branding").get_data(as_text=True)
    # A second click in the same minute does not send a second one.
    client.submit("/admin/branding/email/test")
    assert "already queued this minute" in client.get("/admin/branding").get_data(as_text=True)
    with app.app_context():
        [message] = db.session.scalars(select(Message).where(Message.kind == "test")).all()
        assert message.recipient == admin.email and message.event_id is None
        assert "Replies go to: help@example.org" in message.body_text
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "message.test_email")) is not None
    drain(app)
    [sent] = [e for e in acs.sent_emails if e.to[0]["address"] == admin.email]
    assert sent.subject == "Test email from Foyer"
    assert sent.reply_to == [{"address": "help@example.org", "displayName": "Foyer team"}]
    with app.app_context():
        assert db.session.get(Message, message.id).status == MessageStatus.sent
    listing = client.get("/admin/messages?kind=test").get_data(as_text=True)
    assert admin.email in listing and "Test email" in listing


def test_test_email_looks_like_every_other_email_logo_included(app, client, auth, acs):
    auth.login_as_admin()
    assert save_branding(client, logo=(io.BytesIO(_image("PNG")), "logo.png"), logo_alt="Acme logo").status_code == 303
    logo = _branding(app)["logo_filename"]
    client.submit("/admin/branding/email/test")
    drain(app)
    [sent] = [e for e in acs.sent_emails if e.subject == "Test email from Acme Events"]
    html = sent.html
    assert f"/uploads/{logo}" in html and 'alt="Acme logo"' in html  # the header every email has
    assert "so if you are reading it, email works" in html
    assert "Sent by Acme Events because an admin asked for a test email." in html
    assert "Acme Inc., 1 Main Street" in html  # the footer every email has
    assert "Event page:" not in html and "Join the event" not in html  # no event, no event links


@pytest.mark.db_agnostic
def test_only_admins_reach_the_email_settings(client, auth):
    auth.login_as_organizer()
    assert save(client, "X", "x@example.org").status_code in (403, 404)
    assert client.post("/admin/branding/email/test").status_code in (400, 403, 404)
