import re

import pytest

from app.extensions import db
from app.models import User

pytestmark = pytest.mark.db_agnostic  # who reaches /admin is decided above the database

ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/users/invite", "/admin/users/new", "/admin/branding"]


#: Deliberately outside the admin gate: Microsoft's sign-in answer is a cross-site form post that arrives
#: without the session cookie (SameSite=Lax); that view checks its own one-time state instead.
UNGATED = {"admin_microsoft_callback.callback_POST"}


def _admin_rules(app):
    """Every gated /admin URL the app serves, with ids filled in, and its methods."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint in UNGATED:
            continue
        url = re.sub(r"<(?:int:)?\w+>", "1", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, url


def test_every_admin_route_is_covered(app):
    urls = {url for _, url in _admin_rules(app)}
    assert set(ADMIN_PAGES) <= urls
    assert "/admin/users/1/deactivate" in urls and "/admin/branding/privacy" in urls


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, make_user, url):
    make_user("someone@example.org")
    response = client.get(url)
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_anonymous_posts_are_sent_to_sign_in_too(app, client, make_user):
    make_user("someone@example.org")
    for method, url in _admin_rules(app):
        if method == "POST":
            response = client.submit(url, {"email": "x@example.org", "role": "admin"})
            assert response.status_code == 302, url
            assert "/login" in response.headers["Location"]


def test_organizers_get_404_on_every_admin_route(app, client, auth, make_user):
    organizer = auth.login_as_organizer()
    make_user("victim@example.org")
    token = client.csrf_token("/account/password")
    for method, url in _admin_rules(app):
        url = url.replace("/1", f"/{organizer.id}")
        response = client.open(url, method=method, data={"csrf_token": token, "role": "admin",
                                                         "email": "x@example.org", "name": "X"})
        assert response.status_code == 404, (method, url)
    # Nothing changed behind the 404s.
    with app.app_context():
        assert {u.role.value for u in db.session.query(User)} == {"organizer"}
        assert db.session.query(User).count() == 2


def test_admins_see_the_admin_pages(client, auth):
    auth.login_as_admin()
    for url in ADMIN_PAGES[1:]:
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/").status_code == 303
