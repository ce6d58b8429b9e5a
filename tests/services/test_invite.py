"""A registrant's calendar invitation, parsed back with icalendar: stable UID, times that round-trip
exactly in the event's zone (across a DST switch too), VTIMEZONE, ORGANIZER/ATTENDEE, alarm, personal
link, and SEQUENCE/METHOD that follow event changes and cancellations."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from app.extensions import db
from app.models import Event, EventStatus, User
from app.services.attendance import join_links
from app.services.events import events
from app.services.registration import emails, registrations
from tests.mail import queued_emails

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


@pytest.fixture
def published(make_event, owner):
    def _make(**columns) -> Event:
        columns.setdefault("status", EventStatus.published)
        columns.setdefault("published_at", datetime.now(UTC))
        return make_event(owner, **columns)

    return _make


def _register(event_id: int, email="ada@example.org", zone="Asia/Tokyo"):
    event = db.session.get(Event, event_id)
    outcome = registrations.register(event, registrations.RegistrationData(
        first_name="Ada", last_name="Lovelace", email=email, timezone=zone))
    db.session.flush()
    return outcome.registration, outcome.manage_token


def _parse(data: bytes):
    calendar = Calendar.from_ical(data)
    (vevent,) = calendar.walk("VEVENT")
    return calendar, vevent


def _edit(event: Event, actor_id: int, **changes) -> None:
    data = events.EventData(title=event.title, starts_at=event.starts_at, ends_at=event.ends_at,
                            timezone=event.timezone, slug=event.slug, description=event.description,
                            capacity=event.capacity)
    events.update_event(event, dataclasses.replace(data, **changes), actor=db.session.get(User, actor_id))


def test_invite_has_stable_uid_people_alarm_and_personal_link(app, published, owner):
    event = published(title="Spring call")
    with app.app_context():
        reg, token = _register(event.id)
        calendar, vevent = _parse(emails.registration_invite(reg))
        assert str(calendar["METHOD"]) == "REQUEST"
        assert str(vevent["UID"]) == f"registration-{reg.id}@localhost"
        assert vevent["SEQUENCE"] == 0
        assert str(vevent["STATUS"]) == "CONFIRMED"
        assert str(vevent["SUMMARY"]) == "Spring call"
        # The attendee's personal join link (never the raw Teams URL, never the manage link).
        link = join_links.join_url(reg)
        assert link.startswith("http://localhost/j/") and token not in link
        assert str(vevent["URL"]) == link and str(vevent["LOCATION"]) == link
        assert link in str(vevent["DESCRIPTION"])
        organizer = vevent["ORGANIZER"]
        assert str(organizer) == f"mailto:{app.config['ACS_SENDER_ADDRESS']}"
        assert organizer.params["CN"] == "Foyer"
        attendee = vevent["ATTENDEE"]
        assert str(attendee) == "mailto:ada@example.org" and attendee.params["CN"] == "Ada Lovelace"
        (alarm,) = vevent.walk("VALARM")
        assert str(alarm["ACTION"]) == "DISPLAY"
        assert alarm["TRIGGER"].dt == -timedelta(minutes=15)
        # The same registration always has the same UID.
        assert str(_parse(emails.registration_invite(reg))[1]["UID"]) == str(vevent["UID"])
        other, _ = _register(event.id, email="bob@example.org")
        assert str(_parse(emails.registration_invite(other))[1]["UID"]) != str(vevent["UID"])


@pytest.mark.parametrize(("start", "end", "local_start", "local_end"), [
    # Winter: UTC+1.
    (datetime(2035, 1, 15, 17, 0, tzinfo=UTC), datetime(2035, 1, 15, 18, 0, tzinfo=UTC),
     datetime(2035, 1, 15, 18, 0), datetime(2035, 1, 15, 19, 0)),
    # Across the spring-forward night: starts 01:30 CET, ends 04:30 CEST (two real hours).
    (datetime(2035, 3, 25, 0, 30, tzinfo=UTC), datetime(2035, 3, 25, 2, 30, tzinfo=UTC),
     datetime(2035, 3, 25, 1, 30), datetime(2035, 3, 25, 4, 30)),
    # Summer: UTC+2.
    (datetime(2035, 7, 1, 8, 0, tzinfo=UTC), datetime(2035, 7, 1, 9, 0, tzinfo=UTC),
     datetime(2035, 7, 1, 10, 0), datetime(2035, 7, 1, 11, 0)),
])
def test_times_round_trip_exactly_in_the_event_zone(app, published, start, end, local_start, local_end):
    event = published(timezone="Europe/Berlin", starts_at=start, ends_at=end,
                      registration_closes_at=start - timedelta(days=1))
    with app.app_context():
        reg, _ = _register(event.id, zone="America/Los_Angeles")
        calendar, vevent = _parse(emails.registration_invite(reg))
    assert vevent["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert vevent["DTEND"].params["TZID"] == "Europe/Berlin"
    assert vevent.start.replace(tzinfo=None) == local_start
    assert vevent.end.replace(tzinfo=None) == local_end
    assert vevent.start.astimezone(UTC) == start and vevent.end.astimezone(UTC) == end
    (vtimezone,) = calendar.walk("VTIMEZONE")
    assert str(vtimezone["TZID"]) == "Europe/Berlin"
    assert {c.name for c in vtimezone.subcomponents} == {"STANDARD", "DAYLIGHT"}
    # The file's own VTIMEZONE (not the parser's tz database) gives the same instants.
    zone = vtimezone.to_tz()
    assert local_start.replace(tzinfo=zone).astimezone(UTC) == start
    assert local_end.replace(tzinfo=zone).astimezone(UTC) == end


def test_sequence_and_method_follow_changes_and_cancellation(app, published, owner):
    event = published(title="Spring call", capacity=10, starts_at=datetime(2031, 5, 1, 8, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 5, 1, 9, 0, tzinfo=UTC))
    with app.app_context():
        reg, _ = _register(event.id)
        db.session.commit()
        first = _parse(emails.registration_invite(reg))[1]
        assert first["SEQUENCE"] == 0

        # The organizer moves the event: a new SEQUENCE, the new time, the same UID.
        row = db.session.get(Event, event.id)
        _edit(row, owner.id, starts_at=datetime(2031, 5, 1, 10, 0, tzinfo=UTC),
              ends_at=datetime(2031, 5, 1, 11, 0, tzinfo=UTC))
        db.session.commit()
        moved = _parse(emails.registration_invite(reg))[1]
        assert moved["SEQUENCE"] > first["SEQUENCE"]
        assert str(moved["UID"]) == str(first["UID"])
        assert moved.start == datetime(2031, 5, 1, 12, 0, tzinfo=BERLIN)

        # The attendee renames themself: their ATTENDEE changes, so SEQUENCE does too.
        registrations.update_details(reg, first_name="Augusta", last_name="King", answers={},
                                     timezone="Asia/Tokyo")
        renamed = _parse(emails.registration_invite(reg))[1]
        assert renamed["SEQUENCE"] == moved["SEQUENCE"] + 1
        assert renamed["ATTENDEE"].params["CN"] == "Augusta King"

        # Cancelling: METHOD:CANCEL, STATUS:CANCELLED, a SEQUENCE above the last invitation, no alarm.
        registrations.cancel(reg)
        calendar, cancelled = _parse(emails.registration_invite(reg, "CANCEL"))
        assert str(calendar["METHOD"]) == "CANCEL"
        assert str(cancelled["STATUS"]) == "CANCELLED"
        assert cancelled["SEQUENCE"] > renamed["SEQUENCE"]
        assert str(cancelled["UID"]) == str(first["UID"])
        assert not cancelled.walk("VALARM")


def test_event_cancellation_bumps_the_sequence(app, published, owner):
    event = published()
    with app.app_context():
        reg, _ = _register(event.id)
        before = _parse(emails.registration_invite(reg))[1]["SEQUENCE"]
        events.cancel_event(db.session.get(Event, event.id), actor=db.session.get(User, owner.id), reason="Ill")
        calendar, vevent = _parse(emails.registration_invite(reg, "CANCEL"))
        assert vevent["SEQUENCE"] > before
        assert "Ill" in str(vevent["DESCRIPTION"])


def test_confirmation_and_cancellation_emails_carry_the_invite(app, published):
    event = published()
    with app.app_context():
        reg, _ = _register(event.id)
        registrations.cancel(reg)
        db.session.commit()
        rows = {p["dedupe_key"].split(":")[2]: p for p in queued_emails()}
    confirmed = Calendar.from_ical(base64.b64decode(rows["confirmed"]["attachments"][0]["contentInBase64"]))
    cancelled = Calendar.from_ical(base64.b64decode(rows["cancelled"]["attachments"][0]["contentInBase64"]))
    assert str(confirmed["METHOD"]) == "REQUEST" and str(cancelled["METHOD"]) == "CANCEL"
    assert confirmed.walk("VEVENT")[0]["UID"] == cancelled.walk("VEVENT")[0]["UID"]
    # ACS accepts only the bare type from its allow-list; the METHOD is inside the file (checked above).
    assert [r["attachments"][0]["contentType"] for r in (rows["confirmed"], rows["cancelled"])] == \
        ["text/calendar", "text/calendar"]


def test_unknown_method_is_refused(app, published):
    event = published()
    with app.app_context():
        reg, _ = _register(event.id)
        with pytest.raises(ValueError, match="PUBLISH"):
            emails.registration_invite(reg, "PUBLISH")
