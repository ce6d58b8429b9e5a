"""Organizer messages: compose to a segment, preview, send (each recipient exactly one), progress that
polls itself until done; per-event wording with a live preview; the reminder quota warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Event, EventStatus, Message, MessageStatus, Registration, Role, User
from app.services.broadcast import fanout
from app.services.messaging import dispatch, queueing, rendering
from app.services.outbox import outbox
from app.services.registration import registrations
from tests.mail import queued_emails


def _event(make_event, owner, **columns):
    columns.setdefault("status", EventStatus.published)
    columns.setdefault("published_at", datetime.now(UTC))
    return make_event(owner, **columns)


def _people(app, event, confirmed=3, waitlisted=2):
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.capacity = confirmed
        for n in range(confirmed + waitlisted):
            registrations.register(row, registrations.RegistrationData(
                first_name=f"P{n}", last_name="T", email=f"p{n}@example.org", timezone="Europe/Paris"))
        db.session.commit()


def drain(app):
    with app.app_context():
        while outbox.drain(limit=500):
            pass


def test_compose_preview_send_and_watch_progress(app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer)
    _people(app, event)
    url = f"/manage/events/{event.id}/messages"
    page = client.get(url).get_data(as_text=True)
    assert "Confirmed (3)" in page and "Waitlisted (2)" in page and "Attended" not in page

    form = {"segment": "waitlisted", "subject": "Parking\r\nBcc: evil@example.org",
            "body": "Bring **ID**.\n\n<script>alert(1)</script>"}
    preview = client.submit(url, {**form, "action": "preview"})
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Send to 2 people" in text and "<strong>ID</strong>" in text
    assert "<script>alert" not in text
    with app.app_context():
        assert queued_emails() == [] or all(m["kind"] != "organizer" for m in queued_emails())

    sent = client.submit(url, {**form, "action": "send"})
    assert sent.status_code == 303
    progress_url = sent.headers["Location"]
    progress = client.get(progress_url).get_data(as_text=True)
    assert "Preparing 2 emails" in progress and 'hx-trigger="load delay:2s"' in progress

    drain(app)
    with app.app_context():
        mails = [m for m in queued_emails() if m["kind"] == "organizer"]
    assert sorted(m["to"] for m in mails) == ["p3@example.org", "p4@example.org"]
    for mail in mails:
        assert mail["subject"] == "Parking Bcc: evil@example.org"  # one header line, inert
        assert "<strong>ID</strong>" in mail["html"] and "<script>alert" not in mail["html"]
        assert "http://localhost/r/" in mail["text"]
    fragment = client.get(progress_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="send-progress"') and "2</strong> of 2 sent" in fragment
    assert "hx-trigger" not in fragment and "All done." in fragment
    # Re-running the fan-out (a crashed worker's retry) adds nobody twice.
    with app.app_context():
        batch = progress_url.rsplit("/", 1)[1]
        fanout.fanout({"event_id": event.id, "kind": "organizer", "segment": "waitlisted", "subject": "x",
                         "body": "y", "batch": batch})
        assert len([m for m in queued_emails() if m["kind"] == "organizer"]) == 2
    emulator = app.extensions["microsoft"].emulator
    assert emulator.acs.duplicate_operation_ids() == []
    assert len([e for e in emulator.acs.sent_emails if e.subject.startswith("Parking")]) == 2
    overview = client.get(url).get_data(as_text=True)
    assert "Parking Bcc: evil@example.org" in overview and "2 recipients" in overview


def test_a_message_not_sent_yet_is_listed_with_the_subject_it_was_composed_with(app, client, auth, make_event):
    """Each email is written as it is sent: before any has gone out, the organizer's list of sent messages
    names this one by the subject the organizer gave it."""
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer)
    _people(app, event, confirmed=2, waitlisted=0)
    drain(app)  # their confirmations
    url = f"/manage/events/{event.id}/messages"
    sent = client.submit(url, {"segment": "confirmed", "subject": "Doors open at 9", "body": "See you.",
                               "action": "send"})
    assert sent.status_code == 303
    with app.app_context():
        assert outbox.drain(limit=1) == 1  # the fan-out alone: it queues both emails, and nothing is sent yet
        rows = db.session.scalars(select(Message).where(Message.kind == "organizer")).all()
        assert len(rows) == 2 and {(m.status, m.subject) for m in rows} == {(MessageStatus.queued, "")}
    overview = client.get(url).get_data(as_text=True)
    assert "Doors open at 9" in overview and "2 recipients" in overview


@pytest.mark.db_agnostic
def test_invalid_compositions_are_422_and_queue_nothing(app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer)
    url = f"/manage/events/{event.id}/messages"
    for data in ({"segment": "all", "subject": "", "body": "x"}, {"segment": "all", "subject": "x", "body": ""},
                 {"segment": "attended", "subject": "x", "body": "y"},
                 {"segment": "all", "subject": "x" * 201, "body": "y"}):
        response = client.submit(url, {**data, "action": "send"})
        assert response.status_code == 422
    with app.app_context():
        assert queued_emails() == []


@pytest.mark.db_agnostic
def test_other_organizers_events_are_not_found(app, client, auth, make_event, make_user):
    other = make_user("other@example.org", Role.organizer)
    event = _event(make_event, other)
    auth.login_as_organizer()
    assert client.get(f"/manage/events/{event.id}/messages").status_code == 404
    assert client.get(f"/manage/events/{event.id}/emails/confirmed").status_code == 404


def test_wording_override_with_live_preview_is_used_in_emails(app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer, title="Spring meetup")
    url = f"/manage/events/{event.id}/emails/confirmed"
    page = client.get(url).get_data(as_text=True)
    assert f'hx-post="/manage/events/{event.id}/emails/confirmed/preview"' in page
    preview = client.htmx("POST", f"{url}/preview",
                          data={"subject": "See you at {title}!", "intro": "We *can't wait*. <img src=x onerror=1>"})
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "See you at Spring meetup!" in text and "<img" not in text
    assert client.htmx("POST", f"{url}/preview",
                       data={"subject": "x" * 201, "intro": ""}).status_code == 422
    assert client.get(f"/manage/events/{event.id}/emails/nonsense").status_code == 404

    saved = client.submit(url, {"subject": "See you at {title}!", "intro": "We *can't wait*."})
    assert saved.status_code == 303
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": "Ada", "last_name": "L", "email": "ada@example.org", "timezone": "UTC",
                              "consent": "y"})
    assert response.status_code in (200, 303)
    with app.app_context():
        (mail,) = queued_emails()
    assert mail["subject"] == "See you at Spring meetup!"
    assert "<em>can&#39;t wait</em>" in mail["html"] or "<em>can't wait</em>" in mail["html"]
    assert "We can't wait." in mail["text"]
    # Emptying both fields goes back to Foyer's wording.
    assert client.submit(url, {"subject": "", "intro": ""}).status_code == 303
    with app.app_context():
        assert rendering.get_override(db.session.get(Event, event.id), "confirmed") is None


def test_event_page_warns_when_the_quota_cannot_meet_the_reminders(app, client, auth, make_event, make_user):
    organizer = auth.login_as_organizer()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    event = _event(make_event, organizer, starts_at=start, ends_at=start + timedelta(hours=1),
                   reminder_offsets=[1440, 60])
    _people(app, event, confirmed=12, waitlisted=0)
    assert "Reminders and the email quota" not in client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    admin = make_user("admin@example.org", Role.admin)
    with app.app_context():
        dispatch.save_quota(1, 5, actor=db.session.get(User, admin.id))
        db.session.commit()
    page = client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert "Reminders and the email quota" in page and "Foyer starts sending it early" in page
    with app.app_context():
        assert db.session.scalar(select(Registration.id).limit(1))


def test_attendance_segments_appear_once_attendance_is_known(app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer)
    _people(app, event, confirmed=3, waitlisted=0)
    url = f"/manage/events/{event.id}/messages"
    assert "Attended" not in client.get(url).get_data(as_text=True)
    refused = client.submit(url, {"segment": "attended", "subject": "Thanks", "body": "Thanks!", "action": "send"})
    assert refused.status_code == 422  # not offered yet, so not accepted either

    with app.app_context():  # what the attendance import records after the event
        row = db.session.get(Event, event.id)
        row.attendance_imported_at = datetime.now(UTC)
        for reg in db.session.scalars(select(Registration).where(Registration.event_id == event.id)):
            reg.attended = reg.email != "p2@example.org"
        db.session.commit()
    page = client.get(url).get_data(as_text=True)
    assert "Attended (2)" in page and "Registered but did not attend (1)" in page

    sent = client.submit(url, {"segment": "no_show", "subject": "Sorry we missed you", "body": "Here is the recording.",
                               "action": "send"})
    assert sent.status_code == 303
    drain(app)
    with app.app_context():
        assert [m["to"] for m in queued_emails() if m["kind"] == "organizer"] == ["p2@example.org"]


def test_confirmations_and_reminders_carry_the_join_link(app, client, auth, make_event):
    from app.services.attendance import join_links
    from app.services.registration import reminders

    organizer = auth.login_as_organizer()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=70)
    event = _event(make_event, organizer, starts_at=start, ends_at=start + timedelta(hours=1), reminder_offsets=[60])
    _people(app, event, confirmed=1, waitlisted=1)
    with app.app_context():
        confirmed = db.session.scalar(select(Registration).where(Registration.email == "p0@example.org"))
        join, device = join_links.join_url(confirmed), join_links.device_check_url(confirmed)
        db.session.commit()
        first = queued_emails(to="p0@example.org")[0]
        waiting = queued_emails(to="p1@example.org")[0]
    assert join in first["text"] and join in first["html"] and "Join the event" in first["html"]
    assert "/j/" not in waiting["text"]  # only confirmed people get a join link

    with app.app_context():
        reminders.sweep(now=start - timedelta(minutes=59))  # the one-hour reminder is due
        db.session.commit()
        reminder = [m for m in queued_emails(to="p0@example.org") if m["kind"] == "reminder"]
    assert len(reminder) == 1
    assert join in reminder[0]["text"] and device in reminder[0]["text"] and device in reminder[0]["html"]


def test_plain_text_email_keeps_the_address_of_every_link(app, client, auth, make_event):
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer)
    _people(app, event, confirmed=1, waitlisted=0)
    body = "Read [the agenda](https://example.org/agenda?day=1&room=2) or <https://example.org/faq>."
    assert client.submit(f"/manage/events/{event.id}/messages", {"segment": "confirmed", "subject": "Agenda",
                                                                 "body": body, "action": "send"}).status_code == 303
    drain(app)
    with app.app_context():
        [email] = [m for m in queued_emails() if m["subject"] == "Agenda"]
    assert "Read the agenda (https://example.org/agenda?day=1&room=2) or https://example.org/faq." in email["text"]
    assert 'href="https://example.org/agenda?day=1&amp;room=2"' in email["html"]


def test_a_large_send_is_queued_in_committed_batches_and_resumes_without_duplicates(
        app, client, auth, make_event, monkeypatch):
    """BROADCAST_BATCH_SIZE recipients per transaction: a fan-out that dies half-way has kept the batches it
    committed, and its retry queues only the rest; nobody gets the message twice."""
    organizer = auth.login_as_organizer()
    event = _event(make_event, organizer)
    _people(app, event, confirmed=25, waitlisted=0)
    monkeypatch.setitem(app.config, "BROADCAST_BATCH_SIZE", 10)
    url = f"/manage/events/{event.id}/messages"
    sent = client.submit(url, {"segment": "confirmed", "subject": "Room change", "body": "Room 2.", "action": "send"})
    assert sent.status_code == 303
    batch = sent.headers["Location"].rsplit("/", 1)[1]
    payload = {"event_id": event.id, "kind": "organizer", "segment": "confirmed", "subject": "Room change",
               "body": "Room 2.", "batch": batch}

    def organizer_messages() -> list[str]:
        with app.app_context():
            db.session.remove()  # a fresh session: only what was committed
            return list(db.session.scalars(select(Message.dedupe_key).where(Message.batch == batch)))

    # The worker dies while queueing the 15th recipient's message (in the second batch).
    real_queue, calls = queueing.queue_email, {"n": 0}

    def queue_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            raise RuntimeError("worker killed")
        return real_queue(*args, **kwargs)

    commits = []

    def listener(session):
        commits.append(1)

    sa_event.listen(Session, "after_commit", listener)
    monkeypatch.setattr(queueing, "queue_email", queue_then_die)
    try:
        with app.app_context():
            try:
                fanout.fanout(payload)
            except RuntimeError:
                pass
            else:
                raise AssertionError("the fan-out should have died")
    finally:
        sa_event.remove(Session, "after_commit", listener)
        monkeypatch.setattr(queueing, "queue_email", real_queue)
    assert len(commits) == 1  # the first batch of 10 was committed before the failure
    assert len(organizer_messages()) == 10

    # The retry (the outbox runs the fan-out again) queues the other 15 and nobody twice.
    drain(app)
    keys = organizer_messages()
    assert len(keys) == 25 and len(set(keys)) == 25
    with app.app_context():
        ids = db.session.scalars(select(Registration.id).where(Registration.event_id == event.id)).all()
        assert sorted(keys) == sorted(f"{batch}:{i}" for i in ids)
        per_person = db.session.execute(select(Message.registration_id, func.count()).where(Message.batch == batch)
                                        .group_by(Message.registration_id)).all()
        assert sorted(r for r, _ in per_person) == sorted(ids) and {n for _, n in per_person} == {1}
    assert app.extensions["microsoft"].emulator.acs.duplicate_operation_ids() == []
