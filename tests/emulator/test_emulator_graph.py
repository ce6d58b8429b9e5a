"""Graph: /me, events with Teams meetings, onlineMeetings, attendance, paging, $batch — with requests."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

TEAMS_JOIN_RE = re.compile(
    r"^https://teams\.microsoft\.com/l/meetup-join/19%3ameeting_[A-Za-z0-9]+%40thread\.v2/0\?context="
    r"%7b%22Tid%22%3a%22[0-9a-f-]{36}%22%2c%22Oid%22%3a%22[0-9a-f-]{36}%22%7d$"
)


def _event_body(**overrides) -> dict:
    body = {
        "subject": "Community call",
        "body": {"contentType": "HTML", "content": "<p>Welcome</p>"},
        "start": {"dateTime": "2030-03-14T18:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2030-03-14T19:00:00", "timeZone": "W. Europe Standard Time"},
        "attendees": [{"emailAddress": {"address": "ada@example.org", "name": "Ada"}, "type": "required"}],
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
    }
    body.update(overrides)
    return body


@pytest.fixture
def graph(in_process, bearer):
    """`graph(method, path, **kwargs)` against the emulator with the service account's token."""

    def call(method: str, path: str, **kwargs):
        headers = {**bearer, **kwargs.pop("headers", {})}
        url = path if path.startswith("https://") else in_process.graph + path
        return in_process.session.request(method, url, headers=headers, timeout=5, **kwargs)

    return call


@pytest.fixture
def meeting_event(graph, in_process):
    response = graph("POST", "/me/events", json=_event_body())
    assert response.status_code == 201, response.text
    in_process.emulator.clock.advance(in_process.emulator.config.meeting_lookup_delay)  # Teams sets it up
    return response.json()


def test_me_returns_the_signed_in_user_with_request_ids(graph, in_process):
    response = graph("GET", "/me", headers={"client-request-id": "abc-123"})
    assert response.status_code == 200
    assert response.json()["userPrincipalName"] == in_process.emulator.service_account_upn
    assert response.headers["client-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["request-id"])


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-jwt", "CompactToken parsing failed with error code: 80049217"),
        ("Bearer a.b.c", "Access token validation failure."),
    ],
)
def test_missing_or_unknown_token_is_401_with_graph_error_json(in_process, authorization, message):
    headers = {"Authorization": authorization} if authorization else {}
    response = in_process.session.get(in_process.graph + "/me/events", headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["message"] == message
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", error["innerError"]["date"])
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm=""')


def test_expired_token_is_401(graph, in_process):
    assert graph("GET", "/me").status_code == 200
    in_process.emulator.clock.advance(3601)
    response = graph("GET", "/me")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Access token has expired or is not yet valid."


def test_token_without_calendar_scope_is_403(in_process, sign_in):
    result = sign_in(in_process, in_process.msal_app(), ["User.Read"])
    headers = {"Authorization": "Bearer " + result["access_token"]}
    assert in_process.session.get(in_process.graph + "/me", headers=headers).status_code == 200
    response = in_process.session.post(in_process.graph + "/me/events", json=_event_body(), headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ErrorAccessDenied"
    assert not in_process.emulator.graph.events


def test_unknown_segment_is_a_graph_400(graph):
    response = graph("GET", "/me/eventz")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Resource not found for the segment 'eventz'."


def test_create_event_with_teams_meeting(graph, in_process, meeting_event):
    join_url = meeting_event["onlineMeeting"]["joinUrl"]
    assert TEAMS_JOIN_RE.match(join_url), join_url
    assert meeting_event["isOnlineMeeting"] is True
    assert meeting_event["onlineMeetingProvider"] == "teamsForBusiness"
    assert meeting_event["onlineMeetingUrl"] is None
    assert meeting_event["start"] == {"dateTime": "2030-03-14T17:00:00.0000000", "timeZone": "UTC"}
    assert meeting_event["originalStartTimeZone"] == "W. Europe Standard Time"
    assert meeting_event["attendees"][0]["status"]["response"] == "none"
    assert join_url in meeting_event["body"]["content"]
    stored = in_process.emulator.graph.events[meeting_event["id"]]
    assert stored["subject"] == "Community call"
    meeting = in_process.emulator.graph.meeting_by_join_url(join_url)
    assert meeting["startDateTime"] == "2030-03-14T17:00:00.0000000Z"
    assert meeting["participants"]["attendees"][0]["upn"] == "ada@example.org"


def test_get_list_and_prefer_outlook_timezone(graph, meeting_event):
    windows = graph(
        "GET", f"/me/events/{meeting_event['id']}", headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'}
    )
    assert windows.json()["start"] == {"dateTime": "2030-03-14T10:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert windows.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'
    iana = graph("GET", "/me/events", headers={"Prefer": 'outlook.timezone="Asia/Tokyo"'})
    assert iana.json()["value"][0]["end"] == {"dateTime": "2030-03-15T03:00:00.0000000", "timeZone": "Asia/Tokyo"}
    plain = graph("GET", "/me/events")
    assert "Preference-Applied" not in plain.headers
    assert plain.json()["value"][0]["start"]["timeZone"] == "UTC"


def test_filter_by_join_url_needs_the_url_encoded_once(graph, meeting_event):
    join_url = meeting_event["onlineMeeting"]["joinUrl"]
    # requests percent-encodes the parameter value: the join URL's %3a becomes %253a on the wire.
    found = graph("GET", "/me/onlineMeetings", params={"$filter": f"JoinWebUrl eq '{join_url}'"})
    assert found.status_code == 200
    [meeting] = found.json()["value"]
    assert meeting["joinWebUrl"] == join_url
    assert meeting["id"]
    # Pasting the URL unencoded means the server decodes %3a to ':' and nothing matches.
    raw = graph("GET", f"/me/onlineMeetings?$filter=JoinWebUrl%20eq%20'{join_url}'")
    assert raw.status_code == 200
    assert raw.json()["value"] == []
    # The property name is matched case-insensitively.
    lower = graph("GET", "/me/onlineMeetings?$filter=" + quote(f"joinWebUrl eq '{join_url}'", safe=""))
    assert len(lower.json()["value"]) == 1


def test_online_meetings_list_requires_a_filter(graph):
    response = graph("GET", "/me/onlineMeetings")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_get_and_patch_online_meeting(graph, in_process, meeting_event):
    meeting = in_process.emulator.graph.meeting_by_join_url(meeting_event["onlineMeeting"]["joinUrl"])
    got = graph("GET", f"/me/onlineMeetings/{meeting['id']}")
    assert got.json()["lobbyBypassSettings"] == {"scope": "organization", "isDialInBypassEnabled": False}
    patched = graph(
        "PATCH",
        f"/me/onlineMeetings/{meeting['id']}",
        json={
            "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": True},
            "allowedPresenters": "organizer",
            "allowMeetingChat": "disabled",
        },
    )
    assert patched.status_code == 200
    assert patched.json()["lobbyBypassSettings"] == {"scope": "everyone", "isDialInBypassEnabled": True}
    assert in_process.emulator.graph.online_meetings[meeting["id"]]["allowedPresenters"] == "organizer"
    bad = graph("PATCH", f"/me/onlineMeetings/{meeting['id']}", json={"allowedPresenters": "anyone"})
    assert bad.status_code == 400
    assert in_process.emulator.graph.online_meetings[meeting["id"]]["allowedPresenters"] == "organizer"
    assert graph("GET", "/me/onlineMeetings/nope").status_code == 404


def test_meeting_presenters_need_role_is_presenter_and_a_real_participant_shape(graph, in_process, meeting_event):
    meeting = in_process.emulator.graph.meeting_by_join_url(meeting_event["onlineMeeting"]["joinUrl"])
    path = f"/me/onlineMeetings/{meeting['id']}"
    presenter = {"upn": "ada@example.org", "role": "presenter"}
    # Graph: "to set the presenter role … allowedPresenters must also be set to roleIsPresenter".
    refused = graph("PATCH", path, json={"allowedPresenters": "organizer", "participants": {"attendees": [presenter]}})
    assert refused.status_code == 400
    assert in_process.emulator.graph.online_meetings[meeting["id"]]["allowedPresenters"] == "everyone"
    for bad in ({"attendees": [{"email": "ada@example.org", "role": "presenter"}]},
                {"attendees": [{"upn": "ada@example.org", "role": "speaker"}]},
                {"attendees": [{"upn": "ada@example.org", "role": "coorganizer"}]},  # needs the Prefer header
                {"presenters": []}):
        assert graph("PATCH", path, json={"allowedPresenters": "roleIsPresenter", "participants": bad}).status_code \
            == 400, bad
    accepted = graph("PATCH", path, json={"allowedPresenters": "roleIsPresenter",
                                          "participants": {"attendees": [presenter]}})
    assert accepted.status_code == 200
    stored = in_process.emulator.graph.online_meetings[meeting["id"]]
    assert [(p["upn"], p["role"]) for p in stored["participants"]["attendees"]] == [("ada@example.org", "presenter")]
    assert stored["participants"]["organizer"]["role"] == "presenter"  # the organizer stays
    # A new event attendee joins the meeting as an attendee; the presenter keeps her role.
    graph("PATCH", f"/me/events/{meeting_event['id']}", json={"attendees": [
        {"emailAddress": {"address": "ada@example.org", "name": "Ada"}, "type": "required"},
        {"emailAddress": {"address": "bob@example.org", "name": "Bob"}, "type": "required"}]})
    roles = {p["upn"]: p["role"] for p in stored["participants"]["attendees"]}
    assert roles == {"ada@example.org": "presenter", "bob@example.org": "attendee"}


def test_patch_event_updates_meeting_and_change_key(graph, in_process, meeting_event):
    response = graph(
        "PATCH",
        f"/me/events/{meeting_event['id']}",
        json={
            "subject": "Renamed",
            "start": {"dateTime": "2030-03-14T20:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-03-14T21:00:00", "timeZone": "UTC"},
        },
        headers={"Prefer": 'outlook.timezone="Europe/Berlin"'},
    )
    assert response.status_code == 200
    event = response.json()
    assert event["subject"] == "Renamed"
    assert event["start"] == {"dateTime": "2030-03-14T21:00:00.0000000", "timeZone": "Europe/Berlin"}
    assert event["changeKey"] != meeting_event["changeKey"]
    meeting = in_process.emulator.graph.meeting_by_join_url(meeting_event["onlineMeeting"]["joinUrl"])
    assert meeting["subject"] == "Renamed"
    assert meeting["startDateTime"] == "2030-03-14T20:00:00.0000000Z"
    stale = graph(
        "PATCH",
        f"/me/events/{meeting_event['id']}",
        json={"subject": "x"},
        headers={"If-Match": meeting_event["@odata.etag"]},
    )
    assert stale.status_code == 412
    off = graph("PATCH", f"/me/events/{meeting_event['id']}", json={"isOnlineMeeting": False})
    assert off.status_code == 400


def test_event_validation_errors(graph, in_process):
    unknown = graph("POST", "/me/events", json=_event_body(colour="red"))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "RequestBodyRead"
    zone = graph("POST", "/me/events", json=_event_body(start={"dateTime": "2030-01-01T10:00:00", "timeZone": "Mars"}))
    assert zone.status_code == 400
    assert zone.json()["error"]["code"] == "TimeZoneNotSupportedException"
    backwards = graph(
        "POST", "/me/events", json=_event_body(end={"dateTime": "2030-03-14T08:00:00", "timeZone": "UTC"})
    )
    assert backwards.status_code == 400
    not_json = graph("POST", "/me/events", data="{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not in_process.emulator.graph.events


def test_transaction_id_prevents_duplicate_creates(graph, in_process):
    first = graph("POST", "/me/events", json=_event_body(transactionId="reg-42"))
    second = graph("POST", "/me/events", json=_event_body(transactionId="reg-42"))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(in_process.emulator.graph.events) == 1
    assert len(in_process.emulator.graph.online_meetings) == 1


def test_cancel_and_delete(graph, in_process, meeting_event):
    cancelled = graph("POST", f"/me/events/{meeting_event['id']}/cancel", json={"comment": "Sorry, cancelled."})
    assert cancelled.status_code == 202
    assert cancelled.content == b""
    assert graph("GET", f"/me/events/{meeting_event['id']}").json()["error"]["code"] == "ErrorItemNotFound"
    [notice] = in_process.emulator.graph.cancellations
    assert notice == {**notice, "kind": "cancel", "comment": "Sorry, cancelled.", "attendees": ["ada@example.org"]}
    other = graph("POST", "/me/events", json=_event_body(isOnlineMeeting=False, onlineMeetingProvider="unknown"))
    assert other.json()["onlineMeeting"] is None
    assert graph("DELETE", f"/me/events/{other.json()['id']}").status_code == 204
    assert in_process.emulator.graph.cancellations[-1]["kind"] == "delete"
    assert not in_process.emulator.graph.events


def test_paging_follows_next_link(graph, in_process):
    created = {graph("POST", "/me/events", json=_event_body(subject=f"E{i}")).json()["id"] for i in range(5)}
    seen, pages = [], 0
    url = in_process.graph + "/me/events?$top=2"
    while url:
        page = graph("GET", url).json()
        pages += 1
        seen += [e["id"] for e in page["value"]]
        url = page.get("@odata.nextLink")
        if url:
            assert url.startswith("https://graph.emulator.invalid/v1.0/me/events?")
    assert pages == 3
    assert sorted(seen) == sorted(created)
    assert graph("GET", "/me/events?$top=0").status_code == 400
    default = graph("GET", "/me/events", headers={"Prefer": "odata.maxpagesize=4"}).json()
    assert len(default["value"]) == 4 and "@odata.nextLink" in default


def test_attendance_reports_and_records_with_paging(graph, in_process, meeting_event):
    meeting = in_process.emulator.graph.meeting_by_join_url(meeting_event["onlineMeeting"]["joinUrl"])
    report = in_process.emulator.graph.add_attendance_report(
        meeting["id"],
        records=[
            {
                "emailAddress": "ada@example.org",
                "displayName": "Ada",
                "intervals": [
                    ("2030-03-14T17:00:00Z", "2030-03-14T17:30:00Z"),
                    ("2030-03-14T17:40:00Z", "2030-03-14T18:00:00Z"),
                ],
            },
            {
                "emailAddress": None,
                "displayName": "Guest (ACS)",
                "intervals": [("2030-03-14T17:05:00Z", "2030-03-14T17:06:00Z")],
            },
            {"emailAddress": "bob@example.org", "displayName": "Bob", "role": "Presenter"},
        ],
    )
    reports = graph("GET", f"/me/onlineMeetings/{meeting['id']}/attendanceReports").json()["value"]
    assert [r["id"] for r in reports] == [report["id"]]
    assert reports[0]["totalParticipantCount"] == 3
    assert "attendanceRecords" not in reports[0]
    base = f"{in_process.graph}/me/onlineMeetings/{meeting['id']}/attendanceReports/{report['id']}"
    url = base + "/attendanceRecords?$top=2"
    records = []
    while url:
        page = graph("GET", url).json()
        records += page["value"]
        url = page.get("@odata.nextLink")
        assert url is None or "$skiptoken=" in url
    assert [r["totalAttendanceInSeconds"] for r in records] == [3000, 60, 0]
    assert records[0]["attendanceIntervals"][1]["durationInSeconds"] == 1200
    expanded = graph(
        "GET", f"/me/onlineMeetings/{meeting['id']}/attendanceReports/{report['id']}?$expand=attendanceRecords"
    ).json()
    assert len(expanded["attendanceRecords"]) == 3


def test_attendance_needs_artifact_scope(in_process, sign_in, meeting_event):
    result = sign_in(in_process, in_process.msal_app(), ["OnlineMeetings.ReadWrite"])
    meeting = in_process.emulator.graph.meeting_by_join_url(meeting_event["onlineMeeting"]["joinUrl"])
    response = in_process.session.get(
        f"{in_process.graph}/me/onlineMeetings/{meeting['id']}/attendanceReports",
        headers={"Authorization": "Bearer " + result["access_token"]},
    )
    assert response.status_code == 403


def test_attendance_can_be_seeded_over_http(tls, sign_in):
    token = sign_in(tls, tls.msal_app())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    event = tls.session.post(tls.graph + "/me/events", json=_event_body(), headers=headers, timeout=5).json()
    meeting = tls.emulator.graph.meeting_by_join_url(event["onlineMeeting"]["joinUrl"])
    seeded = tls.session.post(
        f"{tls.server.base_url}/_emulator/graph/online-meetings/{meeting['id']}/attendance-reports",
        json={
            "records": [
                {"emailAddress": "ada@example.org", "intervals": [["2030-03-14T17:00:00Z", "2030-03-14T17:10:00Z"]]}
            ]
        },
        timeout=5,
    )
    assert seeded.status_code == 201
    records = tls.session.get(
        f"{tls.graph}/me/onlineMeetings/{meeting['id']}/attendanceReports/{seeded.json()['id']}/attendanceRecords",
        headers=headers,
        timeout=5,
    ).json()["value"]
    assert records[0]["totalAttendanceInSeconds"] == 600


def test_batch_dispatches_each_request(graph, in_process):
    response = graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "POST",
                    "url": "/me/events",
                    "headers": {"Content-Type": "application/json"},
                    "body": _event_body(subject="Batched"),
                },
                {
                    "id": "2",
                    "method": "GET",
                    "url": "/me/events",
                    "dependsOn": ["1"],
                    "headers": {"Prefer": 'outlook.timezone="UTC"'},
                },
                {"id": "3", "method": "GET", "url": "/me/events/does-not-exist"},
            ]
        },
    )
    assert response.status_code == 200
    items = {r["id"]: r for r in response.json()["responses"]}
    assert items["1"]["status"] == 201 and items["1"]["body"]["subject"] == "Batched"
    assert items["2"]["status"] == 200 and items["2"]["body"]["value"][0]["subject"] == "Batched"
    assert items["3"]["status"] == 404 and items["3"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert [r.path for r in in_process.emulator.requests_for("graph")][-3:] == [
        "/v1.0/me/events",
        "/v1.0/me/events",
        "/v1.0/me/events/does-not-exist",
    ]


def test_batch_over_20_requests_is_400(graph):
    requests_ = [{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)]
    response = graph("POST", "/$batch", json={"requests": requests_})
    assert response.status_code == 400
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "BadRequest",
        "message": "Number of requests inside batch exceed the limit.",
    }
    ok = graph("POST", "/$batch", json={"requests": requests_[:20]})
    assert ok.status_code == 200 and len(ok.json()["responses"]) == 20


def test_batch_item_failed_dependency_and_bad_urls(graph):
    response = graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {"id": "a", "method": "GET", "url": "/me/events/missing"},
                {"id": "b", "method": "GET", "url": "/me", "dependsOn": ["a"]},
                {"id": "c", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"},
            ]
        },
    )
    items = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert items == {"a": 404, "b": 424, "c": 400}


def test_calendar_advertises_teams(graph):
    calendar = graph("GET", "/me/calendar").json()
    assert calendar["allowedOnlineMeetingProviders"] == ["teamsForBusiness"]


def test_write_without_json_content_type_is_400(graph, in_process):
    response = graph("POST", "/me/events", data=json.dumps(_event_body()), headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Entity only allows writes with a JSON Content-Type header."
    assert not in_process.emulator.graph.events


def test_batch_body_without_content_type_fails_the_whole_batch(graph, in_process):
    response = graph(
        "POST",
        "/$batch",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/me"},
                {"id": "2", "method": "POST", "url": "/me/events", "body": _event_body()},
            ]
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert not in_process.emulator.requests_for("graph", path="/v1.0/me")
    assert not in_process.emulator.graph.events
