"""Admin → Privacy over HTTP: the default retention period, and one person's data across events found,
exported as JSON and erased (seats freed, counts kept), each audited without the address."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Event, EventStatus, Registration
from app.models import RegistrationState as S
from app.services.registration import privacy, registrations


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def admin(auth):
    return auth.login_as_admin()


@pytest.fixture
def two_events(app, make_event, admin):
    """Ada registered for two events (one full, so Bob waits behind her in the first)."""
    first = make_event(admin, status=EventStatus.published, published_at=datetime.now(UTC), capacity=1)
    second = make_event(admin, status=EventStatus.published, published_at=datetime.now(UTC))
    with app.app_context():
        for event, people in ((first, ("Ada", "Bob")), (second, ("Ada",))):
            for person in people:
                registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
                    first_name=person, last_name="Test", email=f"{person.lower()}@example.org", timezone="UTC"))
                db.session.commit()
    return first, second


def test_default_retention_is_set_and_validated(app, client, admin):
    page = _text(client.get("/admin/privacy/"))
    assert 'value="90"' in page
    for bad in ("0", "", "abc", "100000"):
        assert client.submit("/admin/privacy/retention", {"days": bad}).status_code == 422
    assert client.submit("/admin/privacy/retention", {"days": "14"}).status_code == 303
    with app.app_context():
        assert privacy.default_retention_days() == 14


def test_lookup_lists_every_registration_of_an_address(client, two_events):
    page = _text(client.submit("/admin/privacy/person", {"email": " ADA@example.org "}))
    assert "2 registrations for this address" in page
    assert "Erase this person’s data" in page
    none = _text(client.submit("/admin/privacy/person", {"email": "zed@example.org"}))
    assert "Foyer holds no registration for that address." in none
    bad = client.submit("/admin/privacy/person", {"email": ""})
    assert bad.status_code == 422 and "Enter an email address." in _text(bad)


def test_export_is_json_with_every_registration_and_audited(app, client, admin, two_events):
    response = client.submit("/admin/privacy/person/export", {"email": "ada@example.org"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = json.loads(response.get_data())
    assert data["email"] == "ada@example.org" and len(data["registrations"]) == 2
    assert {r["registration"]["email"] for r in data["registrations"]} == {"ada@example.org"}
    assert all(r["emails"] for r in data["registrations"])  # the confirmation emails are part of it
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "privacy.export_person"))
        assert entry.actor_user_id == admin.id and len(entry.details["registration_ids"]) == 2
        assert "ada@" not in entry.summary + json.dumps(entry.details)
    missing = client.submit("/admin/privacy/person/export", {"email": "zed@example.org"})
    assert missing.status_code == 422


def test_erasure_needs_confirmation_then_erases_everywhere(app, client, admin, two_events):
    first, second = two_events
    refused = client.submit("/admin/privacy/person/erase", {"email": "ada@example.org"})
    assert refused.status_code == 422 and "Tick the box to confirm." in _text(refused)
    done = client.submit("/admin/privacy/person/erase", {"email": "ada@example.org", "confirm": "y"})
    assert done.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(Registration).where(Registration.email == "ada@example.org")).all() == []
        bob = db.session.scalar(select(Registration).where(Registration.email == "bob@example.org"))
        assert bob.state == S.confirmed  # Ada's seat went to the waitlist
        assert [db.session.get(Event, e.id).erased_registrations for e in (first, second)] == [1, 1]
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.startswith("privacy."))
                                     .order_by(AuditEntry.id)).all()
        assert actions == ["privacy.erase", "privacy.erase", "privacy.erase_person"]
        dump = " ".join(e.summary + json.dumps(e.details) for e in db.session.scalars(select(AuditEntry)))
        assert "ada@example.org" not in dump
    again = client.submit("/admin/privacy/person/erase", {"email": "ada@example.org", "confirm": "y"})
    assert again.status_code == 422 and "Foyer holds no registration for that address." in _text(again)
