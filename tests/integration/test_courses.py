"""A three-session course end to end, over HTTP and the in-process emulator: the organizer adds sessions
(the event's own time becomes session 1), publishes, and the worker creates one Teams meeting per
session; an attendee registers once and gets one calendar invitation covering every session; the public
page, the manage page and the event's .ics list the sessions; the join link opens the session that is
on; reminders go out before each session; and attendance is imported per session."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import select

from app.extensions import db
from app.models import (
    ApiScope,
    Event,
    EventRecording,
    EventSession,
    ProvisioningStatus,
    Registration,
    SessionAttendance,
)
from app.services.attendance import attendance
from app.services.core.timezones import utc_to_local
from app.services.registration import reminders
from tests.mail import queued_emails
from tests.routes.admin.test_microsoft import connect_service_account
from tests.routes.organizer.conftest import event_form
from tests.worker import drain

JOIN_LINK = re.compile(r"http://localhost/j/([A-Za-z0-9_-]{40,})")
MANAGE_LINK = re.compile(r"http://localhost/(r/[A-Za-z0-9_-]{40,})")
ZONE = "Europe/Berlin"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _local(value: datetime) -> str:
    return utc_to_local(value, ZONE).strftime("%Y-%m-%dT%H:%M")


def add_session(client, event_id: int, starts: datetime, ends: datetime, name: str = "", **extra):
    url = f"/manage/events/{event_id}/sessions"
    data = {"new-session-name": name, "new-session-starts_at": _local(starts),
            "new-session-ends_at": _local(ends), "new-session-notify_attendees": "y", **extra}
    return client.submit(url, data)


def _sessions(app, event_id: int) -> list[EventSession]:
    with app.app_context():
        rows = list(db.session.scalars(select(EventSession).where(EventSession.event_id == event_id)
                                        .order_by(EventSession.starts_at)))
        for row in rows:
            db.session.expunge(row)
        return rows


@pytest.fixture
def course(app, client, auth, make_event, emulator):
    """A published three-session course (weekly, 18:00–19:30 Berlin time) with its Teams meetings ready."""
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    first = datetime(2031, 3, 18, 17, 0, tzinfo=UTC)  # 18:00 in Berlin (winter time)
    event = make_event(admin, title="Python course", timezone=ZONE, starts_at=first,
                       ends_at=first + timedelta(minutes=90), capacity=10)
    # Week 2 and 3 straddle the clocks going forward on 30 March: still 18:00 local, so 16:00 UTC.
    for week, name in ((1, "Testing"), (2, "Packaging")):
        starts = datetime(2031, 3, 18, 18, 0) + timedelta(weeks=week)
        response = add_session(client, event.id, _utc(starts), _utc(starts) + timedelta(minutes=90), name=name)
        assert response.status_code == 303, _text(response)
    assert client.submit(f"/manage/events/{event.id}/publish").status_code == 303
    drain(app)
    return {"event": event, "admin": admin}


def _utc(local: datetime) -> datetime:
    return local.replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def test_adding_sessions_makes_a_course_with_one_teams_meeting_each(app, client, course, emulator):
    event_id = course["event"].id
    sessions = _sessions(app, event_id)
    assert [utc_to_local(s.starts_at, ZONE).strftime("%d %b %H:%M") for s in sessions] == [
        "18 Mar 18:00", "25 Mar 18:00", "01 Apr 18:00"]  # the same wall-clock time across the DST change
    assert [s.starts_at.hour for s in sessions] == [17, 17, 16]
    with app.app_context():
        event = db.session.get(Event, event_id)
        # The event spans its sessions, and its Teams status sums them up.
        assert (event.starts_at, event.ends_at) == (sessions[0].starts_at, sessions[-1].ends_at)
        assert event.provisioning_status == ProvisioningStatus.ready and event.join_url is None
        assert [s.label for s in event.sessions] == ["Session 1", "Session 2: Testing", "Session 3: Packaging"]
    assert all(s.provisioning_status == ProvisioningStatus.ready and s.join_url and s.online_meeting_id
               for s in sessions)
    assert len({s.join_url for s in sessions}) == 3
    subjects = sorted(e["subject"] for e in emulator.graph.events.values())
    assert subjects == ["Python course — Session 1", "Python course — Session 2: Testing",
                        "Python course — Session 3: Packaging"]
    graph_event = emulator.graph.events[sessions[2].graph_event_id]
    assert graph_event["start"]["dateTime"].startswith("2031-04-01T16:00")  # 18:00 in Berlin, summer time

    page = _text(client.get(f"/manage/events/{event_id}/sessions"))
    assert "Session 2: Testing" in page and "host link" in page
    overview = _text(client.get(f"/manage/events/{event_id}"))
    assert "Sessions (3)" in overview


def test_registration_invites_pages_and_ics_cover_every_session(app, client, course):
    event = course["event"]
    public = _text(client.get(f"/events/{event.slug}"))
    assert "3 sessions; one registration covers them all." in public
    assert "Testing:" in public and "Packaging:" in public
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
                              "timezone": "America/New_York", "consent": "y"})
    assert response.status_code == 303
    with app.app_context():
        [confirmation] = [m for m in queued_emails(to="ada@example.org") if m["kind"] == "confirmed"]
    # The email lists every session in the attendee's zone.
    assert "- Session 1: Tue 18 Mar 2031, 13:00–14:30 (America/New_York)" in confirmation["text"]
    assert "- Session 3: Packaging: Tue 1 Apr 2031, 12:00–13:30 (America/New_York)" in confirmation["text"]
    [invite] = [a for a in confirmation["attachments"] if a["name"] == "invite.ics"]
    calendar = Calendar.from_ical(base64.b64decode(invite["contentInBase64"]))
    assert calendar["METHOD"] == "REQUEST"
    vevents = calendar.walk("VEVENT")
    assert len({str(v["UID"]) for v in vevents}) == 1  # iTIP: one object, one UID
    master, *instances = vevents
    assert [d.dt for d in master["RDATE"].dts] == [s.starts_at.astimezone(master["DTSTART"].dt.tzinfo)
                                                   for s in _sessions(app, event.id)[1:]]
    assert [str(i["SUMMARY"]) for i in instances] == [
        "Python course — Session 1", "Python course — Session 2: Testing", "Python course — Session 3: Packaging"]
    assert [i["RECURRENCE-ID"].dt for i in instances] == [i["DTSTART"].dt for i in instances]
    assert instances[2]["DTSTART"].dt.strftime("%H:%M %Z") == "18:00 CEST"
    assert JOIN_LINK.search(str(master["DESCRIPTION"]))

    manage_path = "/" + MANAGE_LINK.search(confirmation["text"]).group(1)
    manage = _text(client.get(manage_path))
    assert "Sessions (your time zone)" in manage
    assert "Session 2: Testing: Tue 25 Mar 2031, 13:00–14:30 (America/New_York)" in manage
    assert "Add to Google Calendar" not in manage  # one start and end cannot carry a course
    personal = client.get(manage_path + "/invite.ics")
    assert personal.status_code == 200
    assert len(Calendar.from_ical(personal.data).walk("VEVENT")) == 4

    feed = Calendar.from_ical(client.get(f"/events/{event.slug}.ics").data)
    assert sorted(str(v["SUMMARY"]) for v in feed.walk("VEVENT")) == [
        "Python course — Session 1", "Python course — Session 2: Testing", "Python course — Session 3: Packaging"]
    assert len({str(v["UID"]) for v in feed.walk("VEVENT")}) == 3


def _register(app, client, event, email: str) -> str:
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": email.split("@")[0].title(), "last_name": "Test", "email": email,
                              "timezone": "UTC", "consent": "y"})
    assert response.status_code == 303
    with app.app_context():
        texts = [m["text"] for m in queued_emails(to=email) if m["kind"] == "confirmed"]
    return JOIN_LINK.search(texts[-1]).group(1)


def _move(app, event_id: int, first_start: datetime) -> None:
    """Put the sessions a week apart from `first_start` (each 90 minutes), as if time had passed."""
    with app.app_context():
        event = db.session.get(Event, event_id)
        for week, session in enumerate(event.sessions):
            session.starts_at = first_start + timedelta(weeks=week)
            session.ends_at = session.starts_at + timedelta(minutes=90)
        event.starts_at, event.ends_at = event.sessions[0].starts_at, event.sessions[-1].ends_at
        db.session.commit()


def test_the_join_link_opens_the_session_that_is_on(app, client, course):
    event = course["event"]
    token = _register(app, client, event, "ada@example.org")
    sessions = _sessions(app, event.id)
    page = _text(client.get(f"/j/{token}"))
    assert "The call opens soon" in page and "Session 1 of 3" in page
    assert "Tue 18 Mar 2031, 17:00–18:30 (UTC)" in page  # the session's time, not the whole course's

    # A week later: session 1 is over, session 2 started ten minutes ago.
    now = datetime.now(UTC).replace(microsecond=0)
    _move(app, event.id, now - timedelta(weeks=1, minutes=10))
    page = _text(client.get(f"/j/{token}"))
    assert "The call is open" in page and "Session 2: Testing of 3" in page
    csrf = client.csrf_token(f"/j/{token}")
    joined = client.post(f"/j/{token}/session", headers={"X-CSRFToken": csrf})
    assert joined.status_code == 200
    assert joined.get_json()["meetingLink"] == sessions[1].join_url
    with app.app_context():
        reg = db.session.scalar(select(Registration).where(Registration.email == "ada@example.org"))
        row = db.session.get(SessionAttendance, (sessions[1].id, reg.id))
        assert row is not None and row.first_joined_at is not None

    # Between sessions the page counts down to the next one.
    _move(app, event.id, now - timedelta(weeks=1, hours=3))
    page = _text(client.get(f"/j/{token}"))
    assert "The call opens soon" in page and "Session 3: Packaging of 3" in page


def test_reminders_go_out_before_every_session(app, client, course):
    event = course["event"]
    _register(app, client, event, "ada@example.org")
    sessions = _sessions(app, event.id)
    with app.app_context():
        # An hour before session 2 (the event's schedule: a day and an hour before each session).
        result = reminders.sweep(sessions[1].starts_at - timedelta(minutes=59))
        db.session.commit()
        assert result.queued == 1 and result.suppressed == 1  # the day-before one is replaced by the hour one
        again = reminders.sweep(sessions[1].starts_at - timedelta(minutes=58))
        db.session.commit()
        assert again.queued == 0
        sent = [m for m in queued_emails(to="ada@example.org") if m["kind"] == "reminder" and m["status"] == "queued"]
        reg_id = db.session.scalar(select(Registration.id).where(Registration.email == "ada@example.org"))
        assert [m["dedupe_key"] for m in sent] == [f"reminder:{event.id}:s{sessions[1].id}:60:{reg_id}"]
        assert "Python course — Session 2: Testing" in sent[0]["text"]
        assert "Tue 25 Mar 2031, 17:00–18:30 (UTC)" in sent[0]["text"]
        # A day before session 3, its own reminder.
        result = reminders.sweep(sessions[2].starts_at - timedelta(hours=23, minutes=59))
        db.session.commit()
        assert result.queued == 1
        last = [m for m in queued_emails(to="ada@example.org") if m["kind"] == "reminder"][-1]
        assert "Session 3: Packaging" in last["text"] and f":s{sessions[2].id}:1440:" in last["dedupe_key"]


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_attendance_is_imported_per_session(app, client, course, emulator):
    event = course["event"]
    _register(app, client, event, "ada@example.org")
    _register(app, client, event, "bob@example.org")
    _register(app, client, event, "cleo@example.org")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(weeks=2, hours=3)
    _move(app, event.id, start)
    sessions = _sessions(app, event.id)
    at = lambda s, minutes: _iso(s.starts_at + timedelta(minutes=minutes))  # noqa: E731
    # Ada comes to sessions 1 and 3, Bob to session 2; Cleo joins session 3 from Foyer's page only.
    for index, who, minutes in ((0, "ada", 60), (1, "bob", 30), (2, "ada", 90)):
        session = sessions[index]
        emulator.graph.add_attendance_report(session.online_meeting_id, records=[
            {"emailAddress": f"{who}@example.org", "displayName": who.title(),
             "intervals": [(at(session, 0), at(session, minutes))]}])
    with app.app_context():
        cleo = db.session.scalar(select(Registration).where(Registration.email == "cleo@example.org"))
        db.session.add(SessionAttendance(session_id=sessions[2].id, registration_id=cleo.id,
                                         first_joined_at=sessions[2].starts_at,
                                         last_seen_at=sessions[2].starts_at + timedelta(minutes=20)))
        db.session.commit()
        assert attendance.queue_due_imports() == 1
        db.session.commit()
    drain(app)
    with app.app_context():
        regs = {r.first_name: r for r in db.session.scalars(select(Registration))}
        rows = {(row.session_id, row.registration_id): row for row in db.session.scalars(select(SessionAttendance))}

        def came(name, index):
            row = rows.get((sessions[index].id, regs[name].id))
            return row is not None and row.attended

        assert [came("Ada", i) for i in range(3)] == [True, False, True]
        assert [came("Bob", i) for i in range(3)] == [False, True, False]
        assert [came("Cleo", i) for i in range(3)] == [False, False, True]
        assert rows[(sessions[2].id, regs["Ada"].id)].seconds == 90 * 60
        # The course as a whole: attended any session; minutes add up across sessions (no gaps counted).
        assert (regs["Ada"].attended, regs["Ada"].attendance_minutes) == (True, 150)
        assert (regs["Bob"].attended, regs["Bob"].attendance_minutes) == (True, 30)
        assert (regs["Cleo"].attended, regs["Cleo"].attendance_minutes) == (True, 20)
        summary = db.session.get(Event, event.id).attendance_summary
        assert [s["attended"] for s in summary["sessions"]] == [1, 1, 2]
        assert summary["reports"] == 3 and summary["attended"] == 3
    overview = _text(client.get(f"/manage/events/{event.id}"))
    assert "Attendance per session" in overview
    assert [overview.count(f'data-session-attended="{s.id}">{n}<') for s, n in zip(sessions, (1, 1, 2), strict=True)] \
        == [1, 1, 1]


def test_changing_and_removing_a_session_moves_and_cancels_its_meeting(app, client, course, emulator):
    event_id = course["event"].id
    _register(app, client, course["event"], "ada@example.org")
    sessions = _sessions(app, event_id)
    url = f"/manage/events/{event_id}/sessions/{sessions[1].id}/edit"
    moved = _utc(datetime(2031, 3, 26, 19, 0))
    response = client.submit(url, {"name": "Testing, part 1", "starts_at": _local(moved),
                                   "ends_at": _local(moved + timedelta(hours=2)), "notify_attendees": "y"})
    assert response.status_code == 303
    drain(app)
    graph_event = emulator.graph.events[sessions[1].graph_event_id]
    assert graph_event["subject"] == "Python course — Session 2: Testing, part 1"
    assert graph_event["start"]["dateTime"].startswith("2031-03-26T18:00")  # 19:00 in Berlin
    with app.app_context():
        [changed] = [m for m in queued_emails(to="ada@example.org") if m["kind"] == "event_changed"]
    # The registrant hears of the new schedule, with an invitation that carries it.
    assert "- Session 2: Testing, part 1: Wed 26 Mar 2031, 18:00–20:00 (UTC)" in changed["text"]
    [invite] = [a for a in changed["attachments"] if a["name"] == "invite.ics"]
    instances = Calendar.from_ical(base64.b64decode(invite["contentInBase64"])).walk("VEVENT")[1:]
    assert instances[1]["DTSTART"].dt.astimezone(UTC) == moved

    response = client.submit(f"/manage/events/{event_id}/sessions/{sessions[2].id}/remove",
                             {"notify_attendees": "y"})
    assert response.status_code == 303
    drain(app)
    assert sessions[2].graph_event_id in emulator.graph.deleted_events
    with app.app_context():
        event = db.session.get(Event, event_id)
        assert len(event.sessions) == 2 and event.ends_at == moved + timedelta(hours=2)


@pytest.mark.parametrize(("starts", "ends", "message"), [
    ("2031-03-18T18:30", "2031-03-18T19:00", "This overlaps Session 1."),
    ("2031-04-20T18:00", "2031-04-20T17:00", "The session must end after it starts."),
    ("2031-04-20T18:00", "2031-04-21T19:00", "A session can last at most 24 hours"),
    ("2020-04-20T18:00", "2020-04-20T19:00", "This time has already passed."),
    ("2031-03-30T02:30", "2031-03-30T04:00", "does not exist on that day in Europe/Berlin"),
    ("not a date", "2031-03-30T04:00", "Enter a date and time"),
])
def test_impossible_sessions_get_a_clear_error(app, client, auth, make_event, starts, ends, message):
    admin = auth.login_as_admin()
    first = datetime(2031, 3, 18, 17, 0, tzinfo=UTC)
    event = make_event(admin, timezone=ZONE, starts_at=first, ends_at=first + timedelta(minutes=90))
    response = client.submit(f"/manage/events/{event.id}/sessions", {
        "new-session-starts_at": starts, "new-session-ends_at": ends})
    assert response.status_code == 422
    assert message in _text(response)
    assert _sessions(app, event.id) == []


def test_a_course_keeps_its_last_session_and_strangers_see_nothing(app, client, auth, make_event, make_user):
    admin = auth.login_as_admin()
    first = datetime(2031, 3, 18, 17, 0, tzinfo=UTC)
    event = make_event(admin, timezone=ZONE, starts_at=first, ends_at=first + timedelta(minutes=90))
    assert add_session(client, event.id, first + timedelta(weeks=1), first + timedelta(weeks=1, hours=1)).status_code \
        == 303
    one, two = _sessions(app, event.id)
    url = f"/manage/events/{event.id}/sessions"
    assert client.submit(f"{url}/{two.id}/remove", {}).status_code == 303
    response = client.submit(f"{url}/{one.id}/remove", {}, follow_redirects=True)
    assert "A course keeps at least one session. Cancel the event instead." in _text(response)
    assert len(_sessions(app, event.id)) == 1

    other = make_user("other@example.org")
    auth.logout()
    auth.login(other.email)
    assert client.get(url).status_code == 404
    assert client.get(f"{url}/{one.id}/edit").status_code == 404


def test_editing_and_cancelling_a_course_reach_every_sessions_meeting(app, client, course, emulator):
    event = course["event"]
    sessions = _sessions(app, event.id)
    url = f"/manage/events/{event.id}/edit"
    page = _text(client.get(url))
    assert "This event is a course of 3 sessions" in page and 'type="hidden"' in page
    # The form's start and end are the course's own; a submission cannot move the course by them.
    response = client.submit(url, event_form(title="Python course, spring", slug=event.slug, timezone=ZONE,
                                             starts_at="2031-01-01T09:00", ends_at="2031-01-01T10:00"))
    assert response.status_code == 303, _text(response)
    drain(app)
    with app.app_context():
        saved = db.session.get(Event, event.id)
        assert (saved.starts_at, saved.ends_at) == (sessions[0].starts_at, sessions[-1].ends_at)
    assert sorted(e["subject"] for e in emulator.graph.events.values()) == [
        "Python course, spring — Session 1", "Python course, spring — Session 2: Testing",
        "Python course, spring — Session 3: Packaging"]

    response = client.submit(f"/manage/events/{event.id}/cancel", {"reason": "Not enough people."})
    assert response.status_code == 303
    drain(app)
    assert emulator.graph.events == {}
    assert {s.graph_event_id for s in sessions} <= set(emulator.graph.deleted_events)


def test_the_api_describes_a_course_by_its_sessions(app, client, course, api, issue_token):
    event = course["event"]
    sessions = _sessions(app, event.id)
    api.token = issue_token(ApiScope.read)
    body = api.get(f"/events/{event.id}").get_json()  # checked against the OpenAPI document by `api`
    assert [s["name"] for s in body["sessions"]] == ["", "Testing", "Packaging"]
    assert body["sessions"][2]["starts_at"] == "2031-04-01T16:00:00Z"
    assert (body["starts_at"], body["ends_at"]) == (body["sessions"][0]["starts_at"], body["sessions"][2]["ends_at"])
    assert body["series_id"] is None and [s["id"] for s in body["sessions"]] == [s.id for s in sessions]


def test_cloning_a_course_copies_its_sessions_a_week_later_without_meetings(app, client, course):
    event = course["event"]
    response = client.submit(f"/manage/events/{event.id}/clone")
    assert response.status_code == 303
    with app.app_context():
        copy = db.session.scalar(select(Event).where(Event.id != event.id))
        copy_id = copy.id
    originals, copies = _sessions(app, event.id), _sessions(app, copy_id)
    assert [s.starts_at for s in copies] == [s.starts_at + timedelta(weeks=1) for s in originals]
    assert [s.name for s in copies] == ["", "Testing", "Packaging"]
    assert all(s.graph_event_id is None and s.provisioning_status == ProvisioningStatus.not_requested for s in copies)


def test_each_sessions_recording_is_imported_under_its_label_and_the_followup_links_them_all(app, client, course,
                                                                                              emulator):
    event = course["event"]
    url = f"/manage/events/{event.id}"
    _register(app, client, event, "ada@example.org")
    drain(app)  # the confirmation goes out
    assert client.submit(f"{url}/followup", {"enabled": "y", "recording_url": ""}).status_code == 303
    _move(app, event.id, datetime.now(UTC).replace(microsecond=0) - timedelta(weeks=2, hours=3))
    sessions = _sessions(app, event.id)
    for session in sessions:
        emulator.graph.add_attendance_report(session.online_meeting_id, records=[
            {"emailAddress": "ada@example.org", "displayName": "Ada",
             "intervals": [(_iso(session.starts_at), _iso(session.starts_at + timedelta(minutes=60)))]}])
    # Sessions 1 and 3 were recorded (session 1 with a transcript); session 2 was not.
    first = emulator.graph.add_recording(sessions[0].online_meeting_id, b"first session video")
    emulator.graph.add_transcript(sessions[0].online_meeting_id, "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHello\n")
    third = emulator.graph.add_recording(sessions[2].online_meeting_id, b"third session video")
    sent_before = len(emulator.acs.sent_emails)
    with app.app_context():
        assert attendance.queue_due_imports() == 1
        db.session.commit()
    drain(app)  # attendance, then the recordings of every session's meeting

    with app.app_context():
        rows = {r.graph_id: r for r in db.session.scalars(select(EventRecording).where(
            EventRecording.event_id == event.id))}
        assert {g: r.session_label for g, r in rows.items()} == {
            first["id"]: "Session 1", third["id"]: "Session 3: Packaging"}
        assert rows[first["id"]].transcript_stored_name and not rows[third["id"]].transcript_stored_name
        assert db.session.get(Event, event.id).recordings_state == "found"
        ids = {g: r.id for g, r in rows.items()}
    assert len(emulator.acs.sent_emails) == sent_before  # the follow-up waits for the organizer
    overview = _text(client.get(url))
    assert "Session 1, recording" in overview and "Session 3: Packaging, recording" in overview

    for graph_id in (first["id"], third["id"]):
        response = client.submit(f"{url}/recordings/{ids[graph_id]}/approve", {"share_transcript": "y"})
        assert response.status_code == 303
        drain(app)
        followups = [e for e in emulator.acs.sent_emails[sent_before:] if e.to[0]["address"] == "ada@example.org"]
        assert len(followups) == (0 if graph_id == first["id"] else 1)  # waits until none is pending
    link = re.search(r"http://localhost(/r/[A-Za-z0-9_\-]+/recording)", followups[0].plain_text).group(1)
    page = _text(client.get(link))
    assert re.findall(r"<h2 id=\"recording-\d+\">([^<]+)</h2>", page) == ["Session 1", "Session 3: Packaging"]
    assert page.count("<video") == 2 and page.count('kind="captions"') == 1
    with client.get(f"{link}/{ids[first['id']]}/media") as media:
        assert media.status_code == 200 and media.data == b"first session video"
    with client.get(f"{link}/{ids[third['id']]}/media") as media:
        assert media.status_code == 200 and media.data == b"third session video"
    with client.get(f"{link}/{ids[first['id']]}/captions.vtt") as captions:
        assert captions.status_code == 200 and b"Hello" in captions.data
    assert client.get(f"{link}/{ids[third['id']]}/captions.vtt").status_code == 404  # it has no transcript
    assert client.get(f"{link}/{max(ids.values()) + 1}/media").status_code == 404
