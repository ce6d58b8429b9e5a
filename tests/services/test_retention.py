"""Retention: the worker purges attendee data N days after an event (N from the admin, or the event's
own), leaving anonymous counts and no personal data in any table; events not yet due keep theirs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app import jobs
from app.extensions import db
from app.models import (
    AuditEntry,
    Event,
    EventStatus,
    Message,
    MessageStatus,
    OutboxItem,
    Question,
    QuestionKind,
    Registration,
)
from app.services.outbox import outbox
from app.services.registration import privacy, registrations, roster
from tests.database import every_row_as_text

SECRET_WORDS = ["Ada", "Lovelace", "ada@example.org", "Bob", "Babbage", "bob@example.org", "Cleo", "cleo@example.org",
                "Analytical Engines", "Difference Corp"]


def _scan_all_tables() -> str:
    """Every row of every table, as text."""
    return "\n".join(every_row_as_text())


def _holds(text: str, word: str) -> bool:
    """Whether `word` stands on its own in `text`: not inside a random token or ciphertext (base64url), where
    three letters like "Ada" turn up by chance about once in a few thousand runs."""
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(word)}(?![A-Za-z0-9_-])", text) is not None


def _make_event(app, owner, slug, *, retention_days=None):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with app.app_context():
        event = Event(title=f"Event {slug}", slug=slug, timezone="Europe/Berlin", starts_at=start,
                      ends_at=start + timedelta(hours=1), status=EventStatus.published, owner_id=owner.id, capacity=2,
                      retention_days=retention_days, published_at=datetime.now(UTC))
        event.questions = [Question(position=0, kind=QuestionKind.short_text, label="Company")]
        db.session.add(event)
        db.session.commit()
        return event.id


def _register(event_id, first, last, company):
    row = db.session.get(Event, event_id)
    outcome = registrations.register(row, registrations.RegistrationData(
        first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="UTC",
        answers={row.questions[0].id: company}))
    db.session.commit()
    return outcome.registration.id


def _end_days_ago(event_id, days):
    row = db.session.get(Event, event_id)
    row.ends_at = datetime.now(UTC) - timedelta(days=days)
    row.starts_at = row.ends_at - timedelta(hours=1)
    db.session.commit()


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


def test_purge_leaves_no_personal_data_anywhere_and_keeps_counts(app, owner):
    with app.app_context():
        actor = db.session.get(type(owner), owner.id)
        privacy.set_default_retention(30, actor=actor)
        db.session.commit()
        event_id = _make_event(app, owner, "old-event")
        ada = _register(event_id, "Ada", "Lovelace", "Analytical Engines")
        bob = _register(event_id, "Bob", "Babbage", "Difference Corp")
        cleo = _register(event_id, "Cleo", "Curie", "Analytical Engines")  # waitlisted
    with app.app_context():
        outbox.drain()  # some emails sent (kept as a bare fact), more queued below (deleted)
        db.session.remove()
    with app.app_context():
        actor = db.session.get(type(owner), owner.id)
        event = db.session.get(Event, event_id)
        roster.apply(event, db.session.get(Registration, bob), "cancel", actor=actor, message="Sorry Bob Babbage")
        db.session.commit()  # Cleo promoted; the cancellation and promotion emails stay queued
        ada_reg = db.session.get(Registration, ada)
        ada_reg.attended, ada_reg.attendance_seconds = True, 600
        cleo_reg = db.session.get(Registration, cleo)
        cleo_reg.attended, cleo_reg.attendance_seconds = False, 0
        db.session.commit()
        _end_days_ago(event_id, 31)
        keep_id = _make_event(app, owner, "recent-event")
        _register(keep_id, "Dan", "Keeper", "Still Here Ltd")
        _end_days_ago(keep_id, 29)
        before = _scan_all_tables()
        assert all(_holds(before, word) for word in SECRET_WORDS)  # the scan does see personal data

    jobs.purge_personal_data(app)
    jobs.purge_personal_data(app)  # a second run finds nothing to do

    with app.app_context():
        after = _scan_all_tables()
        for word in SECRET_WORDS:
            assert not _holds(after, word), word
        assert "Still Here Ltd" in after and "dan@example.org" in after  # not due yet
        event = db.session.get(Event, event_id)
        assert event.personal_data_purged_at is not None
        assert event.purged_counts == {
            "by_state": {"unverified": 0, "pending": 0, "confirmed": 2, "waitlisted": 0, "denied": 0, "cancelled": 1},
            "total": 3, "attended": 1, "no_shows": 1, "erased_on_request": 0}
        assert event.confirmed_count == 2  # the seat counter is anonymous and stays
        assert db.session.scalar(select(Registration).where(Registration.event_id == event_id)) is None
        emails = db.session.scalars(select(OutboxItem).where(
            OutboxItem.event_id == event_id, OutboxItem.kind.in_(("email.send", "message.send")))).all()
        assert emails and all(item.payload == {"erased": True} for item in emails)
        purges = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "privacy.purge")).all()
        assert len(purges) == 1 and purges[0].event_id == event_id and purges[0].actor_label == "system"


def test_event_retention_overrides_the_default(app, owner):
    with app.app_context():
        short = _make_event(app, owner, "short", retention_days=2)
        long = _make_event(app, owner, "long")  # default 90
        _register(short, "Ada", "Lovelace", "X")
        _register(long, "Bob", "Babbage", "Y")
        _end_days_ago(short, 3)
        _end_days_ago(long, 3)
        assert privacy.due_for_purge() == [short]


def test_dashboard_after_purge_shows_only_counts(app, client, auth):
    organizer = auth.login_as_organizer("org@example.org")
    with app.app_context():
        event_id = _make_event(app, organizer, "purged-event", retention_days=1)
        _register(event_id, "Ada", "Lovelace", "Analytical Engines")
        _end_days_ago(event_id, 2)
    jobs.purge_personal_data(app)
    page = client.get(f"/manage/events/{event_id}").get_data(as_text=True)
    assert "Attendee data was purged on" in page and "1 registration (1 confirmed" in page
    table = client.get(f"/manage/events/{event_id}/registrations").get_data(as_text=True)
    assert "ada@example.org" not in table and "No registrations yet." in table
    csv_text = client.get(f"/manage/events/{event_id}/registrations.csv").get_data(as_text=True)
    assert "Lovelace" not in csv_text and csv_text.count("\n") == 1
    response = client.submit(f"/manage/events/{event_id}/attendance/import")
    assert response.status_code == 303


def test_purgers_cover_every_table_that_references_registrations():
    """A new table pointing at registrations must get a purger (or cascade with them)."""
    from app.models import Registration as R

    covered = {"registrations", "registration_answers", "registration_transitions", "outbox", "audit_log", "messages",
               "live_questions", "live_question_votes", "live_poll_votes",
               "feedback_responses",  # the "feedback" purger
               "session_attendances"}
    referencing = {t.name for t in db.metadata.sorted_tables
                   if any(fk.column.table is R.__table__ for fk in t.foreign_keys)}
    assert referencing <= covered
    assert [name for name, _ in privacy.PURGERS][-1] == "registrations"


def test_a_registration_after_a_purge_gets_its_emails(app, owner):
    """The purge keeps sent email records but retires their keys: SQLite may give the purged (newest)
    registrations' ids to new ones, whose emails must not look already sent."""
    with app.app_context():
        actor = db.session.get(type(owner), owner.id)
        privacy.set_default_retention(30, actor=actor)
        db.session.commit()
        old_id = _make_event(app, owner, "purged-event")
        purged_reg = _register(old_id, "Ada", "Lovelace", "Analytical Engines")
        assert outbox.drain() >= 1
        _end_days_ago(old_id, 31)
        new_id = _make_event(app, owner, "new-event")
    jobs.purge_personal_data(app)

    with app.app_context():
        kept = db.session.scalars(select(OutboxItem).where(OutboxItem.event_id == old_id,
                                                           OutboxItem.kind == "message.send")).all()
        assert kept and all(item.dedupe_key.startswith("purged:") for item in kept)
        old_operations = {i.payload.get("operation_id") for i in db.session.scalars(select(OutboxItem))}
        reg_id = _register(new_id, "Nora", "Next", "Elsewhere")
        assert reg_id != purged_reg  # ids are never reused (AUTOINCREMENT on SQLite, sequences on PostgreSQL)
        [message] = db.session.scalars(select(Message).where(Message.event_id == new_id)).all()
        assert message.operation_id not in old_operations  # ACS must not take it for the purged send
        assert outbox.drain() >= 1
        assert db.session.get(Message, message.id).status == MessageStatus.sent
