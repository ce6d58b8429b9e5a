"""What a registration does while it holds its event's lock (SQLite: the `BEGIN IMMEDIATE` transaction;
PostgreSQL: from `SELECT … FOR SHARE` on the event to the commit): only its own reads and writes. On
SQLite every other writer waits for that long; on PostgreSQL other sign-ups go on beside it, and a
capacity change or cancellation (`FOR UPDATE`) waits for it."""

from __future__ import annotations

from datetime import UTC, datetime

from app.models import EventStatus
from tests.database import statements
from tests.mail import queued_emails


def _locked(sent: list[str]) -> list[str]:
    """The statements from taking the event's lock to the commit that releases it."""
    start = next(i for i, s in enumerate(sent)
                 if s == "BEGIN IMMEDIATE" or (s.startswith("SELECT") and "FROM events" in s and "FOR SHARE" in s))
    end = sent.index("COMMIT", start)
    return [s for s in sent[start:end] if s != "BEGIN IMMEDIATE"]


def test_a_registration_holds_the_event_lock_only_for_its_own_reads_and_writes(app, client, make_user,
                                                                               make_event):
    owner = make_user("owner@example.org")
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=10)
    form_url = f"/events/{event.slug}"
    client.get(form_url)  # the form, outside the measurement
    with statements(app, commits=True) as sent:
        response = client.submit(f"/events/{event.slug}/register",
                                 {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
                                  "timezone": "Europe/Paris", "consent": "y"})
    assert response.status_code == 303
    with app.app_context():
        (mail,) = queued_emails()
        assert mail["kind"] == "confirmed"

    locked = _locked(sent)
    # Checking the input, the personal token, branding and wording, and the calendar invite (built when the
    # email is sent) all happen outside it. Inside: read the event (shared lock) and any active registration
    # for the address (the event's questions come from the process's copy for the version just read); claim
    # a seat row; write the registration with its state, its seat and its first transition; record the email
    # and queue it. No savepoints, no row written twice, and the event's row is not written at all.
    assert [s.split()[0] for s in locked] == ["SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "INSERT",
                                              "INSERT"], locked
    tables = [s.split(" FROM ")[1].split()[0] if s.startswith("SELECT")
              else s.split()[1 if s.startswith("UPDATE") else 2] for s in locked]
    assert tables == ["events", "registrations", "event_seats", "registrations",
                      "registration_transitions", "messages", "outbox"], locked
