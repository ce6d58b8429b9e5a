"""Attendance after an event, end to end through the in-process emulator: the worker's sweep queues the
import, the outbox performs it with the real GraphClient (several reports, paged records, a registrant
who joined twice, an unknown guest, Foyer's own join record) and every registration gets attended,
first join and minutes; the follow-up emails go out once; the 50-report limit is reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.models import AuditEntry, Event, EventStatus, OutboxItem, OutboxStatus, ProvisioningStatus, Registration
from app.models import RegistrationState as S
from app.services.attendance import attendance
from app.services.registration import registrations
from tests.routes.admin.test_microsoft import connect_service_account
from tests.worker import drain


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def ended_event(app, client, auth, make_event, emulator):
    """A published event with a Teams meeting and five registrants, whose hour ended 30 minutes ago."""
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    event = make_event(admin, starts_at=start, ends_at=start + timedelta(hours=1), capacity=4)
    assert client.submit(f"/manage/events/{event.id}/publish").status_code == 303
    drain(app)
    with app.app_context():
        row = db.session.get(Event, event.id)
        assert row.provisioning_status == ProvisioningStatus.ready
        ids = {}
        for first in ("Ada", "Bob", "Cleo", "Dan", "Eve"):  # Eve is waitlisted (four seats)
            outcome = registrations.register(row, registrations.RegistrationData(
                first_name=first, last_name="Test", email=f"{first.lower()}@example.org", timezone="UTC"))
            db.session.commit()
            ids[first] = outcome.registration.id
        row = db.session.get(Event, event.id)
        ended = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        row.starts_at, row.ends_at = ended - timedelta(hours=1), ended
        db.session.commit()
        meeting_id = row.online_meeting_id
    drain(app)  # the confirmation emails
    return {"event": event, "ids": ids, "meeting": meeting_id, "start": ended - timedelta(hours=1), "end": ended,
            "admin": admin}


def _seed_reports(emulator, ctx):
    start = ctx["start"]
    at = lambda minutes: _iso(start + timedelta(minutes=minutes))  # noqa: E731
    # First report: Ada joins twice (10 min, then 20 min), Bob 30 min, an unknown guest, 12 more guests so the
    # records come back over two pages (the emulator pages by 10), and the organizer.
    guests = [{"emailAddress": f"guest{i}@elsewhere.example", "displayName": f"Guest {i}",
               "intervals": [(at(0), at(5))]} for i in range(12)]
    emulator.graph.add_attendance_report(ctx["meeting"], start=at(0), end=at(60), records=[
        {"emailAddress": "ADA@example.org", "displayName": "Ada", "intervals": [(at(0), at(10)), (at(30), at(50))]},
        {"emailAddress": "bob@example.org", "displayName": "Bob", "intervals": [(at(5), at(35))]},
        {"emailAddress": "organizer@contoso.example", "role": "Organizer", "intervals": [(at(0), at(60))]},
        *guests,
    ])
    # Second report (the meeting was re-opened): Ada again, overlapping her earlier stay by 10 minutes.
    emulator.graph.add_attendance_report(ctx["meeting"], start=at(40), end=at(70), records=[
        {"emailAddress": "ada@example.org", "displayName": "Ada", "intervals": [(at(40), at(65))]},
    ])


def test_import_merges_reports_pages_and_foyer_joins(app, emulator, ended_event):
    ctx = ended_event
    _seed_reports(emulator, ctx)
    with app.app_context():
        # Cleo is not in any Teams report but Foyer's join page saw her for 12 minutes.
        cleo = db.session.get(Registration, ctx["ids"]["Cleo"])
        cleo.first_joined_at = ctx["start"] + timedelta(minutes=3)
        cleo.last_seen_at = ctx["start"] + timedelta(minutes=15)
        db.session.commit()

    # The sweep waits until IMPORT_DELAY after the end (30 minutes ago: due).
    jobs.queue_attendance_imports(app)
    jobs.queue_attendance_imports(app)  # idempotent
    with app.app_context():
        items = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == attendance.IMPORT_KIND)).all()
        assert len(items) == 1
    drain(app)

    with app.app_context():
        regs = {r.first_name: r for r in db.session.scalars(select(Registration))}
        ada, bob, cleo, dan, eve = (regs[n] for n in ("Ada", "Bob", "Cleo", "Dan", "Eve"))
        # Ada: 0–10, 30–50 and 40–65 → 10 + 35 minutes, overlaps counted once.
        assert (ada.attended, ada.attendance_seconds, ada.attendance_minutes) == (True, 45 * 60, 45)
        assert ada.attendance_first_join_at == ctx["start"]
        assert (bob.attended, bob.attendance_minutes) == (True, 30)
        assert bob.attendance_first_join_at == ctx["start"] + timedelta(minutes=5)
        assert (cleo.attended, cleo.attendance_minutes) == (True, 12)
        assert (dan.attended, dan.attendance_seconds) == (False, 0)  # confirmed, never seen: a no-show
        assert eve.state == S.waitlisted and eve.attended is None  # never had a seat: not a no-show
        event = db.session.get(Event, ctx["event"].id)
        assert event.attendance_imported_at is not None
        summary = event.attendance_summary
        assert summary["reports"] == 2 and summary["records"] == 16 and summary["matched_records"] == 3
        assert (summary["attended"], summary["no_shows"], summary["unknown_attendees"]) == (3, 1, 12)
        # The segments for organizer messages.
        attended = db.session.scalars(select(Registration.first_name).where(
            Registration.event_id == event.id, attendance.attended_filter()).order_by(Registration.first_name)).all()
        no_shows = db.session.scalars(select(Registration.first_name).where(
            Registration.event_id == event.id, attendance.no_show_filter())).all()
        assert attended == ["Ada", "Bob", "Cleo"] and no_shows == ["Dan"]
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "attendance.import"))
        assert entry.actor_label == "system" and "3 attended, 1 no-shows, 12 unknown" in entry.summary
        assert "guest" not in str(entry.details) and "guest" not in str(summary)  # unknown people are counted only

    # Records were read page by page (skiptoken), from both reports.
    record_calls = [r for r in emulator.requests_for("graph") if r.path.endswith("/attendanceRecords")]
    assert len(record_calls) == 3 and sum("skiptoken" in r.query for r in record_calls) == 1
    assert any(r.path.endswith("/attendanceReports") for r in emulator.requests_for("graph"))


def test_acs_participants_are_matched_by_their_acs_identity(app, emulator, ended_event):
    """Foyer's attendees join as ACS users: Graph lists them with an azureCommunicationServicesUserIdentity
    (id "8:acs:…"), an empty email address and role "Attendee" or "Presenter"."""
    ctx = ended_event
    resource = emulator.config.acs_resource_id
    dan_acs = f"8:acs:{resource}_00000012-518d-e776-71d3-44482200c7c3"
    with app.app_context():
        db.session.get(Registration, ctx["ids"]["Dan"]).acs_user_id = dan_acs
        db.session.commit()
    at = lambda minutes: _iso(ctx["start"] + timedelta(minutes=minutes))  # noqa: E731
    report = emulator.graph.add_attendance_report(ctx["meeting"], start=at(0), end=at(60), records=[
        {"userId": dan_acs, "displayName": "Dan", "intervals": [(at(0), at(25))]},
        {"userId": f"8:acs:{resource}_00000012-0000-0000-0000-000000000001", "displayName": "Someone",
         "intervals": [(at(0), at(5))]},
    ])
    assert report["attendanceRecords"][0]["emailAddress"] == ""
    assert report["attendanceRecords"][0]["role"] == "Attendee"  # Foyer's meetings: only the organizer presents
    jobs.queue_attendance_imports(app)
    drain(app)
    with app.app_context():
        dan = db.session.get(Registration, ctx["ids"]["Dan"])
        assert (dan.attended, dan.attendance_minutes) == (True, 25)
        summary = db.session.get(Event, ctx["event"].id).attendance_summary
        assert summary["matched_records"] == 1 and summary["unknown_attendees"] == 1


def test_no_report_yet_retries_later_then_imports(app, emulator, ended_event):
    ctx = ended_event
    jobs.queue_attendance_imports(app)
    drain(app)
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == attendance.IMPORT_KIND))
        assert item.status == OutboxStatus.pending and "not produced an attendance report yet" in item.last_error
        assert item.next_attempt_at > datetime.now(UTC) + timedelta(minutes=50)
        assert db.session.get(Event, ctx["event"].id).attendance_imported_at is None
        item.next_attempt_at = datetime.now(UTC)
        db.session.commit()
    _seed_reports(emulator, ctx)
    drain(app)
    with app.app_context():
        assert db.session.get(Event, ctx["event"].id).attendance_summary["attended"] == 2


def test_organizer_can_import_again_after_new_reports(app, client, emulator, ended_event):
    ctx = ended_event
    _seed_reports(emulator, ctx)
    event_id = ctx["event"].id
    response = client.submit(f"/manage/events/{event_id}/attendance/import")
    assert response.status_code == 303
    drain(app)
    eight_minutes = (_iso(ctx["start"]), _iso(ctx["start"] + timedelta(minutes=8)))
    emulator.graph.add_attendance_report(ctx["meeting"], start=_iso(ctx["start"]), end=_iso(ctx["end"]), records=[
        {"emailAddress": "dan@example.org", "intervals": [eight_minutes]}])
    client.submit(f"/manage/events/{event_id}/attendance/import")
    drain(app)
    with app.app_context():
        dan = db.session.get(Registration, ctx["ids"]["Dan"])
        assert (dan.attended, dan.attendance_minutes) == (True, 8)
        assert db.session.get(Event, event_id).attendance_summary["reports"] == 3
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.startswith("attendance."))
                                     .order_by(AuditEntry.id)).all()
        assert actions == ["attendance.import_requested", "attendance.import"] * 2
    page = client.get(f"/manage/events/{event_id}").get_data(as_text=True)
    assert 'data-stat="attended">3<' in page and 'data-stat="no_shows">1<' in page  # Cleo


def test_followup_goes_to_attendees_and_no_shows_once(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    url = f"/manage/events/{event_id}"
    assert client.submit(f"{url}/followup",
                         {"enabled": "y", "recording_url": "https://video.example.org/r1"}).status_code == 303
    _seed_reports(emulator, ctx)
    sent_before = len(emulator.acs.sent_emails)
    jobs.queue_attendance_imports(app)
    drain(app)
    client.submit(f"{url}/attendance/import")  # a second import sends nothing new
    drain(app)
    followups = emulator.acs.sent_emails[sent_before:]
    by_address = {e.to[0]["address"]: e for e in followups}
    assert sorted(by_address) == ["ada@example.org", "bob@example.org", "cleo@example.org", "dan@example.org"]
    assert len(followups) == 4  # Eve (waitlisted) gets nothing; nobody gets two
    assert by_address["ada@example.org"].subject.startswith("Thank you for joining")
    assert "https://video.example.org/r1" in by_address["ada@example.org"].plain_text
    assert by_address["dan@example.org"].subject.startswith("Sorry we missed you")


def test_only_the_50_most_recent_reports_are_read(app, emulator, ended_event):
    ctx = ended_event
    for i in range(55):
        start = ctx["start"] - timedelta(days=55 - i)
        minute = (_iso(start), _iso(start + timedelta(minutes=1)))
        emulator.graph.add_attendance_report(ctx["meeting"], start=_iso(start), end=_iso(start + timedelta(hours=1)),
                                             records=[{"emailAddress": "bob@example.org", "intervals": [minute]}])
    jobs.queue_attendance_imports(app)
    drain(app)
    with app.app_context():
        event = db.session.get(Event, ctx["event"].id)
        assert event.attendance_summary["reports"] == 50 and event.attendance_summary["reports_capped"] is True
        assert db.session.get(Registration, ctx["ids"]["Bob"]).attendance_minutes == 50
    page_calls = [r for r in emulator.requests_for("graph") if r.path.endswith("/attendanceReports")]
    assert len(page_calls) == 5  # 50 reports, 10 per page


def test_events_without_a_meeting_use_foyers_join_records_only(app, make_event, auth):
    organizer = auth.login_as_organizer()
    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    event = make_event(organizer, status=EventStatus.published, starts_at=ended - timedelta(hours=1), ends_at=ended)
    with app.app_context():
        for i, joined in enumerate([True, False]):
            db.session.add(Registration(event_id=event.id, state=S.confirmed, email=f"p{i}@example.org", first_name="P",
                                        last_name=str(i), timezone="UTC", manage_token_hash=f"{i:064d}",
                                        first_joined_at=ended - timedelta(minutes=20) if joined else None,
                                        last_seen_at=ended - timedelta(minutes=5) if joined else None))
        db.session.commit()
    jobs.queue_attendance_imports(app)
    drain(app)
    with app.app_context():
        rows = db.session.scalars(select(Registration).order_by(Registration.id)).all()
        assert [(r.attended, r.attendance_minutes) for r in rows] == [(True, 15), (False, 0)]
        assert db.session.get(Event, event.id).attendance_summary["source"] == "foyer"


def test_union_of_intervals():
    t = lambda m: datetime(2031, 1, 1, tzinfo=UTC) + timedelta(minutes=m)  # noqa: E731
    assert attendance.union_seconds([]) == 0
    assert attendance.union_seconds([(t(0), t(10)), (t(5), t(20)), (t(30), t(40)), (t(40), t(41))]) == 31 * 60


def test_followups_are_messages_logged_paced_and_sent_once(app, client, emulator, ended_event):
    from tests.integration.test_one_pipeline import send_paced, set_quota

    ctx = ended_event
    event_id = ctx["event"].id
    url = f"/manage/events/{event_id}"
    assert client.submit(f"{url}/followup",
                         {"enabled": "y", "recording_url": "https://video.example.org/r1"}).status_code == 303
    set_quota(client, 2)
    _seed_reports(emulator, ctx)
    client.submit(f"{url}/attendance/import")
    attended = send_paced(app, emulator, "followup_attended", per_pass=2)
    missed = send_paced(app, emulator, "followup_missed", per_pass=2)
    assert sorted(m.recipient for m in attended) == ["ada@example.org", "bob@example.org"]
    assert sorted(m.recipient for m in missed) == ["cleo@example.org", "dan@example.org"]
    assert all(m.event_id == event_id and m.registration_id for m in attended + missed)
    dan = next(e for e in emulator.acs.sent_emails if e.subject.startswith("Sorry we missed you")
               and e.to[0]["address"] == "dan@example.org")
    assert "https://video.example.org/r1" in dan.plain_text and "https://video.example.org/r1" in dan.html
    assert "<!DOCTYPE html>" in dan.html and "Times are shown in your time zone, UTC" in dan.plain_text
    listing = client.get("/admin/messages?kind=followup_missed").get_data(as_text=True)
    assert "dan@example.org" in listing


def test_import_now_right_after_the_end_runs_at_once(app, client, emulator, ended_event):
    ctx = ended_event
    event_id = ctx["event"].id
    with app.app_context():  # the event ended two minutes ago: the automatic import would wait 15 minutes
        row = db.session.get(Event, event_id)
        row.ends_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        db.session.commit()
    _seed_reports(emulator, ctx)
    response = client.submit(f"/manage/events/{event_id}/attendance/import")
    assert response.status_code == 303
    assert "importing the attendance now" in client.get(response.headers["Location"]).get_data(as_text=True)
    drain(app)
    with app.app_context():
        assert db.session.get(Event, event_id).attendance_imported_at is not None
