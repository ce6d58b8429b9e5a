"""The catalogue people expect on day one: upcoming and past tabs, search, tags, banner thumbnails,
clean excerpts, and the metadata (Open Graph, schema.org/Event) that makes shared links preview well."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, EventTag, Speaker


def _published(make_event, owner, **columns):
    columns.setdefault("status", EventStatus.published)
    columns.setdefault("published_at", datetime.now(UTC))
    return make_event(owner, **columns)


def _text(response):
    return response.get_data(as_text=True)


def _titles(page: str) -> list[str]:
    return re.findall(r'<h2><a href="/events/[^"]+">([^<]+)</a></h2>', page)


def _form_values(html: str) -> dict:
    """The edit form's current values, as a browser would submit them unchanged."""
    from html import unescape

    html = re.search(r'<form[^>]*enctype="multipart/form-data"[^>]*>(.*?)</form>', html, re.S).group(1)
    values: dict[str, list[str]] = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'\bname="([^"]+)"', tag)
        kind = (re.search(r'\btype="([^"]+)"', tag) or [None, "text"])[1]
        if not name or kind in ("file", "submit", "button"):
            continue
        if kind in ("checkbox", "radio") and not re.search(r"\bchecked\b", tag):
            continue
        value = re.search(r'\bvalue="([^"]*)"', tag)
        values.setdefault(unescape(name.group(1)), []).append(
            unescape(value.group(1)) if value else ("y" if kind == "checkbox" else ""))
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        values.setdefault(name, []).append(unescape(body.lstrip("\n")))
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        for option in re.findall(r"<option\b[^>]*>", options):
            value = re.search(r'value="([^"]*)"', option)
            if value and re.search(r"\bselected\b", option):
                values.setdefault(name, []).append(unescape(value.group(1)))
    return {k: v if len(v) > 1 else v[0] for k, v in values.items()}


def _edit(client, event, **changes):
    form = _form_values(_text(client.get(f"/manage/events/{event.id}/edit")))
    form["timezone"] = event.timezone
    form.update(changes)
    return client.post(f"/manage/events/{event.id}/edit", data=form, content_type="multipart/form-data")


def _png(width=1600, height=900) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


def _json_ld(page: str) -> dict:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert match, "no JSON-LD on the page"
    return json.loads(match.group(1))


def test_organizer_tags_are_normalized_and_the_catalogue_filters_by_tag_links(app, client, auth, make_event):
    owner = auth.login_as_organizer()
    tagged = _published(make_event, owner, title="Secure by default")
    other = _published(make_event, owner, title="Gardening club")
    response = _edit(client, tagged, tags=" Security, #Beginners ,security,  Cloud   Native ,")
    assert response.status_code == 303, _text(response)[-2000:]
    with app.app_context():
        assert db.session.get(Event, tagged.id).tags == ["beginners", "cloud native", "security"]
    assert 'value="beginners, cloud native, security"' in _text(client.get(f"/manage/events/{tagged.id}/edit"))
    _edit(client, other, tags="gardening")

    too_long = _edit(client, other, tags="x" * 41, title="Changed title")
    assert too_long.status_code == 422
    assert "Keep each tag under 40 characters." in _text(too_long)
    assert 'value="Changed title"' in _text(too_long)  # nothing typed is lost
    eleven = _edit(client, other, tags=",".join(f"t{i}" for i in range(11)))
    assert eleven.status_code == 422 and "at most 10 tags" in _text(eleven)

    auth.logout()
    page = _text(client.get("/"))
    assert _titles(page) == ["Secure by default", "Gardening club"]
    assert 'href="/?tag=cloud+native"' in page or 'href="/?tag=cloud%20native"' in page
    filtered = _text(client.get("/?tag=Security"))  # normalized like the stored tags
    assert _titles(filtered) == ["Secure by default"]
    assert re.search(r'<a href="/\?tag=security" aria-current="page">security</a>', filtered)
    assert "1 upcoming event tagged “security”." in filtered
    none = _text(client.get("/?tag=knitting"))
    assert _titles(none) == [] and "No upcoming events match the topic “knitting”" in none
    event_page = _text(client.get(f"/events/{tagged.slug}"))
    assert 'href="/?tag=beginners"' in event_page


def test_search_matches_title_and_description_every_word_and_takes_wildcards_literally(client, make_user,
                                                                                      make_event):
    owner = make_user("owner@example.org")
    _published(make_event, owner, title="Kubernetes for beginners", description="Pods and *services*.")
    _published(make_event, owner, title="Team lunch", description="We talk about **Kubernetes** upgrades.")
    _published(make_event, owner, title="100% uptime", description="Reliability.")
    _published(make_event, owner, title="Quarterly review", description="Numbers.")

    assert _titles(_text(client.get("/?q=kubernetes"))) == ["Kubernetes for beginners", "Team lunch"]
    assert _titles(_text(client.get("/?q=KUBERNETES+upgrades"))) == ["Team lunch"]
    assert _titles(_text(client.get("/?q=%25"))) == ["100% uptime"]  # % is not a wildcard
    assert _titles(_text(client.get("/?q=_"))) == []
    page = _text(client.get("/?q=<script>x</script>"))
    assert "<script>x" not in page and "No upcoming events match “&lt;script&gt;x&lt;/script&gt;”" in page
    assert 'value="&lt;script&gt;x&lt;/script&gt;"' in page  # the search box keeps what was typed
    assert client.get("/?q=" + "a" * 5000).status_code == 200


def test_search_works_without_javascript_and_htmx_swaps_only_the_results(client, make_user, make_event):
    owner = make_user("owner@example.org")
    _published(make_event, owner, title="Kubernetes for beginners")
    page = _text(client.get("/"))
    form = re.search(r'<form class="catalogue-search"[^>]*>', page).group(0)
    assert 'method="get"' in form and 'action="/"' in form and 'role="search"' in form
    assert 'hx-target="#catalogue-results"' in form and 'hx-push-url="true"' in form
    assert '<label for="catalogue-q">Search events</label>' in page

    fragment = client.get("/?q=kubernetes", headers={"HX-Request": "true", "HX-Target": "catalogue-results",
                                                      "HX-Current-URL": "http://localhost/"})
    body = _text(fragment)
    assert body.lstrip().startswith('<div id="catalogue-results"') and "<html" not in body
    assert _titles(body) == ["Kubernetes for beginners"]
    assert "HX-Request" in fragment.headers["Vary"] and "HX-Target" in fragment.headers["Vary"]
    boosted = _text(client.get("/?q=kubernetes", headers={"HX-Request": "true", "HX-Boosted": "true"}))
    assert "<html" in boosted  # a boosted navigation gets the whole page


def test_upcoming_and_past_tabs_are_real_links_with_their_own_empty_states(app, client, make_user, make_event):
    empty = _text(client.get("/"))
    assert re.search(r'<a href="/"\s+aria-current="page">Upcoming</a>', empty)
    assert 'href="/?when=past">Past</a>' in empty
    assert "There are no upcoming events right now" in empty
    assert "No past events yet." in _text(client.get("/?when=past"))

    owner = make_user("owner@example.org")
    now = datetime.now(UTC).replace(microsecond=0)
    for title, days in (("Last month", -30), ("Last week", -7), ("Next week", 7)):
        _published(make_event, owner, title=title, starts_at=now + timedelta(days=days),
                   ends_at=now + timedelta(days=days, hours=1))
    _published(make_event, owner, title="Cancelled past", status=EventStatus.cancelled,
               starts_at=now - timedelta(days=3), ends_at=now - timedelta(days=3, hours=-1))
    past = _text(client.get("/?when=past"))
    assert _titles(past) == ["Last week", "Last month"]  # latest first, cancelled ones left out
    assert re.search(r'<a href="/\?when=past"\s+aria-current="page">Past</a>', past)
    assert "seats left" not in past and "Unlimited seats" not in past
    assert _titles(_text(client.get("/"))) == ["Next week"]
    assert _titles(_text(client.get("/?when=nonsense"))) == ["Next week"]
    with app.app_context():
        past_event = db.session.scalar(select(Event).where(Event.title == "Last week"))
        past_event.tag_rows = [EventTag(tag="retro")]
        db.session.commit()
    assert 'href="/?when=past&amp;tag=retro"' in _text(client.get("/?when=past"))
    assert "retro" not in _text(client.get("/"))  # each tab offers its own events' tags
    searched = _text(client.get("/?when=past&q=month"))
    assert _titles(searched) == ["Last month"] and 'href="/?q=month"' in searched  # the tab keeps the search


def test_banner_thumbnail_is_made_once_at_upload_and_shown_on_cards(app, client, auth, make_event):
    owner = auth.login_as_organizer()
    event = _published(make_event, owner, title="With a banner")
    response = _edit(client, event, banner=(io.BytesIO(_png()), "banner.png"), banner_alt="A red field")
    assert response.status_code == 303, _text(response)[-2000:]
    with app.app_context():
        saved = db.session.get(Event, event.id)
        banner, thumb = saved.banner_filename, saved.banner_thumb_filename
    folder = Path(app.config["UPLOAD_FOLDER"])
    assert thumb and thumb.endswith(".webp")
    with Image.open(folder / thumb) as image:
        assert image.format == "WEBP" and image.size == (480, 270)
    assert (folder / thumb).stat().st_size < min(20_000, (folder / banner).stat().st_size)

    auth.logout()
    page = _text(client.get("/"))
    assert f'src="/uploads/{thumb}"' in page and f"/uploads/{banner}" not in page
    assert 'width="480" height="270" loading="lazy"' in page

    auth.login(owner.email)
    _edit(client, event, remove_banner="y")
    with app.app_context():
        assert db.session.get(Event, event.id).banner_thumb_filename is None
    assert not (folder / thumb).exists() and not (folder / banner).exists()


@pytest.mark.db_agnostic
def test_event_page_has_open_graph_and_schema_org_event_metadata(app, client, make_user, make_event):
    owner = make_user("owner@example.org")
    start = datetime(2027, 3, 10, 17, 0, tzinfo=UTC)
    event = _published(make_event, owner, title="Spring </script> call", timezone="Europe/Berlin",
                       starts_at=start, ends_at=start + timedelta(hours=2), capacity=50,
                       banner_filename="abcdefgh12345.png",
                       description="## Agenda\n\nTalks about **security** & [links](https://example.org).")
    with app.app_context():
        db.session.add(Speaker(event_id=event.id, name="Grace Hopper", email="grace@example.com"))
        db.session.commit()
    response = client.get(f"/events/{event.slug}")
    page = _text(response)
    base = app.config["PUBLIC_BASE_URL"]
    assert f'<meta property="og:url" content="{base}/events/{event.slug}">' in page
    assert f'<meta property="og:image" content="{base}/uploads/abcdefgh12345.png">' in page
    assert '<meta property="og:title" content="Spring &lt;/script&gt; call">' in page
    assert '<meta property="og:description" content="Agenda Talks about security &amp; links.">' in page

    data = _json_ld(page)
    assert data["@context"] == "https://schema.org" and data["@type"] == "Event"
    assert data["name"] == "Spring </script> call"
    assert data["startDate"] == "2027-03-10T18:00:00+01:00" and data["endDate"] == "2027-03-10T20:00:00+01:00"
    assert data["eventAttendanceMode"] == "https://schema.org/OnlineEventAttendanceMode"
    assert data["eventStatus"] == "https://schema.org/EventScheduled"
    assert data["location"] == {"@type": "VirtualLocation", "url": f"{base}/events/{event.slug}"}
    assert data["image"] == [f"{base}/uploads/abcdefgh12345.png"]
    assert data["organizer"]["name"] == "Foyer"
    assert data["offers"]["availability"] == "https://schema.org/InStock"
    assert data["performer"] == [{"@type": "Person", "name": "Grace Hopper"}]
    assert "grace@example.com" not in page  # a speaker's address is never public
    assert page.count("</script>") == page.count("<script")  # the title cannot end the data block early
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]

    with app.app_context():
        row = db.session.get(Event, event.id)
        row.status, row.cancelled_at = EventStatus.cancelled, datetime.now(UTC)
        db.session.commit()
    cancelled = _json_ld(_text(client.get(f"/events/{event.slug}")))
    assert cancelled["eventStatus"] == "https://schema.org/EventCancelled" and "offers" not in cancelled
