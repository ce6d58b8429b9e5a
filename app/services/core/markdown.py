"""Organizer Markdown rendered to HTML and sanitised with an allow-list (nh3 / Ammonia), and the same
Markdown as plain text (pages, invitations, plain-text emails).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable("table")
    .enable("strikethrough")
)

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}


def render_markdown(text: str | None) -> Markup:
    """Render Markdown to safe HTML; raw HTML in the source is escaped, then the output is sanitised."""
    if not text:
        return Markup("")
    return _render(text)


@lru_cache(maxsize=512)
def _render(text: str) -> Markup:
    """Rendering is a pure function of the text: popular event pages render their description once."""
    html = _md.render(text)
    # Demote h1 so the page keeps a single top-level heading.
    html = html.replace("<h1>", "<h2>").replace("</h1>", "</h2>")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


_BLOCK_END = re.compile(r"</(p|h[1-6]|blockquote|pre|table|ul|ol)>|<hr\s*/?>", re.IGNORECASE)
_LINE_END = re.compile(r"</(li|tr)>|<br\s*/?>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<li>", re.IGNORECASE)
_BETWEEN_TAGS = re.compile(r"(?<=>)\n+(?=<)|(?<=<br>)\n+|(?<=<br />)\n+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def markdown_to_text(text: str | None, *, links: bool = False) -> str:
    """Plain text from organizer Markdown: rendered, stripped of every tag, blank lines between blocks
    and one line per list item. With `links`, a link keeps its address as "text (url)" (plain-text email).
    """
    return _markdown_to_text(text, links) if text else ""


#: A rendered link: its address (HTML-escaped) and its text.
_LINK = re.compile(r'<a\s[^>]*?href="([^"]*)"[^>]*>(.*?)</a>', re.DOTALL)


def _link_as_text(match: re.Match) -> str:
    url, label = match.group(1), match.group(2)
    shown = html.unescape(nh3.clean(label, tags=set())).strip()
    return label if html.unescape(url) in (shown, f"mailto:{shown}") else f"{label} ({url})"


@lru_cache(maxsize=512)
def _markdown_to_text(text: str, links: bool = False) -> str:
    """A pure function of the text: every invite and email of an event converts its description once."""
    rendered = str(render_markdown(text))
    if not rendered:
        return ""
    if links:
        rendered = _LINK.sub(_link_as_text, rendered)
    # Drop the renderer's own newlines between tags; the block and line ends below put them back.
    rendered = _BETWEEN_TAGS.sub("", rendered)
    rendered = _LIST_ITEM.sub("<li>• ", rendered)
    rendered = _BLOCK_END.sub(lambda m: m.group(0) + "\n\n", rendered)
    rendered = _LINE_END.sub(lambda m: m.group(0) + "\n", rendered)
    stripped = html.unescape(nh3.clean(rendered, tags=set()))
    lines = "\n".join(" ".join(line.split()) for line in stripped.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()
