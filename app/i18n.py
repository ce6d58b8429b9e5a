"""Languages: the attendee-facing pages and every email to an attendee are translatable (Flask-Babel).

The locale of a request is, in order: the `lang` a visitor chose with the language switcher (kept in
their session), the best match of their browser's Accept-Language, else `DEFAULT_LANGUAGE`. Only pages
for attendees follow it; staff pages are English for now. Emails are rendered in the language a
registration was made in (`flask_babel.force_locale`), also by the worker, which has no request.
"""

from __future__ import annotations

from pathlib import Path

from babel import Locale
from flask import Flask, current_app, has_request_context, request, session
from flask_babel import Babel, get_locale

#: Blueprints whose pages attendees see; every other page (staff, admin, organizer) is in English.
ATTENDEE_BLUEPRINTS = frozenset({"public", "public_registration", "public_registration_manage", "public_join",
                                 "public_embed", "public_after_event"})
#: Where the visitor's choice is kept in their session.
SESSION_KEY = "lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

babel = Babel()


def offered() -> list[str]:
    return current_app.config["LANGUAGES"]


def _attendee_page() -> bool:
    return request.blueprint in ATTENDEE_BLUEPRINTS or request.endpoint is None


def select_locale() -> str:
    """The locale for the current request (see the module's docstring); outside one, the default."""
    default = current_app.config["DEFAULT_LANGUAGE"]
    if not has_request_context():
        return default
    if not _attendee_page():
        return "en"
    chosen = session.get(SESSION_KEY)
    if chosen in offered():
        return chosen
    return request.accept_languages.best_match(offered(), default=default) or default


def remember_choice() -> None:
    """`?lang=de` on an attendee page chooses the language for the rest of the visit."""
    lang = request.args.get("lang")
    if lang and lang in offered() and _attendee_page() and session.get(SESSION_KEY) != lang:
        session[SESSION_KEY] = lang


def current_language() -> str:
    return str(get_locale() or current_app.config["DEFAULT_LANGUAGE"])


def language_choices() -> list[dict[str, str]]:
    """The language switcher's entries (none on staff pages, or with a single language)."""
    if not has_request_context() or not _attendee_page() or len(offered()) < 2:
        return []
    current = current_language()
    return [{"code": code, "name": Locale.parse(code).get_display_name(code).capitalize(),
             "current": code == current} for code in offered()]


def register(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_locale=app.config["DEFAULT_LANGUAGE"],
                   default_translation_directories=str(TRANSLATIONS))
    app.before_request(remember_choice)
    # `{% trans %}` blocks collapse their line breaks and indentation (pybabel extracts them the same way).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    # Globals, not a context processor: emails are rendered outside a request too.
    app.jinja_env.globals.update(current_language=current_language, language_choices=language_choices)
