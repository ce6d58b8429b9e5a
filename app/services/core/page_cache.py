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
swapped in. Keyed by content, it has no age limit and nothing to drop. It also takes the event's speakers,
sessions, tags and questions from `event_children`: read once per version of the event, where the version
is the event's `updated_at`, which every change to those rows moves (`_before_flush`), in any process.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app.models import Event, EventSession, EventTag, EventText, Question, Setting, Speaker, utcnow

#: Pages kept per process (an event page is ~40 KB, so ~10 MB at most).
MAX_ENTRIES = 256
#: `session.info` flag: this transaction changed something public pages show.
CHANGED = "foyer.public_pages_changed"
#: How long a process keeps an event's children without seeing a new version. Foyer's own writes always
#: move the version; this bounds what a change made around Foyer (SQL typed by hand) can leave behind.
CHILDREN_MAX_AGE = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class CachedPage:
    html: str
    #: The per-visitor values as they appear in `html`, replaced on every reuse.
    csrf_token: str
    stamp: str | None


class AgedCache(Generic[T]):
    """A small thread-safe LRU with an age limit."""

    def __init__(self, max_age: float, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[Hashable, tuple[T, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_age = max_age
        self._max_entries = max_entries
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.max_age > 0

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() - entry[1] >= self.max_age:
                del self._entries[key]
                return None
            return entry[0]

    def store(self, key: Hashable, value: T) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = (value, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class PageCache(AgedCache[CachedPage]):
    """Rendered pages with the per-visitor values each carries."""

    def put(self, key: Hashable, html: str, *, csrf_token: str, stamp: str | None) -> None:
        self.store(key, CachedPage(html, csrf_token, stamp))


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


def event_children(app: Flask | None = None) -> AgedCache[dict[str, Any]]:
    """Each event's speakers, sessions, tags and questions as public pages show them, detached from any
    database session, keyed by (event id, the event's `updated_at`) (see `catalog.with_page_children`).
    """
    app = app or current_app
    return app.extensions["foyer_event_children"]


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
    touched = [obj for obj in (*session.new, *session.dirty, *session.deleted) if isinstance(obj, shown)]
    if touched:
        session.info[CHANGED] = True
        _move_versions(session, touched)


def _move_versions(session: Session, touched: list) -> None:
    """Give every event whose page content this flush changes a new `updated_at`, the version other
    processes key their copy of its children by. A change to a speaker, question, session, tag or text
    moves its event's version, as a change to the event's own columns does.

    A child added through its event's list (`event.tag_rows.append(...)`) has no `event_id` yet, but then
    the event itself has changed (its list), so it is in `session.dirty` and is moved here too.
    """
    now = utcnow()
    with session.no_autoflush:
        for obj in touched:
            if isinstance(obj, Setting):
                continue
            if isinstance(obj, Event):
                event = obj
            elif obj.event_id is None:
                continue
            else:
                event = session.get(Event, obj.event_id)
            if event is None or event in session.deleted or event in session.new:
                continue
            if obj in session.dirty and not session.is_modified(obj):
                continue
            event.updated_at = now


def _after_commit(session: Session) -> None:
    if session.info.pop(CHANGED, False) and has_app_context() and "foyer_event_pages" in current_app.extensions:
        event_pages().clear()
        event_children().clear()


def _after_rollback(session: Session) -> None:
    session.info.pop(CHANGED, None)


def install(app: Flask, session_class: type[Session]) -> None:
    """Give the app its cache and register the change listeners on the session class (once)."""
    app.extensions["foyer_event_pages"] = PageCache(max_age=app.config["PUBLIC_PAGE_CACHE_SECONDS"])
    app.extensions["foyer_form_fragments"] = PageCache(max_age=math.inf)
    app.extensions["foyer_event_children"] = AgedCache(max_age=CHILDREN_MAX_AGE)
    for name, listener in (("before_flush", _before_flush), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not sa_event.contains(session_class, name, listener):
            sa_event.listen(session_class, name, listener)
