"""The ACS emulator refuses what ACS refuses and reports delivery as ACS does, driven through the real SDKs:

* email attachments must have a type from ACS's allow-list (`text/calendar`, not `text/calendar; method=…`);
* `retry-after` on the 202 and on every non-terminal status poll, none once terminal;
* a reused Operation-Id answers the operation it names and sends nothing again;
* SMS: at most 2,048 characters and 100 recipients per request;
* delivery reports are Event Grid events posted to a subscribed webhook after its validation handshake.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.communication.email import EmailClient
from azure.communication.sms import SmsClient
from azure.core.exceptions import HttpResponseError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from emulator import EmulatorConfig
from emulator.acs import EventGridError


def _message(*addresses: str, **extra) -> dict:
    return {
        "senderAddress": "DoNotReply@foyer.example",
        "content": {"subject": "You're registered", "plainText": "See you", "html": "<p>See you</p>"},
        "recipients": {"to": [{"address": a, "displayName": ""} for a in (addresses or ("ada@example.org",))]},
        **extra,
    }


def _invite(content_type: str) -> dict:
    data = base64.b64encode(b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n").decode()
    return {"name": "invite.ics", "contentType": content_type, "contentInBase64": data}


def email_client(target, **kwargs) -> EmailClient:
    return EmailClient.from_connection_string(target.endpoints.acs_connection_string, transport=target.transport(),
                                              **kwargs)


def sms_client(target) -> SmsClient:
    return SmsClient.from_connection_string(target.endpoints.acs_connection_string, transport=target.transport())


# --- attachments ---------------------------------------------------------------------------------------


def test_attachment_type_must_be_on_acs_allow_list(target):
    client = email_client(target)
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(_message(attachments=[_invite("text/calendar; method=REQUEST; charset=utf-8")]),
                          polling_interval=0)
    assert raised.value.status_code == 400
    error = raised.value.response.json()["error"]
    assert error["code"] == "InvalidAttachmentContentType" and error["target"] == "attachments[0].contentType"
    assert raised.value.response.headers["x-ms-error-code"] == "InvalidAttachmentContentType"
    assert not target.emulator.acs.sent_emails

    result = client.begin_send(_message(attachments=[_invite("text/calendar")]), polling_interval=0).result()
    assert result["status"] == "Succeeded"
    assert target.emulator.acs.sent_emails[0].attachments[0]["contentType"] == "text/calendar"


def test_invalid_attachment_is_dropped_when_the_reserved_header_asks(in_process):
    client = email_client(in_process)
    message = _message(attachments=[_invite("application/x-msdownload"), _invite("text/calendar")],
                       headers={"x-ms-acsemail-suppress-invalid-attachment": "true"})
    assert client.begin_send(message, polling_interval=0).result()["status"] == "Succeeded"
    assert [a["contentType"] for a in in_process.emulator.acs.sent_emails[0].attachments] == ["text/calendar"]


# --- retry-after and Operation-Id ------------------------------------------------------------------------


def test_retry_after_on_the_202_and_while_running_never_once_terminal(target):
    seen: list[tuple[str, str | None, str]] = []

    def hook(response) -> None:
        http = response.http_response
        status = http.json()["status"] if response.http_request.method == "GET" else "accepted"
        seen.append((response.http_request.method, http.headers.get("retry-after"), status))

    client = email_client(target, raw_response_hook=hook)
    assert client.begin_send(_message(), polling_interval=0).result()["status"] == "Succeeded"
    assert seen == [("POST", "0", "accepted"), ("GET", "0", "Running"), ("GET", None, "Succeeded")]


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults="", email_retry_after=1)])
def test_a_positive_retry_after_is_what_the_sdk_waits(in_process):
    import time

    client = email_client(in_process)
    started = time.monotonic()
    client.begin_send(_message(), polling_interval=0).result()
    assert time.monotonic() - started >= 1  # polling_interval=0, yet the poller waited as the service asked


def test_reused_operation_id_answers_the_existing_operation_and_sends_nothing_again(in_process):
    client = email_client(in_process)
    operation_id = str(uuid.uuid4())
    assert client.begin_send(_message("ada@example.org"), operation_id=operation_id,
                             polling_interval=0).result() == {"id": operation_id, "status": "Succeeded"}
    reused = client.begin_send(_message("bob@example.org"), operation_id=operation_id, polling=False)
    assert reused.result() == {"id": operation_id, "status": "Succeeded"}  # the first operation, already done
    acs = in_process.emulator.acs
    assert list(acs.email_operations) == [operation_id]
    assert acs.duplicate_operation_ids() == [operation_id]  # the repeat stays visible to tests
    # One delivery report: bob's message was never sent.
    assert [e["data"]["recipient"] for e in acs.pending_reports] == ["ada@example.org"]


# --- SMS limits ------------------------------------------------------------------------------------------


def test_sms_message_longer_than_2048_characters_is_refused(target):
    client = sms_client(target)
    with pytest.raises(HttpResponseError) as raised:
        client.send(from_="+18005550100", to="+18005550101", message="x" * 2049)
    assert raised.value.status_code == 400
    assert json.loads(raised.value.response.text())["error"]["target"] == "message"
    assert not target.emulator.acs.sms_messages
    assert client.send(from_="+18005550100", to="+18005550101", message="x" * 2048)[0].successful


def test_sms_to_more_than_100_recipients_in_one_request_is_refused(in_process):
    client = sms_client(in_process)
    numbers = [f"+1800555{n:04d}" for n in range(101)]
    with pytest.raises(HttpResponseError) as raised:
        client.send(from_="+18005550100", to=numbers, message="Starting now")
    assert raised.value.status_code == 400
    assert json.loads(raised.value.response.text())["error"]["target"] == "smsRecipients"
    assert not in_process.emulator.acs.sms_messages
    assert all(r.successful for r in client.send(from_="+18005550100", to=numbers[:100], message="Starting now"))


# --- delivery reports through Event Grid -----------------------------------------------------------------


class Webhook:
    """A loopback HTTP endpoint that plays an Event Grid webhook: answers the handshake, records deliveries."""

    def __init__(self, *, answer_handshake: bool = True, status: int = 200) -> None:
        self.answer_handshake, self.status = answer_handshake, status
        self.received: list[tuple[dict[str, str], list[dict]]] = []
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/events?secret=s3cret"

    def _app(self, environ, start_response):
        request = Request(environ)
        events = json.loads(request.get_data())
        self.received.append((dict(request.headers), events))
        if events[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent":
            body = {"validationResponse": events[0]["data"]["validationCode"]} if self.answer_handshake else {}
            return Response(json.dumps(body), mimetype="application/json")(environ, start_response)
        return Response("", status=self.status)(environ, start_response)

    @property
    def notifications(self) -> list[dict]:
        return [e for headers, events in self.received if headers.get("Aeg-Event-Type") == "Notification"
                for e in events]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_subscription_needs_the_validation_handshake(in_process, webhook):
    acs = in_process.emulator.acs
    subscription = acs.subscribe(webhook.url, headers={"X-Foyer-Webhook-Secret": "h"})
    ((headers, (validation,)),) = webhook.received
    assert headers["Aeg-Event-Type"] == "SubscriptionValidation" and headers["X-Foyer-Webhook-Secret"] == "h"
    assert validation["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert set(validation) >= {"id", "topic", "subject", "data", "eventType", "eventTime", "dataVersion",
                               "metadataVersion"}
    assert list(acs.event_subscriptions) == [subscription.id]

    silent = Webhook(answer_handshake=False)
    try:
        with pytest.raises(EventGridError, match="validation handshake"):
            acs.subscribe(silent.url)
    finally:
        silent.close()
    assert list(acs.event_subscriptions) == [subscription.id]


def test_each_recipient_gets_an_email_delivery_report_in_event_grid_schema(in_process, webhook):
    acs = in_process.emulator.acs
    acs.subscribe(webhook.url)
    client = email_client(in_process)
    operation_id = str(uuid.uuid4())
    client.begin_send(_message("ada@example.org", "gone@bounce.invalid", "quiet@suppressed.invalid"),
                      operation_id=operation_id, polling=False)

    assert acs.deliver_reports() == {"delivered": 3, "failed": 0, "pending": 0}

    reports = {e["data"]["recipient"]: e for e in webhook.notifications}
    assert {r: e["data"]["status"] for r, e in reports.items()} == {
        "ada@example.org": "Delivered", "gone@bounce.invalid": "Bounced", "quiet@suppressed.invalid": "Suppressed"}
    bounce = reports["gone@bounce.invalid"]
    assert bounce["eventType"] == "Microsoft.Communication.EmailDeliveryReportReceived"
    assert set(bounce) == {"id", "topic", "subject", "data", "eventType", "dataVersion", "metadataVersion",
                           "eventTime"}
    assert bounce["dataVersion"] == "1.0" and bounce["subject"].endswith(f"/message/{operation_id}")
    assert bounce["data"]["messageId"] == operation_id  # the send's operation id names the message
    assert bounce["data"]["deliveryStatusDetails"]["statusMessage"].startswith("550")
    assert bounce["data"]["deliveryAttemptTimeStamp"].endswith("Z")
    assert len({e["id"] for e in reports.values()}) == 3
    assert acs.deliver_reports()["delivered"] == 0  # each report goes out once


def test_a_report_the_webhook_refuses_stays_queued_and_is_retried(in_process):
    failing = Webhook(status=503)
    try:
        acs = in_process.emulator.acs
        acs.subscribe(failing.url)
        email_client(in_process).begin_send(_message(), polling=False)
        assert acs.deliver_reports() == {"delivered": 0, "failed": 1, "pending": 1}
        failing.status = 200
        assert acs.deliver_reports() == {"delivered": 1, "failed": 0, "pending": 0}
        assert len(failing.notifications) == 2  # delivered at least once: the same event twice
        assert failing.notifications[0]["id"] == failing.notifications[1]["id"]
    finally:
        failing.close()


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults="", sms_undelivered_numbers=("+18005550102",))])
def test_sms_delivery_reports_only_when_asked_for(in_process, webhook):
    acs = in_process.emulator.acs
    acs.subscribe(webhook.url)
    client = sms_client(in_process)
    client.send(from_="+18005550100", to="+18005550109", message="No report wanted")
    results = client.send(from_="+18005550100", to=["+18005550101", "+18005550102"], message="Starting now",
                          enable_delivery_report=True, tag="reminder")
    acs.deliver_reports()
    reports = {e["data"]["to"]: e for e in webhook.notifications}
    assert set(reports) == {"+18005550101", "+18005550102"}
    delivered = reports["+18005550101"]
    assert delivered["eventType"] == "Microsoft.Communication.SMSDeliveryReportReceived"
    assert delivered["data"]["messageId"] == results[0].message_id == delivered["id"]
    assert delivered["data"]["deliveryStatus"] == "Delivered" and delivered["data"]["Tag"] == "reminder"
    assert reports["+18005550102"]["data"]["deliveryStatus"] == "Failed"


def test_subscriptions_and_reports_over_the_control_api(in_process, webhook):
    session, base = in_process.session, "https://acs.emulator.invalid/_emulator/acs"
    created = session.post(f"{base}/event-subscriptions", json={"endpoint": webhook.url}, timeout=10)
    assert created.status_code == 201 and "secret" not in created.text  # the URL's secret is not echoed
    refused = session.post(f"{base}/event-subscriptions", json={"endpoint": "ftp://nowhere"}, timeout=10)
    assert refused.status_code == 400
    email_client(in_process).begin_send(_message(), polling=False)
    assert len(session.get(f"{base}/delivery-reports", timeout=10).json()["pending"]) == 1
    assert session.post(f"{base}/delivery-reports/deliver", timeout=10).json()["delivered"] == 1
    assert [e["data"]["status"] for e in webhook.notifications] == ["Delivered"]
    assert session.delete(f"{base}/event-subscriptions/{created.json()['id']}", timeout=10).status_code == 204
    assert session.get(f"{base}/event-subscriptions", timeout=10).json() == {"value": []}
