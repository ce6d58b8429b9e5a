"""`next` after signing in goes only to a local path: every known open-redirect trick falls back to the
organizer's home, while genuine local paths (with their query strings) are kept."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.db_agnostic  # see tests/conftest.py

HOME = "/manage/events/"

BYPASSES = [
    "//evil.example", "///evil.example", "////evil.example/path", "/\\evil.example", "\\\\evil.example",
    "\\/evil.example", "/\\/evil.example", "https://evil.example", "http://evil.example/manage/events/",
    "https:evil.example", "https:/evil.example", "HTTPS://evil.example", "//evil.example@localhost",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>",
    "/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "\t//evil.example", " //evil.example",
    "/%0d%0aSet-Cookie:x=1".replace("%0d%0a", "\r\n"), "evil.example", "@evil.example", "ftp://evil.example",
    "//localhost.evil.example", "/\x00/evil.example",
]

LOCAL = ["/manage/events/?status=draft", "/admin/users/", "/manage/events/12/registrations?state=pending&page=2"]


@pytest.fixture
def organizer(make_user):
    return make_user("org@example.org")


def _login(client, target: str):
    return client.submit("/login", {"email": "org@example.org", "password": "correct horse battery", "next": target})


@pytest.mark.parametrize("target", BYPASSES)
def test_next_never_leaves_the_site(client, organizer, target):
    response = _login(client, target)
    assert response.status_code == 303
    assert response.headers["Location"] == HOME


@pytest.mark.parametrize("target", LOCAL)
def test_next_keeps_local_paths(client, organizer, target):
    response = _login(client, target)
    assert response.status_code == 303
    assert response.headers["Location"] == target


def test_the_login_page_carries_next_escaped(client):
    page = client.get('/login?next="><script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
