from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from app.extensions import db
from app.models import Event, EventStatus
from app.services.events.ics import event_calendar, event_vevent


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.org")


def _load(event_id):
    return db.session.get(Event, event_id)


def _parse(calendar):
    parsed = Calendar.from_ical(calendar.to_ical())
    return parsed, parsed.walk("VEVENT")


def test_vevent_carries_stable_uid_sequence_zone_and_plain_description(app, owner, make_event):
    event = make_event(owner, title="Spring forward", timezone="Europe/Berlin",
                       starts_at=datetime(2027, 3, 28, 8, 0, tzinfo=UTC),
                       ends_at=datetime(2027, 3, 28, 9, 30, tzinfo=UTC),
                       status=EventStatus.published, ics_sequence=4,
                       description="# Welcome\n\nWe talk about **tools** & <tricks>.\n\n- one\n- two")
    with app.app_context():
        _, (vevent,) = _parse(event_calendar([_load(event.id)]))
    assert str(vevent["UID"]) == f"event-{event.id}@localhost"
    assert vevent["SEQUENCE"] == 4
    # 08:00 UTC on the day Berlin switches to summer time is 10:00 CEST, not 09:00.
    assert vevent.start == datetime(2027, 3, 28, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert vevent["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert vevent.start.utcoffset() == timedelta(hours=2)
    assert vevent.end.astimezone(UTC) == datetime(2027, 3, 28, 9, 30, tzinfo=UTC)
    description = str(vevent["DESCRIPTION"])
    assert description.startswith("Welcome\n\nWe talk about tools & <tricks>.\n\n• one\n• two\n\n")
    assert "**" not in description and "<strong>" not in description
    assert description.endswith(f"Details: http://localhost/events/{event.slug}")
    assert str(vevent["URL"]) == f"http://localhost/events/{event.slug}"
    assert str(vevent["STATUS"]) == "CONFIRMED"
    assert str(vevent["SUMMARY"]) == "Spring forward"
    assert vevent["LAST-MODIFIED"].dt.tzinfo is not None and vevent["DTSTAMP"].dt.tzinfo is not None


def test_winter_event_gets_standard_time_offset(app, owner, make_event):
    event = make_event(owner, timezone="Europe/Berlin", starts_at=datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
                       ends_at=datetime(2027, 1, 15, 9, 0, tzinfo=UTC), status=EventStatus.published)
    with app.app_context():
        _, (vevent,) = _parse(event_calendar([_load(event.id)]))
    assert vevent.start.replace(tzinfo=None) == datetime(2027, 1, 15, 9, 0)
    assert vevent.start.utcoffset() == timedelta(hours=1)


@pytest.mark.db_agnostic
def test_calendar_has_a_vtimezone_for_every_zone_used(app, owner, make_event):
    berlin = make_event(owner, timezone="Europe/Berlin", status=EventStatus.published)
    sydney = make_event(owner, timezone="Australia/Sydney", status=EventStatus.published)
    with app.app_context():
        calendar = event_calendar([_load(berlin.id), _load(sydney.id)])
        parsed, vevents = _parse(calendar)
    assert {str(tz["TZID"]) for tz in parsed.walk("VTIMEZONE")} == {"Europe/Berlin", "Australia/Sydney"}
    assert parsed.get_missing_tzids() == set()
    assert str(parsed["METHOD"]) == "PUBLISH" and str(parsed["VERSION"]) == "2.0"
    assert len(vevents) == 2
    # Only transitions near the events, not the library's default span from 1970 to 2038.
    years = {int(line[8:12]) for line in calendar.to_ical().decode().splitlines() if line.startswith("DTSTART:")}
    this_year = datetime.now(UTC).year
    assert years and min(years) >= this_year - 2 and max(years) <= this_year + 2


@pytest.mark.db_agnostic
def test_cancelled_event_is_marked_cancelled_with_reason(app, owner, make_event):
    event = make_event(owner, title="Gone", status=EventStatus.cancelled, ics_sequence=2,
                       cancellation_reason="Speaker ill.", published_at=datetime.now(UTC))
    with app.app_context():
        vevent = event_vevent(_load(event.id))
    assert str(vevent["STATUS"]) == "CANCELLED"
    assert vevent["SEQUENCE"] == 2
    assert str(vevent["DESCRIPTION"]).startswith("This event has been cancelled. Speaker ill.")


@pytest.mark.db_agnostic
def test_uid_host_follows_public_base_url(app, owner, make_event, monkeypatch):
    event = make_event(owner, status=EventStatus.published)
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://events.example.org:8443/foyer")
    with app.app_context():
        vevent = event_vevent(_load(event.id))
    assert str(vevent["UID"]) == f"event-{event.id}@events.example.org"
    assert str(vevent["URL"]) == f"https://events.example.org:8443/foyer/events/{event.slug}"


@pytest.mark.db_agnostic
def test_empty_calendar_is_still_valid(app):
    with app.app_context():
        parsed, vevents = _parse(event_calendar([]))
    assert vevents == [] and str(parsed["PRODID"]).startswith("-//Foyer//")
