"""A weekly series end to end, over HTTP and the in-process emulator: the organizer repeats a published
event; every occurrence is an event of its own at the same local time across a DST change, with its own
Teams meeting, registration, invitation, reminders and attendance; the public pages link the other dates;
the organizer renames the future occurrences at once. Monthly-by-weekday dates and bad input too."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from app.extensions import db
from app.models import (
    ApiScope,
    AuditEntry,
    Event,
    EventSeries,
    EventStatus,
    OutboxItem,
    ProvisioningStatus,
    Registration,
)
from app.services.attendance import attendance
from app.services.core.timezones import utc_to_local
from app.services.registration import reminders
from tests.mail import queued_emails
from tests.routes.admin.test_microsoft import connect_service_account
from tests.worker import drain

ZONE = "Europe/Berlin"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _occurrences(app, series_id: int) -> list[Event]:
    with app.app_context():
        rows = list(db.session.scalars(select(Event).where(Event.series_id == series_id).order_by(Event.starts_at)))
        for row in rows:
            db.session.expunge(row)
        return rows


@pytest.fixture
def weekly(app, client, auth, make_event, emulator):
    """A published 18:00 (Berlin) meetup repeated weekly, four times in all, across the March DST change."""
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    first = datetime(2031, 3, 18, 17, 0, tzinfo=UTC)  # 18:00 CET
    event = make_event(admin, title="Weekly meetup", timezone=ZONE, starts_at=first,
                       ends_at=first + timedelta(hours=1), capacity=5, status=EventStatus.published,
                       published_at=datetime.now(UTC))
    page = _text(client.get(f"/manage/events/{event.id}/repeat"))
    assert "Repeat “Weekly meetup”" in page and "and are published at once" in page
    response = client.submit(f"/manage/events/{event.id}/repeat",
                             {"frequency": "weekly", "interval": "1", "count": "4", "until": ""})
    assert response.status_code == 303, _text(response)
    with app.app_context():
        series = db.session.scalar(select(EventSeries))
        series_id = series.id
        assert series.rule == "FREQ=WEEKLY;COUNT=4" and series.description == "Weekly, 4 times"
    assert response.headers["Location"].endswith(f"/manage/series/{series_id}")
    drain(app)
    return {"event": event, "series_id": series_id, "admin": admin}


def test_each_occurrence_is_an_event_with_its_own_meeting_at_the_same_local_time(app, client, weekly, emulator):
    rows = _occurrences(app, weekly["series_id"])
    assert [utc_to_local(e.starts_at, ZONE).strftime("%a %d %b %H:%M") for e in rows] == [
        "Tue 18 Mar 18:00", "Tue 25 Mar 18:00", "Tue 01 Apr 18:00", "Tue 08 Apr 18:00"]
    assert [e.starts_at.hour for e in rows] == [17, 17, 16, 16]  # UTC moves with the clocks
    assert [e.ends_at - e.starts_at for e in rows] == [timedelta(hours=1)] * 4
    assert [e.slug for e in rows[1:]] == ["community-call-1-2031-03-25", "community-call-1-2031-04-01",
                                          "community-call-1-2031-04-08"]
    assert {e.title for e in rows} == {"Weekly meetup"} and {e.capacity for e in rows} == {5}
    assert all(e.status == EventStatus.published for e in rows)
    # The first one was never provisioned in this test; the three new ones were, each with its own meeting.
    assert all(e.provisioning_status == ProvisioningStatus.ready and e.join_url for e in rows[1:])
    assert len({e.join_url for e in rows[1:]}) == 3
    assert sorted(e["start"]["dateTime"][:16] for e in emulator.graph.events.values()) == [
        "2031-03-25T17:00", "2031-04-01T16:00", "2031-04-08T16:00"]

    page = _text(client.get(f"/manage/series/{weekly['series_id']}"))
    assert "Series: Weekly, 4 times" in page and page.count("Weekly meetup") >= 4
    overview = _text(client.get(f"/manage/events/{rows[0].id}"))
    assert f'href="/manage/series/{weekly["series_id"]}"' in overview
    # Repeating again is refused: the event is in a series already.
    data = {"frequency": "weekly", "interval": "1", "count": "3"}
    again = client.submit(f"/manage/events/{rows[0].id}/repeat", data)
    assert again.status_code == 422 and "already part of a series" in _text(again)


def test_registration_invite_reminders_and_attendance_are_per_occurrence(app, client, weekly, emulator):
    rows = _occurrences(app, weekly["series_id"])
    second, third = rows[1], rows[2]
    public = _text(client.get(f"/events/{second.slug}"))
    assert "Also in this series" in public and f'href="/events/{third.slug}"' in public
    response = client.submit(f"/events/{second.slug}/register",
                             {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
                              "timezone": "UTC", "consent": "y"})
    assert response.status_code == 303
    with app.app_context():
        [confirmation] = [m for m in queued_emails(to="ada@example.org") if m["kind"] == "confirmed"]
        reg = db.session.scalar(select(Registration).where(Registration.email == "ada@example.org"))
        assert reg.event_id == second.id
        reg_id = reg.id
    [invite] = [a for a in confirmation["attachments"] if a["name"] == "invite.ics"]
    [vevent] = Calendar.from_ical(base64.b64decode(invite["contentInBase64"])).walk("VEVENT")
    assert vevent["DTSTART"].dt.astimezone(UTC) == second.starts_at

    with app.app_context():
        result = reminders.sweep(second.starts_at - timedelta(minutes=59))
        db.session.commit()
        assert result.queued == 1
        sent = [m for m in queued_emails(to="ada@example.org") if m["kind"] == "reminder" and m["status"] == "queued"]
        assert [m["dedupe_key"] for m in sent] == [f"reminder:{second.id}:60:{reg_id}"]
        # Nothing for the third date: Ada registered for the second only.
        assert reminders.sweep(third.starts_at - timedelta(minutes=59)).queued == 0
        db.session.commit()

        # The second date ended an hour ago; its meeting's report says Ada came for 40 minutes.
        event = db.session.get(Event, second.id)
        ended = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        event.starts_at, event.ends_at = ended - timedelta(hours=1), ended
        db.session.commit()
        meeting = event.online_meeting_id
        start = ended - timedelta(hours=1)
    iso = lambda m: (start + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    emulator.graph.add_attendance_report(meeting, records=[
        {"emailAddress": "ada@example.org", "displayName": "Ada", "intervals": [(iso(0), iso(40))]}])
    with app.app_context():
        assert attendance.queue_due_imports() == 1  # only the date that ended
        db.session.commit()
    drain(app)
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        assert (reg.attended, reg.attendance_minutes) == (True, 40)
        assert db.session.get(Event, third.id).attendance_imported_at is None


def test_renaming_the_future_dates_leaves_past_ones_and_tells_registrants(app, client, weekly, emulator):
    rows = _occurrences(app, weekly["series_id"])
    client.submit(f"/events/{rows[2].slug}/register",
                  {"first_name": "Bob", "last_name": "Test", "email": "bob@example.org", "timezone": "UTC",
                   "consent": "y"})
    with app.app_context():  # the first date is over
        first = db.session.get(Event, rows[0].id)
        first.starts_at = datetime.now(UTC) - timedelta(days=1)
        first.ends_at = first.starts_at + timedelta(hours=1)
        db.session.commit()
    url = f"/manage/series/{weekly['series_id']}"
    response = client.submit(url, {"title": "Weekly meetup: spring edition", "description": "New *venue*.",
                                   "notify_attendees": "y"})
    assert response.status_code == 303
    assert "3 future occurrences changed." in _text(client.get(url))
    drain(app)
    titles = [e.title for e in _occurrences(app, weekly["series_id"])]
    assert titles == ["Weekly meetup", "Weekly meetup: spring edition", "Weekly meetup: spring edition",
                      "Weekly meetup: spring edition"]
    assert sorted(e["subject"] for e in emulator.graph.events.values()) == ["Weekly meetup: spring edition"] * 3
    with app.app_context():
        changed = [m for m in queued_emails(to="bob@example.org") if m["kind"] == "event_changed"]
    assert len(changed) == 1 and "Was called: Weekly meetup" in changed[0]["text"]

    empty = client.submit(url, {"title": "  ", "description": ""})
    assert empty.status_code == 422 and "Give the events a title." in _text(empty)


def test_monthly_series_keeps_the_weekday_of_the_month(app, client, auth, make_event):
    admin = auth.login_as_admin()
    first = datetime(2031, 1, 21, 18, 0, tzinfo=UTC)  # the third Tuesday of January, 19:00 in Berlin
    event = make_event(admin, timezone=ZONE, starts_at=first, ends_at=first + timedelta(hours=2))
    response = client.submit(f"/manage/events/{event.id}/repeat",
                             {"frequency": "monthly", "interval": "1", "count": "", "until": "2031-06-30"})
    assert response.status_code == 303
    with app.app_context():
        series = db.session.scalar(select(EventSeries))
        assert series.description == "Monthly on the third Tuesday, until 30 Jun 2031"
    rows = _occurrences(app, series.id)
    assert [utc_to_local(e.starts_at, ZONE).strftime("%a %d %b %H:%M") for e in rows] == [
        "Tue 21 Jan 19:00", "Tue 18 Feb 19:00", "Tue 18 Mar 19:00", "Tue 15 Apr 19:00", "Tue 20 May 19:00",
        "Tue 17 Jun 19:00"]
    assert all(e.status == EventStatus.draft for e in rows)  # a draft's dates are drafts too


@pytest.mark.parametrize(("data", "message"), [
    ({"frequency": "weekly", "interval": "1", "count": "", "until": ""}, "Give either how many times"),
    ({"frequency": "weekly", "interval": "1", "count": "3", "until": "2031-05-01"}, "Give either how many times"),
    ({"frequency": "weekly", "interval": "1", "count": "60"}, "Number must be between 2 and 52."),
    ({"frequency": "weekly", "interval": "0", "count": "3"}, "Number must be between 1 and 12."),
    ({"frequency": "yearly", "interval": "1", "count": "3"}, "Not a valid choice."),
    ({"frequency": "weekly", "interval": "1", "until": "2031-03-01"}, "The last date must be after"),
    ({"frequency": "weekly", "interval": "1", "until": "2040-03-01"}, "at most two years beyond"),
    ({"frequency": "weekly", "interval": "1", "until": "2032-12-01"}, "more than 52 occurrences"),
    ({"frequency": "weekly", "interval": "1", "until": "soon"}, "Not a valid date value."),
    ({"frequency": "monthly", "interval": "12", "count": "4"}, "at most two years beyond"),
])
def test_impossible_series_get_a_clear_error_and_create_nothing(app, client, auth, make_event, data, message):
    admin = auth.login_as_admin()
    first = datetime(2031, 3, 18, 17, 0, tzinfo=UTC)
    event = make_event(admin, timezone=ZONE, starts_at=first, ends_at=first + timedelta(hours=1))
    response = client.submit(f"/manage/events/{event.id}/repeat", data)
    assert response.status_code == 422
    assert message in _text(response)
    with app.app_context():
        assert db.session.scalar(select(EventSeries)) is None
        assert db.session.scalar(select(db.func.count(Event.id))) == 1


def test_strangers_see_no_series(app, client, auth, make_event, make_user):
    admin = auth.login_as_admin()
    event = make_event(admin, timezone=ZONE)
    assert client.submit(f"/manage/events/{event.id}/repeat",
                         {"frequency": "weekly", "interval": "2", "count": "3"}).status_code == 303
    with app.app_context():
        series_id = db.session.scalar(select(EventSeries.id))
    other = make_user("other@example.org")
    auth.logout()
    auth.login(other.email)
    assert client.get(f"/manage/series/{series_id}").status_code == 404
    assert client.get(f"/manage/events/{event.id}/repeat").status_code == 404


def test_the_api_names_each_dates_series(app, weekly, api, issue_token):
    rows = _occurrences(app, weekly["series_id"])
    api.token = issue_token(ApiScope.read)
    page = api.get("/events?status=published").get_json()
    assert sorted(e["id"] for e in page["data"] if e["series_id"] == weekly["series_id"]) == sorted(e.id for e in rows)
    assert all(e["sessions"] == [] for e in page["data"])


def _register(client, event: Event, email: str):
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": "Reg", "last_name": "Istrant", "email": email, "timezone": "UTC",
                              "consent": "y"})
    assert response.status_code == 303, _text(response)


def _start_in_the_past(app, event_id: int) -> None:
    with app.app_context():
        event = db.session.get(Event, event_id)
        event.starts_at = datetime.now(UTC) - timedelta(hours=2)
        event.ends_at = event.starts_at + timedelta(hours=1)
        db.session.commit()


def test_cancelling_the_future_dates_cancels_each_as_one_event_and_leaves_past_ones(app, client, weekly, emulator):
    rows = _occurrences(app, weekly["series_id"])
    _register(client, rows[0], "past@example.org")
    _register(client, rows[1], "ada@example.org")
    _register(client, rows[2], "bob@example.org")
    _register(client, rows[3], "bob@example.org")
    _start_in_the_past(app, rows[0].id)  # the first date has started: it stays
    url = f"/manage/series/{weekly['series_id']}"

    series_page = _text(client.get(url))
    assert f'href="{url}/cancel"' in series_page
    confirm = client.get(f"{url}/cancel")
    page = _text(confirm)
    assert confirm.status_code == 200
    assert "Cancel the 3 future dates of this series?" in page
    assert "3 dates are cancelled" in page and "3 registrants are emailed" in page
    assert "3 Teams meetings are cancelled" in page
    assert '<label for="reason"' in page and 'name="csrf_token"' in page
    assert f'href="/manage/events/{rows[0].id}"' not in page  # the started date is not listed

    response = client.submit(f"{url}/cancel", {"reason": "The venue closed."})
    assert response.status_code == 303 and response.headers["Location"].endswith(url)
    assert "3 future dates cancelled." in _text(client.get(url))
    drain(app)

    after = _occurrences(app, weekly["series_id"])
    assert [e.status for e in after] == [EventStatus.published] + [EventStatus.cancelled] * 3
    assert {e.cancellation_reason for e in after[1:]} == {"The venue closed."}
    # The Teams meetings were cancelled with the message, as a single cancellation does.
    for e in after[1:]:
        assert e.graph_event_id in emulator.graph.deleted_events
        [cancel] = emulator.requests_for("graph", path=f"/v1.0/me/events/{e.graph_event_id}/cancel")
        assert "The venue closed." in cancel.body.decode()
    with app.app_context():
        notices = [m for m in queued_emails() if m["kind"] == "event_cancelled"]
        assert sorted(m["to"] for m in notices) == ["ada@example.org", "bob@example.org", "bob@example.org"]
        assert all("The venue closed." in m["text"] for m in notices)
        actions = [a.action for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions.count("event.cancel") == 3 and actions.count("event.series_cancel") == 1
        outbox_rows = db.session.scalar(select(db.func.count(OutboxItem.id)))
    public = _text(client.get(f"/events/{after[2].slug}"))
    assert "cancelled" in public.lower() and "The venue closed." in public

    # A second submission (the form sent twice) changes nothing and says so.
    again = client.submit(f"{url}/cancel", {"reason": "Again"})
    assert again.status_code == 303
    assert "Nothing more to cancel" in _text(client.get(url))
    drain(app)
    with app.app_context():
        assert db.session.scalar(select(db.func.count(OutboxItem.id))) == outbox_rows
        assert len([m for m in queued_emails() if m["kind"] == "event_cancelled"]) == 3
        assert [a.action for a in db.session.scalars(select(AuditEntry))].count("event.series_cancel") == 1
    assert {e.cancellation_reason for e in _occurrences(app, weekly["series_id"])[1:]} == {"The venue closed."}
    # Nothing left to confirm: the page sends the organizer back to the series.
    assert client.get(f"{url}/cancel").status_code == 303
    assert 'Cancel the future dates…' not in _text(client.get(url))


def test_cancelling_a_draft_series_emails_nobody(app, client, auth, make_event):
    admin = auth.login_as_admin()
    event = make_event(admin, timezone=ZONE)
    assert client.submit(f"/manage/events/{event.id}/repeat",
                         {"frequency": "weekly", "interval": "1", "count": "2"}).status_code == 303
    with app.app_context():
        series_id = db.session.scalar(select(EventSeries.id))
    page = _text(client.get(f"/manage/series/{series_id}/cancel"))
    assert "0 registrants are emailed" in page and "0 Teams meetings are cancelled" in page
    assert client.submit(f"/manage/series/{series_id}/cancel", {"reason": ""}).status_code == 303
    assert {e.status for e in _occurrences(app, series_id)} == {EventStatus.cancelled}
    with app.app_context():
        assert queued_emails() == []


def test_a_bad_cancellation_is_refused_and_cancels_nothing(app, client, weekly, auth, make_user):
    url = f"/manage/series/{weekly['series_id']}/cancel"
    too_long = client.submit(url, {"reason": "x" * 2001})
    assert too_long.status_code == 422
    assert "at most 2,000 characters" in _text(too_long) and "Cancel the 4 future dates" in _text(too_long)
    # Without the form's CSRF token nothing happens either.
    forged = client.post(url, data={"reason": "forged"})
    assert forged.status_code == 400
    assert {e.status for e in _occurrences(app, weekly["series_id"])} == {EventStatus.published}
    # Someone who manages none of the dates sees no such series.
    other = make_user("other@example.org")
    auth.logout()
    auth.login(other.email)
    assert client.get(url).status_code == 404
    assert client.submit(url, {"reason": ""}).status_code == 404
    assert {e.status for e in _occurrences(app, weekly["series_id"])} == {EventStatus.published}


def _series_section(page: str) -> str:
    match = re.search(r'<h2 id="series-heading">(.*?)</section>', page, re.S)
    return match.group(1) if match else ""


def test_an_occurrence_page_lists_the_other_upcoming_dates_in_the_events_zone(app, client, weekly, auth, make_event):
    rows = _occurrences(app, weekly["series_id"])
    _start_in_the_past(app, rows[0].id)
    assert client.submit(f"/manage/events/{rows[2].id}/cancel", {"reason": ""}).status_code == 303
    auth.logout()  # as a visitor, through the public page cache

    section = _series_section(_text(client.get(f"/events/{rows[1].slug}")))
    assert "Also in this series" in section
    # Only the date still to come: not the page's own, not the one that started, not the cancelled one.
    assert re.findall(r'href="/events/([^"]+)"', section) == [rows[3].slug]
    assert f'<time datetime="{rows[3].starts_at.isoformat()}">' in section
    assert "8 Apr 2031" in section and "18:00" in section and "(Europe/Berlin)" in section  # 16:00 UTC
    assert rows[1].slug in _series_section(_text(client.get(f"/events/{rows[3].slug}")))

    # Empty state: the last date has no other upcoming date, and an event outside a series shows nothing.
    with app.app_context():
        last = db.session.get(Event, rows[1].id)
        last.status = EventStatus.draft
        db.session.commit()
    assert "series-heading" not in _text(client.get(f"/events/{rows[3].slug}"))
    single = make_event(weekly["admin"], status=EventStatus.published, published_at=datetime.now(UTC))
    assert "series-heading" not in _text(client.get(f"/events/{single.slug}"))


def test_an_occurrences_manage_page_links_its_series(app, client, weekly, make_event):
    rows = _occurrences(app, weekly["series_id"])
    url = f"/manage/series/{weekly['series_id']}"
    page = _text(client.get(f"/manage/events/{rows[2].id}"))
    assert f'One date of the series <a href="{url}">Weekly, 4 times</a>.' in page
    single = make_event(weekly["admin"])
    assert "One date of the series" not in _text(client.get(f"/manage/events/{single.id}"))
