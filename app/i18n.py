"""Languages: every page and every email is translatable (Flask-Babel).

The languages offered and the default are an admin's choice (Admin → Languages, kept in the settings;
LANGUAGES and DEFAULT_LANGUAGE give them until an admin saves). The locale of a request is, in order:
the `lang` a visitor chose with the language switcher (kept in their session), the best match of their
browser's Accept-Language, else the default; staff pages follow it as attendee pages do. Emails to an
attendee are rendered in the language their registration was made in (`flask_babel.force_locale`), also
by the worker, which has no request; emails to staff in the language of the page that sent them (an
invitation, a password reset), or the default when the worker sends them (admin alerts). An event's title
and description may have their own text per language (`Event.title_in`), shown through the `event_title`
and `event_description` filters; staff pages show the main text.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

from babel import Locale
from babel.support import NullTranslations, Translations
from flask import Flask, g, has_app_context, has_request_context, request, session
from flask_babel import Babel, Domain, get_locale, get_translations
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup
from wtforms.i18n import messages_path as wtforms_messages_path

from app.models import Event
from app.services.core import settings

#: Where the visitor's choice is kept in their session.
SESSION_KEY = "lang"

def offered() -> list[str]:
    return list(settings.get_languages().offered)


def default_language() -> str:
    return settings.get_languages().default


def language_name(code: str) -> str:
    """A language named in itself, e.g. "Deutsch"."""
    return Locale.parse(code).get_display_name(code).capitalize()


def select_locale() -> str:
    """The locale for the current request (see the module's docstring); outside one, the default."""
    default = default_language()
    if not has_request_context():
        return default
    chosen = session.get(SESSION_KEY)
    if chosen in offered():
        return chosen
    return request.accept_languages.best_match(offered(), default=default) or default


def remember_choice() -> None:
    """`?lang=de` on any page chooses the language for the rest of the visit."""
    lang = request.args.get("lang")
    if lang and lang in offered() and session.get(SESSION_KEY) != lang:
        session[SESSION_KEY] = lang


@cache
def wtforms_translations(language: str) -> Translations:
    """WTForms' own messages (its stock errors) in `language`, read once per process."""
    return Translations.load(wtforms_messages_path(), [language], domain="wtforms")


class _WTFormsMessages:
    """What Flask-WTF asks a request for (`request.wtforms_translations`), answered from the per-process
    catalogs in the request's language when a form first needs a message.
    """

    def ugettext(self, message: str) -> str:
        return wtforms_translations(current_language()).ugettext(message)

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        return wtforms_translations(current_language()).ungettext(singular, plural, n)


_WTFORMS_MESSAGES = _WTFormsMessages()


def _share_wtforms_translations() -> None:
    # Flask-WTF reads WTForms' catalog from disk again for every request unless the request carries it.
    request.wtforms_translations = _WTFORMS_MESSAGES  # type: ignore[attr-defined]


def current_language() -> str:
    return str(get_locale() or default_language())


def language_choices() -> list[dict[str, str]]:
    """The language switcher's entries (none with a single language)."""
    if not has_request_context() or len(offered()) < 2:
        return []
    current = current_language()
    return [{"code": code, "name": language_name(code), "current": code == current} for code in offered()]


def event_title(event: Event) -> str:
    """The event's title as the current reader sees it (their language's own title, else the main one)."""
    return event.title_in(settings.text_language())


def event_description(event: Event) -> str:
    """The event's description (Markdown) as the current reader sees it."""
    return event.description_in(settings.text_language())


def _translations() -> Translations | NullTranslations:
    """The catalog of the current locale, for the templates' gettext calls: straight from the app's domain
    (`_KeptDomain`), without Flask-Babel's look-up of the context's domain for every string.
    """
    return babel.domain_instance.get_translations() if has_app_context() else get_translations()


#: Where `_KeptDomain` keeps (locale, catalog) on Flask-Babel's per-context state.
_KEPT = "foyer_translations"


class _KeptDomain(Domain):
    """Flask-Babel's message domain, keeping the catalog it found beside the locale it found it for.

    Flask-Babel finds the catalog again for every string (a staff page translates over a hundred: form
    labels, choices, messages): about ten context-local look-ups and the locale's name each time. The
    catalog is kept on Flask-Babel's own state of the app context, for the locale object it was found
    for, so a `force_locale` (an email in the attendee's language) or a `refresh` finds its own.
    """

    def get_translations(self) -> Translations | NullTranslations:
        state = g.get("_flask_babel") if has_app_context() else None
        if state is None:
            return super().get_translations()
        kept = getattr(state, _KEPT, None)
        locale = getattr(state, "babel_locale", None)
        if kept is None or locale is None or kept[0] is not locale:
            translations = super().get_translations()  # which selects the locale when none is yet
            kept = (state.babel_locale, translations)
            setattr(state, _KEPT, kept)
        return kept[1]


class _Babel(Babel):
    """Flask-Babel, with the domain that keeps its catalog (`gettext`, `lazy_gettext` and the templates')."""

    @cached_property
    def domain_instance(self) -> Domain:
        return _KeptDomain(domain=self.domain)


babel = _Babel()


# --- the templates' gettext ------------------------------------------------------------------------------
# What Jinja's i18n extension installs with `newstyle=True` (`_make_new_gettext` and its siblings), with the
# same results, in one call instead of three: Jinja's own wrappers pass every string through
# `Context.call` twice (`_` resolves `gettext` again for each use) and format it even when it holds no
# placeholder. A page uses dozens of strings; these take a third of the time.


def _finished(eval_ctx: EvalContext, text: str, variables: dict[str, Any]) -> str:
    """Escaped as Jinja's newstyle gettext escapes, then formatted ("%%" becomes "%" as there)."""
    if eval_ctx.autoescape:
        text = Markup(text)  # noqa: S704  (our catalog's text, as Jinja's own gettext marks it; variables are escaped)
    return text % variables if variables or "%" in text else text


@pass_eval_context
def _gettext(__eval_ctx: EvalContext, __string: str, **variables: Any) -> str:
    return _finished(__eval_ctx, _translations().ugettext(__string), variables)


@pass_eval_context
def _ngettext(__eval_ctx: EvalContext, __singular: str, __plural: str, __num: int, **variables: Any) -> str:
    variables.setdefault("num", __num)
    return _finished(__eval_ctx, _translations().ungettext(__singular, __plural, __num), variables)


@pass_eval_context
def _pgettext(__eval_ctx: EvalContext, __context: str, __string: str, **variables: Any) -> str:
    variables.setdefault("context", __context)
    return _finished(__eval_ctx, _translations().upgettext(__context, __string), variables)


@pass_eval_context
def _npgettext(__eval_ctx: EvalContext, __context: str, __singular: str, __plural: str, __num: int,
               **variables: Any) -> str:
    variables.setdefault("context", __context)
    variables.setdefault("num", __num)
    return _finished(__eval_ctx, _translations().unpgettext(__context, __singular, __plural, __num), variables)


def register(app: Flask) -> None:
    # Babel's own default is never used: `select_locale` always answers, with the admin's default.
    babel.init_app(app, locale_selector=select_locale, default_translation_directories=str(settings.TRANSLATIONS))
    # What Flask-Babel installs, through the catalog kept per locale (see `_translations`) and the faster
    # newstyle callables above; `_` is `gettext` itself rather than Jinja's alias that looks it up again.
    app.jinja_env.newstyle_gettext = True  # type: ignore[attr-defined]
    app.jinja_env.globals.update(gettext=_gettext, ngettext=_ngettext, pgettext=_pgettext, npgettext=_npgettext,
                                 _=_gettext)
    app.before_request(remember_choice)
    app.before_request(_share_wtforms_translations)
    # `{% trans %}` blocks collapse their line breaks and indentation (pybabel extracts them the same way).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    # Globals, not a context processor: emails are rendered outside a request too.
    app.jinja_env.globals.update(current_language=current_language, language_choices=language_choices)
    app.jinja_env.filters.update(event_title=event_title, event_description=event_description)
