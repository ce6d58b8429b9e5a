"""Microsoft revokes Foyer's service-account sign-in in the middle of its work, and secrets at rest
change keys: nothing is lost, nothing is repeated, admins hear about it once, attendees never notice."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.jobs import drain_outbox
from app.models import (
    ConnectionStatus,
    Event,
    EventStatus,
    Message,
    MessageStatus,
    MicrosoftConnection,
    OutboxItem,
    OutboxStatus,
    ProvisioningStatus,
    Registration,
    Role,
)
from app.services.core import crypto
from tests.routes.admin.test_microsoft import connect_service_account

ALERT_SUBJECT = "Foyer needs you to re-connect Microsoft 365"


def publish(client, event) -> None:
    response = client.submit(f"/manage/events/{event.id}/publish")
    assert response.status_code == 303


def worker_pass(app) -> None:
    """One pass of `flask worker`'s outbox job (admin alerts, then the queue)."""
    drain_outbox(app)


def events_by_id(app, ids) -> dict[int, Event]:
    with app.app_context():
        found = {e.id: e for e in db.session.scalars(select(Event).where(Event.id.in_(ids)))}
        for event in found.values():
            db.session.expunge(event)
        return found


def outbox_items(app, kind: str) -> list[OutboxItem]:
    with app.app_context():
        items = db.session.scalars(select(OutboxItem).where(OutboxItem.kind == kind).order_by(OutboxItem.id)).all()
        for item in items:
            db.session.expunge(item)
        return list(items)


def connection(app) -> MicrosoftConnection:
    with app.app_context():
        row = db.session.get(MicrosoftConnection, 1)
        db.session.expunge(row)
        return row


def test_revoked_sign_in_parks_work_alerts_admins_once_and_resumes_after_reconnect(app, client, auth, make_user,
                                                                                  make_event, emulator):
    admin = auth.login_as_admin()
    second_admin = make_user("second.admin@example.org", Role.admin)
    make_user("retired.admin@example.org", Role.admin, active=False)
    make_user("organizer@example.org", Role.organizer)
    connect_service_account(app, client)
    first = make_event(admin, attendee_lobby="bypass")
    publish(client, first)
    worker_pass(app)
    assert events_by_id(app, [first.id])[first.id].provisioning_status == ProvisioningStatus.ready

    # Two more events are published; while the worker provisions the first of them, Microsoft revokes
    # the service account's refresh tokens and expires its access tokens (right after the calendar
    # event was created, before the meeting lookup).
    second, third = make_event(admin), make_event(admin)
    publish(client, second)
    publish(client, third)
    emulator.faults.add(kind="revoke-tokens", group="graph", skip=1, count=1)
    emulator.faults.add(kind="expire-tokens", group="graph", skip=1, count=1)
    worker_pass(app)

    broken = connection(app)
    assert broken.status == ConnectionStatus.needs_reconnect and "AADSTS50173" in broken.last_error
    parked = [i for i in outbox_items(app, "teams.provision") if i.event_id in (second.id, third.id)]
    assert [i.status for i in parked] == [OutboxStatus.waiting, OutboxStatus.waiting]  # parked, not failed
    states = events_by_id(app, [second.id, third.id])
    assert states[second.id].graph_event_id and not states[second.id].online_meeting_id  # half-way through
    assert states[third.id].graph_event_id is None
    assert all(e.provisioning_status == ProvisioningStatus.pending for e in states.values())
    # The organizer is told the work waits for an admin, not that it is under way.
    status = client.get(f"/manage/events/{third.id}/teams").get_data(as_text=True)
    assert "Waiting for Microsoft re-connect" in status and "Provisioning…" not in status
    assert "Waiting for Microsoft re-connect" in client.get("/manage/events/").get_data(as_text=True)
    assert [r.status for r in emulator.requests_for("entra") if r.path.endswith("/token")][-1] == 400

    # The worker keeps running: each active admin is emailed exactly once, however many passes.
    worker_pass(app)
    worker_pass(app)
    alerts = [e for e in emulator.acs.sent_emails if e.subject == ALERT_SUBJECT]
    assert sorted(e.to[0]["address"] for e in alerts) == sorted([admin.email, second_admin.email])
    assert "Admin → Microsoft 365 → Re-connect" in alerts[0].plain_text
    with app.app_context():  # through the message log, shown in /admin/messages
        logged = db.session.scalars(select(Message).where(Message.kind == "admin_alert")).all()
        assert sorted(m.recipient for m in logged) == sorted([admin.email, second_admin.email])
        assert all(m.status == MessageStatus.sent and m.event_id is None for m in logged)
    alert_items = [i for i in outbox_items(app, "message.send") if i.dedupe_key.startswith("message:admin-alert:")]
    assert len(alert_items) == 2 and all(i.status == OutboxStatus.done for i in alert_items)
    assert all(i.status == OutboxStatus.waiting for i in outbox_items(app, "teams.provision")
               if i.event_id in (second.id, third.id))

    # Meanwhile the public keeps registering, and staff pages tell the truth without a 500.
    page = client.get(f"/events/{second.slug}")
    assert page.status_code == 200
    form = client.get(f"/events/{second.slug}/register")
    assert form.status_code == 200
    registered = client.submit(f"/events/{second.slug}/register", {
        "first_name": "Grace", "last_name": "Hopper", "email": "grace@example.org", "timezone": "Europe/Berlin",
        "consent": "y"})
    assert registered.status_code < 500 and registered.status_code != 422, registered.get_data(as_text=True)[-2000:]
    with app.app_context():
        assert db.session.scalar(select(func.count(Registration.id)).where(
            Registration.email == "grace@example.org")) == 1
    assert client.get(f"/manage/events/{second.id}").status_code == 200
    status = client.get(f"/manage/events/{second.id}/teams").get_data(as_text=True)
    assert "Failed" not in status
    admin_page = client.get("/admin/microsoft/").get_data(as_text=True)
    assert "Needs re-connect" in admin_page and "Re-connect the emulated service account" in admin_page

    # An admin signs in again through the (emulated) Microsoft sign-in page: everything resumes.
    done = connect_service_account(app, client)
    assert "outcome=connected" in done.headers["Location"]
    worker_pass(app)
    worker_pass(app)

    final = events_by_id(app, [first.id, second.id, third.id])
    assert all(e.provisioning_status == ProvisioningStatus.ready for e in final.values())
    assert sorted(emulator.graph.events) == sorted(e.graph_event_id for e in final.values())  # three, no extras
    assert sorted(emulator.graph.online_meetings) == sorted(e.online_meeting_id for e in final.values())
    assert final[second.id].graph_event_id == states[second.id].graph_event_id  # finished, not recreated
    creates = [r for r in emulator.requests_for("graph", path="/v1.0/me/events") if r.method == "POST"]
    assert len(creates) == 3
    assert all(i.status == OutboxStatus.done for i in outbox_items(app, "teams.provision"))
    restored = connection(app)
    assert restored.status == ConnectionStatus.connected and restored.admins_alerted_at is None
    assert len([e for e in emulator.acs.sent_emails if e.subject == ALERT_SUBJECT]) == 2  # no new alerts


def test_reconnect_resumes_work_parked_by_an_earlier_breakage_only_once(app, client, auth, make_event, emulator):
    """A second breakage after a repair alerts admins again (once), and a cancelled event is not provisioned."""
    admin = auth.login_as_admin()
    connect_service_account(app, client)
    emulator.entra.revoke_refresh_tokens()
    emulator.entra.expire_access_tokens()
    kept, dropped = make_event(admin), make_event(admin)
    publish(client, kept)
    publish(client, dropped)
    worker_pass(app)
    worker_pass(app)
    assert connection(app).status == ConnectionStatus.needs_reconnect
    assert client.submit(f"/manage/events/{dropped.id}/cancel", {"reason": "Merged into the other call."}
                         ).status_code == 303

    connect_service_account(app, client)
    worker_pass(app)
    final = events_by_id(app, [kept.id, dropped.id])
    assert final[kept.id].provisioning_status == ProvisioningStatus.ready
    assert final[dropped.id].status == EventStatus.cancelled and final[dropped.id].graph_event_id is None
    assert list(emulator.graph.events) == [final[kept.id].graph_event_id]

    emulator.entra.revoke_refresh_tokens()
    emulator.entra.expire_access_tokens()
    later = make_event(admin)
    publish(client, later)
    worker_pass(app)
    worker_pass(app)
    worker_pass(app)
    alerts = [e for e in emulator.acs.sent_emails if e.subject == ALERT_SUBJECT]
    assert [e.to[0]["address"] for e in alerts] == [admin.email, admin.email]  # once per breakage


# --- key rotation -------------------------------------------------------------------------------------


def app_with_keys(database_url, tmp_path, name, keys):
    """Foyer restarted with ENCRYPTION_KEYS set (the same database)."""
    return create_app(TestConfig, instance_path=tmp_path / name, environ={"ENCRYPTION_KEYS": ",".join(keys)},
                      SQLALCHEMY_DATABASE_URI=database_url)


def stored_cache() -> str:
    return db.session.scalar(select(MicrosoftConnection.token_cache_encrypted))


def test_rotate_key_re_encrypts_the_token_cache_under_the_new_key(app, client, auth, database_url, tmp_path):
    auth.login_as_admin()
    connect_service_account(app, client)
    old_keys = list(app.config["ENCRYPTION_KEYS"])
    with app.app_context():
        before = stored_cache()
        plaintext = crypto.decrypt(before)
    assert json.loads(plaintext)["RefreshToken"]

    printed = app.test_cli_runner().invoke(args=["foyer", "rotate-key", "--print-new-key"])
    assert printed.exit_code == 0
    new_key = printed.output.strip()
    assert new_key not in old_keys

    apps = {
        "both": app_with_keys(database_url, tmp_path, "both", [new_key, *old_keys]),
        "new_only": app_with_keys(database_url, tmp_path, "new-only", [new_key]),
        "old_only": app_with_keys(database_url, tmp_path, "old-only", old_keys),
    }
    try:
        # Before rotation, a deployment holding only the new key could not read the tokens.
        with apps["new_only"].app_context():
            with pytest.raises(crypto.SecretUnreadable):
                crypto.decrypt(stored_cache())

        result = apps["both"].test_cli_runner().invoke(args=["foyer", "rotate-key"])
        assert result.exit_code == 0, result.output
        assert "Re-encrypted 1 stored secret(s)" in result.output

        with apps["new_only"].app_context():
            after = stored_cache()
            assert after != before
            assert crypto.decrypt(after) == plaintext  # the same tokens, readable with the new key alone
        with apps["old_only"].app_context():
            with pytest.raises(crypto.SecretUnreadable):  # really under the new key now
                crypto.decrypt(stored_cache())
        with apps["both"].app_context():
            assert crypto.decrypt(stored_cache()) == plaintext
    finally:
        for other in apps.values():
            with other.app_context():
                db.session.remove()
                db.engine.dispose()
