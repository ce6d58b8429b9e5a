"""A faster `wtforms.widgets.html_params`, byte-for-byte the same output.

WTForms builds every attribute of every rendered field with `Markup('{k}="{v}"').format(...)`: a
string.Formatter pass per attribute. An event page renders some 35 fields and labels (the registration
form), and that formatting was a fifth of a fresh page's CPU. This version escapes the same way with
plain string operations. `install()` (called by the app factory) puts it where WTForms' widgets and
labels look it up.
"""

from __future__ import annotations

from markupsafe import Markup, escape
from wtforms import widgets
from wtforms.fields import core as fields_core
from wtforms.widgets import core as widgets_core

clean_key = widgets_core.clean_key
#: WTForms' own, kept for comparison (tests) and for `uninstall`.
original_html_params = widgets_core.html_params


def html_params(**kwargs) -> Markup:
    """Attributes as HTML, sorted by name: `True` renders the bare name, `False` nothing, any other
    value is escaped (a double quote inside a value given as Markup becomes &quot;).
    """
    params = []
    for key, value in sorted(kwargs.items()):
        name = str(escape(clean_key(key)))
        if value is True:
            params.append(name)
        elif value is False:
            continue
        else:
            params.append(f'{name}="{str(escape(value)).replace(chr(34), "&quot;")}"')
    return Markup(" ".join(params))  # noqa: S704  (every part escaped above)


def install() -> None:
    """Make WTForms render attributes with `html_params` (idempotent)."""
    widgets_core.html_params = html_params
    widgets.html_params = html_params
    for widget in (widgets_core.Input, widgets_core.Button):  # they call `self.html_params`
        widget.html_params = staticmethod(html_params)
    fields_core.widgets.html_params = html_params  # labels call `widgets.html_params`
