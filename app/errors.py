"""Friendly error pages; every error rolls the session back before rendering."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.web import DatabaseBusy

logger = logging.getLogger(__name__)

MESSAGES = {
    400: (_l("Bad request"), _l("Something in that request was not right. Please go back and try again.")),
    403: (_l("Not allowed"), _l("You do not have permission to do that.")),
    404: (_l("Not found"), _l("We could not find that page. It may have moved or been removed.")),
    405: (_l("Not allowed"), _l("That action is not available here.")),
    413: (_l("Too large"), _l("That upload is too large. Please choose a smaller file.")),
    429: (_l("Too many requests"), _l("You have tried that too often. Please wait a little and try again.")),
    500: (_l("Something went wrong"), _l("An unexpected error happened on our side. Please try again.")),
    503: (_l("Very busy"), _l("We are very busy right now and could not save that. Nothing was stored: "
                              "please go back and try again in a moment.")),
}


#: The REST API answers every error in JSON, never with an HTML page.
API_PREFIX = "/api/"
API_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
             413: "too_large", 429: "rate_limited", 500: "server_error"}


def _render(code: int, detail: str | None = None):
    db.session.rollback()
    title, message = MESSAGES.get(code) or (gettext("Error %(code)s", code=code), gettext("Something went wrong."))
    if request.path.startswith(API_PREFIX):
        return jsonify(error={"code": API_CODES.get(code, f"http_{code}"), "message": str(detail or message),
                              "field": None}), code
    body = render_template("errors/error.html", code=code, title=title, message=detail or message)
    return body, code


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        logger.info("CSRF failure on %s: %s", request.path, exc.description)
        return _render(400, gettext("This form has expired or was sent from elsewhere. "
                                    "Please go back, reload the page and submit it again."))

    @app.errorhandler(DatabaseBusy)
    def _busy(exc: DatabaseBusy):
        logger.warning("Database busy through every try on %s; answered 503", request.endpoint)
        return _render(503)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        detail = None
        if exc.code == 413 and current_app.config.get("MAX_CONTENT_LENGTH"):
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            size = f"{limit // 1048576} MB" if limit >= 1048576 else f"{max(limit // 1024, 1)} KB"
            detail = gettext("That upload is larger than %(size)s. Go back: the form still holds what you typed. "
                             "Choose a smaller file and send it again.", size=size)
        response = _render(exc.code, detail)
        if exc.code == 405 and exc.response is None:
            return response[0], 405, {"Allow": ", ".join(getattr(exc, "valid_methods", None) or [])}
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http(exc)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return _render(500)

    @app.errorhandler(InternalServerError)
    def _ise(exc: InternalServerError):
        return _render(500)
