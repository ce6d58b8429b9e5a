"""CSV exports of an event's registrations (with answers) and attendance, streamed in batches so a
big event never sits in memory, and safe to open in a spreadsheet: a cell that starts with `=`, `+`,
`-`, `@` (or a tab / carriage return) is prefixed with an apostrophe so it cannot run as a formula.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models import Event, Registration, User, db
from app.services.core import audit

logger = logging.getLogger(__name__)

BATCH = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
KINDS = {"registrations": "registrations", "attendance": "attendance", "questions": "questions", "polls": "polls",
         "feedback": "feedback"}


def neutralise(value: Any) -> str:
    """A cell's text, made inert for spreadsheets (OWASP CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def answer_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _attended(reg: Registration) -> str:
    return "" if reg.attended is None else ("yes" if reg.attended else "no")


def _batches(event_id: int, *, answers: bool) -> Iterator[list[Registration]]:
    """The event's registrations in id order, BATCH at a time (keyset paging, answers in one query each)."""
    last_id = 0
    while True:
        query = (select(Registration).where(Registration.event_id == event_id, Registration.id > last_id)
                 .order_by(Registration.id).limit(BATCH))
        if answers:
            query = query.options(selectinload(Registration.answers))
        rows = list(db.session.scalars(query))
        if not rows:
            return
        yield rows
        last_id = rows[-1].id
        for reg in rows:  # keep memory flat on big events (answers go with them: cascade)
            db.session.expunge(reg)


def encode_rows(rows: Iterable[list[Any]]) -> str:
    """CSV lines for these rows, every cell neutralised (for other domains' exports too)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()


def registrations_csv(event: Event) -> Iterator[str]:
    """The registrations CSV, chunk by chunk: one column per current question, then any answers to
    questions deleted since ("Other answers").
    """
    # Read what the header needs now: the rows are produced later, while the response streams.
    questions = [(q.id, q.label) for q in event.questions]
    return _registration_chunks(event.id, questions)


def _registration_chunks(event_id: int, questions: list[tuple[int, str]]) -> Iterator[str]:
    header = ["Registration id", "First name", "Last name", "Email", "State", "Registered (UTC)", "Confirmed (UTC)",
              "Cancelled (UTC)", "Time zone", "Attended", "First join (UTC)", "Minutes present",
              *[label for _, label in questions], "Other answers"]
    yield "\ufeff" + encode_rows([header])  # the BOM makes spreadsheet programs read UTF-8
    known = {qid for qid, _ in questions}
    for rows in _batches(event_id, answers=True):
        lines = []
        for reg in rows:
            by_question = {a.question_id: a.value for a in reg.answers if a.question_id in known}
            others = [f"{a.question_label}: {answer_text(a.value)}" for a in reg.answers if a.question_id not in known]
            lines.append([reg.id, reg.first_name, reg.last_name, reg.email, reg.state.value, _iso(reg.created_at),
                          _iso(reg.confirmed_at), _iso(reg.cancelled_at), reg.timezone, _attended(reg),
                          _iso(reg.attendance_first_join_at),
                          "" if reg.attendance_minutes is None else reg.attendance_minutes,
                          *[answer_text(by_question.get(qid)) for qid, _ in questions], " | ".join(others)])
        yield encode_rows(lines)


def attendance_csv(event: Event) -> Iterator[str]:
    """Who attended: attended yes/no, first join and minutes present per registration."""
    return _attendance_chunks(event.id)


def _attendance_chunks(event_id: int) -> Iterator[str]:
    yield "\ufeff" + encode_rows([["Registration id", "First name", "Last name", "Email", "State", "Attended",
                                "First join (UTC)", "Minutes present"]])
    for rows in _batches(event_id, answers=False):
        yield encode_rows([[reg.id, reg.first_name, reg.last_name, reg.email, reg.state.value, _attended(reg),
                        _iso(reg.attendance_first_join_at),
                        "" if reg.attendance_minutes is None else reg.attendance_minutes] for reg in rows])


def record_export(event: Event, kind: str, *, actor: User) -> None:
    """Audit an export before it is streamed."""
    audit.record(f"export.{KINDS[kind]}_csv", actor=actor, target=event,
                 summary=f"Exported the {KINDS[kind]} of “{event.title}” as CSV")


def filename(event: Event, kind: str) -> str:
    return f"{event.slug}-{KINDS[kind]}.csv"
