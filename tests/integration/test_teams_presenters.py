"""Hosts and speakers in the Teams meeting: speakers with an address are invited to the calendar event
and present in the meeting, follow every change of the speaker list, and are told when the event is
cancelled; organizers who may manage the event see the hosts' join link."""

from html import escape

from app.extensions import db
from app.models import Event, ProvisioningStatus
from tests.routes.admin.test_microsoft import connect_service_account
from tests.worker import drain


def _event(app, event_id) -> Event:
    with app.app_context():
        event = db.session.get(Event, event_id)
        _ = event.speakers
        db.session.expunge(event)
        return event


def add_speaker(client, event, name, email=""):
    return client.submit(f"/manage/events/{event.id}/speakers",
                         {"new-speaker-name": name, "new-speaker-email": email})


def attendee_addresses(graph_event):
    return sorted(a["emailAddress"]["address"] for a in graph_event["attendees"])


def presenters(meeting):
    return sorted(p["upn"] for p in meeting["participants"]["attendees"] if p["role"] == "presenter")


def test_speakers_with_an_address_are_invited_as_presenters_and_follow_changes(app, client, auth, make_event,
                                                                               emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    assert add_speaker(client, event, "Ada Lovelace", "ada@example.com").status_code == 303
    assert add_speaker(client, event, "No Address").status_code == 303  # a speaker may have no address

    assert client.submit(f"/manage/events/{event.id}/publish").status_code == 303
    drain(app)
    provisioned = _event(app, event.id)
    assert provisioned.provisioning_status == ProvisioningStatus.ready
    graph_event = emulator.graph.events[provisioned.graph_event_id]
    assert attendee_addresses(graph_event) == ["ada@example.com"]
    assert graph_event["attendees"][0]["type"] == "required"
    meeting = emulator.graph.online_meetings[provisioned.online_meeting_id]
    assert meeting["allowedPresenters"] == "roleIsPresenter"
    assert presenters(meeting) == ["ada@example.com"]

    # A second speaker with an address: invited and presenting after the worker's next round.
    assert add_speaker(client, event, "Grace Hopper", "grace@example.com").status_code == 303
    drain(app)
    assert attendee_addresses(emulator.graph.events[provisioned.graph_event_id]) == [
        "ada@example.com", "grace@example.com"]
    assert presenters(emulator.graph.online_meetings[provisioned.online_meeting_id]) == [
        "ada@example.com", "grace@example.com"]

    # Removing Ada takes her off both lists (Outlook sends her a cancellation).
    ada = next(s for s in _event(app, event.id).speakers if s.email == "ada@example.com")
    assert client.submit(f"/manage/events/{event.id}/speakers/{ada.id}/delete").status_code == 303
    drain(app)
    assert attendee_addresses(emulator.graph.events[provisioned.graph_event_id]) == ["grace@example.com"]
    assert presenters(emulator.graph.online_meetings[provisioned.online_meeting_id]) == ["grace@example.com"]

    # Editing a speaker's bio does not touch Graph; changing the address does.
    grace = next(s for s in _event(app, event.id).speakers if s.email == "grace@example.com")
    before = len(emulator.requests_for("graph", path=f"/v1.0/me/events/{provisioned.graph_event_id}"))
    form = {f"speaker-{grace.id}-name": "Grace Hopper", f"speaker-{grace.id}-bio": "Admiral.",
            f"speaker-{grace.id}-email": "grace@example.com"}
    assert client.submit(f"/manage/events/{event.id}/speakers/{grace.id}", form).status_code == 303
    drain(app)
    assert len(emulator.requests_for("graph", path=f"/v1.0/me/events/{provisioned.graph_event_id}")) == before
    form[f"speaker-{grace.id}-email"] = "g.hopper@example.com"
    client.submit(f"/manage/events/{event.id}/speakers/{grace.id}", form)
    drain(app)
    assert attendee_addresses(emulator.graph.events[provisioned.graph_event_id]) == ["g.hopper@example.com"]

    # Cancelling the event cancels the calendar event, which notifies the speakers.
    assert client.submit(f"/manage/events/{event.id}/cancel", {"reason": "Postponed."}).status_code == 303
    drain(app)
    [notice] = [c for c in emulator.graph.cancellations if c["event_id"] == provisioned.graph_event_id]
    assert notice["attendees"] == ["g.hopper@example.com"] and notice["comment"] == "Postponed."


def test_without_speaker_addresses_only_the_organizer_presents(app, client, auth, make_event, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    client.submit(f"/manage/events/{event.id}/publish")
    drain(app)
    provisioned = _event(app, event.id)
    assert emulator.graph.events[provisioned.graph_event_id]["attendees"] == []
    meeting = emulator.graph.online_meetings[provisioned.online_meeting_id]
    assert meeting["allowedPresenters"] == "organizer" and presenters(meeting) == []


def test_a_bad_speaker_address_is_refused_and_nothing_typed_is_lost(app, client, auth, make_event):
    admin = auth.login_as_admin()
    event = make_event(admin)
    response = add_speaker(client, event, "Ada Lovelace", "ada@@example")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Enter a valid email address" in page and 'value="Ada Lovelace"' in page
    assert _event(app, event.id).speakers == []
    # The address is never on the public page.
    add_speaker(client, event, "Ada Lovelace", "ada@example.com")
    with app.app_context():
        db.session.get(Event, event.id).status = "published"
        db.session.commit()
    public = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Ada Lovelace" in public and "ada@example.com" not in public


def test_the_hosts_join_link_is_shown_only_to_staff_who_may_manage_the_event(app, client, auth, make_event,
                                                                             make_user, emulator):
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    event = make_event(admin)
    client.submit(f"/manage/events/{event.id}/publish")
    drain(app)
    join_url = _event(app, event.id).join_url
    page = client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert "Teams join link for hosts and speakers" in page
    assert f'value="{escape(join_url)}"' in page and 'data-copy-from="host-join-link-' in page
    fragment = client.get(f"/manage/events/{event.id}/teams", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert escape(join_url) in fragment
    assert join_url not in client.get(f"/events/{event.slug}").get_data(as_text=True)

    auth.logout()
    auth.login_as_organizer("other@example.org")  # not an organizer of this event
    for url in (f"/manage/events/{event.id}", f"/manage/events/{event.id}/teams"):
        response = client.get(url)
        assert response.status_code in (403, 404)
        assert escape(join_url) not in response.get_data(as_text=True)
