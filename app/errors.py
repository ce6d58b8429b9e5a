"""Friendly error pages; every error rolls the session back before rendering."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.web import DatabaseBusy

logger = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "Something in that request was not right. Please go back and try again."),
    403: ("Not allowed", "You do not have permission to do that."),
    404: ("Not found", "We could not find that page. It may have moved or been removed."),
    405: ("Not allowed", "That action is not available here."),
    413: ("Too large", "That upload is too large. Please choose a smaller file."),
    429: ("Too many requests", "You have tried that too often. Please wait a little and try again."),
    500: ("Something went wrong", "An unexpected error happened on our side. Please try again."),
    503: ("Very busy", "We are very busy right now and could not save that. Nothing was stored: "
                       "please go back and try again in a moment."),
}


#: The REST API answers every error in JSON, never with an HTML page.
API_PREFIX = "/api/"
API_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
             413: "too_large", 429: "rate_limited", 500: "server_error"}


def _render(code: int, detail: str | None = None):
    db.session.rollback()
    if request.path.startswith(API_PREFIX):
        message = MESSAGES.get(code, ("", "Something went wrong."))[1]
        return jsonify(error={"code": API_CODES.get(code, f"http_{code}"), "message": detail or message,
                              "field": None}), code
    title, message = MESSAGES.get(code, (f"Error {code}", "Something went wrong."))
    body = render_template("errors/error.html", code=code, title=title, message=detail or message)
    return body, code


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        logger.info("CSRF failure on %s: %s", request.path, exc.description)
        return _render(400, "This form has expired or was sent from elsewhere. "
                            "Please go back, reload the page and submit it again.")

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
            detail = (f"That upload is larger than {size}. Go back: the form still holds what you typed. "
                      "Choose a smaller file and send it again.")
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
