"""Event service verbs and the rules shared with the forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import Event, EventStatus, QuestionKind, Role, User
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.core.timezones import NonexistentLocalTime, all_zones, local_to_utc, utc_to_local, zone_choices
from app.services.events import events

# --- pure rules (no database) -------------------------------------------------------------------------


@pytest.mark.parametrize(("title", "slug"), [
    ("Spring Meetup 2026", "spring-meetup-2026"),
    ("Café — Ünïcode!", "cafe-unicode"),
    ("new", "event-new"),
    ("!!!", "event"),
    ("a" * 70 + " tail", "a" * 60),
])
def test_slugify(title, slug):
    assert events.slugify(title) == slug
    assert events.slug_problem(events.slugify(title)) is None


@pytest.mark.parametrize("slug", ["New-Year", "a b", "-lead", "trail-", "a--b", "../x", "x" * 81, "new", "admin"])
def test_slug_problem_refuses(slug):
    assert events.slug_problem(slug)


def test_reminder_offsets_parse_normalize_and_describe():
    assert events.parse_reminder_offsets("2 days, 30 min; 1 day 4 hours\n90m, 1w") == [2880, 30, 1680, 90, 10080]
    assert events.normalize_reminder_offsets([60, 1440, 60, 30]) == [1440, 60, 30]
    assert [events.describe_offset(m) for m in (10080, 1440, 180, 1680, 15)] == [
        "1 week", "1 day", "3 hours", "1 day 4 hours", "15 minutes"]
    for bad in ("soon", "2 fortnights", "1.5 hours", "-3 hours", "10"):
        with pytest.raises(DomainError) as info:
            events.parse_reminder_offsets(bad)
        assert info.value.field == "reminder_custom"
    with pytest.raises(DomainError):
        events.normalize_reminder_offsets([1])
    with pytest.raises(DomainError):
        events.normalize_reminder_offsets(range(10, 100, 10))


def test_choice_options_are_trimmed_distinct_and_at_least_two():
    assert events.clean_options(QuestionKind.single_choice, [" Yes ", "yes", "", "No", "  no  "]) == ["Yes", "No"]
    assert events.clean_options(QuestionKind.short_text, ["ignored", "too"]) == []
    with pytest.raises(DomainError, match="at least two"):
        events.clean_options(QuestionKind.multiple_choice, ["Same", "SAME"])


def test_schedule_problems():
    t = datetime(2031, 1, 1, 10, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert events.schedule_problems(t, t + hour) == []
    assert events.schedule_problems(t, t) == [("ends_at", "The end must be after the start.")]
    assert [f for f, _ in events.schedule_problems(t, t + hour, t - hour, t - 2 * hour)] == ["registration_closes_at"]
    assert [f for f, _ in events.schedule_problems(t, t + hour, None, t + 2 * hour)] == ["registration_closes_at"]
    assert [f for f, _ in events.schedule_problems(t, t + hour, t + 2 * hour, None)] == ["registration_opens_at"]


def test_local_times_across_daylight_saving_changes():
    assert local_to_utc(datetime(2026, 3, 29, 10, 0), "Europe/Berlin") == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    assert local_to_utc(datetime(2026, 3, 28, 10, 0), "Europe/Berlin") == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)
    with pytest.raises(NonexistentLocalTime):
        local_to_utc(datetime(2026, 3, 29, 2, 30), "Europe/Berlin")
    with pytest.raises(NonexistentLocalTime):
        local_to_utc(datetime(2026, 3, 8, 2, 15), "America/New_York")
    # 02:30 on the autumn night happens twice; the first (summer time) is taken.
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), "Europe/Berlin") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert utc_to_local(datetime(2026, 3, 29, 8, 0, tzinfo=UTC), "Europe/Berlin") == datetime(2026, 3, 29, 10, 0)
    with pytest.raises(ValueError):
        local_to_utc(datetime(2026, 1, 1), "Mars/Base")


def test_zone_choices_put_common_zones_first_and_cover_all():
    groups = zone_choices()
    common, rest = groups["Common time zones"], groups["All time zones"]
    assert list(common)[:2] == ["UTC", "Europe/London"]
    assert list(rest) == sorted(rest)
    assert set(common) | set(rest) == set(all_zones())
    assert "Factory" not in all_zones() and "localtime" not in all_zones()


# --- verbs (database) ---------------------------------------------------------------------------------


@pytest.fixture
def people(app_ctx, make_user):
    owner = make_user("owner@example.org")
    helper = make_user("helper@example.org")
    stranger = make_user("stranger@example.org")
    admin = make_user("admin@example.org", Role.admin)
    return {k: db.session.get(User, u.id) for k, u in
            {"owner": owner, "helper": helper, "stranger": stranger, "admin": admin}.items()}


def _data(**overrides):
    start = datetime(2031, 6, 1, 9, tzinfo=UTC)
    values = {"title": "Data day", "starts_at": start, "ends_at": start + timedelta(hours=2), "timezone": "UTC"}
    values.update(overrides)
    return events.EventData(**values)


def test_create_generates_a_unique_slug_and_checks_rules(people):
    owner = people["owner"]
    first = events.create_event(_data(), actor=owner)
    second = events.create_event(_data(), actor=owner)
    assert (first.slug, second.slug) == ("data-day", "data-day-2")
    with pytest.raises(Conflict) as info:
        events.create_event(_data(slug="data-day"), actor=owner)
    assert info.value.field == "slug"
    with pytest.raises(DomainError) as info:
        events.create_event(_data(capacity=0), actor=owner)
    assert info.value.field == "capacity"
    with pytest.raises(DomainError) as info:
        events.create_event(_data(timezone="Nowhere/Town"), actor=owner)
    assert info.value.field == "timezone"


def test_who_may_manage_and_share(people):
    owner, helper, stranger, admin = (people[k] for k in ("owner", "helper", "stranger", "admin"))
    event = events.create_event(_data(co_organizer_ids=[helper.id]), actor=owner)
    assert [events.can_manage(u, event) for u in (owner, helper, stranger, admin)] == [True, True, False, True]
    assert [events.can_share(u, event) for u in (owner, helper, admin)] == [True, False, True]
    with pytest.raises(NotAllowed):
        events.publish_event(event, actor=stranger)
    with pytest.raises(NotAllowed):
        events.update_event(event, _data(co_organizer_ids=[]), actor=helper)
    visible = {u.email: db.session.scalars(events.managed_events_query(u)).all() for u in (helper, stranger, admin)}
    assert visible == {"helper@example.org": [event], "stranger@example.org": [], "admin@example.org": [event]}


def test_state_changes_and_sequence(people):
    owner = people["owner"]
    event = events.create_event(_data(), actor=owner)
    events.publish_event(event, actor=owner)
    with pytest.raises(Conflict):
        events.publish_event(event, actor=owner)
    events.update_event(event, _data(slug=event.slug, capacity=5), actor=owner)
    assert event.ics_sequence == 0
    events.update_event(event, _data(slug=event.slug, starts_at=datetime(2031, 6, 1, 8, tzinfo=UTC)), actor=owner)
    assert event.ics_sequence == 1
    events.unpublish_event(event, actor=owner)
    with pytest.raises(Conflict):
        events.unpublish_event(event, actor=owner)
    events.cancel_event(event, actor=owner, reason="  Weather  ")
    assert (event.status, event.cancellation_reason, event.ics_sequence) == (EventStatus.cancelled, "Weather", 2)
    for verb in (events.publish_event, events.unpublish_event, events.cancel_event):
        with pytest.raises(Conflict):
            verb(event, actor=owner)


def test_questions_stay_densely_ordered(people):
    owner = people["owner"]
    event = events.create_event(_data(), actor=owner)
    made = [events.add_question(event, events.QuestionData(QuestionKind.checkbox, f"Q{i}"), actor=owner)
            for i in range(4)]
    events.move_question(made[3], "up", actor=owner)
    events.move_question(made[0], "up", actor=owner)  # already first: no change
    db.session.refresh(event)
    assert [(q.position, q.label) for q in event.questions] == [(0, "Q0"), (1, "Q1"), (2, "Q3"), (3, "Q2")]
    events.remove_question(made[1], actor=owner)
    db.session.flush()
    db.session.refresh(event)
    assert [(q.position, q.label) for q in event.questions] == [(0, "Q0"), (1, "Q3"), (2, "Q2")]
    with pytest.raises(DomainError):
        events.move_question(made[0], "sideways", actor=owner)


def test_clone_by_a_co_organizer_keeps_the_owner_involved(people):
    owner, helper = people["owner"], people["helper"]
    event = events.create_event(_data(co_organizer_ids=[helper.id]), actor=owner)
    events.add_question(event, events.QuestionData(QuestionKind.single_choice, "Pick", options=["A", "B"]),
                        actor=owner)
    clone = events.clone_event(event, actor=helper)
    assert clone.owner_id == helper.id
    assert [u.email for u in clone.co_organizers] == ["owner@example.org"]
    assert clone.starts_at - event.starts_at == timedelta(weeks=1)
    assert [(q.label, q.options) for q in clone.questions] == [("Pick", ["A", "B"])]
    assert db.session.get(Event, clone.id).status == EventStatus.draft


def test_last_used_timezone(people):
    owner = people["owner"]
    assert events.last_used_timezone(owner) == "UTC"
    events.create_event(_data(timezone="Asia/Tokyo"), actor=owner)
    assert events.last_used_timezone(owner) == "Asia/Tokyo"
