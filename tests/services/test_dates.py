"""One date format everywhere: pages, emails and the attendee's own pages agree."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.extensions import db
from app.models import Event, EventStatus
from app.services.core.dates import format_date, format_datetime, format_range
from app.services.registration import registrations


def test_one_format_with_the_zone_named():
    start = datetime(2031, 3, 3, 13, 0, tzinfo=UTC)
    assert format_datetime(start, "Europe/Berlin") == "Mon 3 Mar 2031, 14:00 (Europe/Berlin)"
    assert format_range(start, datetime(2031, 3, 3, 14, 30, tzinfo=UTC), "Europe/Berlin") == \
        "Mon 3 Mar 2031, 14:00–15:30 (Europe/Berlin)"
    assert format_range(start, datetime(2031, 3, 4, 1, 0, tzinfo=UTC), "Asia/Tokyo") == \
        "Mon 3 Mar 2031, 22:00 – Tue 4 Mar 2031, 10:00 (Asia/Tokyo)"
    assert format_date(date(2031, 3, 3)) == "Mon 3 Mar 2031"
    assert format_datetime(start, "Not/AZone") == "Mon 3 Mar 2031, 13:00 (UTC)"


def test_organizer_and_attendee_pages_write_the_same_date(app, client, auth, make_event):
    me = auth.login_as_organizer()
    event = make_event(me, status=EventStatus.published, published_at=datetime.now(UTC), timezone="Europe/Berlin",
                       starts_at=datetime(2031, 3, 3, 13, 0, tzinfo=UTC),
                       ends_at=datetime(2031, 3, 3, 14, 0, tzinfo=UTC))
    with app.app_context():
        outcome = registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Ada", last_name="L", email="ada@example.org", timezone="Europe/Berlin"))
        db.session.commit()
    assert "Mon 3 Mar 2031, 14:00" in client.get(f"/manage/events/{event.id}").get_data(as_text=True)
    assert "Mon 3 Mar 2031, 14:00–15:00 (Europe/Berlin)" in client.get(f"/r/{outcome.manage_token}").get_data(
        as_text=True)


def test_reminder_wording_writes_the_date_the_same_way(app, make_user, make_event):
    from datetime import timedelta

    from app.services.messaging import rendering

    owner = make_user("owner@example.org")
    start = datetime(2031, 3, 3, 13, 0, tzinfo=UTC)
    event = make_event(owner, starts_at=start, ends_at=start + timedelta(hours=1))
    assert rendering.relative_start(event, start - timedelta(days=5), "Europe/Berlin") == "on Mon 3 Mar at 14:00"
