"""Events get Teams meetings: connect the service account, publish, let the worker provision through
Graph, then reschedule and cancel — and see each step arrive at the (in-process) emulator."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, OutboxItem, OutboxStatus, ProvisioningStatus
from app.services import outbox
from tests.routes.admin.test_microsoft import connect_service_account


@pytest.fixture
def emulator(app):
    return app.extensions["microsoft"].emulator


def publish(client, event):
    return client.submit(f"/manage/events/{event.id}/publish", form_url=f"/manage/events/{event.id}")


def drain(app):
    """What `flask worker` does every few seconds."""
    with app.app_context():
        outbox.drain()
        db.session.remove()


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

    client.submit(f"/manage/events/{event.id}/teams/retry", form_url=f"/manage/events/{event.id}/teams")
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
        for option in re.findall(r"<option\b[^>]*>", options):
            if re.search(r"\bselected\b", option):
                add(name, re.search(r'value="([^"]*)"', option).group(1))
    return {k: v if len(v) > 1 else v[0] for k, v in values.items()}
