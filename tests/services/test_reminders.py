"""Reminders on a controllable clock: each offset fires at its time for confirmed registrants only,
once; downtime catch-up sends what is still useful and records the rest; batches that the quota
cannot send in time start early; one sweeper at a time on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.models import Event, EventStatus, Message, MessageStatus, Registration, RegistrationState, Role, User
from app.services.messaging import dispatch
from app.services.outbox import outbox
from app.services.registration import registrations, reminders
from tests.conftest import PG_ADMIN_DSN
from tests.mail import queued_emails

START = datetime(2031, 5, 20, 16, 0, tzinfo=UTC)


@pytest.fixture
def event(app, make_event, make_user):
    owner = make_user("owner@example.org", Role.organizer)
    return make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), starts_at=START,
                      ends_at=START + timedelta(hours=2), reminder_offsets=[1440, 60], capacity=3)


@pytest.fixture
def people(app, event):
    """Three confirmed registrants and one on the waitlist."""
    with app.app_context():
        row = db.session.get(Event, event.id)
        for n in range(4):
            registrations.register(row, registrations.RegistrationData(
                first_name=f"P{n}", last_name="Test", email=f"p{n}@example.org", timezone="America/New_York"))
        db.session.commit()
        return {r.email: r.id for r in db.session.scalars(select(Registration))}


def sweep_at(app, now: datetime) -> reminders.SweepResult:
    with app.app_context():
        result = reminders.sweep(now)
        db.session.commit()
        return result


def reminder_rows(app, **filters) -> list[Message]:
    with app.app_context():
        query = select(Message).where(Message.kind == "reminder").order_by(Message.id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
    return [m for m in rows if all(getattr(m, k) == v for k, v in filters.items())]


def reminder_emails(app) -> list[dict]:
    """The reminder emails, as the sender writes them (their words are written as each is sent)."""
    with app.app_context():
        found = [m for m in queued_emails() if m["kind"] == "reminder"]
        db.session.remove()
    return found


def test_each_offset_fires_at_its_time_for_confirmed_registrants_once(app, event, people):
    assert sweep_at(app, START - timedelta(minutes=1441)).queued == 0
    assert sweep_at(app, START - timedelta(minutes=1440)).queued == 3
    assert sweep_at(app, START - timedelta(minutes=1439)).queued == 0  # already queued: never twice
    day = reminder_rows(app)
    assert sorted(m.recipient for m in day) == ["p0@example.org", "p1@example.org", "p2@example.org"]
    assert {m.dedupe_key for m in day} == {f"reminder:{event.id}:1440:{people[f'p{n}@example.org']}"
                                            for n in range(3)}
    # 16:00 UTC is 12:00 in New York, the registrants' own zone, "tomorrow" from there.
    assert all("tomorrow at 12:00" in m["subject"] and "(America/New_York)" in m["text"] for m in reminder_emails(app))
    assert sweep_at(app, START - timedelta(minutes=61)).queued == 0
    assert sweep_at(app, START - timedelta(minutes=60)).queued == 3
    hour = [m for m in reminder_emails(app) if ":60:" in m["dedupe_key"]]
    assert len(hour) == 3 and all("in 1 hour" in m["subject"] for m in hour)

    with app.app_context():
        outbox.drain(limit=500)
    sent = app.extensions["microsoft"].emulator.acs.sent_emails
    assert len(sent) == 6 + 4  # six reminders, and the four registration emails queued earlier
    assert sorted(e.subject for e in sent if e.subject.startswith("Reminder")).count(
        f"Reminder: {event.title} starts in 1 hour") == 3


def test_downtime_catch_up_sends_what_is_useful_and_records_the_rest(app, event, people):
    # Down over the 1-day mark: five hours before the start it still goes out.
    assert sweep_at(app, START - timedelta(hours=5)).queued == 3
    assert all("in 5 hours" in m["subject"] for m in reminder_emails(app))


def test_both_due_after_downtime_the_stale_one_is_recorded_not_sent(app, event, people):
    result = sweep_at(app, START - timedelta(minutes=30))
    assert (result.queued, result.suppressed) == (3, 3)
    suppressed = reminder_rows(app, status=MessageStatus.suppressed)
    assert {m.dedupe_key.split(":")[2] for m in suppressed} == {"1440"}
    assert all("1 hour reminder replaces it" in m.last_error for m in suppressed)


def test_after_the_start_missed_reminders_are_skipped_and_recorded(app, event, people):
    result = sweep_at(app, START + timedelta(minutes=10))
    assert (result.queued, result.suppressed) == (0, 6)
    assert all("already started" in m.last_error for m in reminder_rows(app))
    with app.app_context():
        outbox.drain(limit=500)
    assert not [e for e in app.extensions["microsoft"].emulator.acs.sent_emails if "Reminder" in e.subject]


def test_registering_after_a_reminders_time_does_not_get_it(app, event, people):
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.capacity = 10
        late = registrations.register(row, registrations.RegistrationData(
            first_name="Late", last_name="Comer", email="late@example.org", timezone="UTC"),
            now=datetime.now(UTC)).registration
        late.confirmed_at = START - timedelta(minutes=100)
        db.session.commit()
    sweep_at(app, START - timedelta(minutes=90))
    assert "late@example.org" not in {m.recipient for m in reminder_rows(app)}


def test_a_cancelled_registration_does_not_get_its_queued_reminder(app, event, people):
    sweep_at(app, START - timedelta(minutes=1440))
    with app.app_context():
        registrations.cancel(db.session.get(Registration, people["p0@example.org"]))
        db.session.commit()
        outbox.drain(limit=500)
    (mine,) = reminder_rows(app, recipient="p0@example.org")
    assert mine.status == MessageStatus.suppressed and "no longer confirmed" in mine.last_error


def test_a_batch_the_quota_cannot_send_in_time_starts_early(app, event, make_user):
    admin = make_user("admin@example.org", Role.admin)
    with app.app_context():
        dispatch.save_quota(5, 100, actor=db.session.get(User, admin.id))
        row = db.session.get(Event, event.id)
        row.capacity = None
        for n in range(20):
            registrations.register(row, registrations.RegistrationData(
                first_name="P", last_name=str(n), email=f"q{n}@example.org", timezone="UTC"))
        db.session.commit()
        plan = {p.offset: p for p in reminders.plan(db.session.get(Event, event.id), now=START - timedelta(days=3))}
    # 20 emails at 5 a minute: four minutes' worth, the last leaving about three minutes after the first.
    assert plan[60].duration == timedelta(seconds=3 * 61) and plan[60].early
    assert plan[60].starts_sending_at == START - timedelta(minutes=60, seconds=183)
    sweep_at(app, START - timedelta(minutes=64))  # the (overdue) 1-day reminder goes; the 1-hour one waits
    assert not [m for m in reminder_rows(app) if ":60:" in m.dedupe_key]
    sweep_at(app, START - timedelta(minutes=63))
    assert len([m for m in reminder_rows(app) if ":60:" in m.dedupe_key]) == 20


def test_the_worker_job_sweeps_with_the_real_clock(app, make_event, make_user):
    owner = make_user("owner@example.org", Role.organizer)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=50)
    event = make_event(owner, status=EventStatus.published, starts_at=soon, ends_at=soon + timedelta(hours=1),
                       reminder_offsets=[60])
    with app.app_context():
        row = db.session.get(Event, event.id)
        reg = registrations.register(row, registrations.RegistrationData(
            first_name="A", last_name="B", email="a@example.org", timezone="UTC")).registration
        reg.confirmed_at = datetime.now(UTC) - timedelta(hours=1)
        db.session.commit()
    jobs.send_reminders(app)
    jobs.drain_outbox(app)
    (row,) = reminder_rows(app)
    assert row.status == MessageStatus.sent and "in 50 minutes" in row.subject


def test_only_one_worker_sweeps_at_a_time_on_postgresql(app, event, people, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's; SQLite runs one worker")
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (dispatch.SWEEP_LOCK_KEY,))
        result = sweep_at(app, START - timedelta(minutes=1440))
        assert result.locked_out and result.queued == 0
        other.execute("SELECT pg_advisory_unlock(%s)", (dispatch.SWEEP_LOCK_KEY,))
    assert sweep_at(app, START - timedelta(minutes=1440)).queued == 3


def test_waitlisted_people_get_no_reminder(app, event, people):
    sweep_at(app, START - timedelta(minutes=60))
    with app.app_context():
        waiting = db.session.scalar(select(Registration).where(Registration.state == RegistrationState.waitlisted))
        assert waiting.email not in {m.recipient for m in db.session.scalars(select(Message)
                                                                               .where(Message.kind == "reminder"))}
