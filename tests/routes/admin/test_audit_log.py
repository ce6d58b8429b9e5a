"""The audit log: organizer and admin actions done over HTTP each leave an entry with actor, time and
target; no secret ever lands in it; admins filter and page it; nobody else can see it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Event, EventStatus, Registration, User
from app.services.core import audit
from app.services.registration import registrations
from tests.conftest import PASSWORD
from tests.routes.admin.test_microsoft import connect_service_account
from tests.routes.organizer.conftest import event_form


def _entries(app, **filters) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).filter_by(**filters).order_by(AuditEntry.id)).all()
        db.session.expunge_all()
        return rows


def _actions(app) -> list[str]:
    return [e.action for e in _entries(app)]


def _dump(app) -> str:
    with app.app_context():
        return "\n".join(json.dumps([e.action, e.actor_label, e.target_type, e.target_id, e.summary, e.details],
                                    ensure_ascii=False) for e in db.session.scalars(select(AuditEntry)))


def test_sign_ins_failures_and_sign_outs(app, client, auth, make_user):
    user = make_user("org@example.org")
    assert auth.login("org@example.org", "wrong password").status_code == 422
    assert auth.login("nobody@example.org", "wrong password").status_code == 422
    assert auth.login("org@example.org").status_code == 303
    auth.logout()
    entries = _entries(app)
    assert [(e.action, e.actor_user_id) for e in entries] == [
        ("auth.login_failed", None), ("auth.login_failed", None), ("auth.login", user.id), ("auth.logout", user.id)]
    assert entries[0].target_id == str(user.id) and entries[1].target_type == ""
    assert "nobody@example.org" not in _dump(app)
    assert all(e.ip == "127.0.0.1" for e in entries)


def test_event_changes_are_recorded_with_actor_and_target(app, client, auth):
    organizer = auth.login_as_organizer("org@example.org")
    created = client.submit("/manage/events/new", event_form(title="Audit me"))
    assert created.status_code == 303
    event_id = int(re.search(r"/manage/events/(\d+)/edit", created.headers["Location"]).group(1))
    base = f"/manage/events/{event_id}"
    edit_page = client.get(f"{base}/edit").get_data(as_text=True)
    assert client.submit(f"{base}/edit", event_form(title="Audit me again", slug="audit-me")).status_code == 303
    assert client.submit(f"{base}/questions",
                         {"new-question-kind": "short_text", "new-question-label": "Company"}).status_code in (200, 303)
    assert client.submit(f"{base}/publish").status_code == 303
    assert client.submit(f"{base}/unpublish").status_code == 303
    assert client.submit(f"{base}/clone").status_code == 303
    assert client.submit(f"{base}/cancel", {"reason": "Speaker ill"}).status_code == 303
    assert "Audit me" in edit_page
    rows = [(e.action, e.actor_user_id, e.target_type) for e in _entries(app) if e.action.startswith("event.")]
    assert rows[:2] == [("event.create", organizer.id, "event"), ("event.update", organizer.id, "event")]
    actions = [a for a, _, _ in rows]
    for action in ("event.question_added", "event.publish", "event.unpublish", "event.clone", "event.cancel"):
        assert action in actions
    cancel = next(e for e in _entries(app) if e.action == "event.cancel")
    assert cancel.target_id == str(event_id) and cancel.event_id == event_id and "Audit me again" in cancel.summary


@pytest.fixture
def event_with_people(app, make_event, auth):
    organizer = auth.login_as_organizer("org@example.org")
    event = make_event(organizer, status=EventStatus.published, published_at=datetime.now(UTC), capacity=1,
                       approval_required=True)
    with app.app_context():
        ids = []
        for first in ("Ada", "Bob", "Cleo"):
            outcome = registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
                first_name=first, last_name="Test", email=f"{first.lower()}@example.org", timezone="UTC"))
            db.session.commit()
            ids.append(outcome.registration.id)
    return organizer, event, ids


def test_registration_actions_exports_and_capacity(app, client, event_with_people):
    organizer, event, (ada, bob, cleo) = event_with_people
    base = f"/manage/events/{event.id}/registrations"
    assert client.submit(f"{base}/{ada}/approve").status_code == 303
    assert client.submit(f"{base}/{bob}/deny", {"message": "Sorry"}).status_code == 303
    assert client.submit(f"{base}/bulk", {"ids": [cleo], "action": "cancel"}).status_code == 303
    assert client.submit(f"{base}/capacity", {"capacity": "5"}).status_code == 303
    client.get(f"{base}.csv").get_data()
    entries = [e for e in _entries(app) if not e.action.startswith("auth.")]
    assert [(e.action, e.target_type, e.target_id) for e in entries] == [
        ("registration.approve", "registration", str(ada)),
        ("registration.deny", "registration", str(bob)),
        ("registration.bulk_cancel", "event", str(event.id)),
        ("event.capacity", "event", str(event.id)),
        ("export.registrations_csv", "event", str(event.id)),
    ]
    assert all(e.actor_user_id == organizer.id and e.event_id == event.id for e in entries)
    assert entries[2].details["done_ids"] == [cleo]
    assert "Capacity 1 → 5" == entries[3].summary
    dump = _dump(app)
    assert "ada@example.org" not in dump and "Ada" not in dump  # attendees by number only


def test_admin_actions_never_store_secrets(app, client, auth, make_user):
    admin = auth.login_as_admin()
    invited = client.submit("/admin/users/invite", {"email": "new@example.org", "name": "New", "role": "organizer"})
    assert invited.status_code == 303
    link_page = client.get(invited.headers["Location"]).get_data(as_text=True)
    token = re.search(r'id="one-time-link" value="http://localhost/invitation/([^"]+)"', link_page).group(1)
    other = make_user("other@example.org")
    client.submit(f"/admin/users/{other.id}/role", {"role": "admin"})
    client.submit(f"/admin/users/{other.id}/reset-password")
    client.submit(f"/admin/users/{other.id}/deactivate")
    client.submit(f"/admin/users/{other.id}/reactivate")
    client.submit("/admin/branding/privacy", {"privacy_text": "We keep little."})
    connect_service_account(app, client)
    client.submit("/admin/microsoft/staff-sign-in", {"enabled": "1"})
    client.submit("/admin/microsoft/disconnect")
    client.submit("/admin/privacy/retention", {"days": "45"})
    actions = _actions(app)
    for action in ("user.invite", "user.role", "user.reset_password", "user.deactivate", "user.reactivate",
                   "settings.privacy_notice", "microsoft.connect", "settings.staff_sign_in", "microsoft.disconnect",
                   "settings.retention"):
        assert action in actions, action
    assert all(e.actor_user_id == admin.id for e in _entries(app) if not e.action.startswith("auth."))
    dump = _dump(app)
    assert token not in dump and PASSWORD not in dump
    with app.app_context():
        from app.models import MicrosoftConnection

        cache = db.session.scalar(select(MicrosoftConnection.token_cache_encrypted))
        assert cache is None or cache[:40] not in dump


def test_scrubbing_drops_credential_like_details(app):
    with app.app_context():
        entry = audit.record("settings.test", summary="x", details={
            "client_secret": "s3cr3t", "refresh_token": "rt", "nested": {"password": "pw", "ok": 1},
            "connection_string": "endpoint=…;accesskey=AAA", "days": 3})
        assert entry.details == {"client_secret": "[redacted]", "refresh_token": "[redacted]",
                                 "nested": {"password": "[redacted]", "ok": 1}, "connection_string": "[redacted]",
                                 "days": 3}
        db.session.rollback()


@pytest.fixture
def many_entries(app, make_user):
    a = make_user("alice@example.org", name="Alice")
    b = make_user("bruno@example.org", name="Bruno")
    with app.app_context():
        base = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
        for i in range(60):
            db.session.add(AuditEntry(action="event.update" if i % 2 else "export.registrations_csv",
                                      actor_user_id=a.id if i % 3 else b.id,
                                      actor_label="alice@example.org" if i % 3 else "bruno@example.org",
                                      target_type="event", target_id=str(i % 4), event_id=i % 4,
                                      summary=f"Entry {i}", at=base + timedelta(days=i), details={}))
        db.session.commit()


def _rows(page: str) -> list[str]:
    return re.findall(r"<td>(Entry \d+)</td>", page)


def test_admin_filters_and_pages_the_log(client, auth, many_entries):
    auth.login_as_admin()
    first = client.get("/admin/audit/").get_data(as_text=True)
    assert _rows(first)[:2] == ["Entry 59", "Entry 58"] and len(_rows(first)) == 50
    assert "page 1 of 2" in first and 'href="/admin/audit/?page=2"' in first
    second = client.get("/admin/audit/?page=2").get_data(as_text=True)
    assert len(_rows(second)) == 10 and "Signed in with a password" in second  # the admin's own, the oldest
    exports = client.get("/admin/audit/?category=export").get_data(as_text=True)
    assert len(_rows(exports)) == 30 and "Entry 59" not in exports
    bruno = _rows(client.get("/admin/audit/?actor=BRUNO").get_data(as_text=True))
    assert len(bruno) == 20 and "Entry 0" in bruno
    by_event = _rows(client.get("/admin/audit/?event=2&since=2031-05-01&until=2031-05-20").get_data(as_text=True))
    assert sorted(by_event, key=lambda r: int(r.split()[1])) == ["Entry 2", "Entry 6", "Entry 10", "Entry 14",
                                                                  "Entry 18"]
    fragment = client.get("/admin/audit/?category=export", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="audit-results">')


@pytest.mark.parametrize("query", ["category=secrets", "event=abc", "event=-1", "event=99999999999", "since=yesterday",
                                   "until=2031-13-45", "page=-3", "page=" + "9" * 40, "actor=%25", "q=" + "x" * 5000])
def test_bad_filters_are_ignored_not_errors(client, auth, many_entries, query):
    auth.login_as_admin()
    response = client.get(f"/admin/audit/?{query}")
    assert response.status_code == 200


def test_only_admins_see_the_log(client, auth):
    assert client.get("/admin/audit/").status_code in (302, 303)
    auth.login_as_organizer()
    assert client.get("/admin/audit/").status_code == 404
    assert client.get("/admin/privacy/").status_code == 404


def test_attendee_self_export_and_erasure_are_recorded(app, client, event_with_people):
    _, event, (ada, _bob, _cleo) = event_with_people
    with app.app_context():
        token = registrations.manage_token_for(db.session.get(Registration, ada))
    assert client.get(f"/r/{token}/data.json").status_code == 200
    assert client.submit(f"/r/{token}/erase", {"confirm": "y"}).status_code in (200, 303)
    entries = [e for e in _entries(app) if e.action.startswith("privacy.")]
    assert [(e.action, e.actor_label, e.target_id) for e in entries] == [
        ("privacy.export", "attendee", str(ada)), ("privacy.erase", "attendee", str(ada))]


def test_first_admin_creation_is_recorded(app):
    from app.services.accounts import accounts

    with app.app_context():
        admin = accounts.create_first_admin("first@example.org", PASSWORD)
        db.session.commit()
        admin_id = admin.id
    [entry] = _entries(app, action="user.setup")
    assert entry.actor_user_id == admin_id and entry.target_id == str(admin_id)
    with app.app_context():  # setup signs the admin in: the users page must not say "Never"
        assert db.session.get(User, admin_id).last_login_at is not None
    assert PASSWORD not in _dump(app)


def test_organizer_messages_and_wording_changes_are_recorded(app, client, auth, make_event):
    from tests.routes.organizer.test_messages import _event, _people

    organizer = auth.login_as_organizer("org@example.org")
    event = _event(make_event, organizer, title="Logged meetup")
    _people(app, event, confirmed=2, waitlisted=1)
    url = f"/manage/events/{event.id}/messages"
    assert client.submit(url, {"segment": "confirmed", "subject": "Parking", "body": "Use gate B.",
                               "action": "send"}).status_code == 303
    wording = f"/manage/events/{event.id}/emails/confirmed"
    assert client.submit(wording, {"subject": "See you at {title}!", "intro": "Bring a mug."}).status_code == 303
    assert client.submit(wording, {"subject": "", "intro": ""}).status_code == 303

    sent, changed, restored = _entries(app, event_id=event.id)[-3:]
    assert (sent.action, sent.actor_user_id, sent.summary) == ("message.send", organizer.id,
                                                               "Messaged “Confirmed”: Parking")
    assert sent.details["recipients"] == 2 and sent.details["segment"] == "confirmed"
    assert changed.action == "message.wording" and changed.details["intro"] == "Bring a mug."
    assert "Changed the wording" in changed.summary and "Restored the standard wording" in restored.summary
    auth.logout()
    auth.login_as_admin()
    page = client.get("/admin/audit/?category=message").get_data(as_text=True)
    assert "Messaged “Confirmed”: Parking" in page and "Restored the standard wording" in page
