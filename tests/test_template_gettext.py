"""The templates' gettext callables (`app/i18n.py`) give exactly what Jinja's own newstyle gettext gives
(`install_gettext_translations(..., newstyle=True)`) over the same catalog: the same text, escaped the
same way, "%%" and placeholders formatted the same, in pages (autoescaped) and in plain-text emails."""

from __future__ import annotations

import pytest
from flask_babel import force_locale, get_translations
from jinja2 import Environment

#: Strings of each kind from the catalog: plain, with a placeholder, with "%%", with a context, plural.
CASES = [
    '{{ _("Admin") }}',
    '{{ gettext("Admin") }}',
    '{{ _("Cancelled: %(title)s", title=title) }}',
    '{{ _("Not in the catalog, 100%% <b>sure</b>") }}',
    '{{ _("Not in the catalog: %(title)s", title=title) }}',
    '{{ pgettext("role", "Admin") }}',
    '{{ ngettext("%(count)s recipient", "%(count)s recipients", 1, count=1) }}',
    '{{ ngettext("%(count)s recipient", "%(count)s recipients", n, count=n) }}',
    '{{ ngettext("%(num)s thing", "%(num)s things", n) }}',
    '{{ ngettext("%(label)s, %(count)s vote (%(percent)s%%)", "%(label)s, %(count)s votes (%(percent)s%%)", n, '
    'label=title, count=n, percent=40) }}',
    '{% trans %}Admin{% endtrans %}',
    '{% trans title=title %}Not in the catalog: <strong>{{ title }}</strong>{% endtrans %}',
    '{% trans count=n %}{{ count }} recipient{% pluralize %}{{ count }} recipients{% endtrans %}',
    '{{ _("Admin") is string }} {{ _("Admin")|length }}',
]
VALUES = {"title": "Fish & <Chips>", "n": 3}


@pytest.mark.db_agnostic
@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("autoescape", [True, False], ids=["page", "plain text"])
def test_templates_translate_as_jinjas_own_newstyle_gettext(app, language, autoescape):
    with app.test_request_context("/"), force_locale(language):
        jinjas = Environment(extensions=["jinja2.ext.i18n"], autoescape=autoescape)
        jinjas.install_gettext_translations(get_translations(), newstyle=True)
        foyers = app.jinja_env.overlay(autoescape=autoescape)
        for source in CASES:
            expected = jinjas.from_string(source).render(VALUES)
            assert foyers.from_string(source).render(VALUES) == expected, source
        if language == "de":  # the catalog is really used
            assert foyers.from_string(CASES[2]).render(VALUES).startswith("Abgesagt: Fish &")
            assert foyers.from_string(CASES[5]).render(VALUES) == "Administrator"


@pytest.mark.db_agnostic
def test_python_gettext_follows_the_locale_in_and_out_of_force_locale(app):
    """Flask-Babel's `gettext` and `lazy_gettext` (form labels, messages) find the catalog kept for the
    locale of the moment: an email forced into German, then the page's English again, then a refresh."""
    from flask_babel import gettext, lazy_gettext, refresh

    label = lazy_gettext("Admin")
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert (gettext("Admin"), str(label)) == ("Admin", "Admin")
        with force_locale("de"):
            assert (gettext("Admin"), str(label)) == ("Administration", "Administration")
            assert app.jinja_env.from_string('{{ _("Admin") }}').render() == "Administration"
        assert (gettext("Admin"), str(label)) == ("Admin", "Admin")
        assert app.jinja_env.from_string('{{ _("Admin") }}').render() == "Admin"
        refresh()
        assert gettext("Admin") == "Admin"
    with app.test_request_context("/", headers={"Accept-Language": "de"}):
        assert (gettext("Admin"), str(label)) == ("Administration", "Administration")
