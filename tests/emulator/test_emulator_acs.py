"""ACS: identities and tokens, email with its poller, SMS — through the real SDKs, HMAC-signed."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta

import pytest
from azure.communication.email import EmailClient
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.sms import SmsClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy

from emulator import EmulatorConfig

SENDER = "DoNotReply@foyer.emulator.invalid"


def _message(*addresses: str, **extra) -> dict:
    return {
        "senderAddress": SENDER,
        "content": {"subject": "You're registered", "plainText": "See you there.", "html": "<p>See you there.</p>"},
        "recipients": {
            "to": [{"address": a, "displayName": a.split("@")[0]} for a in addresses or ["ada@example.org"]]
        },
        **extra,
    }


def identity_client(target, **kwargs) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        target.endpoints.acs_connection_string, transport=target.transport(), **kwargs
    )


def email_client(target, **kwargs) -> EmailClient:
    return EmailClient.from_connection_string(
        target.endpoints.acs_connection_string, transport=target.transport(), **kwargs
    )


def test_identity_lifecycle(target):
    client = identity_client(target)
    user = client.create_user()
    assert user.properties["id"].startswith(f"8:acs:{target.emulator.config.acs_resource_id}_")
    user2, token = client.create_user_and_token([CommunicationTokenScope.VOIP], token_expires_in=timedelta(hours=1))
    # identity 1.5.0 hands back the service's ISO string, 7 fractional digits and +00:00.
    assert isinstance(token.expires_on, str) and token.expires_on.endswith("+00:00")
    expires = datetime.fromisoformat(token.expires_on[:26] + "+00:00")
    assert timedelta(minutes=59) < expires - target.emulator.clock.now() <= timedelta(minutes=60)
    assert target.emulator.acs.token_is_valid(token.token)
    second = client.get_token(user2, [CommunicationTokenScope.VOIP, CommunicationTokenScope.CHAT])
    client.revoke_tokens(user2)
    assert not target.emulator.acs.token_is_valid(token.token)
    assert not target.emulator.acs.token_is_valid(second.token)
    client.delete_user(user2)
    with pytest.raises(ResourceNotFoundError):
        client.get_token(user2, [CommunicationTokenScope.VOIP])
    assert target.emulator.acs.identities[user.properties["id"]].deleted is False
    assert target.emulator.acs.identities[user2.properties["id"]].deleted is True
    paths = [r.path for r in target.emulator.requests_for("acs")]
    assert f"/identities/{user2.properties['id']}/:issueAccessToken" in paths
    assert all("api-version=2023-10-01" in r.query for r in target.emulator.requests_for("acs"))


@pytest.mark.parametrize(("minutes", "accepted"), [(59, False), (60, True), (1440, True), (1441, False)])
def test_expires_in_minutes_must_be_between_60_and_1440(in_process, minutes, accepted):
    client = identity_client(in_process)
    user = client.create_user()
    if accepted:
        client.get_token(user, ["voip"], token_expires_in=timedelta(minutes=minutes))
        _, token = client.create_user_and_token(["chat"], token_expires_in=timedelta(minutes=minutes))
        assert token.token
    else:
        with pytest.raises(HttpResponseError) as raised:
            client.get_token(user, ["voip"], token_expires_in=timedelta(minutes=minutes))
        assert raised.value.status_code == 400
        with pytest.raises(HttpResponseError) as raised:
            client.create_user_and_token(["chat"], token_expires_in=timedelta(minutes=minutes))
        assert raised.value.status_code == 400


def test_wrong_access_key_is_401(target):
    wrong = base64.b64encode(b"x" * 32).decode()
    conn = f"endpoint={target.endpoints.acs_endpoint};accesskey={wrong}"
    client = CommunicationIdentityClient.from_connection_string(conn, transport=target.transport())
    with pytest.raises(ClientAuthenticationError) as raised:
        client.create_user()
    assert raised.value.status_code == 401
    assert raised.value.error.code == "Denied"
    assert target.emulator.acs.rejected_signatures == 1
    assert not target.emulator.acs.identities


class _TamperAfterSigning(SansIOHTTPPolicy):
    """Runs after the HMAC policy (per_retry_policies follow authentication) and changes what was signed."""

    def __init__(self, what: str) -> None:
        self.what = what

    def on_request(self, request) -> None:
        http = request.http_request
        if self.what == "body":
            http.body = http.body.replace("voip", "chat")
        elif self.what == "path":
            http.url = http.url.replace("api-version=2023-10-01", "api-version=2022-10-01")
        elif self.what == "date":
            http.headers["x-ms-date"] = "Mon, 01 Jan 2024 00:00:00 GMT"


@pytest.mark.parametrize("what", ["body", "path", "date"])
def test_tampered_hmac_request_is_401(target, what):
    client = identity_client(target, per_retry_policies=[_TamperAfterSigning(what)])
    with pytest.raises(ClientAuthenticationError):
        client.create_user_and_token(["voip"])
    assert target.emulator.acs.rejected_signatures == 1
    assert not target.emulator.acs.identities


def test_unsigned_request_is_401(in_process):
    response = in_process.session.post("https://acs.emulator.invalid/identities?api-version=2023-10-01", json={})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "Denied", "message": "Denied by the resource provider."}}


def test_email_send_polls_to_succeeded(target):
    statuses: list[str] = []

    def hook(response) -> None:
        if response.http_request.method == "GET":  # the 202 is streamed; its body is checked below
            statuses.append(response.http_response.json()["status"])

    client = email_client(target, raw_response_hook=hook)
    operation_id = str(uuid.uuid4())
    poller = client.begin_send(_message("ada@example.org"), operation_id=operation_id, polling_interval=0)
    assert poller.result() == {"id": operation_id, "status": "Succeeded"}
    assert statuses == ["Running", "Succeeded"]
    unpolled = client.begin_send(_message("bob@example.org"), polling=False)
    assert unpolled.result()["status"] == "NotStarted"
    sent = target.emulator.acs.sent_emails[0]
    assert sent.client_operation_id == operation_id
    assert sent.recipients == ["ada@example.org"]
    assert sent.subject == "You're registered"
    send = target.emulator.requests_for("acs", path="/emails:send")[0]
    assert "api-version=2025-09-01" in send.query
    polls = target.emulator.requests_for("acs", path=f"/emails/operations/{operation_id}")
    assert len(polls) == 2
    # The poller followed Operation-Location verbatim: it must point at the host the client used.
    assert polls[0].host == send.host


def test_email_to_bouncing_domain_fails(in_process):
    client = email_client(in_process)
    poller = client.begin_send(_message("ada@example.org", "nobody@bounce.invalid"), polling_interval=0)
    with pytest.raises(HttpResponseError):
        poller.result()
    [operation] = in_process.emulator.acs.email_operations.values()
    assert operation.status == "Failed"
    assert operation.error["code"] == "EmailDropped"


def test_email_recipient_limit(in_process):
    client = email_client(in_process)
    message = _message(*[f"p{i}@example.org" for i in range(40)])
    message["recipients"]["cc"] = [{"address": f"c{i}@example.org"} for i in range(11)]
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(message, polling_interval=0)
    assert raised.value.status_code == 400
    message["recipients"]["cc"].pop()
    assert client.begin_send(message, polling_interval=0).result()["status"] == "Succeeded"
    assert len(in_process.emulator.acs.sent_emails[0].recipients) == 50


def test_email_size_limit(in_process):
    client = email_client(in_process)
    attachment = {
        "name": "big.pdf",
        "contentType": "application/pdf",
        "contentInBase64": base64.b64encode(b"\0" * (8 * 1024 * 1024)).decode(),
    }
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(_message(attachments=[attachment]), polling_interval=0)
    assert raised.value.status_code == 413
    assert not in_process.emulator.acs.sent_emails


def test_email_validation(in_process):
    client = email_client(in_process)
    bad = _message()
    bad["recipients"]["to"][0]["address"] = "not-an-address"
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(bad, polling_interval=0)
    assert raised.value.status_code == 400
    no_subject = _message()
    no_subject["content"]["subject"] = ""
    with pytest.raises(HttpResponseError):
        client.begin_send(no_subject, polling_interval=0)


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(faults="", email_per_minute=2, email_per_hour=3)])
def test_email_quota_is_429_with_retry_after(in_process):
    client = email_client(in_process, retry_total=0)
    for _ in range(2):
        client.begin_send(_message(), polling_interval=0).result()
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(_message(), polling_interval=0)
    assert raised.value.status_code == 429
    assert 55 <= int(raised.value.response.headers["Retry-After"]) <= 60
    in_process.emulator.clock.advance(61)
    client.begin_send(_message(), polling_interval=0).result()
    with pytest.raises(HttpResponseError) as raised:
        client.begin_send(_message(), polling_interval=0)
    # Now the hour is full: wait until the first send is an hour old.
    assert 3400 < int(raised.value.response.headers["Retry-After"]) <= 3540
    assert len(in_process.emulator.acs.sent_emails) == 3


def test_duplicate_operation_id_is_visible(in_process):
    client = email_client(in_process)
    operation_id = str(uuid.uuid4())
    client.begin_send(_message(), operation_id=operation_id, polling_interval=0).result()
    client.begin_send(_message(), operation_id=operation_id, polling_interval=0).result()
    assert [e.duplicate for e in in_process.emulator.acs.sent_emails] == [False, True]
    assert in_process.emulator.acs.duplicate_operation_ids() == [operation_id]


def test_sms_results_per_recipient(target):
    client = SmsClient.from_connection_string(target.endpoints.acs_connection_string, transport=target.transport())
    results = client.send(
        from_="+18005550100",
        to=["+18005550101", "12345", "+18005550102"],
        message="Starting now",
        enable_delivery_report=True,
        tag="reminder",
    )
    assert [r.successful for r in results] == [True, False, True]
    assert results[0].message_id.startswith("Outgoing_")
    assert results[1].http_status_code == 400
    assert [m.to for m in target.emulator.acs.sms_messages if m.successful] == ["+18005550101", "+18005550102"]
    assert target.emulator.acs.sms_messages[0].tag == "reminder"
    assert "api-version=2021-03-07" in target.emulator.requests_for("acs", path="/sms")[0].query
