"""ACS token scopes at the emulator: exactly the scopes ACS documents, anything else refused as ACS does."""

from __future__ import annotations

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.exceptions import HttpResponseError

DOCUMENTED = ["chat", "voip", "chat.join", "chat.join.limited", "voip.join"]


def identity_client(target) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        target.endpoints.acs_connection_string, transport=target.transport()
    )


@pytest.mark.parametrize("scope", DOCUMENTED)
def test_each_documented_scope_is_issued_and_recorded(in_process, scope):
    client = identity_client(in_process)
    user = client.create_user()
    token = client.get_token(user, [scope])
    assert in_process.emulator.acs.token_scopes(token.token) == [scope]
    _, created = client.create_user_and_token([scope])
    assert in_process.emulator.acs.token_scopes(created.token) == [scope]


@pytest.mark.parametrize("scopes", [["voip.start"], ["chat", "calls"], ["voip.join", ""], []])
def test_other_scopes_are_refused_with_acs_error_shape(in_process, scopes):
    client = identity_client(in_process)
    user = client.create_user()
    with pytest.raises(HttpResponseError) as raised:
        client.get_token(user, scopes)
    assert raised.value.status_code == 400
    body = raised.value.response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "ValidationError" and body["error"]["message"]
    identities = in_process.emulator.acs.identities
    assert not identities[user.properties["id"]].tokens  # nothing was issued
