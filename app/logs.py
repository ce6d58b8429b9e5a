"""Logging that never records a personal link.

Manage (`/r/…`), join (`/j/…`), address-confirmation, staff invitation and password-reset links carry their
secret in the path, and request logs (the development server's, gunicorn's access log) print paths. Both go
through `redact_links`, which also masks the webhook secret Event Grid sends as `?secret=…`. Besides the known
prefixes, `learn_token_routes` adds every route of the app with a `<…token…>` argument, so a new token-bearing
route is redacted without anyone having to remember it.
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.glogging import SafeAtoms

#: Path prefixes after which the next segment is a secret link token (`learn_token_routes` adds more).
_PREFIXES: set[str] = {"/r/", "/j/", "/registrations/verify/", "/invitation/", "/password/reset/"}
#: `?token=…` (or `reset_token=…`) and the webhook `?secret=…` in a query string.
_QUERY = re.compile(r"([?&][A-Za-z_]*(?:token|secret)[A-Za-z_]*=)[^&\s\"]+", re.IGNORECASE)
_RULE_TOKEN = re.compile(r"<(?:[^:<>]+:)?(\w*token\w*)>")
_RULE_ARGUMENT = re.compile(r"<[^<>]+>")
REDACTED = "[redacted]"
_link: re.Pattern[str] | None = None


def _compile() -> re.Pattern[str]:
    # Longest prefixes first, so that "/registrations/verify/" is not cut short by a shorter one.
    alternatives = "|".join(sorted(_PREFIXES, key=len, reverse=True))
    return re.compile(rf"((?:{alternatives}))[^/?#\s\"'<>]+")


def learn_token_routes(url_map) -> None:
    """Add the static part before the token of every route with a `<…token…>` argument."""
    global _link
    for rule in url_map.iter_rules():
        found = _RULE_TOKEN.search(rule.rule)
        if found is None:
            continue
        before = rule.rule[:found.start()]
        # Other arguments before the token (an event's slug, say) match any one path segment.
        pieces = _RULE_ARGUMENT.split(before)
        _PREFIXES.add(r"[^/?#\s]+".join(re.escape(piece) for piece in pieces))
    _link = _compile()


def redact_links(value: str) -> str:
    """The text with every personal-link token replaced by "[redacted]"."""
    global _link
    if _link is None:
        _link = _compile()
    return _QUERY.sub(rf"\1{REDACTED}", _link.sub(rf"\1{REDACTED}", value))


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


class _RedactedAtoms(SafeAtoms):
    """gunicorn's access-log fields, each redacted as the log format reads it.

    gunicorn offers some sixty fields per request (every request and response header and every environ
    entry); the format reads about nine. Redacting on read cleans whichever fields a format names, its
    own `access_log_format` included, without paying for the fields it never prints.
    """

    def __getitem__(self, key: str):
        value = super().__getitem__(key)
        return redact_links(value) if isinstance(value, str) else value


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger with personal-link tokens removed from every access-log field."""

    atoms_wrapper_class = _RedactedAtoms
