"""Staff "Sign in with Microsoft": switched on by an admin, through the emulated tenant's real sign-in
page, matched to existing Foyer accounts only, restricted to the configured tenant."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Role, User
from tests.conftest import PASSWORD
from tests.microsoft_helpers import emulator_answer as answer_at_emulator
from tests.microsoft_helpers import hidden_fields

ADELE = "adele.vance@contoso.emulator.invalid"
MEGAN = "megan.bowen@contoso.emulator.invalid"
ALEX = "alex.wilber@contoso.emulator.invalid"
NO_ACCOUNT = "There is no active Foyer account for that Microsoft account. Ask an administrator."


@pytest.fixture
def oid(emulator):
    return {u.upn: u.oid for u in emulator.config.users}.__getitem__


@pytest.fixture
def switched_on(client, auth):
    """An admin turns staff sign-in on from Admin → Microsoft 365, then signs out."""
    auth.login_as_admin()
    assert "Currently <strong>off</strong>" in client.get("/admin/microsoft/").get_data(as_text=True)
    response = client.submit("/admin/microsoft/staff-sign-in", {"enabled": "1"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Staff can now sign in with Microsoft." in page and "Currently <strong>on</strong>" in page
    auth.logout()


def emulator_answer(client, user_oid: str) -> tuple[str, dict[str, str]]:
    """Press "Sign in with Microsoft", pick `user_oid` on the emulator's page; return the form post
    the emulator's answer page would send back to Foyer (path and fields), without sending it."""
    start = client.submit("/login/microsoft")
    assert start.status_code == 303, start.get_data(as_text=True)[:500]
    # The sign-in page is Microsoft's (another origin), never Foyer's.
    assert urlsplit(start.headers["Location"]).hostname == "login.emulator.invalid"
    return answer_at_emulator(client, start.headers["Location"], user_oid)


def sign_in_with_microsoft(client, user_oid: str):
    path, fields = emulator_answer(client, user_oid)
    return client.post(path, data=fields)


def refusal(client, response) -> str:
    """Where a refused sign-in leads: the login page with a message, nobody signed in."""
    assert response.status_code == 303 and urlsplit(response.headers["Location"]).path == "/login"
    page = client.get("/login")
    assert page.status_code == 200  # not redirected to /manage/events: no session
    return page.get_data(as_text=True)


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def test_organizer_signs_in_with_their_work_account(app, client, auth, switched_on, oid):
    # The admin invites Adele by her work address (in the emulated tenant's reserved domain).
    auth.login("admin@example.org")
    invited = client.submit("/admin/users/invite", {"name": "Adele Vance", "role": "organizer",
                                                    "email": "Adele.Vance@Contoso.Emulator.Invalid"})
    assert invited.status_code == 303, invited.get_data(as_text=True)[-1500:]
    other = client.submit("/admin/users/invite", {"name": "Nobody", "email": "nobody@elsewhere.invalid",
                                                  "role": "organizer"})
    assert other.status_code == 422  # only the emulated tenant's domain is let through
    auth.logout()
    with app.app_context():
        adele = db.session.scalar(select(User).where(User.email == ADELE))
        assert adele is not None and adele.role == Role.organizer
    login = client.get("/login").get_data(as_text=True)
    assert "Sign in with Microsoft" in login

    done = sign_in_with_microsoft(client, oid(ADELE))

    assert done.status_code == 303 and done.headers["Location"].endswith("/manage/events/")
    events = client.get("/manage/events/")
    assert events.status_code == 200 and "Your events" in events.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(User, adele.id)
        assert user.entra_object_id == oid(ADELE)  # bound: later sign-ins match by object id
        assert user.last_login_at is not None


def test_emulated_user_without_foyer_account_is_refused_and_nothing_is_created(app, client, switched_on, oid):
    before = user_count(app)
    page = refusal(client, sign_in_with_microsoft(client, oid(MEGAN)))
    assert NO_ACCOUNT in page
    assert user_count(app) == before
    with app.app_context():
        assert db.session.scalar(select(User).where(func.lower(User.email) == MEGAN)) is None


def test_deactivated_user_is_refused(client, switched_on, make_user, oid):
    make_user(ALEX, Role.admin, active=False)
    assert NO_ACCOUNT in refusal(client, sign_in_with_microsoft(client, oid(ALEX)))
    assert client.get("/manage/events/").status_code in (302, 303)  # still signed out


def test_account_from_another_tenant_is_refused(app, client, switched_on, make_user, oid, monkeypatch):
    # The emulator hosts one tenant; Foyer configured for a different tenant sees its users as outsiders.
    make_user(ADELE, Role.organizer)
    monkeypatch.setitem(app.config, "ENTRA_TENANT_ID", "0ddba11-0000-4000-8000-000000000099")
    page = refusal(client, sign_in_with_microsoft(client, oid(ADELE)))
    assert "That Microsoft account belongs to another organization." in page


def not_started_here(client, path: str, fields: dict[str, str]) -> str:
    """A callback this browser did not start: the same-origin re-post page, then a refusal."""
    first = client.post(path, data=fields)
    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert 'name="foyer_resubmitted" value="1"' in page and "Continue" in page
    again = client.post(path, data={**hidden_fields(page)})
    assert again.status_code == 400
    return again.get_data(as_text=True)


def test_replayed_or_forged_callback_is_refused(app, client, switched_on, make_user, oid):
    make_user(ADELE, Role.organizer)
    path, fields = emulator_answer(client, oid(ADELE))
    forged = not_started_here(client, path, {**fields, "state": "forged-state"})
    assert "This sign-in was not started in this browser" in forged

    assert client.post(path, data=fields).status_code == 303  # the genuine answer works once
    client.submit("/logout")
    assert "not started in this browser" in not_started_here(client, path, fields)
    assert client.get("/manage/events/").status_code in (302, 303)  # nobody signed in


def test_a_callback_started_in_another_browser_is_refused(app, client, switched_on, make_user, oid):
    """Login CSRF: the attacker's own sign-in answer, posted by a signed-in victim's browser."""
    make_user(ADELE, Role.organizer)
    victim = make_user("victim@example.org", Role.admin)
    attacker = app.test_client()
    attacker.__class__ = type(client)
    path, fields = emulator_answer(attacker, oid(ADELE))  # the attacker stops before the callback
    assert client.submit("/login", {"email": victim.email, "password": PASSWORD}).status_code == 303
    page = not_started_here(client, path, fields)
    assert "This sign-in was not started in this browser" in page and "Nothing has changed" in page
    # The victim is still themself (an admin), not Adele.
    assert client.get("/admin/microsoft/").status_code == 200  # Adele, an organizer, would get a 404
    # Microsoft's real answer arrives cross-site, without the session cookie: nothing may set one then
    # (it would replace the person's real session).
    cookieless = app.test_client().post(path, data=fields)
    assert cookieless.status_code == 200 and "Set-Cookie" not in cookieless.headers
    with app.app_context():
        assert db.session.scalar(select(User.last_login_at).where(User.email == ADELE)) is None
    # The attacker's flow was not used up by the refusal: their own browser can still finish it.
    assert attacker.post(path, data=fields).status_code == 303


def test_sign_in_is_refused_when_switched_off(app, client, auth, make_user, oid):
    make_user(ADELE, Role.organizer)
    assert "Sign in with Microsoft" not in client.get("/login").get_data(as_text=True)
    started = client.submit("/login/microsoft")
    assert "Sign in with Microsoft is not switched on." in refusal(client, started)

    # Switched off between pressing the button and Microsoft's answer: the answer is refused too.
    admin = auth.login_as_admin()
    client.submit("/admin/microsoft/staff-sign-in", {"enabled": "1"})
    auth.logout()
    path, fields = emulator_answer(client, oid(ADELE))
    admin_browser = app.test_client()
    admin_browser.__class__ = type(client)
    admin_browser.submit("/login", {"email": admin.email, "password": PASSWORD})
    admin_browser.submit("/admin/microsoft/staff-sign-in", {"enabled": "0"})
    assert "Sign in with Microsoft is not switched on." in refusal(client, client.post(path, data=fields))


def test_cross_site_answer_is_posted_again_from_foyer_and_signs_in(app, client, switched_on, make_user, oid):
    """Real Entra posts cross-site, so the SameSite=Lax session cookie stays behind: the cookie-less
    arrival gets a page that posts the same answer from Foyer's origin, which carries the session."""
    make_user(ADELE, Role.organizer)
    path, fields = emulator_answer(client, oid(ADELE))
    arrival = app.test_client().post(path, data=fields)  # no cookie, as a cross-site POST arrives
    assert arrival.status_code == 200 and "Set-Cookie" not in arrival.headers
    page = arrival.get_data(as_text=True)
    assert 'src="/static/js/microsoft-return.js"' in page and f'action="{path}"' in page
    done = client.post(path, data=hidden_fields(page))  # the page's own post, from this browser
    assert done.status_code == 303 and done.headers["Location"].endswith("/manage/events/")
    assert client.get("/manage/events/").status_code == 200
