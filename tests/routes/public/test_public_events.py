import re
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import EventStatus, Role, Speaker


def _published(make_event, owner, **columns):
    columns.setdefault("status", EventStatus.published)
    columns.setdefault("published_at", datetime.now(UTC))
    return make_event(owner, **columns)


def _text(response):
    return response.get_data(as_text=True)


def test_catalogue_lists_only_upcoming_published_events_soonest_first(client, make_user, make_event):
    owner = make_user("owner@example.org")
    now = datetime.now(UTC).replace(microsecond=0)
    for title, start, hours in (("Later talk", timedelta(days=9), 1), ("Sooner talk", timedelta(days=2), 1),
                                ("Running now", timedelta(hours=-1), 2), ("Already over", timedelta(days=-2), 1)):
        _published(make_event, owner, title=title, starts_at=now + start, ends_at=now + start + timedelta(hours=hours))
    make_event(owner, title="Secret draft")
    _published(make_event, owner, title="Called off", status=EventStatus.cancelled, cancelled_at=now)

    page = _text(client.get("/"))
    assert "Secret draft" not in page and "Already over" not in page and "Called off" not in page
    titles = re.findall(r'<h2><a href="/events/[^"]+">([^<]+)</a></h2>', page)
    assert titles == ["Running now", "Sooner talk", "Later talk"]


def test_catalogue_card_shows_event_zone_local_time_hook_excerpt_and_seats(client, make_user, make_event):
    owner = make_user("owner@example.org")
    start = datetime(2027, 7, 1, 16, 30, tzinfo=UTC)
    _published(make_event, owner, title="Summer call", timezone="America/New_York", starts_at=start,
               ends_at=start + timedelta(hours=1), capacity=40,
               description="## Agenda\n\nWe discuss **plans** & <b>ideas</b>.\n\n" + "word " * 80)
    _published(make_event, owner, title="Open call", capacity=None)
    _published(make_event, owner, title="Full call", capacity=0, waitlist_enabled=True)

    page = _text(client.get("/"))
    assert "Thu 1 Jul 2027, 12:30" in page and "(America/New_York)" in page
    assert 'data-local-time="2027-07-01T16:30:00+00:00"' in page
    assert "Agenda We discuss plans &amp; &lt;b&gt;ideas&lt;/b&gt;. word" in page
    assert "<h2>Agenda" not in page and "word " * 80 not in page and "…" in page
    assert "40 seats left" in page
    assert "Unlimited seats" in page
    assert "waitlist open" in page


@pytest.mark.db_agnostic
def test_catalogue_empty_state(client):
    page = _text(client.get("/"))
    assert "There are no upcoming events right now" in page


def test_catalogue_pages_after_twenty_events_with_real_links(client, make_user, make_event):
    owner = make_user("owner@example.org")
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for i in range(23):
        _published(make_event, owner, title=f"Event {i:02d}", starts_at=base + timedelta(hours=i),
                   ends_at=base + timedelta(hours=i, minutes=30))
    first = _text(client.get("/"))
    assert first.count('class="card event-card"') == 20
    assert "Event 19" in first and "Event 20" not in first
    assert 'href="/?page=2"' in first and "Page 1 of 2" in first
    second = _text(client.get("/?page=2"))
    assert second.count('class="card event-card"') == 3
    assert "Event 20" in second and 'href="/"' in second
    assert client.get("/?page=3").status_code == 404
    assert client.get("/?page=abc").status_code == 200


def test_event_page_shows_details_in_event_zone_and_local_time_hook(client, make_user, make_event):
    owner = make_user("owner@example.org")
    start = datetime(2027, 1, 12, 14, 0, tzinfo=UTC)
    event = _published(make_event, owner, title="Winter meetup", timezone="Asia/Tokyo", starts_at=start,
                       ends_at=start + timedelta(hours=1, minutes=30), capacity=12,
                       registration_opens_at=datetime.now(UTC) - timedelta(days=1),
                       registration_closes_at=start - timedelta(hours=2))
    response = client.get(f"/events/{event.slug}")
    assert response.status_code == 200
    page = _text(response)
    assert "<title>Winter meetup · Foyer</title>" in page
    # 14:00 UTC is 23:00 in Tokyo.
    assert "Tue 12 Jan 2027, 23:00" in page and "00:30" in page and "(Asia/Tokyo)" in page
    assert 'data-local-time="2027-01-12T14:00:00+00:00"' in page
    assert "1 hour 30 minutes" in page
    assert "12 seats left" in page
    assert 'id="register"' in page
    assert "Registration closes" in page and "Tue 12 Jan 2027, 21:00 (Asia/Tokyo)" in page
    assert f'action="/events/{event.slug}/register"' in page.split('id="register"')[1].split("</section>")[0]
    assert f'href="/events/{event.slug}.ics"' in page
    assert '<meta property="og:url" content="http://localhost/events/' in page


@pytest.mark.db_agnostic
def test_event_page_says_when_registration_opens(client, make_user, make_event):
    owner = make_user("owner@example.org")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    event = _published(make_event, owner, starts_at=start, ends_at=start + timedelta(hours=1),
                       registration_opens_at=start - timedelta(days=10))
    assert "Registration opens" in _text(client.get(f"/events/{event.slug}"))


@pytest.mark.db_agnostic
def test_event_page_renders_speakers_and_banner(app, client, make_user, make_event):
    owner = make_user("owner@example.org")
    event = _published(make_event, owner, banner_filename="abcdefgh12345.png", banner_alt="Three people at a desk")
    with app.app_context():
        db.session.add(Speaker(event_id=event.id, name="Grace Hopper", title="Rear admiral", bio="Invented *COBOL*."))
        db.session.commit()
    page = _text(client.get(f"/events/{event.slug}"))
    assert '<img class="banner" src="/uploads/abcdefgh12345.png" alt="Three people at a desk">' in page
    assert "Grace Hopper" in page and "Rear admiral" in page and "<em>COBOL</em>" in page


@pytest.mark.db_agnostic
def test_draft_event_page_is_404(client, make_user, make_event):
    event = make_event(make_user("owner@example.org"))
    assert client.get(f"/events/{event.slug}").status_code == 404
    assert client.get(f"/events/{event.slug}.ics").status_code == 404
    assert client.get("/events/no-such-event").status_code == 404


@pytest.mark.db_agnostic
def test_cancelled_draft_stays_hidden(client, make_user, make_event):
    event = make_event(make_user("owner@example.org"), status=EventStatus.cancelled, cancelled_at=datetime.now(UTC))
    assert client.get(f"/events/{event.slug}").status_code == 404
    assert client.get(f"/events/{event.slug}.ics").status_code == 404


@pytest.mark.db_agnostic
def test_cancelled_event_page_shows_banner_with_reason_and_no_register_button(client, make_user, make_event):
    owner = make_user("owner@example.org")
    event = _published(make_event, owner, status=EventStatus.cancelled, cancelled_at=datetime.now(UTC),
                       cancellation_reason="The speaker is ill.\nWe will reschedule.")
    response = client.get(f"/events/{event.slug}")
    assert response.status_code == 200
    page = _text(response)
    assert "This event has been cancelled" in page
    assert "The speaker is ill.\nWe will reschedule." in page
    assert 'href="#register"' not in page
    assert "Registration is closed because this event has been cancelled" in page


@pytest.mark.db_agnostic
def test_description_markdown_is_rendered_and_sanitized(client, make_user, make_event):
    owner = make_user("owner@example.org")
    event = _published(
        make_event, owner,
        description="Hello **world**\n\n<script>alert(1)</script>\n\n[click me](javascript:alert(2)) "
                    "<JAVASCRIPT:alert(4)> <a href=\"javascript:alert(5)\">raw</a> "
                    "[fine](https://example.org/ok)\n\n<img src=x onerror=alert(3)>",
    )
    page = _text(client.get(f"/events/{event.slug}"))
    description = page.split('id="about-heading"')[1].split("</section>")[0]
    assert "<strong>world</strong>" in description
    # Raw HTML shows as text, never as markup; no link points at javascript:.
    assert "<script" not in description and "&lt;script&gt;alert(1)&lt;/script&gt;" in description
    assert "<img" not in description and "<a href=\"javascript" not in description
    assert re.findall(r'<a\s[^>]*href="([^"]*)"', description) == ["https://example.org/ok"]
    assert '<a href="https://example.org/ok" rel="noopener noreferrer nofollow">fine</a>' in description


@pytest.mark.db_agnostic
def test_per_event_ics_download(client, make_user, make_event):
    event = _published(make_event, make_user("owner@example.org"), title="Downloadable")
    response = client.get(f"/events/{event.slug}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert f'filename="{event.slug}.ics"' in response.headers["Content-Disposition"]
    body = _text(response)
    assert "METHOD:PUBLISH" in body and "SUMMARY:Downloadable" in body
    assert body.count("BEGIN:VEVENT") == 1


@pytest.mark.db_agnostic
def test_uploads_refuse_traversal_and_unknown_files(app, client):
    folder = app.config["UPLOAD_FOLDER"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "knownfile123.png").write_bytes(b"\x89PNG\r\n\x1a\nrest")
    (folder.parent / "secret_key_copy.png").write_bytes(b"secret")
    with client.get("/uploads/knownfile123.png") as ok:
        assert ok.status_code == 200 and ok.mimetype == "image/png"
        assert ok.get_data() == b"\x89PNG\r\n\x1a\nrest"
        assert "sandbox" in ok.headers["Content-Security-Policy"]
    for path in ("/uploads/../secret_key", "/uploads/..%2Fsecret_key_copy.png", "/uploads/%2e%2e/secret_key_copy.png",
                 "/uploads/missingfile1.png", "/uploads/.htaccess", "/uploads/knownfile123.png.html",
                 "/uploads/sub/knownfile123.png", "/uploads/..\\secret_key_copy.png"):
        assert client.get(path).status_code == 404, path


def test_brand_css_serves_saved_colours(app, client, auth):
    auth.login_as_admin()
    client.submit("/admin/branding", {"site_name": "Acme", "accent_colour": "#ffcc00", "accent_picker": "#1f5fbf",
                                      "accent_text": "auto"})
    css = _text(client.get("/brand.css"))
    assert "--accent: #ffcc00;" in css and "--accent-text: #000000;" in css


def test_privacy_page_shows_current_notice(client, auth):
    assert "has not published a privacy notice" in _text(client.get("/privacy"))
    auth.login_as(Role.admin)
    client.submit("/admin/branding/privacy", {"privacy_text": "We keep **little**."})
    page = _text(client.get("/privacy"))
    assert "<strong>little</strong>" in page and "Version 1" in page


def test_top_button_of_a_full_event_says_what_registering_does(client, make_user, make_event):
    owner = make_user("owner@example.org")
    waitlist = _published(make_event, owner, title="Full call", capacity=0, waitlist_enabled=True)
    closed = _published(make_event, owner, title="Full, no waitlist", capacity=0, waitlist_enabled=False)
    open_ = _published(make_event, owner, title="Seats left", capacity=5)
    assert '<a class="button primary" href="#register">Join the waitlist</a>' in _text(
        client.get(f"/events/{waitlist.slug}"))
    assert 'href="#register"' not in _text(client.get(f"/events/{closed.slug}"))
    assert '<a class="button primary" href="#register">Register</a>' in _text(client.get(f"/events/{open_.slug}"))


@pytest.mark.db_agnostic
def test_a_required_checkbox_is_marked_like_every_required_field(app, client, make_user, make_event):
    from app.models import Event, Question, QuestionKind

    owner = make_user("owner@example.org")
    event = _published(make_event, owner, title="Consent call", capacity=5)
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.questions = [Question(position=0, kind=QuestionKind.checkbox, label="I accept the rules", required=True)]
        db.session.commit()
    page = _text(client.get(f"/events/{event.slug}"))
    assert re.search(r'I accept the rules</label> <span class="required" aria-hidden="true">\*</span>', page)
