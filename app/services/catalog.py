"""The public catalogue: which events the public sees, how many seats are left, when registration
is open, and plain-text / absolute-URL helpers shared by pages, the iCal feed and (later) emails.
"""

from __future__ import annotations

import enum
import html
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import nh3
from flask import current_app
from sqlalchemy import Select, and_, func, or_, select

from app.models import Event, EventStatus, db, utcnow
from app.services.markdown import render_markdown

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
#: How far back the iCal feed reaches, so subscribers keep recent events (and see cancellations).
FEED_LOOKBACK = timedelta(days=30)
_BLOCK_END = re.compile(r"</(p|h[1-6]|blockquote|pre|table|ul|ol)>|<hr\s*/?>", re.IGNORECASE)
_LINE_END = re.compile(r"</(li|tr)>|<br\s*/?>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<li>", re.IGNORECASE)
_BETWEEN_TAGS = re.compile(r"(?<=>)\n+(?=<)|(?<=<br>)\n+|(?<=<br />)\n+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class CatalogPage:
    """One page of the public catalogue."""

    events: list[Event]
    page: int
    pages: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _upcoming_query(now: datetime) -> Select[tuple[Event]]:
    return select(Event).where(Event.status == EventStatus.published, Event.ends_at > now)


def upcoming_events(page: int = 1, *, per_page: int = PAGE_SIZE, now: datetime | None = None) -> CatalogPage | None:
    """Published, not cancelled events that have not ended, soonest first; None for a page past the end."""
    now = now or utcnow()
    page = max(page, 1)
    total = db.session.scalar(select(func.count()).select_from(_upcoming_query(now).subquery())) or 0
    pages = max(math.ceil(total / per_page), 1)
    if page > pages:
        return None
    events = db.session.scalars(
        _upcoming_query(now).order_by(Event.starts_at, Event.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return CatalogPage(events=list(events), page=page, pages=pages, total=total)


def feed_events(now: datetime | None = None) -> list[Event]:
    """Events for the public iCal feed: published ones, and published-then-cancelled ones, that end
    after `now - FEED_LOOKBACK`. Cancelled events stay in the feed so calendars drop them.
    """
    now = now or utcnow()
    visible = or_(
        Event.status == EventStatus.published,
        and_(Event.status == EventStatus.cancelled, Event.published_at.is_not(None)),
    )
    query = select(Event).where(visible, Event.ends_at > now - FEED_LOOKBACK).order_by(Event.starts_at, Event.id)
    return list(db.session.scalars(query))


def is_public(event: Event) -> bool:
    """Published events, and cancelled ones that had been published (a cancelled draft stays hidden)."""
    return event.is_published or (event.is_cancelled and event.published_at is not None)


# --- seats ------------------------------------------------------------------------------------------


class SeatState(enum.StrEnum):
    unlimited = "unlimited"
    available = "available"
    waitlist = "waitlist"
    full = "full"


@dataclass(frozen=True)
class Availability:
    """What the public is told about seats."""

    state: SeatState
    seats_left: int | None

    @property
    def label(self) -> str:
        if self.state == SeatState.unlimited:
            return "Unlimited seats"
        if self.state == SeatState.available:
            return "1 seat left" if self.seats_left == 1 else f"{self.seats_left} seats left"
        if self.state == SeatState.waitlist:
            return "Fully booked · waitlist open"
        return "Fully booked"


def seats_left(event: Event) -> int | None:
    """Free seats (capacity minus confirmed registrations), or None when capacity is unlimited.

    Pending registrations take no seat until approved; the seat counter is kept by the
    registration engine (services/registrations.py).
    """
    if event.capacity is None:
        return None
    return max(event.capacity - (event.confirmed_count or 0), 0)


def availability(event: Event) -> Availability:
    """Seats left, unlimited, waitlist open, or full — for cards and the event page."""
    left = seats_left(event)
    if left is None:
        return Availability(SeatState.unlimited, None)
    if left > 0:
        return Availability(SeatState.available, left)
    return Availability(SeatState.waitlist if event.waitlist_enabled else SeatState.full, 0)


# --- registration window ----------------------------------------------------------------------------


class WindowState(enum.StrEnum):
    not_yet_open = "not_yet_open"
    open = "open"
    closed = "closed"
    ended = "ended"
    cancelled = "cancelled"


@dataclass(frozen=True)
class RegistrationWindow:
    state: WindowState
    opens_at: datetime | None
    closes_at: datetime


def registration_window(event: Event, now: datetime | None = None) -> RegistrationWindow:
    """Whether registration is open now. Without an explicit close it stays open until the event
    ends: people may still sign up for an online event that is already under way.
    """
    now = now or utcnow()
    closes_at = event.registration_closes_at or event.ends_at
    if event.is_cancelled:
        state = WindowState.cancelled
    elif event.ends_at <= now:
        state = WindowState.ended
    elif event.registration_opens_at and event.registration_opens_at > now:
        state = WindowState.not_yet_open
    elif closes_at <= now:
        state = WindowState.closed
    else:
        state = WindowState.open
    return RegistrationWindow(state=state, opens_at=event.registration_opens_at, closes_at=closes_at)


# --- text and links ---------------------------------------------------------------------------------


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


def excerpt(text: str | None, limit: int = 180) -> str:
    """A one-paragraph plain-text teaser of at most `limit` characters, cut at a word boundary."""
    flat = " ".join(markdown_to_text(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return cut + "…"


def public_url(endpoint: str, **values) -> str:
    """An absolute URL on PUBLIC_BASE_URL, never the request's Host (works without a request, too)."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["PUBLIC_BASE_URL"] + path


def event_url(event: Event) -> str:
    """The absolute public URL of an event page."""
    return public_url("public.event_GET", slug=event.slug)


def format_duration(start: datetime, end: datetime) -> str:
    """'1 hour 30 minutes', '45 minutes', '2 days 3 hours'."""
    minutes = max(int((end - start).total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    for amount, unit in ((days, "day"), (hours, "hour"), (mins, "minute")):
        if amount:
            parts.append(f"{amount} {unit}{'' if amount == 1 else 's'}")
    return " ".join(parts) or "0 minutes"
