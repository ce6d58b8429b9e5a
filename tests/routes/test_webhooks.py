"""`POST /webhooks/acs/events`: Event Grid's validation handshake, the webhook secret, each delivery report
recorded once on its message, unknown messages and junk handled without a 500, and organizers seeing
"Delivered" / "Bounced (reason)" on the event's messages, the registrations and Admin → Messages.

The reports are the emulator's own Event Grid events for the emails Foyer really sent through it.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.logs import redact_links
from app.models import EventStatus, Message, MessageDeliveryReport, Role
from app.services.outbox import outbox

URL = "/webhooks/acs/events"


@pytest.fixture
def emulator(app):
    return app.extensions["microsoft"].emulator


@pytest.fixture
def secret(app):
    return app.config["ACS_WEBHOOK_SECRET"]


@pytest.fixture
def event(make_event, make_user):
    owner = make_user("owner@example.org", Role.organizer)
    return make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), title="Spring meetup")


def register(client, event, email, first="Ada"):
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": first, "last_name": "L", "email": email, "timezone": "UTC",
                              "consent": "y"})
    assert response.status_code in (200, 303)


def send_all(app) -> None:
    with app.app_context():
        for _ in range(10):
            if not outbox.drain(limit=100):
                break


def reports_for(emulator, address: str) -> list[dict]:
    return [e for e in emulator.acs.pending_reports if e["data"].get("recipient") == address]


def post(client, events, secret, **kwargs):
    return client.post(f"{URL}?secret={secret}", json=events, **kwargs)


def message_to(app, address: str) -> Message:
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.recipient == address))
        db.session.expunge(message)
        return message


@pytest.mark.db_agnostic
def test_validation_handshake_is_answered_with_the_code(client, secret):
    handshake = [{"id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66", "topic": "/subscriptions/x", "subject": "",
                  "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                           "validationUrl": "https://rp-eastus2.eventgrid.azure.net/..."},
                  "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                  "eventTime": "2026-12-04T18:00:00.000Z", "metadataVersion": "1", "dataVersion": "1"}]
    response = post(client, handshake, secret, headers={"aeg-event-type": "SubscriptionValidation"})
    assert response.status_code == 200
    assert response.get_json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_calls_without_the_secret_or_with_a_wrong_one_are_refused(app, client, secret, event, emulator, caplog):
    register(client, event, "ada@example.org")
    send_all(app)
    events = reports_for(emulator, "ada@example.org")
    caplog.set_level(logging.INFO)
    assert client.post(URL, json=events).status_code == 401
    wrong = post(client, events, "not-" + secret)
    assert wrong.status_code == 401 and wrong.get_json() == {"error": "Missing or wrong webhook secret."}
    assert client.post(URL, json=events, headers={"X-Foyer-Webhook-Secret": secret[:-1]}).status_code == 401
    assert message_to(app, "ada@example.org").delivery == ""
    # The secret may come as an Event Grid delivery-property header instead of the query string.
    assert client.post(URL, json=events, headers={"X-Foyer-Webhook-Secret": secret}).status_code == 200
    assert message_to(app, "ada@example.org").delivery == "Delivered"
    assert secret not in caplog.text
    assert secret not in redact_links(f'"POST {URL}?secret={secret} HTTP/1.1" 200')


def test_the_same_event_twice_is_recorded_once(app, client, secret, event, emulator):
    register(client, event, "ada@example.org")
    send_all(app)
    events = reports_for(emulator, "ada@example.org")
    first = post(client, events, secret)
    again = post(client, events, secret)
    assert first.get_json()["recorded"] == 1
    assert again.status_code == 200 and again.get_json() | {"received": 1} == \
        {"received": 1, "recorded": 0, "duplicates": 1, "unknown": 0, "ignored": 0}
    with app.app_context():
        assert db.session.scalar(select(func.count(MessageDeliveryReport.id))) == 1
    message = message_to(app, "ada@example.org")
    assert message.operation_status == "Succeeded" and message.delivery == "Delivered"
    assert message.delivery_reported_at is not None


def test_an_older_report_arriving_late_does_not_replace_a_newer_one(app, client, secret, event, emulator):
    register(client, event, "ada@example.org")
    send_all(app)
    (newer,) = reports_for(emulator, "ada@example.org")
    older = copy.deepcopy(newer)
    older["id"] = "older-" + newer["id"]
    older["data"]["status"] = "Expanded"
    older["data"]["deliveryAttemptTimeStamp"] = "2020-01-01T00:00:00.0000000Z"
    assert post(client, [newer], secret).status_code == 200
    assert post(client, [older], secret).get_json()["recorded"] == 1  # kept as history …
    assert message_to(app, "ada@example.org").delivery == "Delivered"  # … but the newer outcome stands


def test_a_report_for_a_message_foyer_does_not_know_is_ignored(app, client, secret):
    stranger = [{"id": "e1", "topic": "/subscriptions/x", "subject": "sender/a@b.example/message/m1",
                 "eventType": "Microsoft.Communication.EmailDeliveryReportReceived", "dataVersion": "1.0",
                 "metadataVersion": "1", "eventTime": "2026-12-04T18:00:00Z",
                 "data": {"sender": "a@b.example", "recipient": "c@d.example",
                          "messageId": "9a7e3c52-0000-4000-8000-000000000000", "status": "Bounced"}},
                {"id": "e2", "eventType": "Microsoft.Communication.EmailEngagementTrackingReportReceived",
                 "data": {"messageId": "x", "engagementType": "view"}}]
    response = post(client, stranger, secret)
    assert response.status_code == 200
    assert response.get_json() == {"received": 2, "recorded": 0, "duplicates": 0, "unknown": 1, "ignored": 1}
    with app.app_context():
        assert db.session.scalar(select(func.count(MessageDeliveryReport.id))) == 0


@pytest.mark.db_agnostic
@pytest.mark.parametrize("body", [
    b"not json", b"\xff\xfe", b"[" * 200_000, b"null", b"{}", b"[]", b"[1, 2]", b'[{"id": "e"}]',
    b'[{"id": "", "eventType": "x", "data": {}}]',
    b'[{"id": "e", "eventType": "Microsoft.Communication.EmailDeliveryReportReceived", "data": {"status": 3}}]',
    b'[{"id": "e", "eventType": "Microsoft.Communication.SMSDeliveryReportReceived", "data": []}]',
    b'[{"id": "e", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {}}]',
    b'[{"id": ["e"], "eventType": "Microsoft.Communication.EmailDeliveryReportReceived", "data": {}}]',
])
def test_junk_is_a_400_with_a_clear_json_error(client, secret, body):
    response = client.post(f"{URL}?secret={secret}", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"]


@pytest.mark.db_agnostic
def test_the_webhook_takes_no_get_and_needs_no_csrf_token(client, secret):
    assert client.get(f"{URL}?secret={secret}").status_code == 405
    # A POST without any CSRF token is answered on its merits (here: an empty batch).
    assert client.post(f"{URL}?secret={secret}", data=b"[]", content_type="application/json").status_code == 400


def test_a_bounce_is_shown_to_the_organizer_and_on_the_registration(app, client, auth, secret, event, emulator,
                                                                   monkeypatch):
    # The mailbox does not exist: ACS's delivery report says Bounced (Foyer's form refuses .invalid domains).
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ("gone@example.net",))
    register(client, event, "ada@example.org", first="Ada")
    register(client, event, "gone@example.net", first="Gone")
    send_all(app)
    assert post(client, reports_for(emulator, "ada@example.org") + reports_for(emulator, "gone@example.net"),
                secret).get_json()["recorded"] == 2
    bounced = message_to(app, "gone@example.net")
    assert bounced.delivery == "Bounced" and bounced.delivery_details.startswith("550 5.1.1")

    auth.login("owner@example.org")
    page = client.get(f"/manage/events/{event.id}/messages").get_data(as_text=True)
    assert "gone@example.net" in page and "Bounced (550 5.1.1" in page
    assert "ada@example.org" not in page  # delivered: not among the problems
    board = client.get(f"/manage/events/{event.id}/registrations").get_data(as_text=True)
    row = board[board.index("gone@example.net"):][:400]
    assert "Email: Bounced (550 5.1.1" in row
    assert "Email: " not in board[board.index("ada@example.org"):][:200]

    auth.logout()
    auth.login_as_admin()
    listing = client.get("/admin/messages").get_data(as_text=True)
    assert "Bounced (550 5.1.1" in listing and ">Delivered<" in listing
    detail = client.get(f"/admin/messages/{bounced.id}").get_data(as_text=True)
    assert "<dt><strong>Delivery</strong></dt>" in detail and "Bounced (550 5.1.1" in detail


@pytest.mark.db_agnostic
def test_admin_messages_page_shows_the_webhook_url_to_subscribe(app, client, auth, secret):
    auth.login_as_admin()
    page = client.get("/admin/messages").get_data(as_text=True)
    assert f'value="http://localhost/webhooks/acs/events?secret={secret}"' in page
    assert '<label for="webhook-url">' in page


def test_sms_delivery_reports_update_the_sms_message(app, client, secret, event):
    with app.app_context():
        db.session.add(Message(dedupe_key="sms:reminder:1", channel="sms", kind="reminder", status="sent",
                               event_id=event.id, recipient="+18005550101", body_text="Starts in 1 hour",
                               operation_id="Outgoing_20261204180000a1b2c3d4-0000-4000-8000-000000000001_noam",
                               operation_status="Accepted"))
        db.session.commit()
    report = {"id": "Outgoing_20261204180000a1b2c3d4-0000-4000-8000-000000000001_noam",
              "topic": "/subscriptions/x", "subject": "/phonenumber/18005550100",
              "eventType": "Microsoft.Communication.SMSDeliveryReportReceived", "dataVersion": "1.0",
              "metadataVersion": "1", "eventTime": "2026-12-04T18:00:20Z",
              "data": {"messageId": "Outgoing_20261204180000a1b2c3d4-0000-4000-8000-000000000001_noam",
                       "from": "18005550100", "to": "+18005550101", "deliveryStatus": "Failed",
                       "deliveryStatusDetails": "The carrier could not deliver the message.",
                       "receivedTimestamp": "2026-12-04T18:00:20.2855749Z",
                       "deliveryAttempts": [{"timestamp": "2026-12-04T18:00:14.9315918Z", "segmentsSucceeded": 0,
                                             "segmentsFailed": 1}], "Tag": "foyer-1"}}
    assert post(client, [report], secret).get_json()["recorded"] == 1
    sms = message_to(app, "+18005550101")
    assert sms.delivery == "Failed"
    assert sms.delivery_text == "Not delivered (The carrier could not deliver the message.)"
    assert sms.delivery_reported_at == datetime(2026, 12, 4, 18, 0, 14, 931591, tzinfo=UTC)


def test_the_webhook_is_rate_limited(app, client, secret, monkeypatch):
    monkeypatch.setitem(app.config, "ACS_WEBHOOK_RATE_LIMIT", "2 per minute")
    answers = [client.post(f"{URL}?secret={secret}", data=b"[]", content_type="application/json").status_code
               for _ in range(3)]
    assert answers == [400, 400, 429]


def test_an_organizer_message_shows_how_its_emails_were_delivered(app, client, auth, secret, event, emulator,
                                                                  monkeypatch):
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ("gone@example.net",))
    register(client, event, "ada@example.org", first="Ada")
    register(client, event, "gone@example.net", first="Gone")
    auth.login("owner@example.org")
    url = f"/manage/events/{event.id}/messages"
    sent = client.submit(url, {"segment": "all", "subject": "Note", "body": "Bring a pen.", "action": "send"})
    progress_url = sent.headers["Location"]
    send_all(app)
    assert "Delivery reports" not in client.get(progress_url).get_data(as_text=True)  # none arrived yet
    notes = {e.operation_id for e in emulator.acs.sent_emails if e.subject == "Note"}
    assert post(client, [e for e in emulator.acs.pending_reports if e["data"]["messageId"] in notes],
                secret).get_json()["recorded"] == 2
    progress = client.get(progress_url).get_data(as_text=True)
    assert "<strong>1</strong> delivered, <strong>1</strong> bounced." in progress
