"""An attendee's personal join link `/j/<token>`: the page that embeds the event's Teams meeting (or the
sandbox stage with the built-in emulator), its states, the ACS session it asks for, and a device check.

The token is the only credential (looked up by hash, compared in constant time). Every response is
`no-store` with `Referrer-Policy: no-referrer`; the join page alone gets a CSP that admits the call
bundle and Azure Communication Services.
"""

from __future__ import annotations

import logging
import math
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, url_for

from app.extensions import db, limiter
from app.models import utcnow
from app.services import joins, registrations
from app.services.joins import JoinLink, JoinState
from app.services.microsoft.wiring import get_microsoft

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
    """With the built-in emulator the calling SDK cannot reach Teams: show the sandbox stage instead."""
    return get_microsoft().uses_emulator


@bp.after_request
def _private(response: Response) -> Response:
    """The URL is a credential: never cached, never sent on in a Referer; the call page's own CSP."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
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
    endpoint = urlsplit(joins.acs_endpoint())
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
    link = joins.by_join_token(token)
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
    current = joins.status(link)
    # No link to the manage page here: join links travel in invites and forwarded emails, and the
    # manage page reads the person's data and can cancel or erase (it is only in the confirmation email).
    return {
        "reg": reg, "event": event, "token": token, "status": current, "states": JoinState,
        "sandbox": _sandbox(), "teams_url": event.join_url if _may_see_meeting(link) else None,
        "meeting_id": event.join_meeting_id if _may_see_meeting(link) else None,
        "meeting_passcode": event.join_passcode if _may_see_meeting(link) else None,
        "revoked": link.revoked, "when_attendee": registrations.describe_when(event, reg.timezone),
        "heartbeat_seconds": joins.HEARTBEAT_SECONDS,
        "minutes_to_open": max(0, math.ceil((current.opens_at - utcnow()).total_seconds() / 60)),
    }


@bp.get("/<token>")
def join_GET(token: str):
    """The join page: too early (countdown), open (join), ended, cancelled, not confirmed or revoked."""
    link = _load(token)
    ctx = _context(link, token)
    if ctx["status"].state in (JoinState.open, JoinState.too_early) and not ctx["sandbox"]:
        # Fluent UI injects styles at run time; they get this request's nonce (see _call_csp).
        g.call_style_nonce = secrets.token_urlsafe(18)
    body = render_template("public/join.html", style_nonce=g.get("call_style_nonce"), **ctx)
    db.session.commit()  # a join token issued on first view (never for a revoked link) is kept
    return body, (410 if link.revoked else 200)


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
def session_POST(token: str):
    """Issue an ACS session for the embedded call (CSRF-protected, rate-limited); JSON either way."""
    link = joins.by_join_token(token)
    if link is None:
        return jsonify(error="This join link is not valid.", state="missing"), 404
    try:
        session = joins.start_session(link)
    except joins.JoinUnavailable as exc:
        db.session.rollback()
        code = 503 if exc.retry else 409
        return jsonify(error=exc.message, state=exc.state, retry=exc.retry), code
    db.session.commit()
    return jsonify(session.as_json())


@bp.post("/<token>/presence")
def presence_POST(token: str):
    """The join page says the attendee is still in the call, or has left it (`left=1`)."""
    link = joins.by_join_token(token)
    if link is None:
        return jsonify(error="This join link is not valid."), 404
    recorded = joins.record_presence(link, left=request.form.get("left") == "1")
    db.session.commit()
    return ("", 204) if recorded else (jsonify(error="This link cannot join the call now."), 409)


@bp.get("/<token>/device-check")
def device_check_GET(token: str):
    """Try camera and microphone before the event, with help when the browser blocks them."""
    link = _load(token)
    reg = link.registration
    join_link = None if link.revoked else url_for(".join_GET", token=token)
    return render_template("public/join_device_check.html", reg=reg, event=reg.event, join_link=join_link)
