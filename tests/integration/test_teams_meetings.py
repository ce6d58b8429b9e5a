"""Events get Teams meetings: connect the service account, publish, let the worker provision through
Graph, then reschedule and cancel — and see each step arrive at the (in-process) emulator."""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, OutboxItem, OutboxStatus, ProvisioningStatus
from tests.routes.admin.test_microsoft import connect_service_account
from tests.worker import drain


def publish(client, event):
    return client.submit(f"/manage/events/{event.id}/publish")


def _event(app, event_id) -> Event:
    with app.app_context():
        event = db.session.get(Event, event_id)
        db.session.expunge(event)
        return event


def test_publish_provisions_meeting_then_reschedule_and_cancel_propagate(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    start = datetime(2026, 12, 10, 17, 0, tzinfo=UTC)
    event = make_event(admin, starts_at=start, ends_at=start + timedelta(hours=1), timezone="America/New_York",
                       attendee_lobby="bypass")

    assert publish(client, event).status_code == 303
    assert _event(app, event.id).provisioning_status == ProvisioningStatus.pending
    status = client.get(f"/manage/events/{event.id}/teams", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Provisioning…" in status and 'hx-trigger="load delay:2s"' in status

    drain(app)
    provisioned = _event(app, event.id)
    assert provisioned.provisioning_status == ProvisioningStatus.ready
    graph_event = emulator.graph.events[provisioned.graph_event_id]
    assert graph_event["subject"] == event.title
    assert graph_event["isOnlineMeeting"] is True and graph_event["onlineMeetingProvider"] == "teamsForBusiness"
    assert f"/events/{event.slug}" in graph_event["body"]["content"]  # links back to the Foyer page
    meeting = emulator.graph.online_meetings[provisioned.online_meeting_id]
    assert meeting["joinWebUrl"] == provisioned.join_url
    assert meeting["lobbyBypassSettings"]["scope"] == "everyone"
    ready = client.get(f"/manage/events/{event.id}/teams", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Ready" in ready and "hx-trigger" not in ready  # stops polling

    # Reschedule: the calendar event follows.
    edit = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    assert "Starts" in edit
    form = _form_values(edit)
    form["starts_at"], form["ends_at"] = "2026-12-10T14:00", "2026-12-10T15:30"
    form["title"] = "Renamed community call"
    response = client.post(f"/manage/events/{event.id}/edit", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    drain(app)
    graph_event = emulator.graph.events[provisioned.graph_event_id]
    assert graph_event["subject"] == "Renamed community call"
    patch = emulator.requests_for("graph", path=f"/v1.0/me/events/{provisioned.graph_event_id}")[-1]
    assert patch.method == "PATCH"

    # Cancel: /cancel with the organizer's comment.
    assert client.submit(f"/manage/events/{event.id}/cancel",
                         {"reason": "The speaker is ill."}).status_code == 303
    drain(app)
    assert provisioned.graph_event_id in emulator.graph.deleted_events
    [cancel] = emulator.requests_for("graph", path=f"/v1.0/me/events/{provisioned.graph_event_id}/cancel")
    assert "The speaker is ill." in cancel.body.decode()
    assert _event(app, event.id).status == EventStatus.cancelled


def test_provisioning_waits_for_a_connection_and_never_blocks_publishing(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    event = make_event(admin)
    assert publish(client, event).status_code == 303
    drain(app)
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "teams.provision"))
        assert item.status == OutboxStatus.waiting
    assert emulator.graph.events == {}
    assert client.get(f"/events/{event.slug}").status_code == 200  # public page is up regardless

    connect_service_account(app, client)  # connecting resumes parked work
    drain(app)
    assert _event(app, event.id).provisioning_status == ProvisioningStatus.ready


def test_graph_failure_marks_event_failed_and_retry_recovers(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    emulator.faults.add(kind="status", group="graph", path="/v1.0/me/events", method="POST", status=400, count=1)
    publish(client, event)
    drain(app)
    failed = _event(app, event.id)
    assert failed.provisioning_status == ProvisioningStatus.failed and failed.provisioning_error
    page = client.get(f"/manage/events/{event.id}/teams").get_data(as_text=True)
    assert "Failed" in page and "Retry" in page

    client.submit(f"/manage/events/{event.id}/teams/retry")
    drain(app)
    assert _event(app, event.id).provisioning_status == ProvisioningStatus.ready


def test_throttled_graph_is_retried_after_retry_after_without_duplicates(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    emulator.faults.add(kind="status", group="graph", path="/v1.0/me/events", method="POST", status=429,
                        retry_after="45", count=1)
    publish(client, event)
    drain(app)
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "teams.provision"))
        assert item.status == OutboxStatus.pending
        assert (item.next_attempt_at - datetime.now(UTC)).total_seconds() > 40
        item.next_attempt_at = datetime.now(UTC)  # time passes
        db.session.commit()
    drain(app)
    assert _event(app, event.id).provisioning_status == ProvisioningStatus.ready
    assert len(emulator.graph.events) == 1


def _form_values(html: str) -> dict:
    """The edit form's current values, as a browser would submit them unchanged."""
    import re
    from html import unescape

    form = re.search(r'<form[^>]*enctype="multipart/form-data"[^>]*>(.*?)</form>', html, re.S)
    html = form.group(1) if form else html
    values: dict[str, list[str]] = {}

    def add(name, value):
        values.setdefault(unescape(name), []).append(unescape(value))

    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'\bname="([^"]+)"', tag)
        if not name:
            continue
        kind = (re.search(r'\btype="([^"]+)"', tag) or [None, "text"])[1]
        value = re.search(r'\bvalue="([^"]*)"', tag)
        if kind in ("file", "submit", "button"):
            continue
        if kind in ("checkbox", "radio") and not re.search(r"\bchecked\b", tag):
            continue
        add(name.group(1), value.group(1) if value else ("y" if kind == "checkbox" else ""))
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        add(name, body.lstrip("\n"))
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        for option, text in re.findall(r"(<option\b[^>]*>)([^<]*)", options):
            if re.search(r"\bselected\b", option):
                value = re.search(r'value="([^"]*)"', option)
                add(name, value.group(1) if value else text.strip())  # an option without value sends its text
    return {k: v if len(v) > 1 else v[0] for k, v in values.items()}


# --- real Graph: zones, edits that keep the meeting, options, a patient lookup ------------------------------


def _edit(client, event_id, **changes):
    form = _form_values(client.get(f"/manage/events/{event_id}/edit").get_data(as_text=True))
    for name, value in changes.items():
        if value is None:
            form.pop(name, None)
        else:
            form[name] = value
    response = client.post(f"/manage/events/{event_id}/edit", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]


def _graph_writes(emulator, path):
    return [json.loads(r.body) for r in emulator.requests_for("graph", path=path) if r.method in ("POST", "PATCH")]


def test_event_in_amsterdam_provisions_and_edits_keep_the_meeting(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    start = datetime(2026, 12, 10, 17, 0, tzinfo=UTC)
    event = make_event(admin, starts_at=start, ends_at=start + timedelta(hours=1), timezone="Europe/Amsterdam")
    publish(client, event)
    drain(app)
    provisioned = _event(app, event.id)
    assert provisioned.provisioning_status == ProvisioningStatus.ready, provisioned.provisioning_error
    [create] = _graph_writes(emulator, "/v1.0/me/events")
    assert create["start"] == {"dateTime": "2026-12-10T18:00:00", "timeZone": "W. Europe Standard Time"}
    [posted] = [r for r in emulator.requests_for("graph", path="/v1.0/me/events") if r.method == "POST"]
    assert posted.headers["Prefer"] == 'outlook.timezone="W. Europe Standard Time"'

    _edit(client, event.id, starts_at="2026-12-10T19:00", ends_at="2026-12-10T20:30", title="Later call")
    drain(app)
    edited = _event(app, event.id)
    graph_event = emulator.graph.events[edited.graph_event_id]
    assert graph_event["subject"] == "Later call" and graph_event["start"]["dateTime"].startswith("2026-12-10T18:00")
    # The edit never sent the body, so the meeting lives on and the stored join URL is the current one.
    [patch] = _graph_writes(emulator, f"/v1.0/me/events/{edited.graph_event_id}")
    assert "body" not in patch and patch["end"]["timeZone"] == "W. Europe Standard Time"
    assert graph_event["onlineMeeting"]["joinUrl"] == edited.join_url
    assert emulator.graph.meeting_by_join_url(edited.join_url)["id"] == edited.online_meeting_id
    assert edited.provisioning_status == ProvisioningStatus.ready


def test_a_new_join_url_after_an_edit_is_stored_and_its_meeting_set_up(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    publish(client, event)
    drain(app)
    before = _event(app, event.id)
    renewed = emulator.graph.renew_meeting(before.graph_event_id)  # Microsoft hands out a new meeting

    _edit(client, event.id, title="Moved call")
    drain(app)
    after = _event(app, event.id)
    assert after.join_url == renewed["joinWebUrl"] != before.join_url
    assert after.join_url == emulator.graph.events[after.graph_event_id]["onlineMeeting"]["joinUrl"]
    assert after.online_meeting_id == renewed["id"]
    assert after.join_meeting_id == renewed["joinMeetingIdSettings"]["joinMeetingId"]
    assert emulator.graph.online_meetings[renewed["id"]]["allowedPresenters"] == "organizer"


def test_meeting_options_from_the_event_form_reach_graph(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    page = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    for label in ("Attendees may turn on their microphone", "Attendees may turn on their camera", "Meeting chat"):
        assert label in page
    _edit(client, event.id, allow_attendee_mic=None, meeting_chat="disabled")  # mic unticked, chat off
    publish(client, event)
    drain(app)
    provisioned = _event(app, event.id)
    assert provisioned.provisioning_status == ProvisioningStatus.ready
    meeting = emulator.graph.online_meetings[provisioned.online_meeting_id]
    assert meeting["allowedPresenters"] == "organizer"
    assert meeting["allowAttendeeToEnableMic"] is False and meeting["allowAttendeeToEnableCamera"] is True
    assert meeting["allowMeetingChat"] == "disabled"
    assert meeting["lobbyBypassSettings"]["scope"] == "everyone"
    ids = meeting["joinMeetingIdSettings"]
    assert (provisioned.join_meeting_id, provisioned.join_passcode) == (ids["joinMeetingId"], ids["passcode"])

    _edit(client, event.id, allow_attendee_mic="y", meeting_chat="enabled", attendee_lobby="lobby")
    drain(app)
    meeting = emulator.graph.online_meetings[provisioned.online_meeting_id]
    assert meeting["allowAttendeeToEnableMic"] is True and meeting["allowMeetingChat"] == "enabled"
    assert meeting["lobbyBypassSettings"]["scope"] == "organization"


def test_an_empty_lookup_right_after_creation_is_retried_until_teams_has_the_meeting(
        app, client, auth, make_event, emulator, monkeypatch):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    monkeypatch.setattr(emulator.config, "meeting_lookup_delay", 30.0)
    event = make_event(admin)
    publish(client, event)
    drain(app)
    waiting = _event(app, event.id)
    assert waiting.provisioning_status == ProvisioningStatus.pending and waiting.join_url
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "teams.provision"))
        assert item.status == OutboxStatus.pending and item.attempts == 0  # not a failure: Teams needs a moment
        assert item.next_attempt_at > datetime.now(UTC)
        item.next_attempt_at = datetime.now(UTC)  # time passes for Foyer ...
        db.session.commit()
    emulator.clock.advance(31)  # ... and for Teams
    drain(app)
    ready = _event(app, event.id)
    assert ready.provisioning_status == ProvisioningStatus.ready and ready.online_meeting_id
    assert len(emulator.graph.events) == 1


def test_a_lookup_still_empty_minutes_after_creation_fails_the_provisioning(
        app, client, auth, make_event, emulator, monkeypatch):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    monkeypatch.setattr(emulator.config, "meeting_lookup_delay", 3600.0)
    event = make_event(admin)
    publish(client, event)
    drain(app)
    graph_event_id = _event(app, event.id).graph_event_id
    long_ago = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    emulator.graph.events[graph_event_id]["createdDateTime"] = long_ago
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "teams.provision"))
        item.next_attempt_at = datetime.now(UTC)
        db.session.commit()
    drain(app)
    failed = _event(app, event.id)
    assert failed.provisioning_status == ProvisioningStatus.failed
    assert "no online meeting" in failed.provisioning_error
