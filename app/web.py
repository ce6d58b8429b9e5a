"""Request-level wiring shared by every blueprint: fragment-or-page rendering, redirects,
template filters, branding in templates, and security headers.
"""

from __future__ import annotations

import re
from functools import wraps

from flask import (
    Flask,
    Response,
    current_app,
    g,
    get_template_attribute,
    make_response,
    redirect,
    render_template,
    request,
)
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from app import jobs
from app.services.dates import format_date, format_datetime, format_time
from app.services.markdown import render_markdown
from app.services.settings import brand_version, get_branding


def wants_fragment() -> bool:
    """True for an htmx request that wants a partial (not a boosted navigation or a history restore)."""
    h = request.headers
    return (
        h.get("HX-Request") == "true"
        and h.get("HX-Boosted") != "true"
        and h.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_fragment(page: str, fragment: str, macro: str, *, status: int = 200, **ctx) -> Response:
    """Render the full page, or only the macro from the fragment template for htmx; always Vary."""
    if wants_fragment():
        body = get_template_attribute(fragment, macro)(**ctx)
    else:
        body = render_template(page, **ctx)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def compressed_static(view):
    """The static-file view, its answers compressed whole (read into memory and the file closed first:
    Flask-Compress's streaming path would leave the file open and compress chunk by chunk, worse).
    """
    from app.extensions import compress

    @wraps(view)
    def static(*args, **kwargs):
        response = view(*args, **kwargs)
        response.direct_passthrough = False
        response.make_sequence()
        return response

    return compress.compressed()(static)


def redirect_to(location: str) -> Response:
    """A 303 redirect, or `HX-Redirect` for htmx requests that must navigate."""
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, 303)


#: WTForms' stock messages, which name no field ("Field cannot be longer than 100 characters.").
_STOCK_TOO_LONG = re.compile(r"^Field cannot be longer than (\d+) characters?\.$")
_STOCK_TOO_SHORT = re.compile(r"^Field must be at least (\d+) characters? long\.$")
_STOCK_BETWEEN = re.compile(r"^Field must be between (\d+) and (\d+) characters long\.$")


def field_errors(field) -> list[str]:
    """A form field's errors, with WTForms' stock wording replaced by one that names the field."""
    label = field.label.text.rstrip(" *:") if getattr(field, "label", None) else "This field"
    entered = len(field.data) if isinstance(field.data, str) else None
    you_entered = f" (you entered {entered:,})" if entered is not None else ""
    friendly = []
    for error in field.errors:
        error = str(error)
        if match := _STOCK_TOO_LONG.match(error):
            error = f"{label} can be at most {int(match[1]):,} characters long{you_entered}."
        elif match := _STOCK_TOO_SHORT.match(error):
            error = f"{label} needs at least {int(match[1]):,} characters{you_entered}."
        elif match := _STOCK_BETWEEN.match(error):
            error = f"{label} needs between {int(match[1]):,} and {int(match[2]):,} characters{you_entered}."
        elif error == "This field is required.":
            error = f"{label} is required."
        friendly.append(error)
    return friendly


def microsoft_status() -> str:
    """The Microsoft 365 connection's status ("connected", "disconnected", "needs_reconnect"), once per
    request: badges say "waiting" rather than "provisioning" while parked work cannot run.
    """
    if "microsoft_status" not in g:
        from app.models import MicrosoftConnection, db
        from app.services.microsoft_connection import CONNECTION_ID

        row = db.session.get(MicrosoftConnection, CONNECTION_ID)
        g.microsoft_status = row.status.value if row is not None else "disconnected"
    return g.microsoft_status


#: Requests that change things. On SQLite each runs as one writer transaction from its first query.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def own_transactions(view):
    """Mark a view that starts its writer transactions itself (late and short, e.g. registration), or
    only reads (inline field checks): the request is not made a writer from its first query.
    """
    view.foyer_own_transactions = True
    return view


def _start_write_requests_as_writers() -> None:
    """On SQLite a transaction that reads and then writes fails at once ("database is locked") if
    another process, such as the worker, wrote in between; one that starts as a writer waits its turn
    (busy_timeout). PostgreSQL needs nothing.
    """
    from app.models.base import begin_write, db

    if request.method not in WRITE_METHODS or db.engine.dialect.name != "sqlite":
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "foyer_own_transactions", False):
        return
    begin_write()


#: Pages whose form answers with a redirect to Microsoft's sign-in page (another origin): connect the
#: service account, and staff "Sign in with Microsoft". CSP form-action also governs where a submitted
#: form may be redirected, so only these pages name that origin.
MICROSOFT_SIGN_IN_PAGES = frozenset({"admin_microsoft.connection_GET", "auth.login_GET", "auth.login_POST"})


def _form_action() -> str:
    origin = current_app.config.get("MICROSOFT_SIGN_IN_ORIGIN")
    if origin and request.endpoint in MICROSOFT_SIGN_IN_PAGES:
        return f"'self' {origin}"
    return "'self'"


def register(app: Flask) -> None:
    """Install filters, globals, context processors and response headers."""
    app.before_request(_start_write_requests_as_writers)
    app.jinja_env.filters["markdown"] = render_markdown
    from app.services.messages import nl2br

    app.jinja_env.filters["nl2br"] = nl2br
    app.jinja_env.filters["datetime"] = format_datetime
    app.jinja_env.filters["time"] = format_time
    app.jinja_env.filters["date"] = format_date
    app.jinja_env.filters["field_errors"] = field_errors
    app.jinja_env.globals["csrf_token"] = generate_csrf
    app.jinja_env.globals["microsoft_status"] = microsoft_status

    @app.context_processor
    def _inject_branding():
        branding = get_branding()
        return {"branding": branding, "brand_version": brand_version(branding), "current_user": current_user}

    @app.after_request
    def _drain_queued_work(response: Response) -> Response:
        """With OUTBOX_DRAIN_AFTER_REQUEST, perform work this request queued once the response is sent,
        so a single `flask run` shows the whole flow; `flask worker` does the same job in production.
        """
        if getattr(g, "outbox_enqueued", False) and current_app.config["OUTBOX_DRAIN_AFTER_REQUEST"]:
            flask_app = current_app._get_current_object()
            response.call_on_close(lambda: jobs.drain_outbox(flask_app))
        return response

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            f"object-src 'none'; base-uri 'none'; form-action {_form_action()}; frame-ancestors 'none'",
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if current_app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.blueprint and (request.blueprint.startswith(("organizer", "admin")) or request.blueprint == "auth"):
            headers["Cache-Control"] = "no-store"
            headers["Referrer-Policy"] = "no-referrer"
        return response
