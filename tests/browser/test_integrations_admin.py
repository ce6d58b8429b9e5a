"""Browser test: an admin issues and revokes an API token and registers a webhook endpoint, then reads
its delivery log and re-sends a delivery; every page passes the accessibility audit (axe)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from app.extensions import db
from app.models import Event, EventStatus, Role
from app.services.accounts import accounts
from app.services.integrations import webhooks
from app.services.outbox import outbox
from tests import webhook_receiver


def test_admin_manages_api_tokens_and_webhooks(page, visit, audit, live_server, monkeypatch):
    app = live_server.app
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_HTTP_LOOPBACK", True)
    receiver, server = webhook_receiver.start()
    try:
        with app.app_context():
            admin = accounts.create_user("admin@example.org", role=Role.admin, password="a long secret pw",
                                         name="Ada Admin")
            start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=14)
            event = Event(title="Hook day", slug="hook-day", description="Hi.", timezone="Europe/Berlin",
                          starts_at=start, ends_at=start + timedelta(hours=1), status=EventStatus.published,
                          published_at=datetime.now(UTC), owner_id=admin.id)
            db.session.add(event)
            db.session.commit()
            event_id = event.id

        visit("/login")
        page.get_by_label("Email").fill("admin@example.org")
        page.get_by_label("Password").fill("a long secret pw")
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()

        visit("/admin/api-tokens/")
        page.get_by_label("Name").fill("CRM sync")
        page.get_by_label("Write: read, and register people").check()
        page.get_by_role("button", name="Issue token").click()
        expect(page.get_by_role("heading", name="Copy the token “CRM sync” now")).to_be_visible()
        expect(page.get_by_label("API token (write)")).to_have_value(re.compile(r"^foyer_"))
        audit()
        page.get_by_role("button", name="Revoke the token CRM sync").click()
        expect(page.get_by_text("The token “CRM sync” is revoked.")).to_be_visible()
        expect(page.get_by_role("row", name="CRM sync")).to_contain_text("Revoked")
        audit()

        visit("/admin/webhooks/")
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.get_by_text("Choose at least one kind of event.")).to_be_visible()
        audit()
        page.get_by_label("Address (https://…)").fill(receiver.url)
        page.get_by_label("Event changed").check()
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.get_by_role("textbox", name="Signing secret").input_value()
        assert secret.startswith("whsec_")
        audit()

        with app.app_context():
            webhooks.announce_event("event.changed", db.session.get(Event, event_id))
            db.session.commit()
            outbox.drain()
        assert webhook_receiver.verify(secret, receiver.wait_for(1)[0])

        page.get_by_role("link", name=receiver.url).click()
        expect(page.get_by_role("heading", name=f"Deliveries to {receiver.url}")).to_be_visible()
        expect(page.get_by_role("table")).to_contain_text("Delivered")
        audit()
        page.get_by_role("button", name=re.compile("^Resend")).first.click()
        expect(page.get_by_text("Queued to be sent again.")).to_be_visible()
        with app.app_context():
            outbox.drain()
        page.reload()
        expect(page.get_by_text("re-sent")).to_be_visible()
        audit()
        assert len(receiver.wait_for(2)) == 2
    finally:
        server.shutdown()
        server.server_close()
