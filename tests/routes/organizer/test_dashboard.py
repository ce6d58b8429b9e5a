"""The event dashboard at /manage/events/<id>: counts by state, seats left, the registrations chart
(points and data table), the event's queue, attendance after the event, and the follow-up and
retention settings with their validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditEntry, Event, EventSeat, EventStatus, OutboxItem, OutboxStatus, Registration, Role, User
from app.models import RegistrationState as S
from app.services.messaging import dispatch, queueing, rendering


def _text(response) -> str:
    return response.get_data(as_text=True)


def _stat(page: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}">([^<]*)<', page)
    assert match, name
    return match.group(1).strip()


@pytest.fixture
def organizer(auth):
    return auth.login_as_organizer("org@example.org")


@pytest.fixture
def event(make_event, organizer):
    return make_event(organizer, status=EventStatus.published, published_at=datetime.now(UTC), capacity=10,
                      timezone="America/New_York", starts_at=datetime(2031, 3, 10, 15, 0, tzinfo=UTC),
                      ends_at=datetime(2031, 3, 10, 16, 0, tzinfo=UTC))


def _take_seats(app, event, count: int) -> None:
    """Mark seats taken, as the registration engine does for the confirmed rows `_add` writes directly."""
    with app.app_context():
        seats = db.session.scalars(select(EventSeat.id).where(EventSeat.event_id == event.id).limit(count)).all()
        db.session.execute(update(EventSeat).where(EventSeat.id.in_(seats)).values(taken=True))
        db.session.commit()


def _add(app, event, states_and_times):
    with app.app_context():
        for i, (state, created) in enumerate(states_and_times):
            db.session.add(Registration(event_id=event.id, state=state, email=f"p{i}@example.org", first_name="P",
                                        last_name=str(i), timezone="UTC", manage_token_hash=f"{event.id:04d}{i:060d}",
                                        created_at=created))
        db.session.commit()


def test_numbers_and_chart_match_the_data(app, client, event):
    # New York days: 3 on 1 March (one at 23:30 local = 04:30 UTC on 2 March), none on 2 March, 3 on 3 March.
    _add(app, event, [
        (S.confirmed, datetime(2031, 3, 1, 14, 0, tzinfo=UTC)),
        (S.confirmed, datetime(2031, 3, 1, 15, 0, tzinfo=UTC)),
        (S.waitlisted, datetime(2031, 3, 2, 4, 30, tzinfo=UTC)),
        (S.confirmed, datetime(2031, 3, 3, 14, 0, tzinfo=UTC)),
        (S.pending, datetime(2031, 3, 3, 15, 0, tzinfo=UTC)),
        (S.cancelled, datetime(2031, 3, 3, 16, 0, tzinfo=UTC)),
        (S.confirmed, datetime(2031, 3, 3, 17, 0, tzinfo=UTC)),
    ])
    _take_seats(app, event, 4)
    page = _text(client.get(f"/manage/events/{event.id}"))
    assert (_stat(page, "confirmed"), _stat(page, "waitlisted"), _stat(page, "pending"), _stat(page, "cancelled")) == (
        "4", "1", "1", "1")
    assert _stat(page, "seats_left") == "6 of 10"
    points = re.findall(r'<circle class="chart-point" cx="([\d.]+)" cy="([\d.]+)" r="3.5" data-day="([\d-]+)" '
                        r'data-total="(\d+)" data-new="(\d+)"', page)
    assert [(day, int(total), int(new)) for _, _, day, total, new in points] == [
        ("2031-03-01", 3, 3), ("2031-03-02", 3, 0), ("2031-03-03", 7, 4)]
    xs = [float(x) for x, *_ in points]
    ys = [float(y) for _, y, *_ in points]
    assert xs == sorted(xs) and xs[0] < xs[1] < xs[2]
    assert ys[0] == ys[1] > ys[2]  # SVG y grows downwards: more registrations, higher point
    polyline = re.search(r'<polyline class="chart-line"[^>]* points="([^"]+)"', page).group(1)
    assert polyline == " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    # Accessible: a named image with a description, and the same data as a table.
    assert 'role="img" aria-labelledby="chart-title chart-desc"' in page
    assert "from 1 Mar 2031 to 3 Mar 2031: 7 in all. Busiest day: 3 Mar 2031 with 4." in page
    table = page.split("<caption>Registrations per day</caption>", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<td>(\d+)</td><td>(\d+)</td>", table) == [("3", "3"), ("0", "3"), ("4", "7")]


def test_empty_event_shows_an_empty_chart(client, event):
    page = _text(client.get(f"/manage/events/{event.id}"))
    assert "No registrations yet." in page and "chart-point" not in page and _stat(page, "confirmed") == "0"


def test_queue_counts_this_events_outbox_only(app, client, event, make_event, organizer):
    other = make_event(organizer)
    with app.app_context():
        for i, status in enumerate([OutboxStatus.pending, OutboxStatus.pending, OutboxStatus.done, OutboxStatus.failed,
                                    OutboxStatus.waiting]):
            db.session.add(OutboxItem(kind="email.send", payload={}, dedupe_key=f"k{i}", status=status,
                                      event_id=event.id))
        db.session.add(OutboxItem(kind="email.send", payload={}, dedupe_key="other", event_id=other.id))
        db.session.commit()
    page = _text(client.get(f"/manage/events/{event.id}"))
    assert "2 queued · 1 waiting for the Microsoft connection · 1 done · 1 failed" in page


def test_queued_emails_show_when_they_will_have_gone_out(app, client, event, make_event, organizer, make_user):
    admin = make_user("admin@example.org", Role.admin)
    with app.app_context():
        dispatch.save_quota(2, 4, actor=db.session.get(User, admin.id))
        row = db.session.get(Event, event.id)
        for n in range(6):
            queueing.queue_email("organizer", event=row, to=f"p{n}@example.org", name="P", dedupe_key=f"news:{n}",
                                 rendered=rendering.Rendered("News", "<p>News</p>", "News"))
        db.session.commit()
    page = _text(client.get(f"/manage/events/{event.id}"))
    match = re.search(r'<p data-email-eta>6 emails to this event.s people are waiting to go out; at the current '
                      r'email quota the last has gone by <time datetime="([^"]+)">', page)
    assert match, page
    # Six at 2 a minute and 4 an hour: four in the first hour, the last two in the next one.
    eta = datetime.fromisoformat(match.group(1)) - datetime.now(UTC)
    assert timedelta(hours=1) < eta < timedelta(hours=1, minutes=2)
    quiet = make_event(organizer, status=EventStatus.published, published_at=datetime.now(UTC))
    assert "data-email-eta" not in _text(client.get(f"/manage/events/{quiet.id}"))


def test_attendance_summary_after_import(app, client, event):
    _add(app, event, [(S.confirmed, datetime(2031, 3, 1, tzinfo=UTC))] * 3 + [(S.cancelled, datetime(2031, 3, 1,
                                                                                                      tzinfo=UTC))])
    with app.app_context():
        regs = db.session.scalars(select(Registration).order_by(Registration.id)).all()
        regs[0].attended, regs[0].attendance_seconds = True, 1800
        regs[1].attended, regs[1].attendance_seconds = True, 3600
        regs[2].attended, regs[2].attendance_seconds = False, 0
        row = db.session.get(Event, event.id)
        row.starts_at, row.ends_at = datetime.now(UTC) - timedelta(hours=3), datetime.now(UTC) - timedelta(hours=2)
        row.attendance_imported_at = datetime.now(UTC)
        row.attendance_summary = {"reports": 2, "reports_capped": False, "unknown_attendees": 1,
                                  "source": "graph+foyer"}
        db.session.commit()
    page = _text(client.get(f"/manage/events/{event.id}"))
    assert (_stat(page, "attended"), _stat(page, "no_shows"), _stat(page, "average_minutes"),
            _stat(page, "unknown")) == ("2", "1", "45", "1")
    assert "from 2 Teams attendance reports and Foyer’s own join records" in page
    assert "Import attendance again" in page
    assert f'href="/manage/events/{event.id}/registrations?attended=no"' in page


@pytest.mark.db_agnostic
def test_before_the_event_attendance_is_promised_not_importable(client, event):
    page = _text(client.get(f"/manage/events/{event.id}"))
    assert "imported from Teams automatically after the event ends" in page
    assert "/attendance/import" not in page
    response = client.submit(f"/manage/events/{event.id}/attendance/import")
    assert response.status_code == 303
    assert "once the event has ended" in _text(client.get(f"/manage/events/{event.id}"))


def test_followup_settings_save_and_refuse_bad_links(app, client, event, organizer):
    url = f"/manage/events/{event.id}"
    bad = client.submit(f"{url}/followup", {"enabled": "y", "recording_url": "javascript:alert(1)"})
    assert bad.status_code == 422 and "Enter a link starting with https://." in _text(bad)
    ok = client.submit(f"{url}/followup", {"enabled": "y", "recording_url": "https://video.example.org/rec"})
    assert ok.status_code == 303
    with app.app_context():
        row = db.session.get(Event, event.id)
        assert row.followup_enabled and row.followup_recording_url == "https://video.example.org/rec"
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "event.followup"))
        assert entry.actor_user_id == organizer.id and entry.event_id == event.id


@pytest.mark.db_agnostic
@pytest.mark.parametrize("value", ["0", "-3", "99999", "ten"])
def test_retention_refuses_bad_values(client, event, value):
    url = f"/manage/events/{event.id}"
    response = client.submit(f"{url}/retention", {"retention_days": value})
    assert response.status_code == 422
    assert "Enter between 1 and 3,650 days." in _text(response) or "Not a valid integer" in _text(response)


def test_retention_per_event_and_default(app, client, event):
    url = f"/manage/events/{event.id}"
    assert "<strong>90 days</strong> after the event (the site’s default)" in _text(client.get(url))
    assert client.submit(f"{url}/retention", {"retention_days": "30"}).status_code == 303
    page = _text(client.get(url))
    assert "<strong>30 days</strong> after the event," in page and "9 Apr 2031" in page
    assert client.submit(f"{url}/retention", {"retention_days": ""}).status_code == 303
    with app.app_context():
        assert db.session.get(Event, event.id).retention_days is None


@pytest.mark.db_agnostic
def test_dashboard_of_another_organizers_event_is_not_found(client, auth, event):
    auth.logout()
    auth.login_as_organizer("other@example.org")
    assert client.get(f"/manage/events/{event.id}").status_code == 404
    assert client.submit(f"/manage/events/{event.id}/retention", {"retention_days": "5"}).status_code == 404
