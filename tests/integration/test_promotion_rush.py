"""Atomic promotion under a rush of cancellations, over HTTP, on SQLite and PostgreSQL (reliability bar 2).

A full event (SEATS confirmed) has a waitlist of WAITING people who signed up in an order that differs
from their row ids. Every confirmed person opens their personal manage link from their confirmation
email, opens its cancel form (with its CSRF token), and all of them press "Yes, cancel" at the same
moment. Exactly SEATS people must be promoted, the first SEATS in line by sign-up time (id breaking ties),
one at a time in that order; the seats taken never exceed the capacity, not even for a moment while
the rush runs; nobody sees an error.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState, RegistrationTransition
from app.services.registration import registrations
from tests.integration import test_registration_rush as rush_module
from tests.mail import queued_emails

served = rush_module.served

SEATS = 50
WAITING = 60
CSRF = rush_module.CSRF
MANAGE_LINK = re.compile(r"https?://[^/\s]+(/r/[A-Za-z0-9_-]{20,100})")


def _full_event_with_a_waitlist(app, make_user, make_event) -> tuple[int, list[str]]:
    """SEATS confirmed (returns their manage links, read from their emails) and WAITING in line."""
    owner = make_user("owner@example.org")
    made = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=SEATS,
                      waitlist_enabled=True)
    start = datetime.now(UTC) - timedelta(hours=2)
    # The waitlist signs up in a shuffled order, two at a time in the same second: first come is by
    # sign-up time with the id breaking ties, never by id alone.
    arrival = list(range(WAITING))
    random.Random(7).shuffle(arrival)
    with app.app_context():
        event = db.session.get(Event, made.id)
        for n in range(SEATS):
            registrations.register(event, registrations.RegistrationData(
                first_name="Seated", last_name=f"{n:02d}", email=f"seated{n:02d}@example.org", timezone="UTC"),
                now=start + timedelta(seconds=n))
            db.session.commit()
        for n in arrival:
            outcome = registrations.register(event, registrations.RegistrationData(
                first_name="Waiting", last_name=f"{n:02d}", email=f"waiting{n:02d}@example.org", timezone="UTC"),
                now=start + timedelta(minutes=30, seconds=n // 2))
            assert outcome.kind == "waitlisted"
            db.session.commit()
        links = []
        for mail in queued_emails():
            if mail["kind"] == "confirmed":
                links.append(MANAGE_LINK.search(mail["text"]).group(1))
        assert len(links) == SEATS
        return made.id, links


def _cancel_all_at_once(base_url: str, links: list[str]) -> list[str]:
    """Each person opens their manage page, follows its cancel link, and all press the button together."""
    barrier = threading.Barrier(len(links), timeout=60)

    def one(path: str) -> str:
        with requests.Session() as http:
            manage = http.get(base_url + path, timeout=60)
            cancel_href = re.search(r'href="(/r/[^"]+/cancel)"', manage.text)
            form = http.get(base_url + cancel_href.group(1), timeout=60) if cancel_href else None
            token = CSRF.search(form.text) if form is not None else None
            barrier.wait()
            if token is None:
                return f"no cancel form ({manage.status_code})"
            response = http.post(base_url + cancel_href.group(1), data={"csrf_token": token.group(1)},
                                 allow_redirects=False, timeout=120)
            if response.status_code >= 500:
                return f"error {response.status_code}"
            if response.status_code != 303 or urlsplit(response.headers["Location"]).path != path:
                return f"unexpected {response.status_code}"
            after = http.get(base_url + path, timeout=60)
            return "cancelled" if "Your registration is cancelled." in after.text else f"page {after.status_code}"

    with ThreadPoolExecutor(max_workers=len(links)) as pool:
        return list(pool.map(one, links))


class _SeatWatch:
    """Reads the seats taken (rows and counter) over and over while the rush runs; keeps the maxima."""

    def __init__(self, app, event_id: int) -> None:
        self.app, self.event_id = app, event_id
        self.max_rows = self.max_counter = self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seat-watch", daemon=True)

    def _run(self) -> None:
        with self.app.app_context():
            while not self._stop.is_set():
                rows = db.session.scalar(select(func.count()).select_from(Registration).where(
                    Registration.event_id == self.event_id, Registration.state == RegistrationState.confirmed))
                counter = db.session.scalar(select(Event.confirmed_count).where(Event.id == self.event_id))
                db.session.rollback()
                self.max_rows, self.max_counter = max(self.max_rows, rows), max(self.max_counter, counter)
                self.reads += 1
                self._stop.wait(0.005)
            db.session.remove()

    def __enter__(self) -> _SeatWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_simultaneous_cancellations_promote_the_waitlist_in_order_and_never_overfill(app, served, make_user,
                                                                                    make_event):
    event_id, links = _full_event_with_a_waitlist(app, make_user, make_event)
    with app.app_context():
        in_line = db.session.scalars(select(Registration.id).where(
            Registration.event_id == event_id, Registration.state == RegistrationState.waitlisted)
            .order_by(Registration.created_at, Registration.id)).all()
    assert len(in_line) == WAITING and in_line != sorted(in_line)  # sign-up order is not id order

    with _SeatWatch(app, event_id) as watch:
        outcomes = Counter(_cancel_all_at_once(served, links))

    assert outcomes == {"cancelled": SEATS}, outcomes
    assert watch.reads > 10 and watch.max_rows <= SEATS and watch.max_counter <= SEATS, vars(watch)
    with app.app_context():
        states = dict(db.session.execute(select(Registration.state, func.count()).where(
            Registration.event_id == event_id).group_by(Registration.state)).all())
        assert states == {RegistrationState.cancelled: SEATS, RegistrationState.confirmed: SEATS,
                          RegistrationState.waitlisted: WAITING - SEATS}
        assert db.session.get(Event, event_id).confirmed_count == SEATS
        # The first SEATS in line were promoted, one after another in exactly that order.
        promotions = db.session.execute(
            select(RegistrationTransition.registration_id).join(Registration)
            .where(Registration.event_id == event_id, RegistrationTransition.from_state == "waitlisted",
                   RegistrationTransition.to_state == "confirmed")
            .order_by(RegistrationTransition.id)).scalars().all()
        assert promotions == in_line[:SEATS]
        still_waiting = db.session.scalars(select(Registration.id).where(
            Registration.event_id == event_id, Registration.state == RegistrationState.waitlisted)
            .order_by(Registration.created_at, Registration.id)).all()
        assert still_waiting == in_line[SEATS:]
        # Each promoted person is told once; each who cancelled gets their confirmation once.
        sent = Counter((m["kind"], m["to"]) for m in queued_emails() if m["kind"] in ("promoted", "cancelled"))
        assert sorted(sent.values()) == [1] * (2 * SEATS)
        assert Counter(kind for kind, _ in sent) == {"promoted": SEATS, "cancelled": SEATS}
        assert all(to.startswith("waiting") for kind, to in sent if kind == "promoted")
