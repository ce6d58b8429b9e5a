"""Rendered public event pages, reused for a moment by each web process (a "microcache").

An event page is the same for every anonymous visitor but for two per-visitor values: the CSRF token
(in the form and in `<body hx-headers>`) and the registration form's signed "shown at" stamp. A page is
rendered once and, for `PUBLIC_PAGE_CACHE_SECONDS` (1 s by default), each later view in the same
process swaps in the visitor's own token and a fresh stamp without reading the database. At a few
hundred views a second that removes nearly all the work; what a visitor sees is at most that old.

Within a process a page is dropped the moment a transaction that edits what it shows commits (the event,
its speakers, questions, sessions or texts in other languages, or a site setting such as branding): an
organizer who saves and reloads sees the change at once in that process, and in the others within the
age limit. Seats taken or freed by registrations do not drop pages (at busy times that would be every
page): the count shown is at most that old everywhere. Seats are decided by the database when someone
registers, never by a page. Signed-in staff (their own navigation) and visitors with a flash message
waiting are always rendered.

Below that, and also when the page reuse is off, a page rendered afresh takes its blank registration form
from `form_fragments`: the form rendered once for a key of everything it shows, with the same two values
swapped in. Keyed by content, it has no age limit and nothing to drop.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from flask import Flask, current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app.models import Event, EventSession, EventTag, EventText, Question, Setting, Speaker

#: Pages kept per process (an event page is ~40 KB, so ~10 MB at most).
MAX_ENTRIES = 256
#: `session.info` flag: this transaction changed something public pages show.
CHANGED = "foyer.public_pages_changed"


@dataclass(frozen=True)
class CachedPage:
    html: str
    #: The per-visitor values as they appear in `html`, replaced on every reuse.
    csrf_token: str
    stamp: str | None
    stored_at: float


class PageCache:
    """A small thread-safe LRU of rendered pages with an age limit."""

    def __init__(self, max_age: float, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._lock = threading.Lock()
        self.max_age = max_age
        self._max_entries = max_entries
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.max_age > 0

    def get(self, key: Hashable) -> CachedPage | None:
        with self._lock:
            page = self._entries.get(key)
            if page is None:
                return None
            if self._clock() - page.stored_at >= self.max_age:
                del self._entries[key]
                return None
            return page

    def put(self, key: Hashable, html: str, *, csrf_token: str, stamp: str | None) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = CachedPage(html, csrf_token, stamp, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def personalise(page: CachedPage, *, csrf_token: str, stamp: str | None) -> str:
    """The cached HTML with this visitor's CSRF token and a fresh form stamp."""
    html = page.html.replace(page.csrf_token, csrf_token)
    if page.stamp and stamp:
        html = html.replace(page.stamp, stamp)
    return html


def event_pages(app: Flask | None = None) -> PageCache:
    """This application's cache of event pages (each app object has its own)."""
    app = app or current_app
    return app.extensions["foyer_event_pages"]


def form_fragments(app: Flask | None = None) -> PageCache:
    """Blank registration forms as rendered, keyed by everything they show (the public registration
    route builds the key): never stale, so kept without an age limit, a few hundred at most.
    """
    app = app or current_app
    return app.extensions["foyer_form_fragments"]


# --- dropping pages when what they show changes -------------------------------------------------------


def _shown_publicly() -> tuple[type, ...]:
    return Event, Speaker, Question, Setting, EventTag, EventSession, EventText


def _before_flush(session: Session, flush_context, instances) -> None:
    shown = _shown_publicly()
    if any(isinstance(obj, shown) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(CHANGED, False) and has_app_context() and "foyer_event_pages" in current_app.extensions:
        event_pages().clear()


def _after_rollback(session: Session) -> None:
    session.info.pop(CHANGED, None)


def install(app: Flask, session_class: type[Session]) -> None:
    """Give the app its cache and register the change listeners on the session class (once)."""
    app.extensions["foyer_event_pages"] = PageCache(max_age=app.config["PUBLIC_PAGE_CACHE_SECONDS"])
    app.extensions["foyer_form_fragments"] = PageCache(max_age=math.inf)
    for name, listener in (("before_flush", _before_flush), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not sa_event.contains(session_class, name, listener):
            sa_event.listen(session_class, name, listener)
