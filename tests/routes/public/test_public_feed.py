from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from app.models import EventStatus


def _feed(client):
    response = client.get("/events.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    return Calendar.from_ical(response.get_data())


def test_feed_holds_published_upcoming_and_recent_events_only(client, make_user, make_event):
    owner = make_user("owner@example.org")
    now = datetime.now(UTC).replace(microsecond=0)
    published = {"status": EventStatus.published, "published_at": now}
    upcoming = make_event(owner, title="Upcoming", **published)
    recent = make_event(owner, title="Last week", starts_at=now - timedelta(days=7),
                        ends_at=now - timedelta(days=7) + timedelta(hours=1), **published)
    make_event(owner, title="Long ago", starts_at=now - timedelta(days=40),
               ends_at=now - timedelta(days=40) + timedelta(hours=1), **published)
    make_event(owner, title="Draft")
    cancelled = make_event(owner, title="Called off", status=EventStatus.cancelled, published_at=now,
                           cancelled_at=now, ics_sequence=3)
    make_event(owner, title="Cancelled draft", status=EventStatus.cancelled)

    calendar = _feed(client)
    by_uid = {str(v["UID"]): v for v in calendar.walk("VEVENT")}
    assert set(by_uid) == {f"event-{e.id}@localhost" for e in (upcoming, recent, cancelled)}
    assert str(by_uid[f"event-{cancelled.id}@localhost"]["STATUS"]) == "CANCELLED"
    assert by_uid[f"event-{cancelled.id}@localhost"]["SEQUENCE"] == 3
    assert str(by_uid[f"event-{upcoming.id}@localhost"]["STATUS"]) == "CONFIRMED"
    assert str(by_uid[f"event-{upcoming.id}@localhost"]["URL"]) == f"http://localhost/events/{upcoming.slug}"
    assert calendar.get_missing_tzids() == set()


@pytest.mark.db_agnostic
def test_feed_urls_use_public_base_url_not_request_host(app, client, make_user, make_event, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://events.example.org")
    event = make_event(make_user("owner@example.org"), status=EventStatus.published, published_at=datetime.now(UTC))
    response = client.get("/events.ics", headers={"Host": "evil.example"})
    (vevent,) = Calendar.from_ical(response.get_data()).walk("VEVENT")
    assert str(vevent["URL"]) == f"https://events.example.org/events/{event.slug}"
    assert str(vevent["UID"]) == f"event-{event.id}@events.example.org"


@pytest.mark.db_agnostic
def test_feed_is_valid_when_empty(client):
    calendar = _feed(client)
    assert calendar.walk("VEVENT") == []
