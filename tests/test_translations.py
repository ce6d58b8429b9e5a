"""Pages and emails are translatable, and translated: every text in the templates is marked for
translation, and each language's catalog holds every marked string, translated, none fuzzy,
compiled into the .mo that is committed beside it (README "Languages")."""

from __future__ import annotations

import gettext
import re
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "app" / "templates"
TRANSLATIONS = ROOT / "app" / "translations"
LANGUAGES = sorted(p.name for p in TRANSLATIONS.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists())

#: Every template (pages, fragments, emails): every text in them is marked.
TEMPLATE_NAMES = sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*") if p.suffix in (".html", ".txt"))
#: Text that is the same in every language.
ALLOWED = {"Microsoft Teams", "(.ics)"}
#: Attributes people read (or hear); their values must be marked too.
READ_ATTRIBUTES = re.compile(r'\b(?:aria-label|title|alt|placeholder)="([^"]*)"')
TAG = re.compile(r"<[^>]*>", re.S)
#: Stands for whatever a tag or expression prints (a placeholder with no letters).
PRINTED = "\x00"


def _visible_text(source: str) -> str:
    """The template with every `{% trans %}` block and every tag, expression and comment blanked out:
    what is left is literal text printed as it is."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    out, depth, in_block, block = [], 0, False, []
    for _line, kind, value in env.lex(source):
        if kind == "block_begin":
            in_block, block = True, []
        elif kind == "block_end":
            in_block = False
            if block[:1] == ["trans"]:
                depth += 1
            elif block[:1] == ["endtrans"]:
                depth -= 1
        elif in_block and kind == "name":
            block.append(value)
        if kind == "data" and not depth:
            out.append(value)
        elif kind in ("variable_begin", "block_begin"):
            out.append(PRINTED)
    return "".join(out)


def _unmarked(text: str) -> list[str]:
    found = [f'attribute "{v}"' for v in READ_ATTRIBUTES.findall(text) if re.search(r"[A-Za-z]", v)]
    for chunk in TAG.sub(PRINTED, text).split(PRINTED):
        chunk = " ".join(chunk.split())
        for allowed in ALLOWED:
            chunk = chunk.replace(allowed, "")
        if re.search(r"[A-Za-z]", chunk):
            found.append(chunk)
    return found


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_text_in_the_templates_is_marked_for_translation(name):
    unmarked = _unmarked(_visible_text((TEMPLATES / name).read_text(encoding="utf-8")))
    assert not unmarked, f"{name}: wrap in {{{{ _('…') }}}} or {{% trans %}}: {unmarked}"


def test_the_check_finds_unmarked_text():
    assert _unmarked(_visible_text('<p class="x">Hello {{ name }}</p>')) == ["Hello"]
    assert _unmarked(_visible_text('<nav aria-label="Main"></nav>')) == ['attribute "Main"']
    assert _unmarked(_visible_text("{% trans n=1 %}Hello <b>{{ n }}</b>{% endtrans %}{{ _('Hi') }}")) == []


def _marked_strings() -> set:
    """Every msgid in the code and templates, extracted as `make translations` does (babel.cfg)."""
    method_map = [("app/**.py", "python"), ("app/templates/**.html", "jinja2"), ("app/templates/**.txt", "jinja2")]
    options = {"app/templates/**.html": {"trimmed": "true"}, "app/templates/**.txt": {"trimmed": "true"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "N_": None, "pgettext": ((1, "c"), 2),
                "lazy_pgettext": ((1, "c"), 2)}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, options, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_catalog_translates_every_marked_string(language):
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    missing = sorted(_marked_strings() - ids)
    assert not missing, f"run `make translations` and translate: {missing}"
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    untranslated = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple)
                                                              else m.string)]
    assert not fuzzy and not untranslated, f"{language}: fuzzy {fuzzy}, untranslated {untranslated}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_matches_its_source(language):
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    with (folder / "messages.mo").open("rb") as fh:
        committed = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
    assert committed == expected, "the .mo is out of date: run `make translations`"
