"""Staff "Sign in with Microsoft" matched on `oid` + `tid`: the organization's tenant from configuration or
from the service account's id token (authorities by domain name or `organizations` name none), one
audited link by UPN for a never-linked account, and nothing but `oid` + `tid` afterwards."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from app.config import TestConfig
from app.extensions import db
from app.models import AuditEntry, MicrosoftConnection, Role, User
from tests.integration.test_staff_sign_in import ADELE, MEGAN, emulator_answer, refusal, sign_in_with_microsoft

OTHER_TENANT = "0ddba11a-0000-4000-8000-000000000099"
NO_ACCOUNT = "There is no active Foyer account for that Microsoft account. Ask an administrator."


@pytest.fixture
def oid(emulator):
    return {u.upn: u.oid for u in emulator.config.users}.__getitem__


@pytest.fixture
def switched_on(client, auth):
    auth.login_as_admin()
    client.submit("/admin/microsoft/staff-sign-in", {"enabled": "1"})
    auth.logout()


@pytest.mark.parametrize(("environ", "tenant"), [
    ({"ENTRA_AUTHORITY": "https://login.microsoftonline.com/organizations"}, ""),
    ({"ENTRA_AUTHORITY": "https://login.microsoftonline.com/contoso.onmicrosoft.com"}, ""),
    ({"ENTRA_AUTHORITY": "https://login.microsoftonline.com/common/"}, ""),
    ({"ENTRA_AUTHORITY": "https://login.microsoftonline.com/C0FFEE00-F0E0-4000-8000-000000000001"},
     "c0ffee00-f0e0-4000-8000-000000000001"),
    ({"ENTRA_AUTHORITY": "https://login.microsoftonline.com/organizations", "ENTRA_TENANT_ID": OTHER_TENANT},
     OTHER_TENANT),
])
def test_tenant_id_comes_from_configuration_never_a_domain_or_organizations(tmp_path, environ, tenant):
    assert TestConfig(tmp_path, environ).ENTRA_TENANT_ID == tenant


def test_organizations_authority_takes_the_tenant_from_the_service_accounts_id_token(
        app, client, auth, switched_on, make_user, oid, emulator, monkeypatch):
    monkeypatch.setitem(app.config, "ENTRA_AUTHORITY", "https://login.microsoftonline.com/organizations")
    monkeypatch.setitem(app.config, "ENTRA_TENANT_ID", "")
    make_user(ADELE, Role.organizer)
    started = client.submit("/login/microsoft")
    assert "does not know its Microsoft 365 organization yet" in refusal(client, started)

    auth.login("admin@example.org")
    assert client.submit("/admin/microsoft/connect-emulated").status_code == 303
    auth.logout()
    with app.app_context():
        assert db.session.get(MicrosoftConnection, 1).tenant_id == emulator.config.tenant_id

    done = sign_in_with_microsoft(client, oid(ADELE))
    assert done.status_code == 303 and done.headers["Location"].endswith("/manage/events/")
    with app.app_context():
        adele = db.session.scalar(select(User).where(User.email == ADELE))
        assert (adele.entra_object_id, adele.entra_tenant_id) == (oid(ADELE), emulator.config.tenant_id)


def test_same_address_in_another_tenant_is_refused(app, client, switched_on, make_user, oid, monkeypatch):
    # The organization is another tenant (its service account's id token said so); the emulated tenant's
    # Megan has the UPN of a Foyer account, which must not let her in.
    monkeypatch.setitem(app.config, "ENTRA_TENANT_ID", "")
    with app.app_context():
        row = db.session.get(MicrosoftConnection, 1) or MicrosoftConnection(id=1)
        row.tenant_id = OTHER_TENANT
        db.session.add(row)
        db.session.commit()
    make_user(MEGAN, Role.organizer)
    assert "belongs to another organization" in refusal(client, sign_in_with_microsoft(client, oid(MEGAN)))
    with app.app_context():
        assert db.session.scalar(select(User.entra_object_id).where(User.email == MEGAN)) is None


def test_object_id_linked_in_another_tenant_does_not_match(app, client, switched_on, make_user, oid):
    user = make_user(ADELE, Role.organizer)
    with app.app_context():
        row = db.session.get(User, user.id)
        row.entra_object_id, row.entra_tenant_id = oid(ADELE), OTHER_TENANT
        db.session.commit()
    assert NO_ACCOUNT in refusal(client, sign_in_with_microsoft(client, oid(ADELE)))


def test_linked_once_then_a_renamed_upn_still_matches_and_a_reused_one_does_not(
        app, client, switched_on, make_user, oid, emulator, monkeypatch):
    adele = make_user(ADELE, Role.organizer)
    assert sign_in_with_microsoft(client, oid(ADELE)).status_code == 303  # linked by her UPN, once
    client.submit("/logout")
    with app.app_context():
        linked = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "auth.microsoft_linked")).all()
        assert [e.target_id for e in linked] == [str(adele.id)]

    # Her UPN is renamed in the tenant: oid + tid still match.
    renamed = dataclasses.replace(emulator.entra.users[oid(ADELE)], upn="a.vance@contoso.emulator.invalid")
    monkeypatch.setitem(emulator.entra.users, oid(ADELE), renamed)
    assert sign_in_with_microsoft(client, oid(ADELE)).status_code == 303
    client.submit("/logout")

    # Her old UPN is given to someone else (Megan): that is not Adele.
    reused = dataclasses.replace(emulator.entra.users[oid(MEGAN)], upn=ADELE)
    monkeypatch.setitem(emulator.entra.users, oid(MEGAN), reused)
    assert NO_ACCOUNT in refusal(client, sign_in_with_microsoft(client, oid(MEGAN)))
    with app.app_context():
        assert db.session.get(User, adele.id).entra_object_id == oid(ADELE)


def test_the_refusal_does_not_leave_the_flow_usable(app, client, switched_on, oid):
    path, fields = emulator_answer(client, oid(MEGAN))
    assert client.post(path, data=fields).status_code == 303  # refused: no Foyer account
    assert client.post(path, data=fields).status_code == 200  # used up: only the re-post page


def test_an_account_linked_before_tenants_were_recorded_gets_its_tenant(app, client, switched_on, make_user, oid,
                                                                        emulator):
    user = make_user(ADELE, Role.organizer)
    with app.app_context():
        db.session.get(User, user.id).entra_object_id = oid(ADELE)
        db.session.commit()
    assert sign_in_with_microsoft(client, oid(ADELE)).status_code == 303
    with app.app_context():
        assert db.session.get(User, user.id).entra_tenant_id == emulator.config.tenant_id
