"""REST API v1: read events and registrations, create registrations through the registration engine.

Every call but the OpenAPI document needs `Authorization: Bearer <token>` (an admin issues tokens under
Admin → API tokens). The API never looks at the session cookie, so it needs no CSRF token: a browser
that holds a staff session but no API token gets a 401 like anyone else. Calls are rate-limited per
token, reads of registrations and every registration made are audited, and every error is JSON:
`{"error": {"code": …, "message": …, "field": …}}`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask_limiter.util import get_remote_address
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from app.extensions import csrf, db, limiter
from app.models import ApiScope, ApiToken, Event, EventStatus, Registration, RegistrationState, utcnow
from app.models.base import begin_write
from app.routes.api import openapi
from app.services.core import audit
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.integrations import api_tokens, webhooks
from app.services.integrations.representations import represent_event, represent_registration
from app.services.registration import registrations
from app.web import DatabaseBusy, own_transactions, unit_of_work

logger = logging.getLogger(__name__)

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
#: No session, no cookies: a bearer token authenticates each call (see the module docstring).
csrf.exempt(bp)

MAX_LIMIT = 100
DEFAULT_LIMIT = 50
PUBLIC_ENDPOINTS = frozenset({"api_v1.openapi_GET"})


class ApiError(Exception):
    """Answered as `{"error": {...}}` with `status`."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None):
    response = jsonify(error={"code": code, "message": message, "field": field})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="foyer-api"'
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    db.session.rollback()
    return error_response(exc.status, exc.code, exc.message, exc.field)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _rate_key() -> str:
    """Per token (its hash, never the token), or per client address without one."""
    bearer = _bearer()
    if bearer:
        return "api-token:" + hashlib.sha256(bearer.encode()).hexdigest()[:32]
    return "api-ip:" + get_remote_address()


def _rate_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


def _address_limit() -> str:
    return current_app.config["API_ADDRESS_RATE_LIMIT"]


limiter.limit(_rate_limit, key_func=_rate_key)(bp)
# A ceiling per client address as well: every made-up token would otherwise get a bucket of its own.
limiter.limit(_address_limit, key_func=lambda: "api-address:" + get_remote_address())(bp)


@bp.after_request
def _private(response):
    """Answers may hold personal data: never cached, never in a Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def scope(required: ApiScope):
    """Mark the scope a view needs (checked in `_authenticate`)."""

    def decorate(view):
        view.api_scope = required
        return view

    return decorate


@bp.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    token = api_tokens.authenticate(_bearer())
    if token is None:
        db.session.rollback()
        return error_response(401, "unauthorized", "Send a valid API token: Authorization: Bearer <token>.")
    view = current_app.view_functions.get(request.endpoint or "")
    required = getattr(view, "api_scope", ApiScope.write)
    if not token.allows(required):
        db.session.rollback()
        return error_response(403, "insufficient_scope", f"This token may only {token.scope.value}; "
                                                         f"this call needs the {required.value} scope.")
    g.api_token = token
    g.api_token_id, g.api_token_label = token.id, f"API token “{token.name}” (#{token.id})"
    if token.last_used_at is None or token.last_used_at < utcnow() - api_tokens.TOUCH_EVERY:
        # Its own short writer transaction, so reads stay readers.
        db.session.rollback()
        begin_write()
        api_tokens.touch(db.session.get(ApiToken, g.api_token_id))
        db.session.commit()
    return None


def _audit_read(action: str, summary: str, *, target: Any = None, event: Event | int | None = None) -> None:
    """Audit a read of personal data in its own writer transaction (the response is already built)."""
    event_id = event.id if isinstance(event, Event) else event
    db.session.rollback()
    begin_write()
    audit.record(action, actor_kind=g.api_token_label, target=target, event=event_id, summary=summary,
                 details={"api_token": g.api_token_id})
    db.session.commit()


def _paging() -> tuple[int, int]:
    try:
        limit = int(request.args.get("limit", DEFAULT_LIMIT))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        raise ApiError(400, "invalid_parameter", "limit and offset must be whole numbers.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    if not 0 <= offset <= 2**31 - 1:
        raise ApiError(400, "invalid_parameter", "offset must be 0 or more.", field="offset")
    return limit, offset


def _enum_param(name: str, enum_type):
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return enum_type(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in enum_type)
        raise ApiError(400, "invalid_parameter", f"{name} must be one of: {allowed}.", field=name) from None


def _load_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        raise ApiError(404, "not_found", "There is no event with this id.")
    return event


def _page(items: list[dict[str, Any]], total: int, limit: int, offset: int):
    return jsonify(data=items, total=total, limit=limit, offset=offset)


@bp.get("/openapi.json")
def openapi_GET():
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi.document(current_app.config["PUBLIC_BASE_URL"]))


@bp.get("/events")
@scope(ApiScope.read)
def events_GET():
    """Events, soonest first; `status` filters."""
    limit, offset = _paging()
    status = _enum_param("status", EventStatus)
    query = select(Event)
    if status is not None:
        query = query.where(Event.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    events = db.session.scalars(query.order_by(Event.starts_at, Event.id).limit(limit).offset(offset)
                                .options(undefer(Event.confirmed_count))).all()
    return _page([represent_event(e) for e in events], total, limit, offset)


@bp.get("/events/<int:event_id>")
@scope(ApiScope.read)
def event_GET(event_id: int):
    """One event with its schedule and registration questions."""
    return jsonify(represent_event(_load_event(event_id)))


@bp.get("/events/<int:event_id>/registrations")
@scope(ApiScope.read)
def event_registrations_GET(event_id: int):
    """An event's registrations in the order they came; `state` filters (audited: personal data)."""
    event = _load_event(event_id)
    limit, offset = _paging()
    state = _enum_param("state", RegistrationState)
    query = select(Registration).where(Registration.event_id == event.id)
    if state is not None:
        query = query.where(Registration.state == state)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    regs = db.session.scalars(query.order_by(Registration.created_at, Registration.id)
                              .limit(limit).offset(offset)).all()
    response = _page([represent_registration(r) for r in regs], total, limit, offset)
    _audit_read("api.registrations_read", f"Read {len(regs)} registration(s) through the API",
                target=("event", event_id), event=event_id)
    return response


@bp.get("/registrations/<int:registration_id>")
@scope(ApiScope.read)
def registration_GET(registration_id: int):
    """One registration (audited: personal data)."""
    reg = db.session.get(Registration, registration_id)
    if reg is None:
        raise ApiError(404, "not_found", "There is no registration with this id.")
    response = jsonify(represent_registration(reg))
    _audit_read("api.registration_read", f"Read registration {reg.id} through the API",
                target=("registration", registration_id), event=reg.event_id)
    return response


# --- creating registrations ---------------------------------------------------------------------------


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ApiError(422, "invalid", f"{name} must be a string.", field=name)
    return value


def _answers(event: Event, raw: Any) -> dict[int, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid", "answers must be an object keyed by question id.", field="answers")
    known = {q.id for q in event.questions}
    answers: dict[int, Any] = {}
    for key, value in raw.items():
        try:
            question_id = int(key)
        except ValueError:
            question_id = None
        if question_id not in known:
            raise ApiError(422, "invalid", f"The event has no question with id {str(key)[:20]}.", field="answers")
        ok = (isinstance(value, str | bool) or
              (isinstance(value, list) and all(isinstance(v, str) for v in value)))
        if not ok:
            raise ApiError(422, "invalid", "Each answer is a string, a list of strings or true/false.",
                           field=f"answers.{question_id}")
        answers[question_id] = value
    return answers


def _registration_data(event: Event) -> registrations.RegistrationData:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "Send a JSON object (Content-Type: application/json).")
    unknown = sorted(set(body) - {"first_name", "last_name", "email", "timezone", "answers", "consent_version"})
    if unknown:
        raise ApiError(422, "invalid", f"Unknown field: {unknown[0][:40]}.", field=unknown[0][:40])
    consent = body.get("consent_version")
    if consent is not None and (not isinstance(consent, int) or isinstance(consent, bool) or consent < 0
                                or consent > 2**31 - 1):
        raise ApiError(422, "invalid", "consent_version must be a whole number.", field="consent_version")
    return registrations.RegistrationData(
        first_name=_text(body, "first_name"), last_name=_text(body, "last_name"), email=_text(body, "email"),
        timezone=_text(body, "timezone", required=False) or event.timezone,
        answers=_answers(event, body.get("answers")), consent_version=consent,
    )


def _domain_error(exc: DomainError) -> ApiError:
    if isinstance(exc, registrations.RegistrationClosed):
        return ApiError(409, "registration_closed", exc.message)
    if isinstance(exc, registrations.EventFull):
        return ApiError(409, "event_full", exc.message)
    if isinstance(exc, NotAllowed):
        return ApiError(422, "not_allowed", exc.message, field=exc.field)
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", exc.message, field=exc.field)
    field = exc.field
    if field and field.startswith("q_"):
        field = "answers." + field[2:]
    return ApiError(422, "invalid", exc.message, field=field)


@bp.post("/events/<int:event_id>/registrations")
@scope(ApiScope.write)
@own_transactions  # the write lock is taken only around the registration itself
def event_registrations_POST(event_id: int):
    """Register someone, exactly as the public form does: capacity, waitlist, approval, verification,
    questions, and the emails that go with them. A repeated address answers `duplicate` (200).
    """
    event = _load_event(event_id)
    data = _registration_data(event)
    try:
        prepared = registrations.prepare(event, data)
        webhooks.preload_subscribers()  # read before the event's lock, as the public form does
    except DomainError as exc:
        raise _domain_error(exc) from exc

    def register():
        outcome = registrations.register(event, data, prepared=prepared)
        reg = outcome.registration
        if outcome.kind != "duplicate" and reg is not None:
            audit.record("api.registration_created", actor_kind=g.api_token_label, target=reg, event=event_id,
                         summary=f"Registration {reg.id} made through the API ({outcome.kind})",
                         details={"api_token": g.api_token_id})
        return outcome

    try:
        outcome = unit_of_work(register, what=f"API registration for event {event_id}",
                               once_more_on=(IntegrityError,))
    except DomainError as exc:
        raise _domain_error(exc) from exc
    except IntegrityError:
        raise ApiError(409, "conflict", "This address was registered at the same moment; try again.") from None
    except DatabaseBusy:
        raise ApiError(503, "busy", "Foyer is very busy; try again in a moment.") from None
    reg = outcome.registration
    body = {"outcome": outcome.kind, "registration": represent_registration(reg) if reg is not None else None}
    response = jsonify(body)
    if outcome.kind == "duplicate":
        return response
    response.status_code = 201
    response.headers["Location"] = url_for(".registration_GET", registration_id=reg.id)
    logger.info("Registration %s made through API token %s (%s)", reg.id, g.api_token_id, outcome.kind)
    return response
