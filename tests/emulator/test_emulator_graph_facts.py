"""Graph refuses what Microsoft's v1.0 facts refuse (specs/graph-v1.0-facts.json, graph-timezones.json):
unknown properties (nested ones too), wrong value types, unknown enum members, evolvable members without
the Prefer header, zones Graph does not list, onlineMeeting properties the update docs don't list. And
the behaviours users report: a body PATCH drops the meeting, new meetings take a moment to be found,
tenants default to "everyone" presenting, ACS participants in attendance records."""

from __future__ import annotations

import json

import pytest

from emulator.graph_facts import properties, write_problems

PREFER_UNKNOWN = {"Prefer": "include-unknown-enum-members"}


def _event_body(**overrides) -> dict:
    body = {
        "subject": "Community call",
        "body": {"contentType": "HTML", "content": "<p>Welcome</p>"},
        "start": {"dateTime": "2030-03-14T18:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2030-03-14T19:00:00", "timeZone": "W. Europe Standard Time"},
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
    }
    body.update(overrides)
    return body


@pytest.fixture
def graph(in_process, bearer):
    def call(method: str, path: str, **kwargs):
        headers = {**bearer, **kwargs.pop("headers", {})}
        return in_process.session.request(method, in_process.graph + path, headers=headers, timeout=5, **kwargs)

    return call


@pytest.fixture
def meeting_event(graph, in_process):
    response = graph("POST", "/me/events", json=_event_body())
    assert response.status_code == 201, response.text
    in_process.emulator.clock.advance(in_process.emulator.config.meeting_lookup_delay)
    return response.json()


@pytest.fixture
def meeting(in_process, meeting_event):
    return in_process.emulator.graph.meeting_by_join_url(meeting_event["onlineMeeting"]["joinUrl"])


def _error(response) -> tuple[int, str, str]:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "innerError"} and "request-id" in error["innerError"]
    return response.status_code, error["code"], error["message"]


@pytest.mark.parametrize(
    ("overrides", "code", "words"),
    [
        ({"colour": "blue"}, "RequestBodyRead", "'colour' does not exist on type 'microsoft.graph.event'"),
        ({"location": {"displayName": "Hall", "floor": 2}}, "RequestBodyRead", "'floor' does not exist on type "
         "'microsoft.graph.location'"),
        ({"isOnlineMeeting": "yes"}, "RequestBodyRead", "expected type 'Edm.Boolean'"),
        ({"reminderMinutesBeforeStart": "15"}, "RequestBodyRead", "expected type 'Edm.Int32'"),
        ({"importance": "urgent"}, "RequestBodyRead", "Requested value 'urgent' was not found"),
        ({"body": {"contentType": "markdown", "content": "x"}}, "RequestBodyRead", "'markdown' was not found"),
        ({"attendees": {"emailAddress": {"address": "a@example.org"}}}, "RequestBodyRead", "collection"),
    ],
)
def test_event_writes_are_checked_against_the_v1_facts(graph, in_process, overrides, code, words):
    response = graph("POST", "/me/events", json=_event_body(**overrides))
    status, got_code, message = _error(response)
    assert (status, got_code) == (400, code) and words in message
    assert in_process.emulator.graph.events == {}


def test_derived_types_and_graphs_own_casing_are_accepted(graph):
    body = _event_body(location={"@odata.type": "#microsoft.graph.location", "displayName": "Hall"})
    assert graph("POST", "/me/events", json=body).status_code == 201  # "HTML" too, as Graph's docs send it


def test_event_patch_and_cancel_are_checked_too(graph, meeting_event):
    path = f"/me/events/{meeting_event['id']}"
    assert _error(graph("PATCH", path, json={"subject": 5}))[:2] == (400, "RequestBodyRead")
    assert _error(graph("PATCH", path, json={"joinUrl": "x"}))[:2] == (400, "RequestBodyRead")
    status, code, message = _error(graph("POST", f"{path}/cancel", json={"comment": "x", "notify": True}))
    assert (status, code) == (400, "RequestBodyRead") and "'notify'" in message and "'cancel'" in message
    assert graph("POST", f"{path}/cancel", json={"Comment": "Sorry"}).status_code == 202


@pytest.mark.parametrize("zone", ["Europe/Amsterdam", "Europe/Madrid", "America/Toronto", "Mars/Olympus"])
def test_iana_zones_graph_does_not_list_are_refused(graph, in_process, zone):
    times = {"start": {"dateTime": "2030-03-14T18:00:00", "timeZone": zone},
             "end": {"dateTime": "2030-03-14T19:00:00", "timeZone": zone}}
    status, code, message = _error(graph("POST", "/me/events", json=_event_body(**times)))
    assert (status, code) == (400, "TimeZoneNotSupportedException") and zone in message
    status, code, _ = _error(graph("GET", "/me/events", headers={"Prefer": f'outlook.timezone="{zone}"'}))
    assert (status, code) == (400, "TimeZoneNotSupportedException")


@pytest.mark.parametrize("zone", ["Romance Standard Time", "Europe/Berlin", "Europe/Kiev", "Asia/Rangoon", "UTC"])
def test_windows_names_and_listed_iana_names_are_accepted(graph, zone):
    times = {"start": {"dateTime": "2030-03-14T18:00:00", "timeZone": zone},
             "end": {"dateTime": "2030-03-14T19:00:00", "timeZone": zone}}
    response = graph("POST", "/me/events", json=_event_body(**times), headers={"Prefer": f'outlook.timezone="{zone}"'})
    assert response.status_code == 201, response.text
    assert response.json()["start"]["timeZone"] == zone


def test_new_meetings_carry_only_v1_properties_and_tenant_defaults(graph, meeting):
    response = graph("GET", f"/me/onlineMeetings/{meeting['id']}")
    body = response.json()
    declared = properties("onlineMeeting")
    assert not [k for k in body if not k.startswith("@odata") and k not in declared]
    assert "autoAdmittedUsers" not in body and "outerMeetingAutoAdmittedUsers" not in body
    assert body["allowedPresenters"] == "everyone"
    assert body["lobbyBypassSettings"]["scope"]
    assert body["joinMeetingIdSettings"]["joinMeetingId"] and body["joinMeetingIdSettings"]["passcode"]


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"autoAdmittedUsers": "everyone"}, "does not exist on type 'microsoft.graph.onlineMeeting'"),
        ({"joinMeetingIdSettings": {"isPasscodeRequired": False}}, "can't be updated"),
        ({"joinWebUrl": "https://teams.microsoft.com/l/x"}, "can't be updated"),
        ({"startDateTime": "2030-03-14T18:00:00Z"}, "requires both startDateTime and endDateTime"),
        ({"allowedPresenters": "speakers"}, "Requested value 'speakers' was not found"),
        ({"allowMeetingChat": True}, "Cannot convert the literal 'true'"),
        ({"lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": "no"}}, "Edm.Boolean"),
    ],
)
def test_meeting_patch_takes_only_what_the_update_docs_list(graph, meeting, patch, words):
    status, _, message = _error(graph("PATCH", f"/me/onlineMeetings/{meeting['id']}", json=patch))
    assert status == 400 and words in message


def test_evolvable_enum_members_need_the_prefer_header_both_ways(graph, in_process, meeting):
    path = f"/me/onlineMeetings/{meeting['id']}"
    invited = {"lobbyBypassSettings": {"scope": "invited"}}
    status, _, message = _error(graph("PATCH", path, json=invited))
    assert status == 400 and "include-unknown-enum-members" in message
    assert graph("PATCH", path, json=invited, headers=PREFER_UNKNOWN).json()["lobbyBypassSettings"]["scope"] == \
        "invited"
    assert graph("GET", path).json()["lobbyBypassSettings"]["scope"] == "unknownFutureValue"
    assert graph("GET", path, headers=PREFER_UNKNOWN).json()["lobbyBypassSettings"]["scope"] == "invited"
    join_url = meeting["joinWebUrl"].replace("'", "''")
    [found] = graph("GET", "/me/onlineMeetings", params={"$filter": f"JoinWebUrl eq '{join_url}'"}).json()["value"]
    assert found["lobbyBypassSettings"]["scope"] == "unknownFutureValue"


def test_meeting_patch_applies_the_options(graph, meeting):
    options = {"allowedPresenters": "organizer", "allowAttendeeToEnableMic": False,
               "allowAttendeeToEnableCamera": False, "allowMeetingChat": "disabled",
               "lobbyBypassSettings": {"scope": "everyone", "isDialInBypassEnabled": False}}
    body = graph("PATCH", f"/me/onlineMeetings/{meeting['id']}", json=options).json()
    assert {k: body[k] for k in options} == options


def test_body_patch_without_the_meeting_blob_drops_the_meeting(graph, in_process, meeting_event, meeting):
    path = f"/me/events/{meeting_event['id']}"
    response = graph("PATCH", path, json={"body": {"contentType": "HTML", "content": "<p>New text</p>"}})
    assert response.status_code == 200
    assert response.json()["onlineMeeting"] is None and response.json()["isOnlineMeeting"] is True
    assert in_process.emulator.graph.meeting_by_join_url(meeting["joinWebUrl"]) is None
    assert meeting["id"] in in_process.emulator.graph.dropped_meetings


def test_body_patch_that_keeps_the_meeting_blob_keeps_the_meeting(graph, in_process, meeting_event, meeting):
    spliced = meeting_event["body"]["content"] + "<p>More</p>"
    response = graph("PATCH", f"/me/events/{meeting_event['id']}", json={"body": {"contentType": "HTML",
                                                                                  "content": spliced}})
    assert response.json()["onlineMeeting"]["joinUrl"] == meeting["joinWebUrl"]


def test_subject_and_time_patch_keeps_the_meeting(graph, meeting_event):
    times = {"start": {"dateTime": "2030-03-15T18:00:00", "timeZone": "Romance Standard Time"},
             "end": {"dateTime": "2030-03-15T19:00:00", "timeZone": "Romance Standard Time"}}
    response = graph("PATCH", f"/me/events/{meeting_event['id']}", json={"subject": "Renamed", **times})
    assert response.json()["onlineMeeting"]["joinUrl"] == meeting_event["onlineMeeting"]["joinUrl"]


def test_new_meetings_are_found_by_join_url_only_after_the_set_up_delay(graph, in_process):
    in_process.emulator.config.meeting_lookup_delay = 20
    event = graph("POST", "/me/events", json=_event_body()).json()
    query = {"$filter": f"JoinWebUrl eq '{event['onlineMeeting']['joinUrl']}'"}
    assert graph("GET", "/me/onlineMeetings", params=query).json()["value"] == []
    in_process.emulator.clock.advance(19)
    assert graph("GET", "/me/onlineMeetings", params=query).json()["value"] == []
    in_process.emulator.clock.advance(2)
    assert len(graph("GET", "/me/onlineMeetings", params=query).json()["value"]) == 1


def test_attendance_records_show_acs_participants_as_microsoft_does(graph, in_process, meeting):
    acs_id = f"8:acs:{in_process.emulator.config.acs_resource_id}_00000012-518d-e776-71d3-44482200c7c3"
    interval = [("2030-03-14T17:00:00Z", "2030-03-14T17:30:00Z")]
    report = in_process.emulator.graph.add_attendance_report(meeting["id"], records=[
        {"userId": acs_id, "displayName": "Misty Croft", "intervals": interval},
        {"emailAddress": "ray@contoso.example", "displayName": "Ray", "role": "Organizer", "intervals": interval},
    ])
    path = f"/me/onlineMeetings/{meeting['id']}/attendanceReports/{report['id']}/attendanceRecords"
    acs, teams = graph("GET", path).json()["value"]
    assert acs["identity"] == {"@odata.type": "#microsoft.graph.azureCommunicationServicesUserIdentity",
                               "id": acs_id, "displayName": "Misty Croft",
                               "azureCommunicationServicesResourceId": in_process.emulator.config.acs_resource_id}
    assert acs["emailAddress"] == "" and acs["role"] == "Presenter"  # the tenant default lets everyone present
    assert acs["id"] != acs_id and acs["totalAttendanceInSeconds"] == 1800
    assert teams["identity"]["@odata.type"] == "#microsoft.graph.communicationsUserIdentity"

    graph("PATCH", f"/me/onlineMeetings/{meeting['id']}", json={"allowedPresenters": "organizer"})
    later = in_process.emulator.graph.add_attendance_report(meeting["id"], records=[
        {"userId": acs_id, "displayName": "Misty Croft", "intervals": interval}])
    assert later["attendanceRecords"][0]["role"] == "Attendee"


def test_the_suite_walk_reports_what_graph_would_refuse():
    good = json.dumps(_event_body()).encode()
    assert write_problems("POST", "/v1.0/me/events", good, ['outlook.timezone="W. Europe Standard Time"']) == []
    amsterdam = _event_body(start={"dateTime": "2030-03-14T18:00:00", "timeZone": "Europe/Amsterdam"})
    problems = write_problems("POST", "/v1.0/me/events", json.dumps(amsterdam).encode(),
                              ['outlook.timezone="Europe/Amsterdam"'])
    assert len(problems) == 2 and all("Europe/Amsterdam" in p for p in problems)
    assert write_problems("PATCH", "/v1.0/me/onlineMeetings/abc", b'{"autoAdmittedUsers": "everyone"}', [])
    assert write_problems("PATCH", "/v1.0/me/onlineMeetings/abc",
                          b'{"lobbyBypassSettings": {"scope": "invited"}}', [])
    assert not write_problems("PATCH", "/v1.0/me/onlineMeetings/abc",
                              b'{"lobbyBypassSettings": {"scope": "invited"}}', ["include-unknown-enum-members"])
    assert write_problems("POST", "/v1.0/me/events/abc/cancel", b'{"reason": "x"}', [])
    assert write_problems("GET", "/v1.0/me/events", b"", ['outlook.timezone="Europe/Madrid"'])
