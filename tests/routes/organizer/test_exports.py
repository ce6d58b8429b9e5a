"""CSV exports over HTTP: they parse, carry every answer, neutralise formula payloads, stream large
events, are audited, and refuse other organizers' events."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Event, EventStatus, Question, QuestionKind, Registration
from app.services.registration import registrations


@pytest.fixture
def organizer(auth):
    return auth.login_as_organizer("org@example.org")


@pytest.fixture
def event(app, make_event, organizer):
    made = make_event(organizer, status=EventStatus.published, published_at=datetime.now(UTC), capacity=None,
                      slug="export-call", starts_at=datetime(2031, 3, 3, 13, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 3, 3, 14, 0, tzinfo=UTC))
    with app.app_context():
        row = db.session.get(Event, made.id)
        row.questions = [
            Question(position=0, kind=QuestionKind.short_text, label="Company"),
            Question(position=1, kind=QuestionKind.multiple_choice, label="Topics", options=["AI", "Ops"]),
            Question(position=2, kind=QuestionKind.checkbox, label="Newsletter"),
        ]
        db.session.commit()
    return made


def _register(app, event, first, last, company, topics=(), newsletter=False) -> int:
    with app.app_context():
        row = db.session.get(Event, event.id)
        q = {question.label: question.id for question in row.questions}
        outcome = registrations.register(row, registrations.RegistrationData(
            first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="Europe/Paris",
            answers={q["Company"]: company, q["Topics"]: list(topics), q["Newsletter"]: "y" if newsletter else ""}))
        db.session.commit()
        return outcome.registration.id


def _rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.get_data().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_registrations_csv_parses_and_carries_every_answer(app, client, event):
    _register(app, event, "Ada", "Lovelace", "Analytical Engines", topics=["AI", "Ops"], newsletter=True)
    _register(app, event, "Bob", "Babbage", "", topics=[])
    response = client.get(f"/manage/events/{event.id}/registrations.csv")
    assert 'attachment; filename="export-call-registrations.csv"' == response.headers["Content-Disposition"]
    rows = _rows(response)
    assert [r["Email"] for r in rows] == ["ada@example.org", "bob@example.org"]
    ada = rows[0]
    assert ada["First name"] == "Ada" and ada["State"] == "confirmed" and ada["Time zone"] == "Europe/Paris"
    assert ada["Company"] == "Analytical Engines" and ada["Topics"] == "AI; Ops" and ada["Newsletter"] == "yes"
    assert rows[1]["Newsletter"] == "no" and rows[1]["Company"] == ""
    assert ada["Registered (UTC)"].startswith(str(datetime.now(UTC).year))


@pytest.mark.parametrize(("payload", "expected"), [
    ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\r=CR", "'=CR"),  # the form strips the leading control character; the formula is still caught
    ("Plain = fine", "Plain = fine"),
])
def test_formula_payloads_are_neutralised(app, client, event, payload, expected):
    _register(app, event, "Eve", "Evil", payload)
    row = _rows(client.get(f"/manage/events/{event.id}/registrations.csv"))[0]
    assert row["Company"] == expected


def test_neutralise_covers_tab_and_carriage_return():
    from app.services.registration.exports import neutralise

    assert neutralise("\tx") == "'\tx" and neutralise("\r=1") == "'\r=1" and neutralise(5) == "5"
    assert neutralise(None) == "" and neutralise("a=b") == "a=b"


def test_formula_in_names_is_neutralised_too(app, client, event):
    reg_id = _register(app, event, "Eve", "Evil", "Acme")
    with app.app_context():
        reg = db.session.get(Registration, reg_id)
        reg.first_name, reg.last_name = "=1+1", "@cmd"
        db.session.commit()
    row = _rows(client.get(f"/manage/events/{event.id}/registrations.csv"))[0]
    assert row["First name"] == "'=1+1" and row["Last name"] == "'@cmd"


def test_big_export_streams_in_batches(app, client, event):
    from tests.insights_helpers import seed_registrations

    with app.app_context():
        questions = [(q.id, q.label, [["AI"], ["Ops"]]) for q in db.session.get(Event, event.id).questions
                     if q.kind == QuestionKind.multiple_choice]
        seed_registrations(event.id, 1234, questions=questions)
    response = client.get(f"/manage/events/{event.id}/registrations.csv")
    assert response.is_streamed
    rows = _rows(response)
    assert len(rows) == 1234 and len({r["Registration id"] for r in rows}) == 1234
    assert {r["Topics"] for r in rows} == {"AI", "Ops"}


def test_answers_to_deleted_questions_are_kept(app, client, event):
    _register(app, event, "Ada", "Lovelace", "Acme")
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.questions = [q for q in row.questions if q.label != "Company"]
        db.session.commit()
    rows = _rows(client.get(f"/manage/events/{event.id}/registrations.csv"))
    assert "Company" not in rows[0] and rows[0]["Other answers"] == "Company: Acme"


def test_attendance_csv(app, client, event):
    ada = _register(app, event, "Ada", "Lovelace", "Acme")
    _register(app, event, "Bob", "Babbage", "Acme")
    with app.app_context():
        for reg in db.session.scalars(select(Registration)):
            reg.attended = reg.id == ada
            reg.attendance_seconds = 1830 if reg.id == ada else 0
            reg.attendance_first_join_at = datetime(2031, 3, 3, 13, 2, tzinfo=UTC) if reg.id == ada else None
        db.session.commit()
    rows = _rows(client.get(f"/manage/events/{event.id}/attendance.csv"))
    assert [(r["Email"], r["Attended"], r["Minutes present"], r["First join (UTC)"]) for r in rows] == [
        ("ada@example.org", "yes", "30", "2031-03-03T13:02:00+00:00"), ("bob@example.org", "no", "0", "")]


def test_exports_are_audited(app, client, event, organizer):
    client.get(f"/manage/events/{event.id}/registrations.csv").get_data()
    client.get(f"/manage/events/{event.id}/attendance.csv").get_data()
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action.startswith("export."))
                                     .order_by(AuditEntry.id)).all()
        assert [(e.action, e.actor_user_id, e.target_type, e.event_id) for e in entries] == [
            ("export.registrations_csv", organizer.id, "event", event.id),
            ("export.attendance_csv", organizer.id, "event", event.id)]


def test_exports_of_other_organizers_events_are_refused(app, client, auth, event):
    _register(app, event, "Ada", "Lovelace", "Acme")
    auth.logout()
    auth.login_as_organizer("other@example.org")
    for kind in ("registrations", "attendance"):
        response = client.get(f"/manage/events/{event.id}/{kind}.csv")
        assert response.status_code == 404 and b"ada@example.org" not in response.get_data()
    with app.app_context():
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action.startswith("export."))) is None
    auth.logout()
    assert client.get(f"/manage/events/{event.id}/registrations.csv").status_code in (302, 303)
