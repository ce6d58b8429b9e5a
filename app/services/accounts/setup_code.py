"""The one-time setup code that guards first-run setup.

Until the first admin exists, `/setup` would let whoever reaches it first own the installation. So the
setup form also asks for a code that only the person running Foyer can see: it is printed in the web
server's log when it starts (and by `flask foyer setup-code`). Only its hash is kept, in the settings
table, so every process checks the same code; creating the first admin uses it up.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from flask import Flask
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.models import Setting, db, utcnow
from app.models.base import begin_write
from app.services.accounts.accounts import has_any_user
from app.services.core import settings
from app.services.core.errors import DomainError
from app.services.core.tokens import hash_token, token_matches

logger = logging.getLogger(__name__)

SETTING_KEY = "setup_code"
#: Letters and digits that cannot be mistaken for one another when copied from a terminal.
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#: A code issued this recently is kept at start: the web server's processes start together and must agree.
_SHARED_START = timedelta(seconds=60)
#: The command that prints a new code, for the log and the setup page.
COMMAND = "flask --app wsgi foyer setup-code"


def _new_code() -> str:
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)  # 80 bits


def _normalise(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum())


def issue() -> str:
    """A new setup code, replacing any earlier one (flushes); returns it in clear, to be shown once."""
    code = _new_code()
    value = {"hash": hash_token(_normalise(code)), "issued_at": utcnow().isoformat()}
    settings.store(SETTING_KEY, value)
    db.session.flush()
    return code


def check(code: str | None) -> None:
    """Raise a field error unless `code` is the current setup code."""
    row = db.session.get(Setting, SETTING_KEY)
    stored = row.value.get("hash") if row is not None and isinstance(row.value, dict) else None
    if not code or not token_matches(_normalise(code), stored):
        raise DomainError(_("That is not the current setup code. It is printed in Foyer's log when the web server "
                            "starts; `%(command)s` prints a new one.", command=COMMAND), field="setup_code")


def discard() -> None:
    """Use the code up: the installation has its first admin (flushes)."""
    row = db.session.get(Setting, SETTING_KEY)
    if row is not None:
        db.session.delete(row)
        db.session.flush()


def announce(app: Flask) -> str | None:
    """At web server start, while Foyer has no user: print a new setup code (commits; returns it).

    The web server's processes start together: a code issued moments ago by another one is kept.
    """
    with app.app_context():
        try:
            begin_write()
            if has_any_user():
                db.session.rollback()
                return None
            row = db.session.scalar(select(Setting).where(Setting.key == SETTING_KEY).with_for_update())
            if row is not None and _recent(row.value):
                db.session.rollback()
                logger.warning("Foyer is not set up yet: finish at /setup with the setup code printed above "
                               "(`%s` prints a new one).", COMMAND)
                return None
            code = issue()
            db.session.commit()
        except IntegrityError:  # another process of this start inserted its code first
            db.session.rollback()
            return None
        except SQLAlchemyError as exc:  # no schema yet (`flask db upgrade` has not run): nothing to guard
            db.session.rollback()
            logger.debug("No setup code printed: %s", exc)
            return None
        finally:
            db.session.remove()
    logger.warning("Foyer is not set up yet. Open %s/setup and enter this one-time setup code: %s",
                   app.config["PUBLIC_BASE_URL"], code)
    return code


def _recent(value) -> bool:
    try:
        issued = datetime.fromisoformat(value["issued_at"])
    except (TypeError, KeyError, ValueError):
        return False
    return utcnow() - issued < _SHARED_START
