"""The registration form embedded in another website: the same form and registration engine as the event's
pages, in a page of its own that the websites an admin lists may show in a frame (docs/embedding.md).

Inside a cross-site frame the browser sends none of Foyer's cookies, so nothing here uses the session:
the form's CSRF token is bound to the event (`EmbeddedFormCSRF`), a POST must come from Foyer's own
origin (the page in the frame), and the outcome is shown in the answer itself rather than after a
redirect through the session.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    get_template_attribute,
    make_response,
    render_template,
    request,
    url_for,
)

from app.extensions import csrf, limiter
from app.forms.registration import RegistrationForm, embedded_form_meta
from app.models import Event
from app.routes.public.registration import build_form, load_event, registration_limit, submit_registration
from app.services.core.settings import HEX_COLOUR, auto_text_colour, embed_origins
from app.services.events import catalog
from app.web import embeddable, own_transactions, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("public_embed", __name__, url_prefix="/embed")

#: The snippet's `data-accent`, as it travels in the frame's URL: six hex digits, no "#".
ACCENT = re.compile(r"^[0-9a-fA-F]{6}$")


@bp.after_request
def _not_cached(response: Response) -> Response:
    """Each form carries its own token and start stamp: never cached."""
    if request.endpoint != "public_embed.accent_css":
        response.headers["Cache-Control"] = "no-store"
    return response


def _accent() -> str | None:
    """The snippet's accent override (six hex digits), or None to use the site's branding."""
    value = request.args.get("accent", "")
    return value.lower() if ACCENT.match(value) else None


def _parent_origin() -> str | None:
    """The embedding website's origin, when it is one the admin listed: the page tells it its height."""
    value = request.args.get("parent", "")
    return value if value and value in embed_origins() else None


def _frame_args() -> dict[str, str]:
    """What the frame's URL carries (kept on the form's action so a full-page answer keeps it too)."""
    args = {}
    if accent := _accent():
        args["accent"] = accent
    if parent := _parent_origin():
        args["parent"] = parent
    return args


def _form(event: Event, **kwargs) -> RegistrationForm:
    # No inline field checks here: they post with the session's CSRF token, which a frame does not have.
    return build_form(event, meta=embedded_form_meta(event), **kwargs)


def _context(event: Event, **ctx) -> dict:
    return {"event": event, "window": catalog.registration_window(event), "seats": catalog.availability(event),
            "action": url_for(".register_POST", slug=event.slug, **_frame_args()), "accent": _accent(),
            "parent_origin": _parent_origin(), **ctx}


def _form_response(event: Event, form: RegistrationForm, status: int) -> Response:
    """The embedded page with the form, or (htmx) the form alone, posting back to the embedded route."""
    ctx = _context(event, form=form)
    if wants_fragment():
        macro = get_template_attribute("public/_register.html", "register_form")
        response = make_response(macro(event, form, window=ctx["window"], seats=ctx["seats"], action=ctx["action"]),
                                 status)
    else:
        response = make_response(render_template("public/embed_register.html", **ctx), status)
    response.vary.add("HX-Request")
    return response


def _result_response(event: Event, slug: str, result: dict) -> Response:
    """The outcome inside the frame: the fragment for htmx, else the embedded page showing it."""
    view = {"kind": "inbox", "email": result.get("email", ""), "registration": None, "manage_url": None,
            "position": None, "has_invite": False}
    if wants_fragment():
        macro = get_template_attribute("public/_register.html", "register_result")
        response = make_response(macro(event=event, result=view, heading_level=2, embedded=True))
        response.vary.add("HX-Request")
        return response
    return make_response(render_template("public/embed_register.html", **_context(event, result=view)))


def _own_origins() -> set[str]:
    origins = {request.host_url.rstrip("/")}
    base = urlsplit(current_app.config.get("PUBLIC_BASE_URL") or "")
    if base.scheme and base.netloc:
        origins.add(f"{base.scheme}://{base.netloc}")
    return origins


def _refuse_other_origins() -> None:
    """A POST must come from Foyer's own page in the frame. Browsers name the page's origin in `Origin` on
    every POST (the frame's page keeps the Referrer-Policy that allows it); a form on any other site,
    or a request without either header, is refused.
    """
    origin = request.headers.get("Origin")
    if origin is None and request.referrer:
        parts = urlsplit(request.referrer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin not in _own_origins():
        logger.info("Embedded registration post refused: it came from %r, not from Foyer's page", (origin or "")[:100])
        abort(403)


@bp.get("/events/<slug>/register")
@embeddable
def register_GET(slug: str):
    """The event's registration form alone, for a frame on a website the admin listed."""
    event = load_event(slug)
    form = _form(event, formdata=None)
    form.stamp_start()
    return _form_response(event, form, 200)


@bp.post("/events/<slug>/register")
@embeddable
@own_transactions  # the write lock is taken only around the registration itself
@csrf.exempt  # no session cookie arrives in a cross-site frame: the form's own event-bound token is checked
@limiter.shared_limit(registration_limit, scope="registration")  # one count with the event's own form
def register_POST(slug: str):
    """Register from the embedded form; the outcome ("check your inbox") is shown inside the frame."""
    _refuse_other_origins()
    event = load_event(slug)
    return submit_registration(event, slug, _form(event), form_response=_form_response,
                               result_response=_result_response)


@bp.get("/accent/<colour>.css")
def accent_css(colour: str):
    """The snippet's accent colour as CSS custom properties (the page's CSP allows no inline styles)."""
    if not ACCENT.match(colour):
        abort(404)
    accent = f"#{colour.lower()}"
    if not HEX_COLOUR.match(accent):
        abort(404)
    response = Response(f":root {{ --accent: {accent}; --accent-text: {auto_text_colour(accent)}; }}\n",
                        mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = 31536000
    response.cache_control.immutable = True
    return response
