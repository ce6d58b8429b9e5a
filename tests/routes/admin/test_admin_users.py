import re
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import Role, User

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret"
LINK_RE = re.compile(r'id="one-time-link" value="http://localhost(/invitation/[^"]+)"')


@pytest.fixture
def other_client(app, client):
    """A second browser."""
    second = app.test_client()
    second.__class__ = client.__class__
    return second


def _text(response):
    return response.get_data(as_text=True)


def _user(app, email):
    with app.app_context():
        user = db.session.query(User).filter_by(email=email).one()
        db.session.expunge(user)
        return user


def _invite(client, email="new@example.org", name="New Person", role="organizer"):
    response = client.submit("/admin/users/invite", {"email": email, "name": name, "role": role})
    assert response.status_code == 303, _text(response)
    page = client.get(response.headers["Location"])
    match = LINK_RE.search(_text(page))
    assert match, _text(page)
    return match.group(1)


def _set_role(client, user_id, role):
    return client.submit(f"/admin/users/{user_id}/role", {"role": role})


def _accept(browser, path, password=NEW_PASSWORD):
    return browser.submit(path, {"password": password, "confirm": password})


def test_user_list_shows_people_roles_and_state(client, auth, make_user):
    auth.login_as_admin()
    make_user("orga@example.org", name="Orga Nizer")
    make_user("gone@example.org", active=False)
    _invite(client, "invited@example.org", "In Vited")
    page = _text(client.get("/admin/users"))
    for text in ("admin@example.org", "orga@example.org", "Orga Nizer", "Organizer", "Admin", "Deactivated",
                 "invited@example.org", "Invitation pending", "(you)"):
        assert text in page
    assert "data-local-time=" in page  # the admin's last sign-in
    assert "Never" in page


def test_invitation_link_lets_the_user_set_a_password_and_sign_in(app, client, auth, other_client):
    auth.login_as_admin()
    path = _invite(client, "Invited@Example.org", "In Vited", "organizer")
    invited = _user(app, "invited@example.org")
    assert invited.password_hash is None and invited.role == Role.organizer and invited.name == "In Vited"

    # The link page shows the link only once.
    again = client.get(f"/admin/users/{invited.id}/link")
    assert again.status_code == 303
    assert "shown only once" in _text(client.get(again.headers["Location"]))

    assert other_client.get(path).status_code == 200
    response = _accept(other_client, path)
    assert response.status_code == 303
    assert other_client.get("/account/password").status_code == 200
    # Accepting signs the person in, so the admin sees a sign-in, not "Never".
    assert not re.search(r"Last sign-in</dt><dd><span class=\"muted\">Never",
                         _text(client.get(f"/admin/users/{invited.id}")))

    third = other_client.application.test_client()
    third.__class__ = client.__class__
    assert third.submit("/login", {"email": "invited@example.org", "password": NEW_PASSWORD}).status_code == 303

    # Used once: the same link is now a friendly 404.
    used = third.get(path)
    assert used.status_code == 404 and "not valid" in _text(used)


def test_expired_invitation_is_a_404_page(app, client, auth, other_client):
    auth.login_as_admin()
    path = _invite(client)
    with app.app_context():
        user = db.session.query(User).filter_by(email="new@example.org").one()
        user.invite_expires_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    response = other_client.get(path)
    assert response.status_code == 404 and "expired or already been used" in _text(response)
    assert _accept(other_client, path).status_code in (400, 404)


def test_invite_rejects_duplicate_and_bad_email_with_422(client, auth):
    auth.login_as_admin()
    response = client.submit("/admin/users/invite", {"email": "admin@example.org", "name": "Dup", "role": "organizer"})
    assert response.status_code == 422 and "already exists" in _text(response)
    response = client.submit("/admin/users/invite", {"email": "not-an-email", "name": "X", "role": "organizer"})
    assert response.status_code == 422 and 'aria-invalid="true"' in _text(response)
    response = client.submit("/admin/users/invite", {"email": "x@example.org", "name": "X", "role": "owner"})
    assert response.status_code == 422


def test_invited_admin_gets_admin_role(app, client, auth):
    auth.login_as_admin()
    _invite(client, "second@example.org", "Second Admin", "admin")
    assert _user(app, "second@example.org").role == Role.admin


def test_create_user_with_password_can_sign_in_at_once(app, client, auth, other_client):
    auth.login_as_admin()
    response = client.submit("/admin/users/new", {"email": "direct@example.org", "name": "Direct", "role": "organizer",
                                                  "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 303
    assert other_client.submit("/login", {"email": "direct@example.org", "password": NEW_PASSWORD}).status_code == 303

    short = client.submit("/admin/users/new", {"email": "short@example.org", "name": "S", "role": "organizer",
                                               "password": "short", "confirm": "short"})
    assert short.status_code == 422 and "Use at least 10 characters." in _text(short)


def test_reissued_invitation_replaces_the_old_link(app, client, auth, other_client):
    auth.login_as_admin()
    old_path = _invite(client)
    user = _user(app, "new@example.org")
    response = client.submit(f"/admin/users/{user.id}/invitation")
    assert response.status_code == 303
    new_path = LINK_RE.search(_text(client.get(response.headers["Location"]))).group(1)
    assert new_path != old_path
    assert other_client.get(old_path).status_code == 404
    assert other_client.get(new_path).status_code == 200


@pytest.mark.db_agnostic
def test_reissue_is_refused_once_a_password_exists(client, auth, make_user):
    auth.login_as_admin()
    user = make_user("has-pw@example.org")
    response = client.submit(f"/admin/users/{user.id}/invitation")
    assert response.status_code == 422 and "Reset password" in _text(response)


def test_reset_password_ends_sessions_and_old_password(app, client, auth, make_user, other_client):
    auth.login_as_admin()
    make_user("forgetful@example.org")
    assert other_client.submit("/login", {"email": "forgetful@example.org", "password": PASSWORD}).status_code == 303
    user = _user(app, "forgetful@example.org")

    confirm = client.get(f"/admin/users/{user.id}/reset-password")
    assert confirm.status_code == 200 and "Reset password" in _text(confirm)
    response = client.submit(f"/admin/users/{user.id}/reset-password")
    assert response.status_code == 303
    path = LINK_RE.search(_text(client.get(response.headers["Location"]))).group(1)

    assert other_client.get("/account/password").status_code == 302  # their session has ended
    assert other_client.submit("/login", {"email": "forgetful@example.org", "password": PASSWORD}).status_code == 422
    assert _accept(other_client, path).status_code == 303
    assert other_client.get("/account/password").status_code == 200


@pytest.mark.db_agnostic
def test_admin_cannot_reset_own_password_here(app, client, auth):
    admin = auth.login_as_admin()
    response = client.submit(f"/admin/users/{admin.id}/reset-password")
    assert response.status_code == 422 and "account page" in _text(response)
    assert _user(app, "admin@example.org").password_hash is not None


def test_deactivation_needs_confirmation_ends_session_and_refuses_sign_in(app, client, auth, make_user, other_client):
    auth.login_as_admin()
    make_user("leaver@example.org")
    assert other_client.submit("/login", {"email": "leaver@example.org", "password": PASSWORD}).status_code == 303
    user = _user(app, "leaver@example.org")

    confirm = client.get(f"/admin/users/{user.id}/deactivate")
    assert confirm.status_code == 200
    assert f'action="/admin/users/{user.id}/deactivate"' in _text(confirm)
    assert _user(app, "leaver@example.org").is_active_account  # nothing happens on GET

    response = client.submit(f"/admin/users/{user.id}/deactivate")
    assert response.status_code == 303
    assert not _user(app, "leaver@example.org").is_active_account
    assert other_client.get("/account/password").status_code == 302
    assert other_client.submit("/login", {"email": "leaver@example.org", "password": PASSWORD}).status_code == 422

    response = client.submit(f"/admin/users/{user.id}/reactivate")
    assert response.status_code == 303
    assert other_client.submit("/login", {"email": "leaver@example.org", "password": PASSWORD}).status_code == 303


@pytest.mark.db_agnostic
def test_admin_cannot_deactivate_themselves(app, client, auth):
    admin = auth.login_as_admin()
    response = client.submit(f"/admin/users/{admin.id}/deactivate")
    assert response.status_code == 422 and "your own account" in _text(response)
    assert _user(app, "admin@example.org").is_active_account
    assert client.get("/admin/users").status_code == 200


def test_last_active_admin_cannot_be_demoted(app, client, auth, make_user):
    admin = auth.login_as_admin()
    response = _set_role(client, admin.id, "organizer")
    assert response.status_code == 422 and "last active admin" in _text(response)
    assert _user(app, "admin@example.org").role == Role.admin

    # A deactivated admin does not count.
    make_user("dormant@example.org", Role.admin, active=False)
    response = _set_role(client, admin.id, "organizer")
    assert response.status_code == 422


def test_role_change_promotes_and_demotes(app, client, auth, make_user, other_client):
    admin = auth.login_as_admin()
    make_user("rising@example.org")
    user = _user(app, "rising@example.org")
    response = client.submit(f"/admin/users/{user.id}/role", {"role": "admin"})
    assert response.status_code == 303
    assert _user(app, "rising@example.org").role == Role.admin
    assert other_client.submit("/login", {"email": "rising@example.org", "password": PASSWORD}).status_code == 303
    assert other_client.get("/admin/users").status_code == 200

    # With a second admin, the first may step down, and loses the admin area.
    response = _set_role(client, admin.id, "organizer")
    assert response.status_code == 303 and response.headers["Location"] == "/manage/events/"
    assert client.get("/admin/users").status_code == 404


@pytest.mark.db_agnostic
def test_unknown_user_is_404(client, auth):
    auth.login_as_admin()
    assert client.get("/admin/users/9999").status_code == 404
    assert client.get("/admin/users/9999/deactivate").status_code == 404
