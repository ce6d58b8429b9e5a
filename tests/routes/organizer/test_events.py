"""Organizer event list, create and edit: the happy paths, validation, uploads and time zones."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from app.models import EventStatus, QuestionKind
from tests.images import gif_bomb

from .conftest import event_form, image_bytes, submit_multipart, upload

NEW = "/manage/events/new"


@pytest.mark.db_agnostic
def test_list_without_events_offers_to_create_the_first(client, auth):
    auth.login_as_organizer()
    page = client.get("/manage/events/").get_data(as_text=True)
    assert "Create your first event" in page
    assert 'href="/manage/events/new"' in page


def test_list_shows_own_and_shared_events_with_zone_status_and_provisioning(client, auth, make_user, make_event):
    me = auth.login_as_organizer("me@example.org")
    other = make_user("other@example.org")
    make_event(me, title="Mine", timezone="America/New_York",
               starts_at=datetime(2031, 1, 10, 15, 0, tzinfo=UTC), ends_at=datetime(2031, 1, 10, 16, 0, tzinfo=UTC))
    shared = make_event(other, title="Shared with me", status=EventStatus.published, provisioning_status="ready")
    make_event(other, title="Not mine")
    from app.extensions import db
    from app.models import EventOrganizer
    with client.application.app_context():
        db.session.add(EventOrganizer(event_id=shared.id, user_id=me.id))
        db.session.commit()

    page = client.get("/manage/events/").get_data(as_text=True)
    assert "Mine" in page and "Shared with me" in page
    assert "Not mine" not in page
    assert "Fri 10 Jan 2031, 10:00 (America/New_York)" in page
    assert "Ready" in page and "Not requested" in page
    assert "Published" in page and "Draft" in page
    # Each row counts its confirmed seats against the capacity and links to the registrations.
    assert f'href="/manage/events/{shared.id}/registrations">0 confirmed' in page


def test_list_filters_are_links_and_narrow_by_status(client, auth, make_event):
    me = auth.login_as_organizer()
    past_start = datetime.now(UTC) - timedelta(days=3)
    make_event(me, title="A draft")
    make_event(me, title="On sale", status=EventStatus.published)
    make_event(me, title="Called off", status=EventStatus.cancelled)
    make_event(me, title="Last week", status=EventStatus.published, starts_at=past_start,
               ends_at=past_start + timedelta(hours=1))
    expected = {"draft": "A draft", "published": "On sale", "cancelled": "Called off", "past": "Last week"}
    for status, title in expected.items():
        page = client.get(f"/manage/events/?status={status}").get_data(as_text=True)
        assert f'href="/manage/events/?status={status}"' in page
        shown = [t for t in expected.values() if t in page]
        assert shown == [title], (status, shown)
    page = client.get("/manage/events/").get_data(as_text=True)
    assert all(title in page for title in expected.values())
    assert "No cancelled events" not in client.get("/manage/events/?status=cancelled").get_data(as_text=True)


@pytest.mark.db_agnostic
def test_list_filter_over_htmx_returns_only_the_list(client, auth, make_event):
    me = auth.login_as_organizer()
    make_event(me, title="A draft")
    response = client.get("/manage/events/?status=draft", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    assert body.lstrip().startswith('<div id="event-list">') and "<html" not in body
    assert "A draft" in body


def test_create_event_then_add_two_questions(client, auth, events_in_db):
    owner = auth.login_as_organizer()
    response = client.submit(NEW, event_form(title="Spring meetup", approval_required="y",
                                             reminders=["10080", "60"], reminder_custom="2 days, 30 minutes"))
    assert response.status_code == 303, response.get_data(as_text=True)
    [event] = events_in_db()
    assert response.headers["Location"] == f"/manage/events/{event.id}/edit"
    assert (event.slug, event.title, event.status, event.owner_id) == ("spring-meetup", "Spring meetup",
                                                                      EventStatus.draft, owner.id)
    assert event.starts_at == datetime(2031, 5, 20, 16, 0, tzinfo=UTC)
    assert event.capacity == 50 and event.approval_required and event.waitlist_enabled
    assert event.reminder_offsets == [10080, 2880, 60, 30]

    edit = f"/manage/events/{event.id}/edit"
    first = client.submit(f"/manage/events/{event.id}/questions",
                          {"new-question-label": "Dietary needs", "new-question-kind": "long_text"})
    second = client.submit(f"/manage/events/{event.id}/questions",
                           {"new-question-label": "Track", "new-question-kind": "single_choice",
                            "new-question-options": "Beginner\nAdvanced\n\nbeginner", "new-question-required": "y"})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == f"{edit}#questions"
    [event] = events_in_db()
    assert [(q.position, q.label, q.kind, q.required, q.options) for q in event.questions] == [
        (0, "Dietary needs", QuestionKind.long_text, False, []),
        (1, "Track", QuestionKind.single_choice, True, ["Beginner", "Advanced"]),
    ]
    page = client.get(edit).get_data(as_text=True)
    assert "Dietary needs" in page and "Advanced" in page


def test_timezone_round_trip_berlin(client, auth, events_in_db):
    auth.login_as_organizer()
    response = client.submit(NEW, event_form(timezone="Europe/Berlin", starts_at="2031-03-30T10:00",
                                             ends_at="2031-03-30T11:30"))
    assert response.status_code == 303
    [event] = events_in_db()
    assert event.starts_at == datetime(2031, 3, 30, 8, 0, tzinfo=UTC)
    assert event.timezone == "Europe/Berlin"
    overview = client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert "Sun 30 Mar 2031, 10:00" in overview and "11:30" in overview and "(Europe/Berlin)" in overview
    edit = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    assert 'value="2031-03-30T10:00"' in edit
    assert '<option selected>Europe/Berlin</option>' in edit


def test_ambiguous_autumn_time_takes_the_first_occurrence(client, auth, events_in_db):
    auth.login_as_organizer()
    response = client.submit(NEW, event_form(timezone="Europe/Berlin", starts_at="2031-10-26T02:30",
                                             ends_at="2031-10-26T04:00"))
    assert response.status_code == 303
    [event] = events_in_db()
    assert event.starts_at == datetime(2031, 10, 26, 0, 30, tzinfo=UTC)  # 02:30 CEST


def test_new_event_names_the_zone_it_preselects(client, auth, make_event):
    me = auth.login_as_organizer()
    page = client.get(NEW).get_data(as_text=True)
    assert 'data-default-browser-zone="prefer"' in page  # the device's zone wins when the browser knows it
    assert "Preselected: UTC (no zone chosen yet)." in page
    make_event(me, timezone="Asia/Tokyo")
    page = client.get(NEW).get_data(as_text=True)
    assert '<option selected>Asia/Tokyo</option>' in page and 'data-default-browser-zone="prefer"' in page
    assert "Preselected: Asia/Tokyo (the zone of your last event)." in page


def test_slug_is_generated_unique_and_editable(client, auth, events_in_db):
    auth.login_as_organizer()
    assert client.submit(NEW, event_form(title="Café Night!")).status_code == 303
    assert client.submit(NEW, event_form(title="Café Night!")).status_code == 303
    assert client.submit(NEW, event_form(title="Other", slug="  My-Own-Address ")).status_code == 303
    assert [e.slug for e in events_in_db()] == ["cafe-night", "cafe-night-2", "my-own-address"]


@pytest.mark.db_agnostic
@pytest.mark.parametrize(
    ("overrides", "field_error"),
    [
        ({"ends_at": "2031-05-20T17:00"}, "The end must be after the start."),
        ({"ends_at": "2031-05-20T18:00"}, "The end must be after the start."),
        ({"timezone": "Mars/Olympus_Mons"}, "Choose a time zone from the list."),
        ({"timezone": ""}, "Choose a time zone from the list."),
        ({"slug": "taken-address"}, "Another event already uses this address."),
        ({"slug": "new"}, "is reserved"),
        ({"slug": "../etc/passwd"}, "Use lower-case letters, digits and single hyphens only"),
        ({"slug": "a--b"}, "single hyphens only"),
        ({"capacity": "0"}, "Capacity must be between 1 and 100,000"),
        ({"capacity": "-1"}, "Enter a whole number of seats"),
        ({"capacity": "abc"}, "Enter a whole number of seats"),
        ({"capacity": "²"}, "Enter a whole number of seats"),
        ({"capacity": "99999999999999999999"}, "Enter a whole number of seats"),
        ({"starts_at": "2031-03-30T02:30", "ends_at": "2031-03-30T04:00"}, "02:30 does not exist on that day"),
        ({"starts_at": "tomorrow"}, "Enter a date and time"),
        ({"starts_at": "9999-12-31T23:59", "ends_at": "9999-12-31T23:59",
          "timezone": "America/New_York"}, "Choose a date between the years 2000 and 2100."),
        ({"registration_closes_at": "2031-05-21T09:00"}, "Registration must close by the end of the event."),
        ({"registration_opens_at": "2031-05-10T09:00", "registration_closes_at": "2031-05-09T09:00"},
         "Registration must close after it opens."),
        ({"reminder_custom": "2 fortnights"}, "is not a reminder time"),
        ({"reminder_custom": "1 minute"}, "from 5 minutes to 60 days"),
        ({"reminders": ["sixty"]}, "Invalid choice"),
        ({"reminders": ["7"]}, "not a valid choice"),
        ({"title": "   "}, "Give the event a title."),
        ({"title": "x" * 201}, "Title can be at most 200 characters long (you entered 201)."),
    ],
)
def test_invalid_event_is_refused_with_field_error_and_nothing_saved(client, auth, make_event, events_in_db,
                                                                    overrides, field_error):
    me = auth.login_as_organizer()
    make_event(me, slug="taken-address")
    data = event_form(**{"title": "Keep my title", "description": "Keep *my* words", **overrides})
    response = client.submit(NEW, data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error in page
    assert 'aria-invalid="true"' in page
    assert "Keep *my* words" in page  # nothing the organizer typed is lost
    assert len(events_in_db()) == 1


def test_hostile_strings_are_kept_escaped_or_refused_without_errors(client, auth, events_in_db):
    auth.login_as_organizer()
    hostile = '<script>alert(1)</script>"\'\x00 ' + "\u202e" + "💥"
    description = "[x](javascript:alert(1)) <img src=x onerror=1>"
    response = client.submit(NEW, event_form(title=hostile, description=description, slug="", reminder_custom=hostile,
                                             capacity=hostile, starts_at=hostile, timezone=hostile))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert events_in_db() == []

    response = client.submit(NEW, event_form(title=hostile, description=description))
    assert response.status_code == 303
    [event] = events_in_db()
    assert "\x00" not in event.title and event.slug == "script-alert-1-script"
    overview = client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert 'href="javascript' not in overview and "<img src=x" not in overview and "<script>alert" not in overview


def test_edit_keeps_zone_and_updates_values(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    event = make_event(me, capacity=10)
    url = f"/manage/events/{event.id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert 'value="10"' in page and f'value="{event.slug}"' in page
    response = client.submit(url, event_form(title="Renamed", slug=event.slug, capacity="", timezone="Asia/Tokyo",
                                             starts_at="2031-01-01T09:00", ends_at="2031-01-01T10:00"))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/manage/events/{event.id}"
    [saved] = events_in_db()
    assert (saved.title, saved.capacity, saved.timezone) == ("Renamed", None, "Asia/Tokyo")
    assert saved.starts_at == datetime(2031, 1, 1, 0, 0, tzinfo=UTC)


@pytest.mark.db_agnostic
def test_invalid_edit_shows_errors_and_changes_nothing(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    event = make_event(me, title="Original")
    url = f"/manage/events/{event.id}/edit"
    response = client.submit(url, event_form(title="Changed", ends_at="2031-05-20T10:00"))
    assert response.status_code == 422
    assert "HX-Request" in response.headers["Vary"]
    page = response.get_data(as_text=True)
    assert 'value="Changed"' in page and "The end must be after the start." in page
    assert 'id="questions"' in page  # the rest of the edit page is still there
    assert events_in_db()[0].title == "Original"


# --- banner uploads -----------------------------------------------------------------------------------


def _stored(app, name: str) -> Path:
    return Path(app.config["UPLOAD_FOLDER"]) / name


def test_banner_is_sniffed_reencoded_without_metadata_and_stored_under_a_random_name(app, client, auth, events_in_db):
    auth.login_as_organizer()
    data = event_form(banner=upload(image_bytes("JPEG", exif=True), "holiday.gif"), banner_alt="A red block")
    response = submit_multipart(client, NEW, data)
    assert response.status_code == 303, response.get_data(as_text=True)
    [event] = events_in_db()
    assert event.banner_filename.endswith(".jpg") and "holiday" not in event.banner_filename
    assert event.banner_alt == "A red block"
    stored = _stored(app, event.banner_filename)
    with Image.open(stored) as image:
        assert image.format == "JPEG" and image.size == (40, 20)
        assert not image.getexif()
    assert b"SecretCameraMaker" not in stored.read_bytes()
    served = client.get(f"/uploads/{event.banner_filename}")
    served.close()
    assert served.status_code == 200 and served.mimetype == "image/jpeg"


def test_banner_can_be_replaced_and_removed(app, client, auth, events_in_db):
    auth.login_as_organizer()
    submit_multipart(client, NEW, event_form(banner=upload(image_bytes("PNG"))))
    [event] = events_in_db()
    first = event.banner_filename
    url = f"/manage/events/{event.id}/edit"
    response = submit_multipart(client, url, event_form(slug=event.slug, banner=upload(image_bytes("WEBP"), "b.webp")))
    assert response.status_code == 303
    [event] = events_in_db()
    assert event.banner_filename.endswith(".webp")
    assert not _stored(app, first).exists()
    second = event.banner_filename
    response = client.submit(url, event_form(slug=event.slug, remove_banner="y"))
    assert response.status_code == 303
    assert events_in_db()[0].banner_filename is None
    assert not _stored(app, second).exists()


@pytest.mark.db_agnostic
@pytest.mark.parametrize(
    ("payload", "name", "message"),
    [
        (b"just some text, honest", "banner.png", "is not a JPEG, PNG, WebP or GIF image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg",
         "is not a JPEG, PNG, WebP or GIF image"),
        (image_bytes("BMP"), "old.bmp", "is not a JPEG, PNG, WebP or GIF image"),
        (image_bytes("PNG")[:60], "cut.png", "damaged or incomplete"),
        (image_bytes("PNG") + b"\0" * (5 * 1024 * 1024), "huge.png", "larger than 5 MB"),
    ],
)
def test_bad_banner_is_reported_and_nothing_saved(app, client, auth, events_in_db, payload, name, message):
    auth.login_as_organizer()
    folder = Path(app.config["UPLOAD_FOLDER"])
    before = set(folder.iterdir()) if folder.exists() else set()
    response = submit_multipart(client, NEW, event_form(title="Keep me", banner=upload(payload, name)))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"“{name}” was not accepted" in page and message in page
    assert 'value="Keep me"' in page
    assert events_in_db() == []
    assert (set(folder.iterdir()) if folder.exists() else set()) == before


@pytest.mark.db_agnostic
def test_good_banner_with_other_errors_asks_to_choose_it_again(client, auth, events_in_db):
    auth.login_as_organizer()
    response = submit_multipart(client, NEW, event_form(capacity="0", banner=upload(image_bytes())))
    assert response.status_code == 422
    assert "please choose it again" in response.get_data(as_text=True)


# --- co-organizers -------------------------------------------------------------------------------------


def test_owner_shares_event_and_co_organizer_can_manage_it(app, client, auth, make_user, make_event, events_in_db):
    owner = auth.login_as_organizer("owner@example.org")
    helper = make_user("helper@example.org")
    make_user("gone@example.org", active=False)
    event = make_event(owner)
    url = f"/manage/events/{event.id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert "helper@example.org" in page and "gone@example.org" not in page
    response = client.submit(url, event_form(slug=event.slug, co_organizers=[str(helper.id)]))
    assert response.status_code == 303
    assert [u.email for u in events_in_db()[0].co_organizers] == ["helper@example.org"]

    auth.logout()
    auth.login("helper@example.org")
    assert "Spring meetup" in client.get("/manage/events/").get_data(as_text=True)
    page = client.get(url).get_data(as_text=True)
    assert "Co-organizers" not in page  # only the owner or an admin chooses who shares
    response = client.submit(url, event_form(title="Edited by helper", slug=event.slug,
                                             co_organizers=[str(helper.id)]))
    assert response.status_code == 303
    [saved] = events_in_db()
    assert saved.title == "Edited by helper"
    assert [u.email for u in saved.co_organizers] == ["helper@example.org"]


@pytest.mark.db_agnostic
def test_sharing_with_an_unknown_or_inactive_user_is_a_field_error(client, auth, make_user, make_event, events_in_db):
    owner = auth.login_as_organizer()
    gone = make_user("gone@example.org", active=False)
    event = make_event(owner)
    for value in (str(gone.id), "999999", "abc"):
        response = client.submit(f"/manage/events/{event.id}/edit",
                                 event_form(slug=event.slug, co_organizers=[value]))
        assert response.status_code == 422, value
    assert events_in_db()[0].co_organizers == []


@pytest.mark.db_agnostic
def test_every_problem_is_shown_at_once_including_the_schedule(client, auth, events_in_db):
    auth.login_as_organizer()
    response = client.submit(NEW, event_form(title="x" * 201, capacity="lots", starts_at="2031-05-20T18:00",
                                             ends_at="2031-05-20T17:00", registration_opens_at="2031-05-21T09:00"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    for message in ("Title can be at most 200 characters long", "Enter a whole number of seats",
                    "The end must be after the start.", "Registration must open before the event ends."):
        assert message in page, message
    assert events_in_db() == []


def test_a_start_in_the_past_is_refused_on_save_but_an_unchanged_one_is_kept(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    response = client.submit(NEW, event_form(starts_at="2020-05-20T18:00", ends_at="2031-05-20T20:00"))
    assert response.status_code == 422
    assert "This time has already passed. Choose a start in the future." in response.get_data(as_text=True)
    assert events_in_db() == []

    started = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    event = make_event(me, starts_at=started, ends_at=started + timedelta(hours=3), timezone="UTC")
    kept = event_form(title="Renamed while running", timezone="UTC", starts_at=f"{started:%Y-%m-%dT%H:%M}",
                      ends_at=f"{started + timedelta(hours=3):%Y-%m-%dT%H:%M}")
    assert client.submit(f"/manage/events/{event.id}/edit", kept).status_code == 303
    moved = {**kept, "starts_at": f"{started - timedelta(days=1):%Y-%m-%dT%H:%M}"}
    assert client.submit(f"/manage/events/{event.id}/edit", moved).status_code == 422


@pytest.mark.db_agnostic
def test_animation_bomb_is_refused_from_its_headers_quickly(app, client, auth, events_in_db):
    bomb = gif_bomb(6000, 30)  # 30 frames of 6000×6000: about a billion pixels in under a megabyte
    assert len(bomb) < 1024 * 1024
    auth.login_as_organizer()
    folder = Path(app.config["UPLOAD_FOLDER"])
    before = set(folder.iterdir()) if folder.exists() else set()
    started = time.monotonic()
    response = submit_multipart(client, NEW, event_form(title="Keep me", banner=upload(bomb, "party.gif")))
    elapsed = time.monotonic() - started
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "“party.gif” was not accepted" in page and "too many pixels across its frames" in page
    assert 'value="Keep me"' in page and events_in_db() == []
    assert (set(folder.iterdir()) if folder.exists() else set()) == before
    assert elapsed < 5, elapsed  # decoding and re-encoding its frames held a worker for about 30 s


def test_an_animated_banner_keeps_its_first_frame(app, client, auth, events_in_db):
    frames = [Image.new("RGB", (40, 20), colour) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=100)
    auth.login_as_organizer()
    response = submit_multipart(client, NEW, event_form(banner=upload(out.getvalue(), "moving.gif")))
    assert response.status_code == 303, response.get_data(as_text=True)
    [event] = events_in_db()
    with Image.open(_stored(app, event.banner_filename)) as stored:
        assert stored.format == "GIF" and getattr(stored, "n_frames", 1) == 1
        assert stored.convert("RGB").getpixel((5, 5)) == (200, 30, 30)
