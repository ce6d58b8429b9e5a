"""The public catalogue: which events the public sees (upcoming or past, searched, by tag), how many
seats are left, when registration is open, banner thumbnails, tags, the metadata shared links show
(Open Graph, schema.org/Event), and the plain-text teaser of a description.
"""

from __future__ import annotations

import enum
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext, ngettext
from PIL import Image, ImageOps
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload, undefer
from sqlalchemy.orm.attributes import set_committed_value

from app.models import Event, EventStatus, EventTag, EventText, Question, db, utcnow
from app.services.core import page_cache
from app.services.core.errors import DomainError
from app.services.core.links import event_url, public_url, upload_url
from app.services.core.markdown import markdown_to_text
from app.services.core.paging import Page, page_of
from app.services.core.settings import get_branding, text_language
from app.services.core.uploads import ProcessedImage

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
#: How far back the iCal feed reaches, so subscribers keep recent events (and see cancellations).
FEED_LOOKBACK = timedelta(days=30)


#: The catalogue's two tabs.
WHEN_CHOICES = ("upcoming", "past")
QUERY_MAX = 100


def clean_query(text: str | None) -> str:
    """The search text as searched: one line, single spaces, at most 100 characters."""
    return " ".join((text or "").split())[:QUERY_MAX]


def _catalog_query(when: str, now: datetime, query: str, tag: str) -> Select[tuple[Event]]:
    """Published events that have not ended (upcoming) or have (past), matching the search and tag."""
    ended = Event.ends_at <= now
    statement = select(Event).where(Event.status == EventStatus.published, ended if when == "past" else ~ended)
    for word in query.lower().split():
        # Every word somewhere in the title or the description, in any language (case-insensitive,
        # wildcards literal).
        in_texts = select(EventText.event_id).where(or_(
            func.lower(EventText.title).contains(word, autoescape=True),
            func.lower(EventText.description).contains(word, autoescape=True)))
        statement = statement.where(or_(func.lower(Event.title).contains(word, autoescape=True),
                                        func.lower(Event.description).contains(word, autoescape=True),
                                        Event.id.in_(in_texts)))
    if tag:
        statement = statement.where(Event.id.in_(select(EventTag.event_id).where(EventTag.tag == tag)))
    return statement


def list_events(when: str = "upcoming", *, query: str = "", tag: str = "", page: int = 1,
                per_page: int = PAGE_SIZE, now: datetime | None = None) -> Page[Event] | None:
    """One page of the catalogue: upcoming events soonest first, or past ones latest first, optionally
    searched (title and description) and filtered by tag; None for a page past the end.
    """
    now = now or utcnow()
    when = when if when in WHEN_CHOICES else "upcoming"
    statement = _catalog_query(when, now, clean_query(query), normalize_tag(tag))
    order = (Event.starts_at.desc(), Event.id.desc()) if when == "past" else (Event.starts_at, Event.id)
    # The seats taken are counted in the same query, not once per card.
    return page_of(statement, page=page, per_page=per_page, order_by=order,
                   options=[selectinload(Event.tag_rows), selectinload(Event.texts), undefer(Event.confirmed_count)],
                   past_end="none")


def catalogue_tags(when: str = "upcoming", limit: int = 30) -> list[str]:
    """Tags of the tab's published events (upcoming or past), most used first, for the tag links."""
    ended = Event.ends_at <= utcnow()
    rows = db.session.execute(
        select(EventTag.tag, func.count()).join(Event, Event.id == EventTag.event_id)
        .where(Event.status == EventStatus.published, ended if when == "past" else ~ended)
        .group_by(EventTag.tag).order_by(func.count().desc(), EventTag.tag).limit(limit)
    ).all()
    return [tag for tag, _ in rows]


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


# --- what an event's page shows -------------------------------------------------------------------


#: The children of an event its public page shows, each a list on `Event`.
PAGE_CHILDREN = ("speakers", "sessions", "tag_rows", "questions")


def with_page_children(event: Event) -> None:
    """Fill in the event's speakers, sessions, tags and questions from this process's copy for the
    event's version (its `updated_at`), read once per version instead of four statements per view.

    For rendering only: the children are shared by every request of the process and belong to no
    database session, so nothing may change them or add them to one (a registration, say, would cascade
    them into its session). A newer version read here is stored under its own version; a view of the
    older one then shows the newer children, as a view a moment later would.
    """
    children = _kept_children(event)
    for name in PAGE_CHILDREN:
        set_committed_value(event, name, children[name])


def kept_questions(event: Event) -> tuple[Question, ...]:
    """The event's questions, in order, from this process's copy for the event's version (see
    `with_page_children`), for a registration to build and check its form with: no statement when the
    copy is warm. Shared and read-only like the page's; the event's own `questions` stay untouched.
    """
    return _kept_children(event)["questions"]


def _kept_children(event: Event) -> dict[str, tuple]:
    cache = page_cache.event_children()
    children = cache.get((event.id, event.updated_at))
    if children is None:
        version, children = _read_page_children(event.id)
        cache.store((event.id, version), children)
    return children


def _read_page_children(event_id: int) -> tuple[datetime | None, dict[str, tuple]]:
    """(the event's version, its children) read in a session of their own, closed before they are shared.
    Each child's `event` is that session's copy of the event (a session's label reads its siblings).
    """
    with Session(db.engine) as reader:
        copy = reader.get(Event, event_id, options=[selectinload(getattr(Event, name)) for name in PAGE_CHILDREN])
        if copy is None:  # deleted since the request read it: nothing to show, nothing to keep
            return None, {name: () for name in PAGE_CHILDREN}
        children = {name: tuple(getattr(copy, name)) for name in PAGE_CHILDREN}
        for child in (*children["speakers"], *children["sessions"], *children["questions"]):
            set_committed_value(child, "event", copy)
        return copy.updated_at, children


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
            return gettext("Unlimited seats")
        if self.state == SeatState.available:
            return ngettext("%(num)d seat left", "%(num)d seats left", self.seats_left or 0)
        if self.state == SeatState.waitlist:
            return gettext("Fully booked · waitlist open")
        return gettext("Fully booked")


def seats_left(event: Event) -> int | None:
    """Free seats (capacity minus confirmed registrations), or None when capacity is unlimited.

    Pending registrations take no seat until approved; the seat counter is kept by the
    registration engine (services/registration/registrations.py).
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


# --- text -------------------------------------------------------------------------------------------


def excerpt(text: str | None, limit: int = 180) -> str:
    """A one-paragraph plain-text teaser of at most `limit` characters, cut at a word boundary."""
    flat = " ".join(markdown_to_text(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return cut + "…"


def format_duration(start: datetime, end: datetime) -> str:
    """'1 hour 30 minutes', '45 minutes', '2 days 3 hours'."""
    minutes = max(int((end - start).total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(ngettext("%(num)d day", "%(num)d days", days))
    if hours:
        parts.append(ngettext("%(num)d hour", "%(num)d hours", hours))
    if mins:
        parts.append(ngettext("%(num)d minute", "%(num)d minutes", mins))
    return " ".join(parts) or ngettext("%(num)d minute", "%(num)d minutes", 0)


# --- tags -------------------------------------------------------------------------------------------

TAG_MAX_LENGTH = 40
MAX_TAGS = 10


def normalize_tag(text: str | None) -> str:
    """One tag as stored and linked: lower case, single spaces, no leading '#'."""
    return " ".join((text or "").replace("\x00", "").split()).lstrip("#").strip().lower()


def normalize_tags(text: str | None) -> list[str]:
    """The organizer's comma-separated tags, normalized, without repeats, in the order typed."""
    tags: list[str] = []
    for part in (text or "").split(","):
        tag = normalize_tag(part)
        if not tag or tag in tags:
            continue
        if len(tag) > TAG_MAX_LENGTH:
            raise DomainError(gettext("Keep each tag under %(max)s characters.", max=TAG_MAX_LENGTH), field="tags")
        if any(ch < " " for ch in tag):
            raise DomainError(gettext("Tags are plain words."), field="tags")
        tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise DomainError(gettext("Use at most %(max)s tags.", max=MAX_TAGS), field="tags")
    return tags


def set_tags(event: Event, tags: list[str]) -> None:
    """Replace the event's tags (already normalized)."""
    current = {row.tag: row for row in event.tag_rows}
    event.tag_rows = [current.get(tag) or EventTag(tag=tag) for tag in sorted(set(tags))]


# --- banner thumbnails ------------------------------------------------------------------------------

THUMBNAIL_SIZE = (480, 270)


def make_thumbnail(banner: ProcessedImage) -> ProcessedImage:
    """A small WebP of the banner for catalogue cards, cropped to 16:9 (first frame of an animation).

    Made once, when the banner is uploaded, from the already checked and re-encoded image.
    """
    with Image.open(io.BytesIO(banner.data)) as image:
        image.seek(0)
        frame = image.convert("RGB")
    thumb = ImageOps.fit(frame, THUMBNAIL_SIZE, method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "WEBP", quality=72, method=4)
    return ProcessedImage(out.getvalue(), "webp", thumb.width, thumb.height)


# --- metadata for shared links ----------------------------------------------------------------------


def event_json_ld(event: Event) -> dict[str, Any]:
    """The event as schema.org/Event JSON-LD (rendered as data, never executed)."""
    url = event_url(event)
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "name": event.title_in(text_language()),
        "startDate": event.local_starts_at.isoformat(),
        "endDate": event.local_ends_at.isoformat(),
        "eventAttendanceMode": "https://schema.org/OnlineEventAttendanceMode",
        "eventStatus": "https://schema.org/EventCancelled" if event.is_cancelled
        else "https://schema.org/EventScheduled",
        "location": {"@type": "VirtualLocation", "url": url},
        "url": url,
        "organizer": {"@type": "Organization", "name": get_branding().site_name,
                      "url": public_url("public.index_GET")},
    }
    description = excerpt(event.description_in(text_language()), 300)
    if description:
        data["description"] = description
    image = upload_url(event.banner_filename)
    if image:
        data["image"] = [image]
    if event.speakers:
        data["performer"] = [{"@type": "Person", "name": s.name} for s in event.speakers]
    if not event.is_cancelled:
        seats = availability(event)
        data["offers"] = {
            # Registration is free; no currency is claimed for a price of nothing.
            "@type": "Offer", "url": url, "price": "0",
            "availability": "https://schema.org/SoldOut" if seats.state in (SeatState.full, SeatState.waitlist)
            else "https://schema.org/InStock",
        }
        if event.published_at:
            data["offers"]["validFrom"] = event.published_at.isoformat()
    return data
