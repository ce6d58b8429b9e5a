"""Everything routes share, in one place: guards and load-or-abort helpers, fragment-or-page rendering
and redirects, form errors, safe `next` targets, the unit of work that owns writer transactions, and the
request-level wiring (template filters, branding in templates, security headers).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    get_template_attribute,
    make_response,
    redirect,
    render_template,
    request,
)
from flask_babel import format_number, gettext
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError

from app import jobs
from app.extensions import compress
from app.i18n import current_language, wtforms_translations
from app.models import Event, EventStatus, MicrosoftConnection, db
from app.models.base import begin_write
from app.services.core.dates import format_date, format_datetime, format_time
from app.services.core.errors import DomainError
from app.services.core.markdown import render_markdown
from app.services.core.settings import brand_version, embed_origins, get_branding
from app.services.events.events import can_manage
from app.services.messaging.rendering import nl2br
from app.services.microsoft.connection import CONNECTION_ID

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# --- guards and load-or-abort ---------------------------------------------------------------------------


def require_staff(bp: Blueprint) -> None:
    """Install the gate of an organizer blueprint: every page needs a signed-in staff user."""

    @bp.before_request
    @login_required
    def _require_staff():
        """Anonymous visitors are sent to sign in."""


def require_admin(bp: Blueprint) -> None:
    """Install the gate of an admin blueprint: anonymous visitors are sent to sign in, and signed-in
    non-admins get a 404, not a hint the page exists.
    """

    @bp.before_request
    @login_required
    def _require_admin():
        if not current_user.is_admin:
            abort(404)


def load_managed_event(event_id: int) -> Event:
    """The event with this id if the signed-in user may manage it; 404 otherwise.

    Organizer queries are always scoped to what the user may see: an event the user may not manage is a
    404, never a 403, so its existence is not revealed.
    """
    event = db.session.get(Event, event_id)
    if event is None or not can_manage(current_user, event):
        abort(404)
    return event


#: Built once: public pages and every registration look the event up by its slug.
_EVENT_BY_SLUG = select(Event).where(Event.slug == bindparam("slug"))


def load_public_event(slug: str) -> Event:
    """A published or cancelled event by slug (drafts are invisible to the public)."""
    event = db.session.scalar(_EVENT_BY_SLUG, {"slug": slug})
    if event is None or event.status == EventStatus.draft:
        abort(404)
    return event


# --- answers: fragment or page, redirects ---------------------------------------------------------------


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


def personal_link_headers(response: Response) -> Response:
    """Mark the answer to a personal link, whose URL is a credential: never cached, never sent on in a
    Referer, never indexed.
    """
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def safe_next(target: str | None, default: str) -> str:
    r"""Return `target` only when it is a local path on this site; otherwise `default`.

    Rejects scheme-relative (`//evil`), backslash (`/\\evil`), absolute and scheme-only (`https:evil`)
    forms, and control characters that browsers strip.
    """
    if not target or not isinstance(target, str):
        return default
    if any(ord(c) < 32 or c in "\\" for c in target):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# --- forms ----------------------------------------------------------------------------------------------


def apply_domain_error(form: FlaskForm, exc: DomainError) -> None:
    """Attach a domain error to the named field, or to the form as a whole."""
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None:
        field.errors = [*field.errors, exc.message] if isinstance(field.errors, list) else [exc.message]
    else:
        form.form_errors.append(exc.message)


@dataclass(frozen=True)
class Done(Generic[_T]):
    """What a submitted form's action returned (a `Done` is true even when the action returned None)."""

    value: _T


def submit(form: FlaskForm, act: Callable[[], _T]) -> Done[_T] | None:
    """A form with fields, submitted: validate it, carry out `act` and commit, returning what it returned.

    Otherwise roll back and return None, the form keeping its errors and the domain's refusal beside the
    field it names (`apply_domain_error`), ready to be shown again with what was typed.
    """
    if form.validate_on_submit():
        try:
            result = act()
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            return Done(result)
    db.session.rollback()
    return None


def carry_out(verb: Callable[[], object], *, done: str) -> bool:
    """A button's verb: commit it and flash `done`, or roll back and flash why the domain refused it.

    For forms with nothing to fill in (revoke, import now, resend); forms with fields report a refusal
    beside the field instead (`apply_domain_error`). Returns whether it was carried out.
    """
    try:
        verb()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return False
    db.session.commit()
    flash(done, "success")
    return True


#: WTForms' stock messages, which name no field ("Field cannot be longer than 100 characters."), as WTForms
#: words them in English: (singular, plural) for the plural ones. WTForms translates them itself.
_STOCK = {
    "too_long": ("Field cannot be longer than %(max)d character.", "Field cannot be longer than %(max)d characters."),
    "too_short": ("Field must be at least %(min)d character long.", "Field must be at least %(min)d characters long."),
    "between": ("Field must be between %(min)d and %(max)d characters long.",),
    "required": ("This field is required.",),
}


@cache
def _stock_patterns(language: str) -> list[tuple[str, re.Pattern]]:
    """The stock messages as WTForms words them in `language`, each a pattern capturing its numbers."""
    translations = wtforms_translations(language)
    patterns = []
    for name, forms in _STOCK.items():
        worded = {translations.ungettext(forms[0], forms[1], n) for n in (1, 2, 5)} if len(forms) == 2 \
            else {translations.ugettext(forms[0])}
        for text in worded:
            pattern = re.sub(r"%\\\(\w+\\\)d", r"(\\d+)", re.escape(text))
            patterns.append((name, re.compile(f"^{pattern}$")))
    return patterns


def field_errors(field) -> list[str]:
    """A form field's errors, with WTForms' stock wording replaced by one that names the field."""
    label = field.label.text.rstrip(" *:") if getattr(field, "label", None) else gettext("This field")
    entered = len(field.data) if isinstance(field.data, str) else None
    friendly = []
    for error in field.errors:
        error = str(error)
        for name, pattern in _stock_patterns(current_language()):
            if match := pattern.match(error):
                error = _friendly(name, label, [int(n) for n in match.groups()], entered)
                break
        friendly.append(error)
    return friendly


def _friendly(name: str, label: str, numbers: list[int], entered: int | None) -> str:
    if name == "required":
        return gettext("%(label)s is required.", label=label)
    you_entered = " " + gettext("(you entered %(n)s)", n=format_number(entered)) if entered is not None else ""
    if name == "too_long":
        return gettext("%(label)s can be at most %(n)s characters long", label=label,
                       n=format_number(numbers[0])) + you_entered + "."
    if name == "too_short":
        return gettext("%(label)s needs at least %(n)s characters", label=label,
                       n=format_number(numbers[0])) + you_entered + "."
    return gettext("%(label)s needs between %(min)s and %(max)s characters", label=label,
                   min=format_number(numbers[0]), max=format_number(numbers[1])) + you_entered + "."


def microsoft_status() -> str:
    """The Microsoft 365 connection's status ("connected", "disconnected", "needs_reconnect"), once per
    request: badges say "waiting" rather than "provisioning" while parked work cannot run.
    """
    if "microsoft_status" not in g:
        row = db.session.get(MicrosoftConnection, CONNECTION_ID)
        g.microsoft_status = row.status.value if row is not None else "disconnected"
    return g.microsoft_status


# --- units of work -------------------------------------------------------------------------------------
#
# A request that changes things is one unit of work: on SQLite its transaction begins as a writer from
# its first query (BEGIN IMMEDIATE). A transaction that reads and then writes would fail at once
# ("database is locked") if another process, such as the worker, wrote in between; one that starts as a
# writer waits its turn (busy_timeout) and, should the database stay locked past that, tries again.
# PostgreSQL needs none of this. Routes do nothing for it; a view that keeps its transactions short
# (registration holds the write lock only around the registration itself) says so with
# `@own_transactions` and runs its write through `unit_of_work`.

#: Requests that change things.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Tries when the database stays locked past its busy timeout (SQLite's 10 s each): only an extreme
#: rush into one process with hundreds of threads gets there.
BUSY_ATTEMPTS = 10


class DatabaseBusy(Exception):
    """The database stayed locked through every try; nothing was stored."""


def own_transactions(view):
    """Mark a view that is not one writer transaction from its first query: it writes through
    `unit_of_work` (late and short, e.g. registration), its writes happen on another connection (the
    Microsoft token cache), or it only reads (inline field checks).
    """
    view.foyer_own_transactions = True
    return view


def unit_of_work(work: Callable[[], _T], *, what: str, once_more_on: tuple[type[Exception], ...] = ()) -> _T:
    """Run `work` as one writer transaction and commit it; return what it returned.

    The read transaction the request had open ends first, so the write lock is held for `work` alone.
    While the database stays busy `work` runs again, up to BUSY_ATTEMPTS times, and then DatabaseBusy
    is raised. An exception in `once_more_on` runs it once more (a unique index refusing a row the work
    could not see coming); any other exception rolls back and propagates. `what` names the work in logs.
    """
    db.session.rollback()
    tried_once_more = False

    def attempt() -> _T:
        nonlocal tried_once_more
        begin_write()
        try:
            result = work()
            db.session.commit()
        except once_more_on:
            db.session.rollback()
            if tried_once_more:
                raise
            logger.warning("%s refused by the database; trying once more", what)
            tried_once_more = True
            return attempt()
        except BaseException:
            db.session.rollback()
            raise
        return result

    return _while_busy(attempt, what)


def _while_busy(step: Callable[[], _T], what: str) -> _T:
    """Run `step`, again after a short back-off while the database is busy (`step` rolls back first)."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            return step()
        except OperationalError as exc:
            db.session.rollback()
            if not _database_busy(exc):
                raise
            logger.warning("Database busy: %s (attempt %s)", what, attempt)
            if attempt < BUSY_ATTEMPTS:
                # A lock refused at once (not after the busy timeout) clears within moments: back off a little.
                time.sleep(min(1.0, 0.02 * 2**attempt))
    raise DatabaseBusy(what)


def _database_busy(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "locked" in message or "busy" in message


def writes_on_get(view):
    """Mark a GET view that may write (a link issued when first shown, a download recorded): on SQLite it
    is one writer transaction from its first query, as a POST is. Otherwise its reads would start a
    snapshot, and a write another process commits before this view's own write would make SQLite refuse
    that write at once ("database is locked"), whatever the busy timeout.
    """
    view.foyer_writes_on_get = True
    return view


def _begin_write_requests_as_writers() -> None:
    """Make a request that changes things one writer transaction from its first query (SQLite)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return
    if request.method in WRITE_METHODS:
        writes = not getattr(view, "foyer_own_transactions", False)
    else:
        writes = getattr(view, "foyer_writes_on_get", False)
    # The database asked only for a request that writes: page views, the most requests, skip the engine.
    if writes and db.engine.dialect.name == "sqlite":
        _while_busy(begin_write, request.endpoint or "request")


#: Pages whose form answers with a redirect to Microsoft's sign-in page (another origin): connect the
#: service account, and staff "Sign in with Microsoft". CSP form-action also governs where a submitted
#: form may be redirected, so only these pages name that origin.
MICROSOFT_SIGN_IN_PAGES = frozenset({"admin_microsoft.connection_GET", "auth.login_GET", "auth.login_POST"})


def _form_action() -> str:
    origin = current_app.config.get("MICROSOFT_SIGN_IN_ORIGIN")
    if origin and request.endpoint in MICROSOFT_SIGN_IN_PAGES:
        return f"'self' {origin}"
    return "'self'"


def embeddable(view):
    """Mark a view whose pages the websites an admin lists may show in a frame (the embeddable registration
    form). Every other page refuses every frame (`frame-ancestors 'none'` and `X-Frame-Options: DENY`).
    """
    view.foyer_embeddable = True
    return view


def _frame_ancestors() -> str:
    """Who may frame this response: the listed websites for an embeddable view, else nobody."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or not getattr(view, "foyer_embeddable", False):
        return "'none'"
    return " ".join(embed_origins()) or "'none'"


def register(app: Flask) -> None:
    """Install filters, globals, context processors and response headers."""
    app.before_request(_begin_write_requests_as_writers)
    app.jinja_env.filters["markdown"] = render_markdown

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
        ancestors = _frame_ancestors()
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            f"object-src 'none'; base-uri 'none'; form-action {_form_action()}; frame-ancestors {ancestors}",
        )
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if ancestors == "'none'":
            # X-Frame-Options knows no list of sites, so a page some websites may frame leaves it out
            # (browsers that know frame-ancestors ignore it anyway); every other page sends both.
            headers.setdefault("X-Frame-Options", "DENY")
        if current_app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.blueprint and (request.blueprint.startswith(("organizer", "admin")) or request.blueprint == "auth"):
            headers["Cache-Control"] = "no-store"
            headers["Referrer-Policy"] = "no-referrer"
        return response
