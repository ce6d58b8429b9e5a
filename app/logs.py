"""Logging that never records a personal link.

Manage (`/r/…`), join (`/j/…`), address-confirmation, staff invitation and password-reset links carry their
secret in the path, and request logs (the development server's, gunicorn's access log) print paths. Both go
through `redact_links`.
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger as GunicornLogger

#: Path segments after which the next segment is a secret link token.
_LINK = re.compile(r"(/(?:r|j|registrations/verify|invitation|password/reset)/)[A-Za-z0-9_-]{16,}")
#: The webhook secret Event Grid sends in the query string (`/webhooks/…?secret=…`).
_QUERY_SECRET = re.compile(r"([?&]secret=)[^&\s\"']+")
REDACTED = r"\1[redacted]"


def redact_links(value: str) -> str:
    """The text with every personal-link token and webhook secret replaced by "[redacted]"."""
    return _QUERY_SECRET.sub(REDACTED, _LINK.sub(REDACTED, value))


class LinkRedactingFilter(logging.Filter):
    """Rewrites a record's message (after %-formatting) without personal-link tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_links(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _add_once(target: logging.Filterer) -> None:
    if not any(isinstance(f, LinkRedactingFilter) for f in target.filters):
        target.addFilter(LinkRedactingFilter())


#: Libraries that talk a lot at INFO: the Azure SDK prints every request's and response's headers, APScheduler
#: every job it adds, Alembic its context on every start. They speak at WARNING unless LOG_LEVEL is DEBUG.
CHATTY_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "apscheduler", "alembic", "flask_migrate")


def install(level: str) -> None:
    """Basic logging at `level`; every record that reaches a root handler is redacted (Flask's
    "Exception on /r/… [GET]" included), and so is the development server's request log at its source.
    """
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        _add_once(handler)
    _add_once(logging.getLogger("werkzeug"))
    quiet_chatty_libraries(level)


def quiet_chatty_libraries(level: str) -> None:
    """CHATTY_LOGGERS at WARNING, or at DEBUG when that is the level asked for."""
    debug = logging.getLevelName(str(level).upper()) == logging.DEBUG
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger with personal-link tokens removed from every access-log field."""

    def atoms(self, resp, req, environ, request_time):
        values = super().atoms(resp, req, environ, request_time)
        return {key: redact_links(value) if isinstance(value, str) else value for key, value in values.items()}
