"""Public registration: the form on an event page, inline field checks, the result, and email verification."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    get_template_attribute,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, gettext
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError

from app.extensions import compress, csrf, db, limiter
from app.forms.registration import QuestionSpec, RegistrationForm, registration_form
from app.models import Event, Registration
from app.services.core import page_cache
from app.services.core.errors import DomainError
from app.services.core.settings import get_privacy_notice
from app.services.events import catalog
from app.services.integrations import webhooks
from app.services.registration import registrations
from app.web import (
    DatabaseBusy,
    apply_domain_error,
    load_public_event,
    own_transactions,
    redirect_to,
    render_page_or_fragment,
    unit_of_work,
    wants_fragment,
)

logger = logging.getLogger(__name__)

bp = Blueprint("public_registration", __name__)

#: Session key holding the outcome shown on the "registered" page (PRG without putting tokens in URLs).
RESULT_KEY = "registration_result"
#: Inline checks post once per field the person leaves: allow many more than form submissions.
VALIDATE_RATE_LIMIT = "120 per minute"
#: Outcomes that all read "check your inbox", so a repeated address is never revealed.
INBOX_KINDS = ("unverified", "duplicate", "inbox")


def registration_limit() -> str:
    """Registration posts allowed per client (REGISTRATION_RATE_LIMIT), counted across every form."""
    return current_app.config["REGISTRATION_RATE_LIMIT"]


@bp.after_request
def _private(response: Response) -> Response:
    """Results and verification pages carry personal links: never cached, never in a Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def load_event(slug: str) -> Event:
    """A public event whose registration form may be shown; 404 otherwise."""
    event = load_public_event(slug)
    if not catalog.is_public(event):
        abort(404)
    return event


@bp.app_template_global("registration_form_for")
def registration_form_for(event: Event) -> RegistrationForm:
    """A fresh registration form for an event page (used by `public/_register.html`)."""
    form = _form(event, formdata=None)
    form.stamp_start()
    return form


@bp.app_template_global("blank_registration_form")
def blank_registration_form(event: Event, *, window, seats) -> Markup:
    """The event page's blank registration form, rendered once for everything it shows and reused.

    Building and rendering the form (about twenty fields through the form macros) was most of a fresh
    event page's cost, and for a blank form its HTML follows from a few values: the questions' content,
    the event's registration settings and zone, whether the button says "waitlist", the language, the
    organization's domains and whether SMS is offered. Those values are the key, so an edit makes a new
    key and nothing is ever stale; each view swaps in its own CSRF token and a fresh "shown at" stamp.
    """
    domains = tuple(registrations.organization_domains()) if event.who_can_register == "organization" else ()
    key = (event.id, event.slug, event.timezone, event.who_can_register, event.approval_required,
           event.require_email_verification, seats.state, str(get_locale()), request.script_root, domains,
           current_app.config["ACS_SMS_SENDER"], tuple(QuestionSpec.of(q) for q in event.questions))
    forms = page_cache.form_fragments()
    cached = forms.get(key)
    if cached is not None:
        return Markup(page_cache.personalise(cached, csrf_token=generate_csrf(),  # noqa: S704  (our own HTML)
                                             stamp=RegistrationForm.new_stamp()))
    form = registration_form_for(event)
    html = get_template_attribute("public/_register.html", "register_form")(event, form, window=window, seats=seats)
    forms.put(key, str(html), csrf_token=generate_csrf(), stamp=form.started.data)
    return html


def _form(event: Event, **kwargs) -> RegistrationForm:
    form = build_form(event, **kwargs)
    form.enable_inline_validation(url_for("public_registration.register_validate_POST", slug=event.slug))
    return form


def build_form(event: Event, **kwargs) -> RegistrationForm:
    """The event's registration form, as every surface shows it (`kwargs` go to the form class)."""
    form = registration_form(event, privacy_url=url_for("public.privacy_GET"),
                             questions=catalog.kept_questions(event), **kwargs)
    form.allowed_domains = registrations.organization_domains() if event.who_can_register == "organization" else []
    return form


def _form_response(event: Event, form: RegistrationForm, status: int) -> Response:
    return render_page_or_fragment(
        "public/registration_form.html", "public/_register.html", "register_form",
        status=status, event=event, form=form, window=catalog.registration_window(event),
        seats=catalog.availability(event),
    )


def _result_response(event: Event, slug: str, result: dict) -> Response:
    """The outcome: a fragment in place of the form for htmx, else a redirect to the result page.

    `slug` is the event's (the one it was loaded by): after the registration's commit, reading it
    from the event would load the event again only to build a URL.
    """
    session[RESULT_KEY] = result
    if not wants_fragment():
        return redirect_to(url_for(".registered_GET", slug=slug))
    macro = get_template_attribute("public/_register.html", "register_result")
    response = make_response(macro(event=event, result=_result_view(result), heading_level=3))
    response.headers["HX-Push-Url"] = url_for(".registered_GET", slug=slug)
    response.vary.add("HX-Request")
    return response


def _result_view(result: dict) -> dict:
    """What the result page shows; the registration's *current* state when it has a personal link."""
    view = {"kind": result.get("kind"), "email": result.get("email", ""), "registration": None, "manage_url": None,
            "position": None, "has_invite": True}
    if view["kind"] in INBOX_KINDS:
        view["kind"] = "inbox"
        return view
    token = result.get("token")
    reg: Registration | None = registrations.by_manage_token(token) if token else None
    if reg is None:
        view["kind"] = "inbox"
        return view
    view.update(kind=reg.state.value, registration=reg, manage_url=registrations.manage_url(token),
                position=registrations.waitlist_position(reg))
    return view


@bp.get("/events/<slug>/register")
@compress.compressed()  # a blank form: echoes nothing from the request
def register_GET(slug: str):
    """The registration form on its own page (the event page shows the same form)."""
    event = load_event(slug)
    form = _form(event, formdata=None)
    form.stamp_start()
    return _form_response(event, form, 200)


@bp.post("/events/<slug>/register")
@own_transactions  # the write lock is taken only around the registration itself (unit_of_work below)
@csrf.exempt  # the form checks its own token, so an expired one gives the form back with what was typed
@limiter.shared_limit(registration_limit, scope="registration")  # one count with the embedded form
def register_POST(slug: str):
    """Register for an event; invalid input re-renders the form with field errors (422)."""
    event = load_event(slug)
    return submit_registration(event, slug, _form(event), form_response=_form_response,
                               result_response=_result_response)


def submit_registration(event: Event, slug: str, form: RegistrationForm, *,
                        form_response: Callable[[Event, RegistrationForm, int], Response],
                        result_response: Callable[[Event, str, dict], Response]) -> Response:
    """The registration engine behind every registration form (the event's pages and the embedded one):
    the honeypot, the token, the minimum fill time, the rules and the registration itself. `form_response`
    gives the form back (with a status); `result_response` shows the outcome.
    """
    if form.is_bot:
        # Pretend it worked and store nothing: a bot learns nothing from the answer.
        logger.info("Honeypot filled on the registration form of event %s", event.id)
        return result_response(event, slug, {"kind": "inbox", "email": (form.email.data or "")[:320]})
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            # Left open past the token's lifetime (or its session cookie was lost): nothing is stored,
            # and the form comes back as typed, with a fresh token.
            logger.info("Registration form for event %s sent with an expired or missing token", event.id)
            form.form_errors.append(gettext("This form was open for a long time, so for your security it has to be "
                                            "sent again. Your details are still here: check them and press Register "
                                            "again."))
        return form_response(event, form, 422)
    if form.filled_too_fast(current_app.config["REGISTRATION_MIN_FILL_SECONDS"]):
        # Bots post at once; a person this quick (autofill) just presses again. Nothing is lost.
        logger.info("Registration form for event %s sent back within seconds of being shown", event.id)
        if form.seconds_since_shown() is None:
            form.stamp_start()
        form.form_errors.append(gettext("That was quick! Please check your details, then press Register again."))
        return form_response(event, form, 422)
    data = form.to_data(get_privacy_notice().version or None)
    try:
        prepared = registrations.prepare(event, data)  # what needs no lock, before taking it
        webhooks.preload_subscribers()  # who hears of the registration, read before the lock too
    except DomainError as exc:
        apply_domain_error(form, exc)
        return form_response(event, form, 422)
    event_id = event.id
    try:
        # The write lock is held for the registration alone; a duplicate the unique index refused (made
        # active by a path without the event's lock) is recognised when it runs once more.
        outcome = unit_of_work(lambda: registrations.register(event, data, prepared=prepared),
                               what=f"registration for event {event_id}", once_more_on=(IntegrityError,))
    except DomainError as exc:
        apply_domain_error(form, exc)
        return form_response(event, form, 422)
    except DatabaseBusy:
        form.form_errors.append(gettext("We are very busy right now and could not save your registration. "
                                        "Nothing was stored; please press Register again."))
        return form_response(event, form, 422)  # 422 so htmx swaps the message in; nothing was lost
    # Every outcome reads "check your inbox": the personal link travels only by email, so the page
    # never tells a new sign-up from an address that was already registered.
    logger.info("Registration for event %s: %s", event_id, outcome.kind)
    return result_response(event, slug, {"kind": "inbox", "email": form.email.data})


@bp.post("/events/<slug>/register/validate")
@own_transactions  # reads only
@limiter.limit(VALIDATE_RATE_LIMIT)
def register_validate_POST(slug: str):
    """Check one field as the person leaves it (htmx); returns that field's fragment."""
    event = load_event(slug)
    form = _form(event)
    name = request.args.get("field", "")
    if name not in form._fields or name in ("csrf_token", "homepage", "consent"):
        return Response(status=204)
    form.validate()
    field = form[name]
    if name == "email" and not field.errors:
        try:
            registrations.normalize_email(field.data or "")
        except DomainError as exc:
            field.errors = [exc.message]
    macro = get_template_attribute("public/_register.html", "register_field")
    response = make_response(macro(field))
    response.vary.add("HX-Request")
    return response


@bp.get("/events/<slug>/registered")
def registered_GET(slug: str):
    """The outcome of a registration just made in this browser."""
    event = load_event(slug)
    result = session.get(RESULT_KEY)
    if not isinstance(result, dict):
        return redirect_to(url_for("public.event_GET", slug=event.slug))
    return render_template("public/registration_result.html", event=event, result=_result_view(result),
                           heading_level=1)


@bp.get("/registrations/verify/<token>")
def verify_GET(token: str):
    """The page an address-confirmation link opens: one button confirms (mail scanners only GET)."""
    reg = registrations.by_verify_token(token)
    if reg is None:
        return render_template("public/registration_verify.html", reg=None, token=None), 404
    return render_template("public/registration_verify.html", reg=reg, token=token)


@bp.post("/registrations/verify/<token>")
@limiter.limit(registration_limit)
def verify_POST(token: str):
    """Confirm the address: the held registration is placed by the event's rules."""
    try:
        reg = registrations.verify_email(token)
    except DomainError as exc:
        db.session.rollback()
        held = registrations.by_verify_token(token)
        return render_template("public/registration_verify.html", reg=held, token=token, error=exc.message), 409
    db.session.commit()
    if reg is None:
        return render_template("public/registration_verify.html", reg=None, token=None), 404
    result = {"kind": reg.state.value, "email": reg.email, "token": registrations.manage_token_for(reg)}
    db.session.commit()  # a registration without a stored token just got one
    session[RESULT_KEY] = result
    return redirect_to(url_for(".registered_GET", slug=reg.event.slug))
