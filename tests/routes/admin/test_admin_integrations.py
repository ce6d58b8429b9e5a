"""Admin → API tokens and Admin → Webhooks through HTTP: a token or secret is shown once, revoking,
the delivery log, resending, disabling; only admins see any of it.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, AuditEntry, DeliveryStatus, Event, EventStatus, WebhookDelivery, WebhookEndpoint
from app.services.integrations import webhooks
from app.services.outbox import outbox
from tests import webhook_receiver

TOKEN_RE = re.compile(r'id="issued-token" type="text" value="(foyer_[^"]+)"')


def test_issuing_a_token_shows_it_once_and_stores_only_its_hash(auth, client, app, api):
    auth.login_as_admin()
    page = client.submit("/admin/api-tokens/", {"name": "CRM sync", "scope": "write"})
    assert page.status_code == 201
    plain = TOKEN_RE.search(page.get_data(as_text=True)).group(1)
    assert page.headers["Cache-Control"] == "no-store"
    later = client.get("/admin/api-tokens/").get_data(as_text=True)
    assert plain not in later and "CRM sync" in later and plain[:10] in later
    with app.app_context():
        token = db.session.scalar(select(ApiToken))
        assert token.token_hash != plain and plain not in token.token_hash and token.scope.value == "write"
        assert api.get("/events", token=plain).status_code == 200
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "api.token_issued"))
        assert plain not in f"{entry.summary} {entry.details}"


def test_token_form_errors_and_revoking(auth, client, app, api):
    auth.login_as_admin()
    assert client.submit("/admin/api-tokens/", {"name": "", "scope": "read"}).status_code == 422
    assert client.submit("/admin/api-tokens/", {"name": "x", "scope": "admin"}).status_code == 422
    page = client.submit("/admin/api-tokens/", {"name": "Sheet", "scope": "read"})
    plain = TOKEN_RE.search(page.get_data(as_text=True)).group(1)
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    assert client.submit(f"/admin/api-tokens/{token_id}/revoke").status_code == 303
    assert "Revoked" in client.get("/admin/api-tokens/").get_data(as_text=True)
    assert api.get("/events", token=plain).status_code == 401
    again = client.submit(f"/admin/api-tokens/{token_id}/revoke",
                          follow_redirects=True)
    assert "already revoked" in again.get_data(as_text=True)
    assert client.post(f"/admin/api-tokens/{token_id}/revoke").status_code == 400  # no CSRF token
    assert client.submit("/admin/api-tokens/999999/revoke").status_code == 404


@pytest.mark.db_agnostic
def test_organizers_and_visitors_do_not_reach_the_pages(auth, client):
    for path in ("/admin/api-tokens/", "/admin/webhooks/"):
        assert client.get(path).status_code in (302, 303)
    auth.login_as_organizer()
    for path in ("/admin/api-tokens/", "/admin/webhooks/"):
        assert client.get(path).status_code == 404


def test_delivery_log_resend_and_disable(auth, client, app, monkeypatch, make_user, make_event):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_HTTP_LOOPBACK", True)
    receiver, server = webhook_receiver.start()
    try:
        auth.login_as_admin()
        page = client.submit("/admin/webhooks/", {"url": receiver.url, "kinds": ["event.changed"]})
        assert page.status_code == 201
        secret = re.search(r'id="signing-secret" type="text" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        assert secret not in client.get("/admin/webhooks/").get_data(as_text=True)
        event = make_event(make_user(), status=EventStatus.published)
        with app.app_context():
            endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
            webhooks.announce_event("event.changed", db.session.get(Event, event.id))
            db.session.commit()
            outbox.drain()
            delivery = db.session.scalar(select(WebhookDelivery))
            delivery_id, delivery_uuid = delivery.id, delivery.uuid
        log = client.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
        assert delivery_uuid in log and "Delivered" in log and "HTTP 200" in log

        resent = client.submit(f"/admin/webhooks/deliveries/{delivery_id}/resend")
        assert resent.status_code == 303
        with app.app_context():
            outbox.drain()
            rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
            assert [r.status for r in rows] == [DeliveryStatus.delivered, DeliveryStatus.delivered]
            assert rows[1].resent_from_id == delivery_id and rows[1].event_key == rows[0].event_key
        got = receiver.wait_for(2)
        assert got[0].json["id"] == got[1].json["id"]
        assert got[0].headers["Foyer-Delivery-Id"] != got[1].headers["Foyer-Delivery-Id"]
        assert all(webhook_receiver.verify(secret, r) for r in got)
        assert "re-sent" in client.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)

        disabled = client.submit(f"/admin/webhooks/{endpoint_id}/disable")
        assert disabled.status_code == 303
        with app.app_context():
            assert webhooks.announce_event("event.changed", db.session.get(Event, event.id)) == 0
            db.session.rollback()
        refused = client.submit(f"/admin/webhooks/deliveries/{delivery_id}/resend", follow_redirects=True)
        assert "disabled" in refused.get_data(as_text=True)
        assert client.get("/admin/webhooks/999999").status_code == 404
        with app.app_context():
            actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("webhook.%"))))
            assert actions == {"webhook.endpoint_created", "webhook.resend", "webhook.endpoint_disabled"}
    finally:
        server.shutdown()
        server.server_close()
