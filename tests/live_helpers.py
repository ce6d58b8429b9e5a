"""Setting up the live part for tests: an event whose call is open now, attendees with join tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.extensions import db
from app.models import Event, EventStatus, Registration
from app.services.attendance import join_links
from app.services.core import tokens
from app.services.registration import registrations

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_live%40thread.v2/0"


def open_event(make_event, owner, **overrides) -> Event:
    """A published event whose call opened five minutes ago (the join window is open)."""
    now = datetime.now(UTC).replace(microsecond=0)
    values = {"status": EventStatus.published, "published_at": now, "title": "Live call",
              "starts_at": now - timedelta(minutes=5), "ends_at": now + timedelta(hours=1), "join_url": TEAMS_URL}
    values.update(overrides)
    return make_event(owner, **values)


def attendee(app, event_id: int, first: str = "Ada", last: str = "Lovelace") -> tuple[int, str]:
    """Register someone (confirmed) and return the registration id and their join token."""
    with app.app_context():
        event = db.session.get(Event, event_id)
        outcome = registrations.register(event, registrations.RegistrationData(
            first_name=first, last_name=last, email=f"{first.lower()}@example.org", timezone="UTC"))
        token = join_links.join_token_for(outcome.registration)
        db.session.commit()
        return outcome.registration.id, token


def registration_for(token: str) -> Registration:
    reg = db.session.query(Registration).filter_by(join_token_hash=tokens.hash_token(token)).one()
    return reg


def move_event(app, event_id: int, *, starts_in: timedelta, length: timedelta = timedelta(hours=1)) -> None:
    """Move the event so that 'now' falls where a test wants it."""
    with app.app_context():
        event = db.session.get(Event, event_id)
        event.starts_at = datetime.now(UTC).replace(microsecond=0) + starts_in
        event.ends_at = event.starts_at + length
        db.session.commit()
