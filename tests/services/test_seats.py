"""Seats as rows, on both databases: the rows follow the capacity, each confirmed registration holds a
seat of its own, freed seats go to the waitlist, and (PostgreSQL) sign-ups for one event commit side by
side while none is ever oversold or left waitlisted beside a seat another sign-up gave back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, EventSeat, EventStatus, Registration, RegistrationState, User
from app.services.core.errors import Conflict
from app.services.registration import registrations as regs

S = RegistrationState
#: How long a step that must not wait may take, and how long a waiting one is given before it must still wait.
QUICK_SECONDS = 10
WAITING_SECONDS = 1.0


@pytest.fixture
def owner(make_user) -> User:
    return make_user("owner@example.org")


@pytest.fixture
def published(app_ctx, make_event, owner):
    def _make(**columns) -> Event:
        event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), **columns)
        db.session.commit()
        return db.session.get(Event, event.id)

    return _make


def sign_up(event: Event, email: str) -> regs.RegistrationOutcome:
    return regs.register(event, regs.RegistrationData(first_name="Ada", last_name="Lovelace", email=email,
                                                      timezone="UTC"))


def seats(event_id: int) -> dict[str, object]:
    """Taken and free seat rows, and the seats the confirmed registrations hold (each must be a taken one)."""
    db.session.expire_all()
    taken = set(db.session.scalars(select(EventSeat.id).where(EventSeat.event_id == event_id, EventSeat.taken)))
    free = db.session.scalar(select(func.count()).where(EventSeat.event_id == event_id, ~EventSeat.taken))
    held = db.session.scalars(select(Registration.seat_id).where(
        Registration.event_id == event_id, Registration.state == S.confirmed)).all()
    assert None not in held and len(set(held)) == len(held) and set(held) <= taken, (held, taken)
    others = db.session.scalar(select(func.count()).where(Registration.event_id == event_id,
                                                          Registration.state != S.confirmed,
                                                          Registration.seat_id.is_not(None)))
    assert others == 0
    return {"taken": len(taken), "free": free, "confirmed": len(held)}


def test_seat_rows_follow_the_capacity_and_every_confirmed_person_holds_one(published, owner):
    event = published(capacity=3, waitlist_enabled=True)
    assert seats(event.id) == {"taken": 0, "free": 3, "confirmed": 0}

    outcomes = [sign_up(event, f"p{n}@example.org").kind for n in range(5)]
    db.session.commit()
    assert outcomes == ["confirmed"] * 3 + ["waitlisted"] * 2
    assert seats(event.id) == {"taken": 3, "free": 0, "confirmed": 3}
    assert event.confirmed_count == 3 and regs.seats_left(event) == 0

    promoted = regs.set_capacity(event, 5, actor=owner)  # two new seats go to the waitlist, in order
    db.session.commit()
    assert [r.email for r in promoted] == ["p3@example.org", "p4@example.org"]
    assert seats(event.id) == {"taken": 5, "free": 0, "confirmed": 5}

    regs.set_capacity(event, 8, actor=owner)
    db.session.commit()
    assert seats(event.id) == {"taken": 5, "free": 3, "confirmed": 5}
    regs.set_capacity(event, 6, actor=owner)
    db.session.commit()
    assert seats(event.id) == {"taken": 5, "free": 1, "confirmed": 5}
    with pytest.raises(Conflict):
        regs.set_capacity(event, 4, actor=owner)
    db.session.rollback()
    assert seats(event.id) == {"taken": 5, "free": 1, "confirmed": 5}

    first = db.session.scalar(select(Registration).where(Registration.email == "p0@example.org"))
    regs.cancel(first, actor=None)
    db.session.commit()
    assert first.seat_id is None
    assert seats(event.id) == {"taken": 4, "free": 2, "confirmed": 4}
    assert db.session.get(Event, event.id).confirmed_count == 4


def test_a_freed_seat_goes_to_the_first_in_line_and_is_freed_once(published, owner):
    event = published(capacity=1, waitlist_enabled=True)
    seated = sign_up(event, "seated@example.org").registration
    waiting = [sign_up(event, f"w{n}@example.org").registration for n in range(2)]
    db.session.commit()
    seat = seated.seat_id

    regs.cancel(seated, actor=owner, note="Plans changed")
    db.session.commit()
    assert (waiting[0].state, waiting[1].state) == (S.confirmed, S.waitlisted)
    assert waiting[0].seat_id == seat  # the very seat given back
    with pytest.raises(Conflict):
        regs.cancel(seated, actor=owner)  # a second cancellation frees nothing
    db.session.rollback()
    assert seats(event.id) == {"taken": 1, "free": 0, "confirmed": 1}
    assert waiting[1].state == S.waitlisted


def test_approval_and_moves_take_seats_and_denial_frees_them(published, owner):
    event = published(capacity=2, approval_required=True)
    pending = [sign_up(event, f"p{n}@example.org").registration for n in range(3)]
    db.session.commit()
    assert seats(event.id) == {"taken": 0, "free": 2, "confirmed": 0}
    for reg in pending:
        regs.approve(reg, actor=owner)
    db.session.commit()
    assert [r.state for r in pending] == [S.confirmed, S.confirmed, S.waitlisted]
    with pytest.raises(regs.EventFull):
        regs.move_from_waitlist(pending[2], actor=owner)
    db.session.rollback()
    regs.deny(pending[0], actor=owner, message="Sorry")
    db.session.commit()
    assert pending[2].state == S.confirmed  # promoted into the seat the denial freed
    assert seats(event.id) == {"taken": 2, "free": 0, "confirmed": 2}


def test_unlimited_events_take_a_seat_per_confirmation_and_keep_it_through_a_capacity(published, owner):
    event = published(capacity=None)
    for n in range(3):
        assert sign_up(event, f"p{n}@example.org").kind == "confirmed"
    db.session.commit()
    assert seats(event.id) == {"taken": 3, "free": 0, "confirmed": 3}
    regs.set_capacity(event, 4, actor=owner)
    db.session.commit()
    assert seats(event.id) == {"taken": 3, "free": 1, "confirmed": 3}
    first = db.session.scalar(select(Registration).where(Registration.email == "p0@example.org"))
    regs.cancel(first)
    db.session.commit()
    assert seats(event.id) == {"taken": 2, "free": 2, "confirmed": 2}
    regs.set_capacity(event, None, actor=owner)
    db.session.commit()
    assert seats(event.id) == {"taken": 2, "free": 0, "confirmed": 2}
    regs.cancel(db.session.scalar(select(Registration).where(Registration.email == "p1@example.org")))
    db.session.commit()
    assert seats(event.id) == {"taken": 1, "free": 0, "confirmed": 1}


# --- PostgreSQL: sign-ups side by side --------------------------------------------------------------------


class OpenSignUp:
    """A sign-up in its own thread and session that stops before its commit until told to finish."""

    def __init__(self, app, event_id: int, email: str) -> None:
        self.app, self.event_id, self.email = app, event_id, email
        self.kind: str | None = None
        self.error: BaseException | None = None
        self.written = threading.Event()
        self._finish: Callable[[], None] | None = None
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.app.app_context():
            try:
                event = db.session.get(Event, self.event_id)
                self.kind = sign_up(event, self.email).kind
                self.written.set()
                self._go.wait(QUICK_SECONDS * 3)
                (self._finish or db.session.commit)()
            except BaseException as exc:  # handed to the test, which fails on it
                self.error = exc
                self.written.set()
            finally:
                db.session.remove()

    def finish(self, how: str = "commit") -> None:
        self._finish = db.session.rollback if how == "rollback" else None
        self._go.set()
        self._thread.join(QUICK_SECONDS)
        assert not self._thread.is_alive() and self.error is None, self.error


def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises every writer: sign-ups cannot overlap there")


def test_sign_ups_for_one_event_commit_side_by_side_and_never_oversell(app, published, database_url):
    _postgresql_only(database_url)
    event = published(capacity=2, waitlist_enabled=True)
    event_id = event.id
    db.session.commit()

    first = OpenSignUp(app, event_id, "first@example.org")
    assert first.written.wait(QUICK_SECONDS) and first.kind == "confirmed"
    # The first holds its seat, uncommitted: a second sign-up takes the other seat and commits meanwhile.
    second = OpenSignUp(app, event_id, "second@example.org")
    assert second.written.wait(QUICK_SECONDS) and second.kind == "confirmed", "the second waited for the first"
    second.finish()
    # No seat is free now but the first's may come back: a third waits for it rather than being waitlisted.
    third = OpenSignUp(app, event_id, "third@example.org")
    assert not third.written.wait(WAITING_SECONDS), f"decided while a seat was in doubt: {third.kind}"
    first.finish("rollback")
    assert third.written.wait(QUICK_SECONDS) and third.kind == "confirmed"
    third.finish()
    # Both seats are taken for good: a fourth is waitlisted at once.
    fourth = OpenSignUp(app, event_id, "fourth@example.org")
    assert fourth.written.wait(QUICK_SECONDS) and fourth.kind == "waitlisted"
    fourth.finish()
    assert seats(event_id) == {"taken": 2, "free": 0, "confirmed": 2}


def test_a_capacity_change_waits_for_sign_ups_in_flight(app, published, owner, database_url):
    _postgresql_only(database_url)
    event = published(capacity=2, waitlist_enabled=True)
    event_id, owner_id = event.id, owner.id
    db.session.commit()
    open_sign_up = OpenSignUp(app, event_id, "first@example.org")
    assert open_sign_up.written.wait(QUICK_SECONDS) and open_sign_up.kind == "confirmed"

    lowered = threading.Event()
    outcome: list[BaseException | None] = []

    def lower() -> None:
        with app.app_context():
            try:
                regs.set_capacity(db.session.get(Event, event_id), 1, actor=db.session.get(User, owner_id))
                db.session.commit()
                outcome.append(None)
            except BaseException as exc:
                db.session.rollback()
                outcome.append(exc)
            finally:
                lowered.set()
                db.session.remove()

    threading.Thread(target=lower, daemon=True).start()
    assert not lowered.wait(WAITING_SECONDS), "the capacity changed under a sign-up in flight"
    open_sign_up.finish()
    assert lowered.wait(QUICK_SECONDS) and outcome == [None], outcome
    assert seats(event_id) == {"taken": 1, "free": 0, "confirmed": 1}
