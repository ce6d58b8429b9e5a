"""Publish, unpublish, clone and cancel: state changes, their guards, and the iCalendar sequence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.models import EventStatus, ProvisioningStatus

from .conftest import event_form, image_bytes, submit_multipart, upload


def _post(client, event, action):
    return client.submit(f"/manage/events/{event.id}/{action}", {})


def test_publish_then_unpublish(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    event = make_event(me)
    page = client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert "Publish" in page and "Not requested" in page
    response = _post(client, event, "publish")
    assert response.status_code == 303 and response.headers["Location"] == f"/manage/events/{event.id}"
    [saved] = events_in_db()
    assert saved.status == EventStatus.published and saved.published_at is not None
    assert saved.provisioning_status == ProvisioningStatus.pending  # the Teams meeting is queued
    overview = client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert "Unpublish" in overview and f"/events/{event.slug}" in overview
    assert client.get(f"/events/{event.slug}").status_code == 200

    assert _post(client, event, "unpublish").status_code == 303
    assert events_in_db()[0].status == EventStatus.draft
    assert client.get(f"/events/{event.slug}").status_code == 404


@pytest.mark.db_agnostic
def test_publish_refused_for_ended_or_already_published_events(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    start = datetime.now(UTC) - timedelta(days=2)
    ended = make_event(me, starts_at=start, ends_at=start + timedelta(hours=1))
    response = _post(client, ended, "publish")
    assert response.status_code == 303
    assert "already ended" in client.get(response.headers["Location"]).get_data(as_text=True)
    live = make_event(me, status=EventStatus.published)
    _post(client, live, "publish")
    assert [e.status for e in events_in_db()] == [EventStatus.draft, EventStatus.published]
    _post(client, ended, "unpublish")
    assert events_in_db()[0].status == EventStatus.draft


def test_cancel_asks_first_then_is_final_and_bumps_the_sequence(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    event = make_event(me, status=EventStatus.published, ics_sequence=2)
    confirm = client.get(f"/manage/events/{event.id}/cancel")
    assert confirm.status_code == 200
    assert "Cancelling is final" in confirm.get_data(as_text=True)
    assert events_in_db()[0].status == EventStatus.published  # looking at the question changes nothing

    too_long = client.submit(f"/manage/events/{event.id}/cancel", {"reason": "x" * 2001})
    assert too_long.status_code == 422 and 'aria-invalid="true"' in too_long.get_data(as_text=True)
    assert events_in_db()[0].status == EventStatus.published

    response = client.submit(f"/manage/events/{event.id}/cancel", {"reason": "The speaker is ill <sorry>."})
    assert response.status_code == 303
    [saved] = events_in_db()
    assert saved.status == EventStatus.cancelled and saved.cancelled_at is not None
    assert saved.cancellation_reason == "The speaker is ill <sorry>."
    assert saved.ics_sequence == 3
    public = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "ancelled" in public

    # Final: no publishing, no editing, no second cancellation.
    _post(client, event, "publish")
    edit = client.submit(f"/manage/events/{event.id}/edit", event_form(slug=event.slug))
    assert edit.status_code == 422 and "cancelled" in edit.get_data(as_text=True)
    assert client.get(f"/manage/events/{event.id}/cancel").status_code == 303
    again = client.submit(f"/manage/events/{event.id}/cancel", {"reason": ""})
    assert again.status_code == 422
    [saved] = events_in_db()
    assert (saved.status, saved.ics_sequence, saved.title) == (EventStatus.cancelled, 3, event.title)


def test_sequence_bumps_on_time_or_title_changes_only(client, auth, events_in_db):
    auth.login_as_organizer()
    client.submit("/manage/events/new", event_form())
    [event] = events_in_db()
    url = f"/manage/events/{event.id}/edit"
    client.submit(url, event_form(slug=event.slug, capacity="80", approval_required="y"))
    assert events_in_db()[0].ics_sequence == 0
    client.submit(url, event_form(slug=event.slug, ends_at="2031-05-20T21:00"))
    assert events_in_db()[0].ics_sequence == 1
    client.submit(url, event_form(slug=event.slug, ends_at="2031-05-20T21:00", title="New name"))
    assert events_in_db()[0].ics_sequence == 2


def test_clone_copies_everything_one_week_later_as_a_draft(app, client, auth, make_user, events_in_db):
    me = auth.login_as_organizer()
    helper = make_user("helper@example.org")
    response = submit_multipart(client, "/manage/events/new", event_form(
        title="Workshop", capacity="12", registration_closes_at="2031-05-20T12:00", reminder_custom="2 days",
        banner=upload(image_bytes()), banner_alt="Red", co_organizers=[str(helper.id)]))
    assert response.status_code == 303
    [event] = events_in_db()
    for label in ("First", "Second"):
        client.submit(f"/manage/events/{event.id}/questions", {"new-question-label": label,
                      "new-question-kind": "single_choice", "new-question-options": "A\nB"})
    submit_multipart(client, f"/manage/events/{event.id}/speakers",
                     {"new-speaker-name": "Ada", "new-speaker-photo": upload(image_bytes("PNG"))})
    client.submit(f"/manage/events/{event.id}/publish", {})

    response = client.submit(f"/manage/events/{event.id}/clone", {})
    assert response.status_code == 303
    original, clone = events_in_db()
    assert response.headers["Location"] == f"/manage/events/{clone.id}/edit"
    assert "one week later" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert (clone.slug, clone.title, clone.status, clone.owner_id) == ("workshop-copy", "Workshop (copy)",
                                                                      EventStatus.draft, me.id)
    assert clone.starts_at == original.starts_at + timedelta(weeks=1)
    assert clone.registration_closes_at == original.registration_closes_at + timedelta(weeks=1)
    assert (clone.capacity, clone.reminder_offsets, clone.ics_sequence) == (12, [2880, 1440, 60], 0)
    assert [(q.position, q.label, q.options) for q in clone.questions] == [(0, "First", ["A", "B"]),
                                                                         (1, "Second", ["A", "B"])]
    assert [s.name for s in clone.speakers] == ["Ada"]
    assert [u.email for u in clone.co_organizers] == ["helper@example.org"]
    folder = Path(app.config["UPLOAD_FOLDER"])
    assert clone.banner_filename != original.banner_filename and (folder / clone.banner_filename).is_file()
    assert clone.speakers[0].photo_filename != original.speakers[0].photo_filename
    assert original.status == EventStatus.published  # the original is untouched

    client.submit(f"/manage/events/{event.id}/clone", {})
    assert events_in_db()[-1].slug == "workshop-copy-2"


@pytest.mark.db_agnostic
def test_teams_badge_says_cancelled_after_a_cancellation_and_waiting_without_a_connection(client, auth, make_event):
    me = auth.login_as_organizer()
    ready = make_event(me, status=EventStatus.cancelled, cancelled_at=datetime.now(UTC),
                       provisioning_status=ProvisioningStatus.ready)
    status = client.get(f"/manage/events/{ready.id}/teams").get_data(as_text=True)
    assert "Cancelled</span> The event is cancelled, and so is its Teams meeting." in status
    assert "Ready" not in status
    assert ">Ready<" not in client.get("/manage/events/?status=all").get_data(as_text=True)

    parked = make_event(me, status=EventStatus.published, published_at=datetime.now(UTC),
                        provisioning_status=ProvisioningStatus.pending)
    status = client.get(f"/manage/events/{parked.id}/teams").get_data(as_text=True)
    assert "Waiting for Microsoft 365 to be connected" in status and "Provisioning…" not in status
    assert 'hx-trigger="load delay:30s"' in status  # no 2-second polling while nothing can happen
