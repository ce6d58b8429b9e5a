"""Seeding many registrations quickly (tests of the registrant table, the bench) and reading the database."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from app.extensions import db
from app.models import Registration, RegistrationAnswer, RegistrationState

FIRST = ["Ada", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea", "Max", "Noor"]
LAST = ["Lovelace", "Babbage", "Curie", "Hopper", "Turing", "Noether", "Meitner", "Franklin", "Ride", "Sagan"]


def seed_registrations(event_id: int, count: int, *, questions: list[tuple[int, str, list]] | None = None,
                       start: datetime | None = None, seed: int = 7, states=None, attended_share: float = 0.0) -> None:
    """Insert `count` registrations (with answers) in bulk, spread over days; inside an app context.

    `questions` are (question id, label, choices); each registration answers each with a random choice.
    """
    rnd = random.Random(seed)
    start = start or datetime(2031, 1, 1, 9, 0, tzinfo=UTC)
    states = states or [RegistrationState.confirmed] * 6 + [RegistrationState.waitlisted, RegistrationState.cancelled,
                                                             RegistrationState.pending]
    rows = []
    for i in range(count):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        attended = rnd.random() < attended_share if attended_share else None
        rows.append({
            "event_id": event_id, "state": rnd.choice(states),
            "email": f"{first.lower()}.{last.lower()}.{i}@example.org",
            "first_name": first, "last_name": f"{last}{i}", "timezone": "UTC", "ics_sequence": 0,
            "manage_token_hash": hashlib.sha256(f"{event_id}:{i}:{seed}".encode()).hexdigest(),
            "created_at": start + timedelta(minutes=7 * i), "updated_at": start + timedelta(minutes=7 * i),
            "attended": attended,
            "attendance_seconds": rnd.randint(60, 3600) if attended else (0 if attended is False else None),
        })
    for chunk in range(0, len(rows), 2000):
        db.session.execute(insert(Registration), rows[chunk:chunk + 2000])
    if questions:
        ids = list(db.session.scalars(db.select(Registration.id).where(Registration.event_id == event_id)
                                      .order_by(Registration.id)))
        answers = []
        for reg_id in ids:
            for qid, label, choices in questions:
                answers.append({"registration_id": reg_id, "question_id": qid, "question_label": label,
                                "value": rnd.choice(choices)})
        for chunk in range(0, len(answers), 2000):
            db.session.execute(insert(RegistrationAnswer), answers[chunk:chunk + 2000])
    db.session.commit()
