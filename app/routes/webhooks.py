"""Webhooks other services call: ACS delivery reports through Event Grid (`POST /webhooks/acs/events`).

Not a page: no session, no CSRF token (Event Grid cannot send one), JSON in and out. The caller proves
itself with the webhook secret (`?secret=` in the subscribed URL, or the `X-Foyer-Webhook-Secret`
delivery-property header); the request is rate-limited, and anything unreadable is a 400 with a JSON
error, never a 500.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, jsonify, request

from app.extensions import csrf, db, limiter
from app.services.messaging import delivery_reports

logger = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

def _rate_limit() -> str:
    return current_app.config["ACS_WEBHOOK_RATE_LIMIT"]


@bp.post("/acs/events")
@csrf.exempt
@limiter.limit(_rate_limit)
def acs_events_POST():
    """Answer Event Grid's validation handshake, or record ACS delivery reports (each event once)."""
    provided = request.args.get(delivery_reports.SECRET_PARAM) or request.headers.get(delivery_reports.SECRET_HEADER)
    if not delivery_reports.secret_matches(provided):
        logger.warning("ACS webhook call refused: %s webhook secret", "wrong" if provided else "no")
        return jsonify(error="Missing or wrong webhook secret."), 401
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        body = None
    if body is None:
        return jsonify(error="The body must be JSON (an array of Event Grid events)."), 400
    try:
        events = delivery_reports.parse(body)
    except delivery_reports.BadEvents as exc:
        return jsonify(error=str(exc)), 400
    outcome = delivery_reports.handle(events)
    db.session.commit()
    if outcome.validation_code is not None:
        logger.info("Event Grid subscription validated")
        return jsonify(validationResponse=outcome.validation_code)
    return jsonify(received=outcome.received, recorded=outcome.recorded, duplicates=outcome.duplicates,
                   unknown=outcome.unknown, ignored=len(outcome.ignored_types))
