"""Messages end to end: every trigger produces the right email (content, zone, links, .ics), the
worker sends each through the ACS SDK to the emulator exactly once, the quota is never exceeded,
urgent messages go first, and a send whose answer was lost is recognised instead of repeated."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import event as sa_event
from sqlalchemy import select

from app.extensions import db
from app.models import (
    AuditEntry,
    Event,
    EventStatus,
    Message,
    MessageStatus,
    OutboxItem,
    OutboxStatus,
    Registration,
    Role,
)
from app.services.messaging import dispatch, kinds, queueing, rendering
from app.services.outbox import outbox
from app.services.registration import privacy, registrations
from tests.mail import queued_emails
from tests.routes.organizer.conftest import event_form


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org", Role.organizer)


@pytest.fixture
def emulator(app):
    return app.extensions["microsoft"].emulator


@pytest.fixture
def published(app, make_event, owner):
    def _make(**columns) -> Event:
        columns.setdefault("status", EventStatus.published)
        columns.setdefault("published_at", datetime.now(UTC))
        return make_event(owner, **columns)

    return _make


def register(client, event, email, first="Ada", last="Lovelace", zone="Asia/Tokyo"):
    response = client.submit(f"/events/{event.slug}/register",
                             {"first_name": first, "last_name": last, "email": email, "timezone": zone,
                              "consent": "y"})
    assert response.status_code in (200, 303), response.get_data(as_text=True)[:500]


def ics_of(mail) -> Calendar:
    (attachment,) = mail["attachments"]
    return Calendar.from_ical(base64.b64decode(attachment["contentInBase64"]))


def drain_all(app) -> None:
    with app.app_context():
        for _ in range(20):
            if not outbox.drain(limit=500):
                break


def test_confirmation_is_branded_in_the_attendees_zone_with_absolute_links_and_invite(app, client, published,
                                                                                     emulator):
    event = published(title="Spring meetup", starts_at=datetime(2031, 5, 20, 16, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 5, 20, 18, 0, tzinfo=UTC))
    register(client, event, "ada@example.org", zone="Asia/Tokyo")
    with app.app_context():
        (mail,) = queued_emails()
        assert mail["kind"] == "confirmed" and mail["subject"] == "You're registered: Spring meetup"
        for body in (mail["text"], mail["html"]):
            assert "Wed 21 May 2031, 01:00–03:00 (Asia/Tokyo)" in body
            assert "http://localhost/r/" in body and f"http://localhost/events/{event.slug}" in body
        assert 'style="' in mail["html"] and "<script" not in mail["html"]
        calendar = ics_of(mail)
        assert str(calendar["METHOD"]) == "REQUEST"
        assert calendar.walk("VEVENT")[0]["UID"].startswith("registration-")

    drain_all(app)

    (sent,) = emulator.acs.sent_emails
    assert sent.subject == "You're registered: Spring meetup" and sent.to[0]["address"] == "ada@example.org"
    assert sent.attachments[0]["name"] == "invite.ics" and sent.client_operation_id
    with app.app_context():
        message = db.session.scalar(select(Message))
        assert message.status == MessageStatus.sent and message.operation_id == sent.client_operation_id
        # Read back from the operation by polling: accepted for delivery, which is not yet delivered.
        assert message.operation_status == "Succeeded" and message.delivery == ""
        assert message.attempts == 1 and message.sent_at is not None


def test_every_transition_sends_its_own_message(app, client, published, auth, owner):
    event = published(capacity=1, approval_required=True)
    register(client, event, "ada@example.org", "Ada")
    register(client, event, "bob@example.org", "Bob")
    register(client, event, "cy@example.org", "Cy")
    auth.login("owner@example.org")
    with app.app_context():
        ids = {r.email: r.id for r in db.session.scalars(select(Registration))}
    base = f"/manage/events/{event.id}/registrations"
    assert client.submit(f"{base}/{ids['ada@example.org']}/approve").status_code == 303
    assert client.submit(f"{base}/{ids['bob@example.org']}/approve").status_code == 303
    assert client.submit(f"{base}/{ids['cy@example.org']}/deny",
                         {"message": "Members <b>only</b>.\nSorry!"}).status_code == 303
    assert client.submit(f"{base}/{ids['ada@example.org']}/cancel", {"note": ""}).status_code == 303
    with app.app_context():
        kinds = {(m["to"], m["kind"]) for m in queued_emails()}
        assert kinds == {
            ("ada@example.org", "pending"), ("bob@example.org", "pending"), ("cy@example.org", "pending"),
            ("ada@example.org", "approved"), ("bob@example.org", "approved_waitlisted"),
            ("cy@example.org", "denied"), ("ada@example.org", "cancelled"), ("bob@example.org", "promoted"),
        }
        by_kind = {(m["to"], m["kind"]): m for m in queued_emails()}
        denied = by_kind[("cy@example.org", "denied")]
        assert "Members &lt;b&gt;only&lt;/b&gt;.<br>" in denied["html"] and "<b>only" not in denied["html"]
        assert "Members <b>only</b>.\nSorry!" in denied["text"] and "/r/" not in denied["text"]
        assert "number 1 in line" in by_kind[("bob@example.org", "approved_waitlisted")]["text"]
        assert str(ics_of(by_kind[("ada@example.org", "cancelled")])["METHOD"]) == "CANCEL"
        assert str(ics_of(by_kind[("bob@example.org", "promoted")])["METHOD"]) == "REQUEST"


def test_changing_the_time_sends_every_registrant_the_updated_invite(app, client, auth, owner, published, emulator):
    event = published(slug="spring-meetup", starts_at=datetime(2031, 5, 20, 16, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 5, 20, 18, 0, tzinfo=UTC), capacity=2)
    for n, email in enumerate(("a@example.org", "b@example.org", "c@example.org")):
        register(client, event, email, first=f"P{n}", zone="Europe/London")
    with app.app_context():
        before = {m["to"]: ics_of(m).walk("VEVENT")[0] for m in queued_emails() if m["kind"] == "confirmed"}
    auth.login("owner@example.org")
    response = client.submit(f"/manage/events/{event.id}/edit",
                             event_form(slug=event.slug, title="Spring meetup (moved)", capacity="2",
                                        starts_at="2031-05-21T19:00", ends_at="2031-05-21T21:00",
                                        notify_attendees="y"))
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    drain_all(app)
    with app.app_context():
        changed = [m for m in queued_emails() if m["kind"] == "event_changed"]
        assert sorted(m["to"] for m in changed) == ["a@example.org", "b@example.org", "c@example.org"]
        for mail in changed:
            assert "Spring meetup (moved)" in mail["subject"]
            assert "Wed 21 May 2031, 18:00–20:00 (Europe/London)" in mail["text"]
            # What it was, in the recipient's zone, so nobody has to remember the old time.
            assert "Was called: Community call 1\n" in mail["text"]
            assert "Was: Tue 20 May 2031, 17:00–19:00 (Europe/London)" in mail["text"]
            assert "Was: Tue 20 May 2031, 17:00–19:00 (Europe/London)" in mail["html"]
            if mail["to"] == "c@example.org":  # waitlisted: told, but no seat in the calendar
                assert mail["attachments"] == []
                continue
            vevent = ics_of(mail).walk("VEVENT")[0]
            assert vevent["UID"] == before[mail["to"]]["UID"]
            assert vevent["SEQUENCE"] > before[mail["to"]]["SEQUENCE"]
            assert vevent.decoded("DTSTART").astimezone(UTC) == datetime(2031, 5, 21, 17, 0, tzinfo=UTC)
    assert {e.subject for e in emulator.acs.sent_emails} >= {"Changed: Spring meetup (moved)"}
    # Editing something registrants are not told about sends nothing more.
    client.submit(f"/manage/events/{event.id}/edit",
                  event_form(slug=event.slug, title="Spring meetup (moved)", capacity="2",
                             starts_at="2031-05-21T19:00", ends_at="2031-05-21T21:00", description="More words."))
    with app.app_context():
        assert len([m for m in queued_emails() if m["kind"] == "event_changed"]) == 3


def test_the_organizer_may_move_an_event_without_emailing_registrants(app, client, auth, owner, published):
    event = published(slug="quiet-move", starts_at=datetime(2031, 5, 20, 16, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 5, 20, 18, 0, tzinfo=UTC))
    register(client, event, "ada@example.org", zone="Europe/London")
    auth.login("owner@example.org")
    edit = client.get(f"/manage/events/{event.id}/edit").get_data(as_text=True)
    assert re.search(r'<input[^>]*\bchecked\b[^>]*id="notify_attendees"', edit)  # on unless unticked
    response = client.submit(f"/manage/events/{event.id}/edit",
                             event_form(slug=event.slug, starts_at="2031-05-21T19:00", ends_at="2031-05-21T21:00"))
    assert response.status_code == 303
    drain_all(app)
    with app.app_context():
        assert [m for m in queued_emails() if m["kind"] == "event_changed"] == []
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "event.update")).all()[-1]
        assert entry.details == {"registrants_notified": False}


def invites_received(emulator) -> dict[str, list[tuple[str, Calendar]]]:
    """What ACS accepted, by subject: each email's attachments (name, parsed calendar) as sent."""
    received = {}
    for request in emulator.requests_for("acs", path="/emails:send"):
        if request.status == 202:
            body = json.loads(request.body)
            received[body["content"]["subject"]] = [
                (a["name"], Calendar.from_ical(base64.b64decode(a["contentInBase64"])))
                for a in body.get("attachments") or []]
    return received


def test_the_invite_shows_the_event_as_it_is_when_the_email_goes_out(app, client, auth, owner, published,
                                                                    emulator):
    event = published(slug="moving", title="Moving", starts_at=datetime(2031, 5, 20, 16, 0, tzinfo=UTC),
                       ends_at=datetime(2031, 5, 20, 18, 0, tzinfo=UTC))
    register(client, event, "ada@example.org", zone="Europe/London")
    # The organizer moves the event before the confirmation has gone out.
    auth.login("owner@example.org")
    response = client.submit(f"/manage/events/{event.id}/edit",
                             event_form(slug=event.slug, title="Moving", starts_at="2031-05-21T19:00",
                                        ends_at="2031-05-21T21:00", notify_attendees="y"))
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    drain_all(app)
    received = invites_received(emulator)
    (confirmed,) = received["You're registered: Moving"]
    (changed,) = received["Changed: Moving"]
    assert confirmed[0] == "invite.ics" and str(confirmed[1]["METHOD"]) == "REQUEST"
    first, latest = confirmed[1].walk("VEVENT")[0], changed[1].walk("VEVENT")[0]
    # Not the time it was registered for: the time it has when the email leaves, at the same SEQUENCE
    # as the change notice, so a calendar keeps one event at the new time whichever arrives last.
    assert first.decoded("DTSTART").astimezone(UTC) == datetime(2031, 5, 21, 17, 0, tzinfo=UTC)
    assert (first["UID"], first["SEQUENCE"]) == (latest["UID"], latest["SEQUENCE"]) and first["SEQUENCE"] > 0
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.kind == "confirmed"))
        (recorded,) = message.attachments
        assert recorded["name"] == "invite.ics" and recorded["size"] == len(confirmed[1].to_ical())


def _rename(app, event_id: int, title: str) -> None:
    with app.app_context():
        db.session.get(Event, event_id).title = title
        db.session.commit()


def test_a_registration_renders_nothing_and_its_email_is_written_as_it_is_sent(app, client, published, emulator):
    event = published(title="Before")
    register(client, event, "ada@example.org")
    with app.app_context():
        message = db.session.scalar(select(Message))
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "message.send"))
        # The request recorded which email to write, in plain values: no words, no personal link.
        assert (message.subject, message.body_text, message.body_html) == ("", "", "")
        registration_id = db.session.scalar(select(Registration.id))
        assert item.payload["render"] == {"registration_id": registration_id, "kind": "confirmed", "extra": "",
                                          "position": None, "now": None, "session_id": None,
                                          "attachment_note": True}
        assert "/r/" not in json.dumps(item.payload["render"]) and "/j/" not in json.dumps(item.payload["render"])
    _rename(app, event.id, "After")  # before it goes out: the email shows the event as it is then
    drain_all(app)
    (sent,) = emulator.acs.sent_emails
    assert sent.subject == "You're registered: After" and "registered for After" in sent.plain_text
    assert re.search(r"http://localhost/j/[A-Za-z0-9_-]{20,}", sent.plain_text)  # the personal join link
    assert re.search(r"http://localhost/r/[A-Za-z0-9_-]{20,}", sent.plain_text)  # and the manage link
    with app.app_context():
        message = db.session.scalar(select(Message))
        # What went out is what the message log shows.
        assert message.status == MessageStatus.sent and message.subject == sent.subject
        assert (message.body_text, message.body_html) == (sent.plain_text, sent.html)


@pytest.mark.reads_then_writes  # the erasure it makes happen inside the worker's handler
def test_an_email_whose_registration_is_erased_as_the_worker_takes_it_up_is_never_written_nor_sent(
        app, client, published, emulator):
    """The attendee erases their data just after the worker has read the queued email and before it writes
    it. The worker then finds nothing to write it for: it sends nothing, and neither fails nor retries."""
    event = published(title="Erased meanwhile")
    register(client, event, "ada@example.org")
    with app.app_context():
        engine = db.engine
    on_sqlite = engine.dialect.name == "sqlite"
    steps: list[str] = []

    def erase() -> None:
        steps.append("erased")
        with app.app_context():  # another session and connection: the attendee's request
            privacy.erase_registration(db.session.scalar(select(Registration)))
            db.session.commit()

    def after(_conn, _cursor, statement, *_args) -> None:
        if not steps and "FROM messages" in statement:
            steps.append("read")  # the worker has read the queued email, not written yet
            if not on_sqlite:
                erase()

    def before(_conn, _cursor, statement, *_args) -> None:
        # On SQLite the erasure, which empties the write-ahead log, would wait for the worker's read to end:
        # it comes as the worker, done reading, starts the transaction that writes the email.
        if on_sqlite and steps == ["read"] and statement == "BEGIN IMMEDIATE":
            erase()

    sa_event.listen(engine, "after_cursor_execute", after)
    sa_event.listen(engine, "before_cursor_execute", before)
    try:
        drain_all(app)
    finally:
        sa_event.remove(engine, "after_cursor_execute", after)
        sa_event.remove(engine, "before_cursor_execute", before)

    assert steps == ["read", "erased"]
    assert emulator.acs.sent_emails == []
    with app.app_context():
        assert db.session.scalar(select(Registration)) is None
        assert db.session.scalar(select(Message)) is None  # erased with the registration, never written
        (item,) = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "message.send")).all()
        assert item.status == OutboxStatus.done and item.attempts == 1


def test_a_second_attempt_sends_the_words_the_first_one_wrote(app, client, published, emulator):
    event = published(title="First words")
    register(client, event, "ada@example.org")
    emulator.faults.add(kind="status", status=503, group="acs", path="/emails:send", count=1)
    with app.app_context():
        outbox.drain()
        message = db.session.scalar(select(Message))
        assert message.status == MessageStatus.queued and message.subject == "You're registered: First words"
        db.session.execute(OutboxItem.__table__.update().values(next_attempt_at=datetime.now(UTC)))
        db.session.commit()
    _rename(app, event.id, "Other words")
    drain_all(app)
    (sent,) = emulator.acs.sent_emails
    assert sent.subject == "You're registered: First words" and "Other words" not in sent.plain_text
    assert emulator.acs.duplicate_operation_ids() == []


def test_an_invite_retried_after_its_cancellation_went_out_is_left_out(app, client, published, emulator):
    event = published(title="Retried")
    register(client, event, "ada@example.org")
    with app.app_context():
        registrations.cancel(db.session.scalar(select(Registration)))
        db.session.commit()
    # ACS is briefly unavailable for the confirmation; the cancellation goes out before it is retried.
    emulator.faults.add(kind="status", status=503, retry_after="60", group="acs", path="/emails:send", count=1)
    with app.app_context():
        outbox.drain(limit=500)
        assert [e.subject for e in emulator.acs.sent_emails] == ["Registration cancelled: Retried"]
        db.session.execute(OutboxItem.__table__.update().where(OutboxItem.status == OutboxStatus.pending)
                           .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    drain_all(app)
    received = invites_received(emulator)
    (cancel,) = received["Registration cancelled: Retried"]
    assert cancel[0] == "cancel.ics" and str(cancel[1]["METHOD"]) == "CANCEL"
    # A REQUEST after the CANCEL would put the event back in the calendar: the email goes without it.
    assert received["You're registered: Retried"] == []


def test_cancelling_the_event_sends_method_cancel(app, client, auth, owner, published):
    event = published()
    register(client, event, "a@example.org")
    auth.login("owner@example.org")
    response = client.submit(f"/manage/events/{event.id}/cancel", {"reason": "The speaker is ill.\nSorry."})
    assert response.status_code == 303
    drain_all(app)
    with app.app_context():
        (mail,) = [m for m in queued_emails() if m["kind"] == "event_cancelled"]
        assert "The speaker is ill." in mail["text"] and "/r/" not in mail["text"]
        calendar = ics_of(mail)
        assert str(calendar["METHOD"]) == "CANCEL" and str(calendar.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"


def test_hostile_names_stay_inert_in_subject_and_body(app, client, published, emulator):
    event = published(title="Meetup <script>alert(1)</script>")
    register(client, event, "evil@example.org", first="<script>alert('x')</script>",
             last="Bcc: victim@example.org")
    drain_all(app)
    with app.app_context():
        (mail,) = queued_emails()
    assert "<script>" not in mail["html"] and "&lt;script&gt;" in mail["html"]
    assert "\r" not in mail["subject"] and "\n" not in mail["subject"]
    (sent,) = emulator.acs.sent_emails
    assert "\n" not in sent.to[0]["displayName"] and "<script>" not in (sent.html or "")


@pytest.mark.db_agnostic
@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_template_escapes_user_input(app, published, kind):
    payload = "<script>alert(1)</script>\r\nBcc: x@evil.example"
    event = published(title=payload)
    with app.app_context():
        event = db.session.get(Event, event.id)
        rendered = rendering.render(kind, event=event, name=payload, zone="Europe/Berlin", extra=payload,
                                    manage_link="http://localhost/r/token", link="http://localhost/v/token",
                                    intro=payload if kind == "organizer" else None,
                                    subject=payload if kind == "organizer" else None)
    assert "<script" not in rendered.html
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.text.strip() and rendered.html.startswith("<!DOCTYPE html>")


def test_a_bounce_is_a_permanent_failure_shown_on_the_message(app, client, published, emulator, monkeypatch):
    event = published()
    monkeypatch.setattr(emulator.config, "email_fail_addresses", ("nobody@example.org",))
    register(client, event, "nobody@example.org")
    drain_all(app)
    with app.app_context():
        message = db.session.scalar(select(Message))
        assert message.status == MessageStatus.failed and message.operation_status == "Failed"
        assert "EmailDropped" in message.last_error or "dropped" in message.last_error


def test_lost_answer_is_checked_at_acs_instead_of_sending_twice(app, client, published, emulator):
    event = published()
    register(client, event, "ada@example.org")
    # ACS accepts the send, then the answer never arrives (crash between send and commit).
    emulator.faults.add(kind="drop", group="acs", path="/emails:send", process=True, count=1)
    with app.app_context():
        outbox.drain()
        message = db.session.scalar(select(Message))
        assert message.status == MessageStatus.queued and message.attempts == 1
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "message.send"))
        item.next_attempt_at = datetime.now(UTC)
        db.session.commit()
        drain_all(app)
        message = db.session.scalar(select(Message))
        assert message.status == MessageStatus.sent
    assert len(emulator.acs.sent_emails) == 1 and emulator.acs.duplicate_operation_ids() == []
    gets = [r for r in emulator.requests_for("acs") if r.method == "GET" and "/emails/operations/" in r.path]
    assert gets  # it asked before deciding


def test_throttling_delays_but_neither_loses_nor_duplicates(app, client, published, emulator):
    event = published()
    for n in range(4):
        register(client, event, f"p{n}@example.org")
    emulator.faults.add(kind="status", status=429, retry_after="0", group="acs", path="/emails:send", count=3)
    emulator.faults.add(kind="status", status=503, group="acs", path="/emails:send", count=2, skip=3)
    with app.app_context():
        for _ in range(30):
            outbox.drain(limit=500)
            db.session.execute(OutboxItem.__table__.update().where(OutboxItem.status == OutboxStatus.pending)
                               .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
            db.session.commit()
        statuses = sorted(m["status"] for m in queued_emails())
    assert statuses == ["sent"] * 4
    assert sorted(e.to[0]["address"] for e in emulator.acs.sent_emails) == [f"p{n}@example.org" for n in range(4)]
    assert emulator.acs.duplicate_operation_ids() == []


def test_quota_is_never_exceeded_and_the_rest_waits_without_failing(app, client, published, emulator, make_user):
    admin = make_user("admin@example.org", Role.admin)
    with app.app_context():
        dispatch.save_quota(5, 100, actor=db.session.get(type(admin), admin.id))
        db.session.commit()
    event = published()
    for n in range(8):
        register(client, event, f"p{n}@example.org")
    drain_all(app)
    assert len(emulator.acs.sent_emails) == 5  # the sixth would exceed 5 per minute
    assert not [r for r in emulator.requests_for("acs") if r.status == 429]
    with app.app_context():
        statuses = sorted(m["status"] for m in queued_emails())
        assert statuses.count("sent") == 5 and statuses.count("queued") == 3
        waiting = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "message.send",
                                                              OutboxItem.status == OutboxStatus.pending)).all()
        assert len(waiting) == 3 and all(i.attempts == 0 for i in waiting)  # deferred, not failed
        assert all(i.next_attempt_at > datetime.now(UTC) + timedelta(seconds=30) for i in waiting)
        eta = dispatch.eta()
        assert timedelta(seconds=50) < eta - datetime.now(UTC) < timedelta(seconds=70)


def test_when_only_the_minute_is_used_up_the_hours_last_slots_go_a_minute_later(app, client, published, emulator,
                                                                               make_user):
    admin = make_user("admin@example.org", Role.admin)
    with app.app_context():
        dispatch.save_quota(10, 15, actor=db.session.get(type(admin), admin.id))
        db.session.commit()
    event = published()
    for n in range(12):
        register(client, event, f"p{n}@example.org")
    drain_all(app)
    assert len(emulator.acs.sent_emails) == 10
    with app.app_context():
        waiting = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "message.send",
                                                              OutboxItem.status == OutboxStatus.pending)).all()
        # Five of the hour's fifteen are left: the rest wake when the minute has passed, not in an hour.
        assert len(waiting) == 2
        assert all(i.next_attempt_at < datetime.now(UTC) + timedelta(seconds=65) for i in waiting)


def test_urgent_messages_take_the_free_slots_first(app, client, published, emulator, make_user):
    admin = make_user("admin@example.org", Role.admin)
    event = published()
    with app.app_context():
        dispatch.save_quota(2, 100, actor=db.session.get(type(admin), admin.id))
        row = db.session.get(Event, event.id)
        regs = []
        for n in range(4):
            reg = Registration(event_id=row.id, email=f"n{n}@example.org", first_name="N", last_name=str(n),
                               timezone="UTC", state="confirmed", manage_token_hash=f"{n:064d}")
            db.session.add(reg)
            regs.append(reg)
        db.session.flush()
        later = datetime.now(UTC) + timedelta(hours=6)
        for reg in regs[:3]:
            queueing.queue_email("organizer", event=row, to=reg.email, name="N", dedupe_key=f"news:{reg.id}",
                                 rendered=rendering.Rendered("News", "<p>News</p>", "News"), deadline=later)
        queueing.queue_email("promoted", event=row, to=regs[3].email, name="N", dedupe_key="urgent",
                             rendered=rendering.Rendered("Soon", "<p>Soon</p>", "Soon"),
                             deadline=datetime.now(UTC) + timedelta(minutes=10))
        db.session.commit()
    drain_all(app)
    subjects = [e.subject for e in emulator.acs.sent_emails]
    assert len(subjects) == 2 and "Soon" in subjects  # queued last, sent among the first two


def test_a_send_yielding_to_urgent_ones_puts_the_backlog_back_at_once(app, client, published, emulator, make_user):
    admin = make_user("admin@example.org", Role.admin)
    event = published()
    with app.app_context():
        dispatch.save_quota(2, 100, actor=db.session.get(type(admin), admin.id))
        row = db.session.get(Event, event.id)
        later, soon = datetime.now(UTC) + timedelta(hours=6), datetime.now(UTC) + timedelta(minutes=10)
        for n in range(12):  # a newsletter, queued first
            queueing.queue_email("organizer", event=row, to=f"n{n}@example.org", name="N", dedupe_key=f"news:{n}",
                                 rendered=rendering.Rendered("News", "<p>News</p>", "News"), deadline=later)
        for n in range(2):  # then two urgent messages, behind it in the queue
            queueing.queue_email("promoted", event=row, to=f"u{n}@example.org", name="U", dedupe_key=f"urgent:{n}",
                                 rendered=rendering.Rendered("Soon", "<p>Soon</p>", "Soon"), deadline=soon)
        db.session.commit()
        assert outbox.drain(limit=1) == 1  # a newsletter email comes up first and yields its slot
        assert emulator.acs.sent_emails == []
        due = [(key.split(":")[1], at) for key, at in db.session.execute(
            select(OutboxItem.dedupe_key, OutboxItem.next_attempt_at).where(OutboxItem.status == OutboxStatus.pending))]
        assert Counter(kind for kind, _ in due) == {"news": 12, "urgent": 2}
        assert all(at > datetime.now(UTC) for kind, at in due if kind == "news")  # the rest of it steps back
        assert all(at <= datetime.now(UTC) for kind, at in due if kind == "urgent")
        outbox.drain(limit=2)
    assert [e.subject for e in emulator.acs.sent_emails] == ["Soon", "Soon"]


def test_a_revoked_acs_key_keeps_messages_queued_and_shows_on_health(app, client, published, emulator, monkeypatch,
                                                                      auth):
    event = published()
    register(client, event, "ada@example.org")
    rotated = base64.b64encode(b"rotated-key-xxxxxxxxxxxxxxxxxxxx").decode()
    monkeypatch.setattr(emulator.config, "acs_access_key", rotated)
    with app.app_context():
        outbox.drain()
        message = db.session.scalar(select(Message))
        assert message.status == MessageStatus.queued and "ACS refused" in message.last_error
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "message.send"))
        assert item.status == OutboxStatus.pending and item.next_attempt_at > datetime.now(UTC) + timedelta(minutes=4)
    auth.login_as_admin()
    health = client.get("/admin/health/").get_data(as_text=True)
    assert "Refused" in health and "ACS refused" in health
    monkeypatch.undo()
    with app.app_context():
        item = db.session.scalar(select(OutboxItem).where(OutboxItem.kind == "message.send"))
        item.next_attempt_at = datetime.now(UTC)
        db.session.commit()
    drain_all(app)
    assert len(emulator.acs.sent_emails) == 1
