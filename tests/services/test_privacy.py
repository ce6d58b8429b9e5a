"""Per-person export and erasure. Erasure is checked the hard way: after it, every column of every
table (JSON and base64 attachments decoded) is searched for the person's address, name and answers."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, OutboxItem, OutboxStatus, Question, QuestionKind, Registration
from app.models import RegistrationState as S
from app.services.outbox import outbox
from app.services.registration import privacy, registrations
from tests.mail import queued_emails

EMAIL = "zebedee.quixotic@example.org"
FIRST, LAST = "Zebedee", "Quixotic-Smythe"
SECRET_ANSWER = "my-very-secret-answer"
NEEDLES = [EMAIL, FIRST, LAST, SECRET_ANSWER]
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]{24,}$")


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def event(app, make_event, owner):
    made = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=1)
    with app.app_context():
        row = db.session.get(Event, made.id)
        row.questions = [Question(position=0, kind=QuestionKind.long_text, label="Why?")]
        db.session.commit()
        return made


def _register(event_id: int, email: str, first: str, last: str, answer: str = "") -> Registration:
    event = db.session.get(Event, event_id)
    question = event.questions[0]
    outcome = registrations.register(event, registrations.RegistrationData(
        first_name=first, last_name=last, email=email, timezone="Europe/Paris", answers={question.id: answer}))
    db.session.flush()
    return outcome.registration


def _strings(value: Any):
    """Every string inside a value; base64 blobs (email attachments) decoded as well."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif value is not None:
        text = str(value)
        yield text
        if _BASE64.match(text):
            try:
                yield base64.b64decode(text, validate=False).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                pass


def _find_everywhere(needles: list[str]) -> list[str]:
    """`table.column` for every cell, of every table, that mentions one of the needles."""
    found = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            for column, value in row.items():
                for text in _strings(value):
                    # Unfolded: iCalendar folds long lines with CRLF + space.
                    flat = text.replace("\r\n ", "").lower()
                    hits = [n for n in needles if n.lower() in flat]
                    if hits:
                        found.append(f"{table.name}.{column}: {hits}")
    return found


def test_export_holds_everything_about_the_person(app, event):
    with app.app_context():
        reg = _register(event.id, EMAIL, FIRST, LAST, SECRET_ANSWER)
        data = privacy.export_registration(reg)
    assert data["registration"]["email"] == EMAIL
    assert (data["registration"]["first_name"], data["registration"]["last_name"]) == (FIRST, LAST)
    assert data["registration"]["timezone"] == "Europe/Paris"
    assert data["answers"] == [{"question": "Why?", "answer": SECRET_ANSWER}]
    assert [(h["from"], h["to"], h["by"]) for h in data["history"]] == [(None, "confirmed", "attendee")]
    (email,) = data["emails"]
    assert email["to"] == EMAIL and email["attachments"] == ["invite.ics"] and email["status"] == "queued"


def test_erasure_leaves_the_person_in_no_table_and_promotes_the_waitlist(app, event):
    with app.app_context():
        reg = _register(event.id, EMAIL, FIRST, LAST, SECRET_ANSWER)
        waiting = _register(event.id, "next@example.org", "Nora", "Next", "waiting")
        assert (reg.state, waiting.state) == (S.confirmed, S.waitlisted)
        registrations.update_details(reg, first_name=FIRST, last_name=LAST, timezone="Asia/Tokyo",
                                     answers={reg.event.questions[0].id: SECRET_ANSWER + " (edited)"})
        # A repeated sign-up re-sends the link (one more email to the person).
        assert registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Z", last_name="Q", email=EMAIL.upper(), timezone="UTC",
            answers={})).kind == "duplicate"
        db.session.commit()
        # The confirmation goes out (through the emulated ACS); the re-sent link is still queued.
        assert outbox.drain() >= 1
        sent = db.session.scalars(select(OutboxItem).where(OutboxItem.status == OutboxStatus.done)).all()
        assert sent and any(p["status"] == "sent" for p in queued_emails())
        assert _find_everywhere(NEEDLES)  # the check finds the person before erasure (it can fail)
        reg = db.session.get(Registration, reg.id)

        event_row = privacy.erase_registration(reg)
        db.session.commit()

        assert _find_everywhere(NEEDLES) == []
        assert event_row.erased_registrations == 1
        assert db.session.get(Event, event.id).erased_registrations == 1
        # The seat went to the next in line, whose data and emails are untouched.
        nora = db.session.scalar(select(Registration).where(Registration.email == "next@example.org"))
        assert nora.state == S.confirmed
        assert any("A seat is yours" in p["subject"] for p in queued_emails(to="next@example.org"))
        # Sent emails keep only that they were sent; nothing unsent to the person remains.
        kept = [p for p in queued_emails() if p["to"] == "(erased)"]
        assert kept and all(p["status"] == "sent" and p["text"] == "" for p in kept)


def test_erasing_a_cancelled_registration_counts_and_keeps_others(app, event):
    with app.app_context():
        reg = _register(event.id, EMAIL, FIRST, LAST)
        registrations.cancel(reg)
        other = _register(event.id, "other@example.org", "Olga", "Other")
        db.session.commit()
        privacy.erase_registration(db.session.get(Registration, reg.id))
        privacy.erase_registration(db.session.get(Registration, other.id))
        db.session.commit()
        assert db.session.get(Event, event.id).erased_registrations == 2
        assert db.session.scalars(select(Registration)).all() == []
        assert _find_everywhere(NEEDLES + ["other@example.org", "Olga"]) == []


def test_erasure_keeps_a_previous_registration_with_the_same_address(app, event):
    """Someone who cancelled, registered again, and erases the new one: the old one is not theirs to
    erase through this link, so its emails stay; the new one's are gone."""
    with app.app_context():
        old = _register(event.id, EMAIL, FIRST, LAST)
        registrations.cancel(old)
        new = _register(event.id, EMAIL, FIRST, LAST, SECRET_ANSWER)
        db.session.commit()
        old_id, new_id = old.id, new.id
        privacy.erase_registration(db.session.get(Registration, new_id))
        db.session.commit()
        keys = [p["dedupe_key"] for p in queued_emails()]
        assert any(k.startswith(f"registration:{old_id}:") for k in keys)
        assert not any(k.startswith(f"registration:{new_id}:") for k in keys)
        assert _find_everywhere([SECRET_ANSWER]) == []


def test_the_next_registration_after_an_erasure_gets_its_emails(app, event):
    """SQLite gives the next registration the erased (newest) one's id; its emails must still go."""
    with app.app_context():
        erased = _register(event.id, EMAIL, FIRST, LAST, SECRET_ANSWER)
        db.session.commit()
        assert outbox.drain() >= 1 and [p["status"] for p in queued_emails(to=EMAIL)] == ["sent"]
        old_id = erased.id
        privacy.erase_registration(db.session.get(Registration, old_id))
        db.session.commit()

        after = _register(event.id, "nora.next@example.org", "Nora", "Next", "hello")
        db.session.commit()
        assert after.id != old_id  # never reused (AUTOINCREMENT on SQLite, sequences on PostgreSQL)
        assert [p["subject"] for p in queued_emails(to="nora.next@example.org")], "no confirmation queued"
        assert outbox.drain() >= 1
        assert [p["status"] for p in queued_emails(to="nora.next@example.org")] == ["sent"]
