"""The public catalogue, event pages, the iCal feed, the privacy notice, branding CSS and uploaded images."""

from __future__ import annotations

import logging
import re

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    get_template_attribute,
    make_response,
    render_template,
    request,
    send_from_directory,
    session,
)
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from app.extensions import compress
from app.forms.registration import RegistrationForm
from app.i18n import current_language, event_description, event_title
from app.services.core import links, page_cache, timezones
from app.services.core.settings import (
    brand_stylesheet,
    brand_version,
    favicon_bytes,
    get_branding,
    get_privacy_notice,
)
from app.services.events import catalog, ics, series
from app.web import load_public_event, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

#: The registration form's signed "shown at" stamp as it appears in a rendered page.
STAMP = re.compile(r'name="started" type="hidden" value="([^"]+)"')
#: Names Foyer generates for uploads (random token + image extension); anything else is not ours.
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_-]{8,100}\.(png|jpg|jpeg|webp|gif)$")
ICS_MIMETYPE = "text/calendar; charset=utf-8"


def _load_event(slug: str):
    event = load_public_event(slug)
    if not catalog.is_public(event):
        abort(404)
    return event


@bp.get("/")
def index_GET():
    """The catalogue: upcoming (soonest first) or past (latest first) events, 20 to a page, searched by
    title and description and filtered by tag. The search form is a plain GET; htmx swaps the results.
    """
    when = request.args.get("when", "upcoming")
    when = when if when in catalog.WHEN_CHOICES else "upcoming"
    query = catalog.clean_query(request.args.get("q"))
    tag = catalog.normalize_tag(request.args.get("tag"))
    listing = catalog.list_events(when, query=query, tag=tag, page=request.args.get("page", 1, type=int))
    if listing is None:
        abort(404)
    context = {"listing": listing, "when": when, "query": query, "tag": tag, "tags": catalog.catalogue_tags(when),
               "availability": catalog.availability, "excerpt": catalog.excerpt}
    if request.headers.get("HX-Target") == "catalogue-results" and wants_fragment():
        response = make_response(get_template_attribute("public/_catalogue.html", "results")(**context))
    else:
        response = make_response(render_template("public/index.html", **context))
    response.vary.add("HX-Request")
    response.vary.add("HX-Target")
    return response


@bp.get("/events/<slug>")
@compress.compressed()  # echoes nothing from the request (see COMPRESS_REGISTER)
def event_GET(slug: str):
    """One event's public page (drafts are a 404); anonymous views reuse a page just rendered."""
    if current_user.is_authenticated or "_flashes" in session:
        return _render_event_page(_load_event(slug))
    pages = page_cache.event_pages()
    key = (slug, current_language())  # one page per language
    cached = pages.get(key)
    if cached is not None:
        return page_cache.personalise(cached, csrf_token=generate_csrf(), stamp=RegistrationForm.new_stamp())
    html = _render_event_page(_load_event(slug))
    stamp = STAMP.search(html)
    pages.put(key, html, csrf_token=g.csrf_token, stamp=stamp.group(1) if stamp else None)
    return html


def _render_event_page(event) -> str:
    catalog.with_page_children(event)
    return render_template(
        "public/event.html",
        event=event,
        seats=catalog.availability(event),
        window=catalog.registration_window(event),
        duration=catalog.format_duration(event.starts_at, event.ends_at),
        summary=catalog.excerpt(event_description(event), 200),
        canonical_url=links.event_url(event),
        banner_url=links.upload_url(event.banner_filename),
        json_ld=catalog.event_json_ld(event),
        also_in_series=series.upcoming_others(event),
    )


def _ics_response(body: bytes, *, filename: str | None = None) -> Response:
    response = Response(body, content_type=ICS_MIMETYPE)
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.cache_control.public = True
    response.cache_control.max_age = 300
    # Its wording (and the event's title) follows the visitor's language: the browser's, or the one chosen
    # for the visit, which the session cookie holds.
    response.vary.update(("Accept-Language", "Cookie"))
    return response


@bp.get("/events/<slug>.ics")
def event_ics_GET(slug: str):
    """One event as an .ics file to add to a calendar."""
    event = _load_event(slug)
    return _ics_response(ics.calendar_bytes(ics.event_calendar([event], name=event_title(event))),
                         filename=f"{event.slug}.ics")


@bp.get("/events.ics")
def events_ics():
    """An iCalendar feed of published events: upcoming ones and those of the last 30 days."""
    return _ics_response(ics.calendar_bytes(ics.event_calendar(catalog.feed_events())))


@bp.get("/privacy")
@compress.compressed()
def privacy_GET():
    """The current privacy notice."""
    return render_template("public/privacy.html", notice=get_privacy_notice())


@bp.get("/time-zones")
@compress.compressed()
def time_zones_GET():
    """Every time zone name a registration accepts, grouped by region: the full list the form links to
    instead of sending ~600 options with every page. The same for everyone in a language, so browsers keep
    it a day (per language: the browser's, or the one chosen for the visit, which the session cookie holds).
    """
    regions: dict[str, list[str]] = {}
    for zone in sorted(timezones.all_zones()):
        regions.setdefault(zone.split("/", 1)[0] if "/" in zone else "Other", []).append(zone)
    response = make_response(render_template("public/time_zones.html", regions=regions,
                                              common=[z for z in timezones.COMMON_ZONES if z in timezones.all_zones()]))
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    response.vary.update(("Accept-Language", "Cookie"))
    return response


@bp.get("/brand.css")
@compress.compressed()
def brand_css():
    """The admin's branding colours as CSS custom properties (no inline styles under our CSP)."""
    branding = get_branding()
    response = Response(brand_stylesheet(branding), mimetype="text/css")
    _cache_by_version(response, brand_version(branding))
    return response


@bp.get("/favicon.ico")
def favicon_GET():
    """The site icon in the branding's accent colour."""
    branding = get_branding()
    response = Response(favicon_bytes(branding), mimetype="image/x-icon")
    _cache_by_version(response, brand_version(branding))
    return response


def _cache_by_version(response: Response, version: str) -> None:
    """Pages link these with `?v=<branding hash>`: that URL never changes content, so it is cached for a
    year; any other URL (no or an old version) is checked again on every use.
    """
    if request.args.get("v") == version:
        response.cache_control.public = True
        response.cache_control.max_age = 31536000
        response.cache_control.immutable = True
    else:
        response.cache_control.no_cache = True
    response.set_etag(version)  # a revalidation of an unchanged file is a 304
    response.make_conditional(request)


@bp.get("/uploads/<path:filename>")
def upload_GET(filename: str):
    """Serve an uploaded image. Names are generated by Foyer, so anything else (paths, dot-files,
    other types) is a 404 before the file system is touched.
    """
    if not UPLOAD_NAME.match(filename):
        abort(404)
    response = send_from_directory(current_app.config["UPLOAD_FOLDER"], filename, max_age=86400)
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox"
    return response
