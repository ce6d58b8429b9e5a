"""An attendee's personal join link `/j/<token>`: the page that embeds the event's Teams meeting (or the
sandbox stage with the built-in emulator), its states, the ACS session it asks for, and a device check.

The token is the only credential (looked up by hash, compared in constant time). Every response is
`no-store` with `Referrer-Policy: no-referrer`; the join page alone gets a CSP that admits the call
bundle and Azure Communication Services.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    get_template_attribute,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext

from app.extensions import db, limiter
from app.forms.live import AskForm, VoteForm
from app.models import utcnow
from app.services.attendance import join_links
from app.services.attendance.join_links import JoinLink, JoinState
from app.services.core import tokens
from app.services.core.errors import DomainError
from app.services.live import LiveClosed, polls, questions
from app.services.microsoft.wiring import get_microsoft
from app.services.registration import registrations
from app.web import DatabaseBusy, own_transactions, personal_link_headers, redirect_to, unit_of_work, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("public_join", __name__, url_prefix="/j")

#: Hosts the ACS calling and chat SDKs talk to (signalling, media relays, telemetry, Teams interop).
ACS_CONNECT_SOURCES = (
    "https://*.communication.azure.com", "wss://*.communication.azure.com",
    "https://*.skype.com", "wss://*.skype.com", "https://*.teams.microsoft.com", "wss://*.teams.microsoft.com",
    "https://*.microsoft.com", "wss://*.microsoft.com", "https://*.office.com", "https://*.office.net",
    "https://*.events.data.microsoft.com",
)


def _sandbox() -> bool:
    """Where the calling SDK cannot reach Teams (the built-in emulator), show the sandbox stage instead."""
    return not get_microsoft().calls_reach_teams


@bp.after_request
def _private(response: Response) -> Response:
    """The URL is a credential (`personal_link_headers`); the call page has its own CSP."""
    personal_link_headers(response)
    nonce = g.get("call_style_nonce")
    if nonce:
        response.headers["Content-Security-Policy"] = _call_csp(nonce)
    elif request.endpoint == "public_join.device_check_GET":
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "media-src 'self' blob: mediastream:; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
    return response


def _call_csp(nonce: str) -> str:
    """Exactly what the ACS UI Library needs: its bundle, Fluent UI's run-time styles (by nonce),
    media from the camera, and connections to ACS (this resource's endpoint and the service's hosts).
    """
    endpoint = urlsplit(join_links.acs_endpoint())
    origin = f"{endpoint.scheme}://{endpoint.netloc}"
    connect = " ".join(dict.fromkeys(("'self'", origin, *ACS_CONNECT_SOURCES)))
    return (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data: blob:; font-src 'self' data:; "
        f"media-src 'self' blob: mediastream:; connect-src {connect}; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class _Missing(Exception):
    """No registration behind this link."""


@bp.errorhandler(_Missing)
def _missing(_exc: _Missing):
    db.session.rollback()
    return render_template("public/join_missing.html"), 404


def _load(token: str) -> JoinLink:
    link = join_links.by_join_token(token)
    if link is None:
        raise _Missing
    return link


def _may_see_meeting(link: JoinLink) -> bool:
    """Only a confirmed attendee with a live link sees the Teams link or the meeting ID and passcode."""
    reg = link.registration
    return (not link.revoked and reg.state.value == "confirmed" and not reg.event.is_cancelled
            and reg.event.is_published)


def _context(link: JoinLink, token: str) -> dict:
    reg = link.registration
    event = reg.event
    current = join_links.status(link)
    meeting = current.session or event  # a course's attendees join the session that is on now (or next)
    # No link to the manage page here: join links travel in invites and forwarded emails, and the
    # manage page reads the person's data and can cancel or erase (it is only in the confirmation email).
    return {
        "reg": reg, "event": event, "token": token, "status": current, "states": JoinState,
        "session": current.session,
        "sandbox": _sandbox(), "teams_url": meeting.join_url if _may_see_meeting(link) else None,
        "meeting_id": meeting.join_meeting_id if _may_see_meeting(link) else None,
        "meeting_passcode": meeting.join_passcode if _may_see_meeting(link) else None,
        "revoked": link.revoked, "when_attendee": registrations.describe_when(meeting, reg.timezone),
        "heartbeat_seconds": join_links.HEARTBEAT_SECONDS,
        "minutes_to_open": max(0, math.ceil((current.opens_at - utcnow()).total_seconds() / 60)),
    }


def _live(link: JoinLink, token: str, **extra) -> dict:
    """The Q&A and polls beside the call, as this attendee sees them (only while the call is open)."""
    reg = link.registration
    live_open = join_links.status(link).state == JoinState.open
    ctx = {"token": token, "live_open": live_open, "reg": reg, "event": reg.event,
           "settings": questions.settings_for(reg.event), "feed_error": None, "feed_error_poll": None}
    if live_open:
        ctx.update(questions=questions.for_attendee(reg.event, reg), polls=polls.for_attendee(reg.event, reg))
    else:
        ctx.update(questions=[], polls=[])
    ctx.update(extra)
    return ctx


def _page(link: JoinLink, token: str, *, status: int | None = None, **live_extra):
    """The whole join page (with the Q&A beside the call while it is open)."""
    ctx = _context(link, token)
    if ctx["status"].state in (JoinState.open, JoinState.too_early) and not ctx["sandbox"]:
        # Fluent UI injects styles at run time; they get this request's nonce (see _call_csp).
        g.call_style_nonce = secrets.token_urlsafe(18)
    live = _live(link, token, **live_extra)
    live.setdefault("ask_form", AskForm(prefix="ask", formdata=None))
    body = render_template("public/join.html", style_nonce=g.get("call_style_nonce"), live=live, **ctx)
    return body, status or (410 if link.revoked else 200)


@bp.get("/<token>")
def join_GET(token: str):
    """The join page: too early (countdown), open (join), ended, cancelled, not confirmed or revoked."""
    return _page(_load(token), token)


@bp.get("/<token>/status")
def status_GET(token: str):
    """The state panel alone, for the page's polling while it is too early (htmx swaps it in place)."""
    link = _load(token)
    ctx = _context(link, token)
    return render_template("public/_join_state.html", polled=True, **ctx)


def _session_limit() -> str:
    return current_app.config["JOIN_SESSION_RATE_LIMIT"]


@bp.post("/<token>/session")
@limiter.limit(_session_limit)
@own_transactions  # the ACS calls run outside any write; only the join's record takes the write lock
def session_POST(token: str):
    """Issue an ACS session for the embedded call (CSRF-protected, rate-limited); JSON either way."""
    link = join_links.by_join_token(token)
    if link is None:
        return jsonify(error=gettext("This join link is not valid."), state="missing"), 404
    try:
        wanted = join_links.prepare_session(link)
        db.session.rollback()  # no read transaction stays open across the calls to ACS
        session = join_links.issue_session(wanted)
        stored = unit_of_work(lambda: join_links.record_join(wanted, session),
                              what=f"join session for registration {wanted.registration_id}")
        if stored != session.user_id:  # another join of this registration stored its identity first
            session = join_links.issue_session(dataclasses.replace(wanted, acs_user_id=stored))
    except join_links.JoinUnavailable as exc:
        code = 503 if exc.retry else 409
        return jsonify(error=exc.message, state=exc.state, retry=exc.retry), code
    except DatabaseBusy:
        return jsonify(error=gettext("We could not connect you to the call service just now. Please try again."),
                       state=JoinState.open, retry=True), 503
    return jsonify(session.as_json())


@bp.post("/<token>/presence")
def presence_POST(token: str):
    """The join page says the attendee is still in the call, or has left it (`left=1`)."""
    link = join_links.by_join_token(token)
    if link is None:
        return jsonify(error=gettext("This join link is not valid.")), 404
    recorded = join_links.record_presence(link, left=request.form.get("left") == "1")
    db.session.commit()
    return ("", 204) if recorded else (jsonify(error=gettext("This link cannot join the call now.")), 409)


@bp.get("/<token>/device-check")
def device_check_GET(token: str):
    """Try camera and microphone before the event, with help when the browser blocks them."""
    link = _load(token)
    reg = link.registration
    join_link = None if link.revoked else url_for(".join_GET", token=token)
    return render_template("public/join_device_check.html", reg=reg, event=reg.event, join_link=join_link)


# --- Q&A and polls beside the call ---------------------------------------------------------------------


def _per_link() -> str:
    """Live limits count per join link: attendees behind one office address must not share a budget."""
    return "live:" + tokens.hash_token(str((request.view_args or {}).get("token", "")))


def _question_limit() -> str:
    return current_app.config["LIVE_QUESTION_RATE_LIMIT"]


def _vote_limit() -> str:
    return current_app.config["LIVE_VOTE_RATE_LIMIT"]


def _feed(link: JoinLink, token: str, *, status: int = 200, **extra) -> Response:
    """The live feed alone (questions and polls), for htmx polling and after an action."""
    feed = get_template_attribute("public/_join_live.html", "live_feed")
    response = make_response(feed(_live(link, token, **extra)), status)
    response.vary.add("HX-Request")
    return response


def _live_link(token: str) -> JoinLink:
    """The link behind a live action; a replaced link cannot take part."""
    link = _load(token)
    if link.revoked:
        abort(410)
    return link


@bp.get("/<token>/live")
def live_GET(token: str):
    """The questions and polls beside the call (htmx polls this); the join page itself without htmx."""
    link = _load(token)
    if not wants_fragment():
        return redirect_to(url_for(".join_GET", token=token, _anchor="live"))
    return _feed(link, token)


@bp.get("/<token>/live/panel")
def live_panel_GET(token: str):
    """The whole Q&A panel once the call opens, for a page loaded before that (htmx polls this)."""
    link = _load(token)
    if not wants_fragment():
        return redirect_to(url_for(".join_GET", token=token, _anchor="live"))
    live = _live(link, token, ask_form=AskForm(prefix="ask", formdata=None))
    fragments = "public/_join_live.html"
    if live["live_open"]:
        body = get_template_attribute(fragments, "live_panel")(live)
    else:
        waiting = join_links.status(link).state == JoinState.too_early
        body = get_template_attribute(fragments, "live_waiting")(live, polling=waiting)
    response = make_response(body)
    response.vary.add("HX-Request")
    return response


@bp.post("/<token>/questions")
@limiter.limit(_question_limit, key_func=_per_link)
def question_POST(token: str):
    """Ask a question (it may wait for a moderator first)."""
    link = _live_link(token)
    form = AskForm(prefix="ask")
    sent = None
    if form.validate():
        try:
            question = questions.ask(link, form.body.data, anonymous=form.anonymous.data)
        except LiveClosed as exc:
            db.session.rollback()
            if not wants_fragment():
                return _page(link, token, status=409, feed_error=exc.message)
            _form_error(form, exc)
        except DomainError as exc:
            db.session.rollback()
            _form_error(form, exc)
        else:
            db.session.commit()
            sent = question
    if not wants_fragment():
        if sent is not None:
            return redirect_to(url_for(".join_GET", token=token, _anchor="live"))
        return _page(link, token, status=422, ask_form=form)
    ask = get_template_attribute("public/_join_live.html", "ask_form")
    if sent is None:
        response = make_response(ask(form, _live(link, token)), 422)
    else:
        fresh = AskForm(prefix="ask", formdata=None)
        response = make_response(ask(fresh, _live(link, token), sent=sent))
        response.headers["HX-Trigger"] = "foyer:live-refresh"
    response.vary.add("HX-Request")
    return response


def _form_error(form, exc: DomainError) -> None:
    field = getattr(form, exc.field, None) if exc.field else None
    target = field if field is not None else form.body
    target.errors = [*(target.errors or []), exc.message]


@bp.post("/<token>/questions/<int:question_id>/upvote")
@limiter.limit(_vote_limit, key_func=_per_link)
def question_upvote_POST(token: str, question_id: int):
    """Upvote a question, or take the upvote back."""
    link = _live_link(token)
    question = questions.find(link.registration.event, question_id)
    if question is None:
        abort(404)
    try:
        questions.toggle_upvote(link, question)
    except DomainError as exc:
        db.session.rollback()
        return _live_refused(link, token, exc)
    db.session.commit()
    if wants_fragment():
        return _feed(link, token)
    return redirect_to(url_for(".join_GET", token=token, _anchor=f"question-{question.id}"))


@bp.post("/<token>/polls/<int:poll_id>/vote")
@limiter.limit(_vote_limit, key_func=_per_link)
def poll_vote_POST(token: str, poll_id: int):
    """Vote in an open poll (once per registration)."""
    link = _live_link(token)
    poll = polls.find(link.registration.event, poll_id)
    if poll is None:
        abort(404)
    form = VoteForm(poll)
    try:
        if not form.validate():
            raise DomainError(gettext("Choose from the poll's answers."), field="choice")
        polls.vote(link, poll, form.choice.data or [])
    except DomainError as exc:
        db.session.rollback()
        return _live_refused(link, token, exc, poll_id=poll.id)
    db.session.commit()
    if wants_fragment():
        return _feed(link, token)
    return redirect_to(url_for(".join_GET", token=token, _anchor=f"poll-{poll.id}"))


def _live_refused(link: JoinLink, token: str, exc: DomainError, *, poll_id: int | None = None):
    """A refused live action: the feed (or the page) with the reason, never a 500."""
    status = 422 if exc.field else 409
    if wants_fragment():
        return _feed(link, token, status=status, feed_error=exc.message, feed_error_poll=poll_id)
    return _page(link, token, status=status, feed_error=exc.message, feed_error_poll=poll_id)
