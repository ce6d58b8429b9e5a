"""The registration form embedded in another website, over HTTP: who may frame which page, the CSRF scheme
that works without cookies (an event-bound signed token plus Foyer's own Origin), the rate limit and the
honeypot it shares with the event's own form, the admin's list of websites, and the organizer's snippet."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import EventStatus, Registration, Role, Setting, User
from app.services.core import settings
from tests.mail import queued_emails

OWN_ORIGIN = {"Origin": "http://localhost"}
LISTED = ["https://www.example.org", "http://localhost:8000"]


def _text(response) -> str:
    return response.get_data(as_text=True)


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'id="{name}" name="{name}" type="hidden" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1] for part in policy.split(";") if part.strip()}


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Registration))


@pytest.fixture
def event(make_user, make_event):
    owner = make_user("owner@example.org")
    return make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC), capacity=10)


@pytest.fixture
def listed(app, make_user):
    """The admin has listed two websites."""
    admin = make_user("admin@example.org", role=Role.admin)
    with app.app_context():
        settings.save_embed_origins(LISTED, actor=db.session.get(User, admin.id))
        db.session.commit()
    return LISTED


def _person(email="ada@example.org", **extra) -> dict:
    return {"first_name": "Ada", "last_name": "Lovelace", "email": email, "timezone": "Europe/Paris",
            "consent": "y", **extra}


def _embedded_form(client, event, query: str = "") -> dict:
    """The token and start stamp of the embedded form, as a browser in a frame gets them."""
    page = client.get(f"/embed/events/{event.slug}/register{query}")
    assert page.status_code == 200
    body = _text(page)
    return {"csrf_token": _hidden(body, "csrf_token"), "started": _hidden(body, "started")}


# --- framing -----------------------------------------------------------------------------------------


@pytest.mark.db_agnostic
def test_only_the_embedded_form_may_be_framed_and_only_by_the_listed_websites(client, event, listed):
    embedded = client.get(f"/embed/events/{event.slug}/register")
    assert embedded.status_code == 200
    assert _csp(embedded)["frame-ancestors"] == "https://www.example.org http://localhost:8000"
    assert "X-Frame-Options" not in embedded.headers
    assert embedded.headers["Cache-Control"] == "no-store"
    # Under this policy browsers name the frame's page in `Origin` when it posts (the CSRF check needs it).
    assert embedded.headers["Referrer-Policy"] == "same-origin"
    assert "Set-Cookie" not in embedded.headers  # nothing in a frame relies on a cookie
    for path in (f"/events/{event.slug}", f"/events/{event.slug}/register", "/", "/login", "/privacy"):
        page = client.get(path)
        assert _csp(page)["frame-ancestors"] == "'none'", path
        assert page.headers["X-Frame-Options"] == "DENY", path


@pytest.mark.db_agnostic
def test_without_listed_websites_the_embedded_form_refuses_every_frame(client, event):
    embedded = client.get(f"/embed/events/{event.slug}/register")
    assert embedded.status_code == 200
    assert _csp(embedded)["frame-ancestors"] == "'none'"
    assert embedded.headers["X-Frame-Options"] == "DENY"


@pytest.mark.db_agnostic
def test_the_embedded_page_is_only_the_form_with_its_privacy_notice_and_honeypot(client, event, listed):
    body = _text(client.get(f"/embed/events/{event.slug}/register?parent=https://www.example.org&accent=1A2B3C"))
    assert 'class="site-header"' not in body and f"Register: {event.title}" in body
    assert f'action="/embed/events/{event.slug}/register?accent=1a2b3c&amp;parent=https://www.example.org"' in body
    assert 'href="/privacy" target="_blank"' in body and 'name="consent"' in body
    assert re.search(r'<div class="honeypot" hidden>.*name="homepage"', body, re.S)
    assert "/register/validate" not in body  # the inline checks need the session's token
    assert 'data-parent-origin="https://www.example.org"' in body
    assert 'href="/embed/accent/1a2b3c.css"' in body and "js/embed-frame.js" in body
    css = client.get("/embed/accent/1a2b3c.css")
    assert css.mimetype == "text/css" and "--accent: #1a2b3c; --accent-text: #ffffff;" in _text(css)


@pytest.mark.db_agnostic
@pytest.mark.parametrize("query", ["?parent=https://evil.example&accent=zz12zz", "?parent=null&accent=%231a2b3c",
                                   "?accent=fff;}body{display:none", "?parent=%00&accent="])
def test_an_unlisted_parent_or_an_invalid_accent_is_ignored(client, event, listed, query):
    response = client.get(f"/embed/events/{event.slug}/register{query}")
    assert response.status_code == 200
    body = _text(response)
    assert "data-parent-origin" not in body and "/embed/accent/" not in body


@pytest.mark.db_agnostic
@pytest.mark.parametrize("path", ["/embed/accent/zzzzzz.css", "/embed/accent/1a2b3c4.css", "/embed/accent/%23fff.css"])
def test_an_invalid_accent_stylesheet_is_a_404(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.db_agnostic
def test_drafts_and_unknown_events_are_not_embeddable(client, make_user, make_event, listed):
    draft = make_event(make_user("draft@example.org"))
    assert client.get(f"/embed/events/{draft.slug}/register").status_code == 404
    assert client.get("/embed/events/no-such-event/register").status_code == 404
    assert client.post("/embed/events/no-such-event/register", data=_person(), headers=OWN_ORIGIN).status_code == 404


# --- registering through the frame --------------------------------------------------------------------


def test_registration_in_the_frame_needs_no_cookie_and_shows_the_result_there(app, client, event, listed):
    form = _embedded_form(client, event)
    client.delete_cookie("session")  # a cross-site frame sends none of Foyer's cookies
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form, headers=OWN_ORIGIN)
    assert response.status_code == 200
    body = _text(response)
    assert "Check your inbox" in body and "ada@example.org" in body and "/r/" not in body
    assert 'target="_blank"' in body and 'class="site-header"' not in body
    assert _csp(response)["frame-ancestors"] == "https://www.example.org http://localhost:8000"
    assert "Set-Cookie" not in response.headers
    with app.app_context():
        reg = db.session.scalars(select(Registration)).one()
        assert (reg.email, reg.event_id, reg.timezone) == ("ada@example.org", event.id, "Europe/Paris")
        assert [m["to"] for m in queued_emails()] == ["ada@example.org"]


def test_htmx_in_the_frame_swaps_in_the_result_or_the_form_with_errors(app, client, event, listed):
    form = _embedded_form(client, event)
    url = f"/embed/events/{event.slug}/register"
    invalid = client.post(url, data=_person(email="nope") | form, headers=OWN_ORIGIN | {"HX-Request": "true"})
    assert invalid.status_code == 422
    assert _text(invalid).lstrip().startswith("<form") and f'hx-post="{url}"' in _text(invalid)
    assert "Enter a valid email address" in _text(invalid)
    done = client.post(url, data=_person() | form, headers=OWN_ORIGIN | {"HX-Request": "true"})
    assert done.status_code == 200
    assert 'id="register-result"' in _text(done) and "<html" not in _text(done) and "HX-Push-Url" not in done.headers
    assert _count(app) == 1


@pytest.mark.db_agnostic
@pytest.mark.parametrize("token", ["", "forged", "eyJldmVudCI6MX0.ZzZzZz.bm90LWEtc2lnbmF0dXJl"])
def test_a_missing_or_forged_token_is_refused_and_nothing_is_stored(app, client, event, listed, token):
    form = _embedded_form(client, event) | {"csrf_token": token}
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form, headers=OWN_ORIGIN)
    assert response.status_code == 422
    body = _text(response)
    assert "has to be sent again" in body and 'value="ada@example.org"' in body
    assert _hidden(body, "csrf_token") not in ("", token)  # a fresh token: the person can go on
    assert _count(app) == 0


@pytest.mark.db_agnostic
def test_tokens_of_another_event_or_of_the_session_do_not_count(app, client, event, make_event, make_user, listed):
    other = make_event(make_user("other@example.org"), status=EventStatus.published, published_at=datetime.now(UTC))
    foreign = _embedded_form(client, other)
    session_token = client.csrf_token(f"/events/{event.slug}")  # the event page's session-bound token
    url = f"/embed/events/{event.slug}/register"
    for token in (foreign["csrf_token"], session_token):
        response = client.post(url, data=_person() | foreign | {"csrf_token": token}, headers=OWN_ORIGIN)
        assert response.status_code == 422
    assert _count(app) == 0


@pytest.mark.db_agnostic
def test_an_expired_token_is_refused(app, client, event, listed, clock):
    form = _embedded_form(client, event)
    clock.shift(app.config["WTF_CSRF_TIME_LIMIT"] + 60)
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form, headers=OWN_ORIGIN)
    assert response.status_code == 422 and "has to be sent again" in _text(response)
    assert _count(app) == 0


@pytest.mark.db_agnostic
@pytest.mark.parametrize("headers", [{"Origin": "https://www.example.org"}, {"Origin": "https://evil.example"},
                                     {"Origin": "null"}, {"Referer": "https://evil.example/page"}, {}])
def test_a_post_from_anywhere_but_foyers_own_page_is_refused(app, client, event, listed, headers):
    form = _embedded_form(client, event)
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form, headers=headers)
    assert response.status_code == 403
    assert _count(app) == 0


def test_a_referer_from_foyer_stands_in_for_a_missing_origin(app, client, event, listed):
    form = _embedded_form(client, event)
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form,
                           headers={"Referer": f"http://localhost/embed/events/{event.slug}/register"})
    assert response.status_code == 200 and _count(app) == 1


@pytest.mark.db_agnostic
def test_the_honeypot_pretends_success_and_stores_nothing(app, client, event, listed):
    form = _embedded_form(client, event)
    response = client.post(f"/embed/events/{event.slug}/register",
                           data=_person(homepage="http://spam.example") | form, headers=OWN_ORIGIN)
    assert response.status_code == 200 and "Check your inbox" in _text(response)
    with app.app_context():
        assert _count(app) == 0 and queued_emails() == []


@pytest.mark.db_agnostic
def test_the_minimum_fill_time_applies_in_the_frame(app, client, event, listed, monkeypatch):
    monkeypatch.setitem(app.config, "REGISTRATION_MIN_FILL_SECONDS", 60)
    form = _embedded_form(client, event)
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form, headers=OWN_ORIGIN)
    assert response.status_code == 422 and "That was quick!" in _text(response)
    assert _count(app) == 0


def test_the_rate_limit_counts_the_frame_and_the_event_page_together(app, client, event, listed, monkeypatch):
    monkeypatch.setitem(app.config, "REGISTRATION_RATE_LIMIT", "2 per minute")
    form = _embedded_form(client, event)
    page_token = client.csrf_token(f"/events/{event.slug}")
    first = client.post(f"/events/{event.slug}/register", data=_person("a@example.org") | {"csrf_token": page_token})
    url = f"/embed/events/{event.slug}/register"
    second = client.post(url, data=_person("b@example.org") | form, headers=OWN_ORIGIN)
    third = client.post(url, data=_person("c@example.org") | form, headers=OWN_ORIGIN)
    assert [first.status_code, second.status_code, third.status_code] == [303, 200, 429]
    assert _count(app) == 2


@pytest.mark.parametrize("data", [
    {"first_name": "x" * 5000, "email": "a" * 400 + "@example.org", "timezone": "Mars/Base"},
    {"first_name": "\x00", "email": "ada@@example..org", "consent": "maybe", "started": "\x00" * 10},
    {"csrf_token": ["a", "b"], "timezone": ["Europe/Paris", "UTC"]},
])
def test_hostile_input_gets_the_form_back_never_a_500(app, client, event, listed, data):
    form = _embedded_form(client, event)
    response = client.post(f"/embed/events/{event.slug}/register", data=_person() | form | data, headers=OWN_ORIGIN)
    assert response.status_code == 422
    assert _count(app) == 0


# --- the admin's list of websites --------------------------------------------------------------------


def test_admin_lists_websites_which_are_normalised_and_audited(app, client, auth):
    auth.login_as_admin()
    page = _text(client.get("/admin/branding"))
    assert "No websites yet" in page and 'id="embedding"' in page
    saved = client.submit("/admin/branding/embedding",
                          {"origins": "https://WWW.Example.org/\nhttps://www.example.org:443, http://localhost:8000\n"
                                      "http://127.0.0.1 https://bücher.example"})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/admin/branding#embedding")
    expected = ["https://www.example.org", "http://localhost:8000", "http://127.0.0.1", "https://xn--bcher-kva.example"]
    with app.app_context():
        assert db.session.get(Setting, "embed_origins").value == {"origins": expected}
    assert "https://xn--bcher-kva.example" in _text(client.get("/admin/branding"))
    cleared = client.submit("/admin/branding/embedding", {"origins": ""})
    assert cleared.status_code == 303
    with app.app_context():
        assert settings.embed_origins() == []


@pytest.mark.db_agnostic
@pytest.mark.parametrize(("value", "message"), [
    ("http://www.example.org", "must use https://"),
    ("https://www.example.org/events", "no path"),
    ("www.example.org", "is not a website address"),
    ("https://*.example.org", "is not a website address"),
    ("https://user@example.org", "is not a website address"),
    ("javascript:alert(1)", "is not a website address"),
    ("'self'", "is not a website address"),
    ("https://example.org;script-src", "is not a website address"),
    ("https://example.org:99999", "port outside"),
    ("https://example.org?x=1", "is not a website address"),
    ("\n".join(f"https://site{i}.example" for i in range(21)), "at most 20"),
    ("https://" + "a" * 6000 + ".example", "at most 5,000 characters"),
])
def test_admin_gets_a_clear_error_for_an_address_that_is_not_an_origin(app, client, auth, value, message):
    auth.login_as_admin()
    response = client.submit("/admin/branding/embedding", {"origins": value})
    assert response.status_code == 422
    assert message in _text(response)
    with app.app_context():
        assert db.session.get(Setting, "embed_origins") is None


@pytest.mark.db_agnostic
def test_only_admins_may_list_websites(app, client, auth):
    auth.login_as_organizer()
    response = client.submit("/admin/branding/embedding", {"origins": "https://www.example.org"})
    assert response.status_code == 404
    with app.app_context():
        assert settings.embed_origins() == []


def test_a_malformed_stored_origin_never_reaches_the_header(app, client, event):
    with app.app_context():
        db.session.add(Setting(key="embed_origins", value={"origins": ["https://ok.example", "https://x; script-src *",
                                                                       42]}))
        db.session.commit()
    response = client.get(f"/embed/events/{event.slug}/register")
    assert _csp(response)["frame-ancestors"] == "https://ok.example"


# --- the organizer's snippet -------------------------------------------------------------------------


@pytest.mark.db_agnostic
def test_organizer_page_explains_that_an_admin_must_list_websites_first(app, client, auth, make_event):
    user = auth.login_as_organizer()
    event = make_event(user)
    page = _text(client.get(f"/manage/events/{event.id}"))
    assert "Registration on your website" in page and "First an admin must list that" in page
    assert "embed-snippet" not in page


@pytest.mark.db_agnostic
def test_organizer_page_shows_the_snippet_to_copy(app, client, auth, make_event, listed):
    user = auth.login_as_organizer()
    event = make_event(user, title='Tea & "talks" <live>', status=EventStatus.published,
                       published_at=datetime.now(UTC))
    page = _text(client.get(f"/manage/events/{event.id}"))
    snippet = re.search(r'<textarea id="embed-snippet"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert f"&lt;div data-foyer-register=&#34;http://localhost/embed/events/{event.slug}/register&#34;&gt;" in snippet
    assert "Register for Tea &amp;amp; &amp;#34;talks&amp;#34; &amp;lt;live&amp;gt;" in snippet
    assert "&lt;script src=&#34;http://localhost/static/js/embed.js&#34; async&gt;&lt;/script&gt;" in snippet
    assert "https://www.example.org, http://localhost:8000" in page
    script = client.get("/static/js/embed.js")
    assert script.status_code == 200 and "foyer:embed-height" in _text(script)
    script.close()
