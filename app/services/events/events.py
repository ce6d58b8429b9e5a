"""Event management verbs: create, edit, clone, publish, unpublish, cancel, reword its emails, and who may
do so.

Every verb takes the acting user explicitly, checks that the actor may manage the event, flushes
(never commits) and logs what happened. Rules that forms also show as field errors
(`slug_problem`, `schedule_problems`, `clean_options`, `parse_reminder_offsets`) live here so that
the form layer and the services agree.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask_babel import format_number, gettext, ngettext
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import undefer

from app.models import (
    Event,
    EventOrganizer,
    EventSession,
    EventStatus,
    EventText,
    MessageOverride,
    Question,
    QuestionKind,
    Speaker,
    User,
    db,
    utcnow,
)
from app.services.core import audit, settings, signals, uploads
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.core.timezones import DEFAULT_ZONE, is_valid_zone
from app.services.core.uploads import ProcessedImage
from app.services.events import catalog, teams
from app.services.messaging import rendering
from app.services.messaging.kinds import INTRO_MAX, KINDS, OVERRIDABLE, SUBJECT_MAX, clean_header

logger = logging.getLogger(__name__)

SLUG_MAX = 80
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
#: Words that public or organizer URLs use, so an event may not take them as its slug.
RESERVED_SLUGS = frozenset({
    "new", "edit", "admin", "manage", "api", "static", "uploads", "login", "logout", "setup", "account",
    "events", "e", "feed", "ics", "calendar", "search", "join", "register", "cancel", "help",
})  # fmt: skip
CAPACITY_MAX = 100_000
CLONE_SHIFT = timedelta(weeks=1)
MAX_REMINDERS = 8
REMINDER_MIN, REMINDER_MAX = 5, 60 * 24 * 60  #: minutes: 5 minutes .. 60 days
#: Reminder choices offered as checkboxes (minutes before the start).
REMINDER_PRESETS = (7 * 24 * 60, 24 * 60, 3 * 60, 60, 15)
MAX_OPTIONS, OPTION_MAX_LENGTH = 50, 200
STATUS_FILTERS = ("all", "draft", "published", "cancelled", "past")
CALL_EXPERIENCES = ("call_with_chat", "call_only")
JOIN_OPENS_MAX_MINUTES = 24 * 60
GRACE_MAX_MINUTES = 24 * 60


# --- who may manage -------------------------------------------------------------------------------


def can_manage(user, event: Event) -> bool:
    """Admins manage every event; organizers their own and those shared with them."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_admin or event.owner_id == user.id:
        return True
    return any(co.id == user.id for co in event.co_organizers)


def can_share(user, event: Event) -> bool:
    """Only the owner (or an admin) chooses the co-organizers."""
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and (user.is_admin or event.owner_id == user.id))


def managed_events_query(user: User) -> Select[tuple[Event]]:
    """A select of the events this user may manage."""
    query = select(Event)
    if not user.is_admin:
        shared = select(EventOrganizer.event_id).where(EventOrganizer.user_id == user.id)
        query = query.where(or_(Event.owner_id == user.id, Event.id.in_(shared)))
    return query


def list_managed_events(user: User, status: str = "all", *, now: datetime | None = None) -> list[Event]:
    """The events this user may manage, narrowed by a list filter (all/draft/published/cancelled/past)."""
    now = now or utcnow()
    query = managed_events_query(user)
    if status in ("draft", "published"):
        query = query.where(Event.status == EventStatus(status), Event.ends_at >= now).order_by(Event.starts_at)
    elif status == "cancelled":
        query = query.where(Event.status == EventStatus.cancelled).order_by(Event.starts_at.desc())
    elif status == "past":
        query = query.where(Event.status != EventStatus.cancelled, Event.ends_at < now).order_by(Event.starts_at.desc())
    else:
        query = query.order_by(Event.starts_at.desc())
    # The seats taken (shown per row) are counted in the same query.
    return list(db.session.scalars(query.order_by(Event.id).options(undefer(Event.confirmed_count))).all())


def _require_manager(actor: User, event: Event) -> None:
    if not can_manage(actor, event):
        raise NotAllowed(gettext("You may not manage this event."))


def _require_editable(event: Event) -> None:
    if event.is_cancelled:
        raise Conflict(gettext("This event is cancelled and can no longer be changed."))


def last_used_timezone(user: User) -> str:
    """The zone of the user's most recently created event, to preselect on a new event."""
    zone = db.session.scalar(
        select(Event.timezone).where(Event.owner_id == user.id).order_by(Event.created_at.desc(), Event.id.desc())
    )
    return zone if is_valid_zone(zone) else DEFAULT_ZONE


# --- rules shared with the forms ------------------------------------------------------------------


def slugify(text: str) -> str:
    """A URL slug from a title: ASCII, lower case, words joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > 60:
        slug = slug[:60].rsplit("-", 1)[0] or slug[:60]
    slug = slug.strip("-")
    return slug if slug and slug not in RESERVED_SLUGS else f"event-{slug}".strip("-")


def slug_problem(slug: str) -> str | None:
    """Why a typed slug cannot be used (format or reserved word), or None."""
    if len(slug) > SLUG_MAX:
        return gettext("Use at most %(max)s characters.", max=SLUG_MAX)
    if not SLUG_RE.match(slug):
        return gettext("Use lower-case letters, digits and single hyphens only (e.g. spring-meetup-2026).")
    if slug in RESERVED_SLUGS:
        return gettext("“%(slug)s” is reserved. Please choose another address.", slug=slug)
    return None


def slug_taken(slug: str, *, exclude_id: int | None = None) -> bool:
    """True when another event already uses this slug."""
    query = select(func.count()).select_from(Event).where(Event.slug == slug)
    if exclude_id is not None:
        query = query.where(Event.id != exclude_id)
    return bool(db.session.scalar(query))


def unique_slug(base: str, *, exclude_id: int | None = None) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever is free."""
    base = base[: SLUG_MAX - 6].strip("-") or "event"
    candidate, n = base, 1
    while slug_taken(candidate, exclude_id=exclude_id):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def schedule_problems(
    starts_at: datetime | None,
    ends_at: datetime | None,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
) -> list[tuple[str, str]]:
    """(field, message) pairs for an impossible schedule; empty when it is fine."""
    problems: list[tuple[str, str]] = []
    if starts_at and ends_at and ends_at <= starts_at:
        problems.append(("ends_at", gettext("The end must be after the start.")))
    if opens_at and closes_at and opens_at >= closes_at:
        problems.append(("registration_closes_at", gettext("Registration must close after it opens.")))
    elif closes_at and ends_at and closes_at > ends_at:
        problems.append(("registration_closes_at", gettext("Registration must close by the end of the event.")))
    if opens_at and ends_at and opens_at >= ends_at:
        problems.append(("registration_opens_at", gettext("Registration must open before the event ends.")))
    return problems


_OFFSET_PART_RE = re.compile(r"(\d{1,6})\s*([a-z]+)")
_OFFSET_RE = re.compile(r"^(?:\d{1,6}\s*[a-z]+\s*)+$")
#: English and German units: `describe_offset` writes the form's custom times in the organizer's language.
_UNITS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "minuten"), 1),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "std", "stunde", "stunden"), 60),
    **dict.fromkeys(("d", "day", "days", "tag", "tage", "tagen"), 24 * 60),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks", "woche", "wochen"), 7 * 24 * 60),
}


def parse_reminder_offsets(text: str) -> list[int]:
    """Parse '2 days, 30 minutes, 1 day 4 hours' into minutes; DomainError on anything else."""
    offsets = []
    for part in re.split(r"[,;\n]+", (text or "").strip().lower()):
        part = part.strip()
        if not part:
            continue
        pieces = _OFFSET_PART_RE.findall(part) if _OFFSET_RE.match(part) else []
        if not pieces or any(unit not in _UNITS for _, unit in pieces):
            raise DomainError(
                gettext("“%(text)s” is not a reminder time. Write e.g. “2 days”, “4 hours” or “30 minutes”.",
                        text=part[:40]),
                field="reminder_custom",
            )
        offsets.append(sum(int(count) * _UNITS[unit] for count, unit in pieces))
    return offsets


def normalize_reminder_offsets(offsets: Sequence[int]) -> list[int]:
    """Unique offsets, longest first, within the allowed range and count."""
    clean = sorted({int(o) for o in offsets}, reverse=True)
    for offset in clean:
        if not REMINDER_MIN <= offset <= REMINDER_MAX:
            raise DomainError(gettext("Reminders can be sent from 5 minutes to 60 days before the start."),
                              field="reminder_custom")
    if len(clean) > MAX_REMINDERS:
        raise DomainError(gettext("Choose at most %(max)s reminders.", max=MAX_REMINDERS), field="reminder_custom")
    return clean


def describe_offset(minutes: int) -> str:
    """'1 week', '1 day', '3 hours', '1 day 2 hours', '15 minutes' (in the current language)."""
    units = ((7 * 24 * 60, lambda n: ngettext("%(num)d week", "%(num)d weeks", n)),
             (24 * 60, lambda n: ngettext("%(num)d day", "%(num)d days", n)),
             (60, lambda n: ngettext("%(num)d hour", "%(num)d hours", n)),
             (1, lambda n: ngettext("%(num)d minute", "%(num)d minutes", n)))
    parts = []
    for size, unit in units:
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(unit(count))
    return " ".join(parts) or gettext("at the start")


def clean_options(kind: QuestionKind, options: Sequence[str]) -> list[str]:
    """Distinct, trimmed options for choice questions (at least two); none for other kinds."""
    if not kind.has_options:
        return []
    seen, clean = set(), []
    for option in options:
        option = " ".join(option.split())
        if option and option.casefold() not in seen:
            if len(option) > OPTION_MAX_LENGTH:
                raise DomainError(gettext("Keep each option under %(max)s characters.", max=OPTION_MAX_LENGTH),
                                  field="options")
            seen.add(option.casefold())
            clean.append(option)
    if len(clean) < 2:
        raise DomainError(gettext("Give at least two different options, one per line."), field="options")
    if len(clean) > MAX_OPTIONS:
        raise DomainError(gettext("Give at most %(max)s options.", max=MAX_OPTIONS), field="options")
    return clean


# --- events -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextData:
    """An event's title and description in one more language; blank ones show the main text."""

    title: str = ""
    description: str = ""


@dataclass
class EventData:
    """What the event form collects, already parsed (times are aware UTC)."""

    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    slug: str = ""
    description: str = ""
    capacity: int | None = None
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    approval_required: bool = False
    waitlist_enabled: bool = True
    reminder_offsets: list[int] = field(default_factory=lambda: [24 * 60, 60])
    banner: ProcessedImage | None = None
    banner_alt: str = ""
    remove_banner: bool = False
    #: Catalogue tags, normalized (catalog.normalize_tags); None leaves them as they are.
    tags: list[str] | None = None
    #: None leaves the co-organizers as they are.
    co_organizer_ids: list[int] | None = None
    #: Email registrants when the title or time of a published event changes.
    notify_attendees: bool = True
    #: "bypass" (Foyer attendees go straight in) or "lobby" (they wait to be admitted).
    attendee_lobby: str = "bypass"
    #: Teams meeting options: attendees may turn on their microphone / camera; meeting chat on or off.
    allow_attendee_mic: bool = True
    allow_attendee_camera: bool = True
    meeting_chat: str = "enabled"
    #: "everyone", or "organization" (only addresses at the organization's domains).
    who_can_register: str = "everyone"
    require_email_verification: bool = False
    #: The join page: "call_with_chat" or "call_only", when it opens, how long after the end it stays
    #: open, and the recording link shown once the event has ended.
    call_experience: str = "call_with_chat"
    join_opens_minutes: int | None = 15
    join_grace_minutes: int | None = 30
    recording_url: str = ""
    #: The title and description in other offered languages, by language code; languages not named
    #: here keep theirs.
    texts: dict[str, TextData] = field(default_factory=dict)


def _check_join_settings(*, call_experience: str, join_opens_minutes: Any, join_grace_minutes: Any,
                          recording_url: str) -> tuple[str, int, int, str]:
    """Validated join settings of an event; DomainError naming the field otherwise."""
    if call_experience not in CALL_EXPERIENCES:
        raise DomainError(gettext("Choose how attendees join the call."), field="call_experience")
    try:
        opens = int(join_opens_minutes if join_opens_minutes not in (None, "") else 15)
    except (TypeError, ValueError):
        raise DomainError(gettext("Enter a number of minutes."), field="join_opens_minutes") from None
    if not 0 <= opens <= JOIN_OPENS_MAX_MINUTES:
        raise DomainError(gettext("Enter between 0 and %(max)s minutes.", max=JOIN_OPENS_MAX_MINUTES),
                          field="join_opens_minutes")
    try:
        grace = int(join_grace_minutes if join_grace_minutes not in (None, "") else 30)
    except (TypeError, ValueError):
        raise DomainError(gettext("Enter a number of minutes."), field="join_grace_minutes") from None
    if not 0 <= grace <= GRACE_MAX_MINUTES:
        raise DomainError(gettext("Enter between 0 and %(max)s minutes.", max=GRACE_MAX_MINUTES),
                          field="join_grace_minutes")
    url = (recording_url or "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc or len(url) > 2000 or any(
                c.isspace() or ord(c) < 32 for c in url):
            raise DomainError(gettext("Enter a web address starting with https://."), field="recording_url")
    return call_experience, opens, grace, url


def _check_event_data(data: EventData, *, event_id: int | None) -> str:
    """Raise the first DomainError for invalid data; return the slug to use."""
    title = " ".join((data.title or "").split())
    if not title:
        raise DomainError(gettext("Give the event a title."), field="title")
    if len(title) > 200:
        raise DomainError(gettext("Keep the title under 200 characters."), field="title")
    if not is_valid_zone(data.timezone):
        raise DomainError(gettext("Choose a time zone from the list."), field="timezone")
    for name, message in schedule_problems(data.starts_at, data.ends_at, data.registration_opens_at,
                                           data.registration_closes_at):
        raise DomainError(message, field=name)
    if data.capacity is not None and not 1 <= data.capacity <= CAPACITY_MAX:
        raise DomainError(gettext("Capacity must be between 1 and %(max)s, or blank for unlimited.",
                                  max=format_number(CAPACITY_MAX)), field="capacity")
    data.texts = _check_texts(data.texts)
    data.reminder_offsets = normalize_reminder_offsets(data.reminder_offsets)
    (data.call_experience, data.join_opens_minutes, data.join_grace_minutes,
     data.recording_url) = _check_join_settings(
        call_experience=data.call_experience, join_opens_minutes=data.join_opens_minutes,
        join_grace_minutes=data.join_grace_minutes, recording_url=data.recording_url)
    if data.slug:
        problem = slug_problem(data.slug)
        if problem:
            raise DomainError(problem, field="slug")
        if slug_taken(data.slug, exclude_id=event_id):
            raise Conflict(gettext("Another event already uses this address. Please choose another."), field="slug")
        return data.slug
    return unique_slug(slugify(title), exclude_id=event_id)


def _check_texts(texts: dict[str, TextData]) -> dict[str, TextData]:
    """The texts in other languages, tidied; DomainError for a language not offered besides the default."""
    others = settings.get_languages().others
    checked = {}
    for language, text in texts.items():
        if language not in others:
            raise DomainError(gettext("Texts can be written only in the languages offered besides the default."))
        title = " ".join((text.title or "").split())
        if len(title) > 200:
            raise DomainError(gettext("Keep the title under 200 characters."), field=f"title_{language}")
        checked[language] = TextData(title, (text.description or "").strip())
    return checked


def _apply_texts(event: Event, texts: dict[str, TextData]) -> bool:
    """Write the texts in other languages (a language left blank loses its row); True when one changed."""
    changed = False
    for language, text in texts.items():
        row = event.texts.get(language)
        before = (row.title, row.description) if row is not None else ("", "")
        if before == (text.title, text.description):
            continue
        changed = True
        if not (text.title or text.description):
            del event.texts[language]
        elif row is None:
            event.texts[language] = EventText(language=language, title=text.title, description=text.description)
        else:
            row.title, row.description = text.title, text.description
    return changed


def _apply_event_data(event: Event, data: EventData, slug: str) -> bool:
    """Copy the form data onto the event; True when attendees would see the change."""
    title = " ".join(data.title.split())
    visible = (
        event.title != title
        or event.starts_at != data.starts_at
        or event.ends_at != data.ends_at
        or (event.description or "") != (data.description or "")
    )
    event.attendee_lobby = data.attendee_lobby if data.attendee_lobby in LOBBY_MODES else "bypass"
    event.allow_attendee_mic = bool(data.allow_attendee_mic)
    event.allow_attendee_camera = bool(data.allow_attendee_camera)
    event.meeting_chat = data.meeting_chat if data.meeting_chat in MEETING_CHAT_MODES else "enabled"
    event.title = title
    event.slug = slug
    event.description = data.description or ""
    event.timezone = data.timezone
    event.starts_at = data.starts_at
    event.ends_at = data.ends_at
    if event.id is None:
        # An existing event changes capacity through registrations.set_capacity (update_event), which
        # refuses going below the seats taken and promotes from the waitlist into new seats.
        event.capacity = data.capacity
    event.who_can_register = data.who_can_register if data.who_can_register in ("everyone", "organization") \
        else "everyone"
    event.require_email_verification = bool(data.require_email_verification)
    event.registration_opens_at = data.registration_opens_at
    event.registration_closes_at = data.registration_closes_at
    event.approval_required = data.approval_required
    event.waitlist_enabled = data.waitlist_enabled
    event.reminder_offsets = list(data.reminder_offsets)
    event.call_experience = data.call_experience
    event.join_opens_minutes = data.join_opens_minutes
    event.join_grace_minutes = data.join_grace_minutes
    event.recording_url = data.recording_url
    event.banner_alt = (data.banner_alt or "").strip()[:300]
    if data.banner is not None:
        uploads.discard_upload(event.banner_filename)
        uploads.discard_upload(event.banner_thumb_filename)
        event.banner_filename = uploads.store_image(data.banner)
        # The catalogue's cards show a small copy, made once now rather than on every page view.
        event.banner_thumb_filename = uploads.store_image(catalog.make_thumbnail(data.banner))
    elif data.remove_banner and event.banner_filename:
        uploads.discard_upload(event.banner_filename)
        uploads.discard_upload(event.banner_thumb_filename)
        event.banner_filename = event.banner_thumb_filename = None
        event.banner_alt = ""
    if data.tags is not None:
        catalog.set_tags(event, data.tags)
    return _apply_texts(event, data.texts) or visible


def _set_co_organizers(event: Event, user_ids: Sequence[int], *, actor: User) -> None:
    if not can_share(actor, event):
        raise NotAllowed(gettext("Only the event's owner or an admin can choose co-organizers."),
                         field="co_organizers")
    wanted = {int(i) for i in user_ids} - {event.owner_id}
    users = list(db.session.scalars(
        select(User).where(User.id.in_(wanted), User.is_active_account.is_(True)).order_by(User.email)
    )) if wanted else []
    if len(users) != len(wanted):
        raise DomainError(gettext("Choose co-organizers from the list of active staff."), field="co_organizers")
    before = {u.id for u in event.co_organizers}
    event.co_organizers = users
    if before != wanted:
        audit.record("event.co_organizers", actor=actor, target=event, summary="Changed the co-organizers",
                     details={"user_ids": sorted(wanted)})
        logger.info("Co-organizers of event %s set to %s by %s", event.id, sorted(wanted), actor.id)


def shareable_users(event: Event | None, *, owner: User) -> list[User]:
    """Active staff who could be made co-organizers (everyone but the owner)."""
    owner_id = event.owner_id if event is not None else owner.id
    return list(db.session.scalars(
        select(User).where(User.is_active_account.is_(True), User.id != owner_id).order_by(User.email)
    ))


def create_event(data: EventData, *, actor: User) -> Event:
    """Create a draft event owned by the actor."""
    slug = _check_event_data(data, event_id=None)
    event = Event(owner_id=actor.id, status=EventStatus.draft, ics_sequence=0)
    event.owner = actor
    _apply_event_data(event, data, slug)
    db.session.add(event)
    if data.co_organizer_ids:
        _set_co_organizers(event, data.co_organizer_ids, actor=actor)
    db.session.flush()
    audit.record("event.create", actor=actor, target=event, summary=f"Created “{event.title}”")
    logger.info("Event %s (%s) created by %s", event.id, event.slug, actor.id)
    return event


LOBBY_MODES = ("bypass", "lobby")
#: Graph's meetingChatMode values Foyer offers.
MEETING_CHAT_MODES = ("enabled", "disabled")


def _meeting_fields(event: Event) -> tuple:
    """What the Teams calendar event and meeting carry: a change is pushed to Graph."""
    return (event.title, event.starts_at, event.ends_at, event.timezone, event.slug, event.attendee_lobby,
            event.allow_attendee_mic, event.allow_attendee_camera, event.meeting_chat)


def _attendee_fields(event: Event) -> tuple:
    """What registrants are told about when it changes (with an updated invitation)."""
    return (event.title, event.starts_at, event.ends_at)


def update_event(event: Event, data: EventData, *, actor: User) -> Event:
    """Change an event's details; attendee-visible changes bump its iCalendar sequence."""
    _require_manager(actor, event)
    _require_editable(event)
    if event.sessions:  # a course's start and end are its sessions' (changed on its sessions page)
        data.starts_at, data.ends_at = event.starts_at, event.ends_at
    slug = _check_event_data(data, event_id=event.id)
    if data.co_organizer_ids is not None:
        _set_co_organizers(event, data.co_organizer_ids, actor=actor)
    meeting_before = _meeting_fields(event)
    attendee_before = _attendee_fields(event)
    if _apply_event_data(event, data, slug):
        event.ics_sequence += 1
    db.session.flush()
    if data.capacity != event.capacity:
        signals.event_capacity_changed.send(event, capacity=data.capacity, actor=actor)
    if _meeting_fields(event) != meeting_before:
        teams.queue_update(event)
    told = event.is_published and _attendee_fields(event) != attendee_before
    audit.record("event.update", actor=actor, target=event, summary=f"Edited “{event.title}”",
                 details={"registrants_notified": told and data.notify_attendees} if told else None)
    title, starts_at, ends_at = attendee_before
    signals.event_updated.send(event, actor=actor, notify_attendees=data.notify_attendees, previous={
        "title": title, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()} if told else None)
    logger.info("Event %s edited by %s (sequence %s)", event.id, actor.id, event.ics_sequence)
    return event


def publish_event(event: Event, *, actor: User, now: datetime | None = None) -> None:
    """Make a draft visible to the public."""
    _require_manager(actor, event)
    _require_editable(event)
    if event.is_published:
        raise Conflict(gettext("This event is already published."))
    if event.ends_at <= (now or utcnow()):
        raise Conflict(gettext("This event has already ended, so it cannot be published."))
    event.status = EventStatus.published
    event.published_at = now or utcnow()
    db.session.flush()
    teams.queue_provisioning(event)
    audit.record("event.publish", actor=actor, target=event, summary=f"Published “{event.title}”")
    signals.event_published.send(event, actor=actor)
    logger.info("Event %s published by %s", event.id, actor.id)


def unpublish_event(event: Event, *, actor: User) -> None:
    """Take a published event back to draft (hidden from the public)."""
    _require_manager(actor, event)
    _require_editable(event)
    if not event.is_published:
        raise Conflict(gettext("This event is not published."))
    event.status = EventStatus.draft
    db.session.flush()
    signals.event_unpublished.send(event, actor=actor)
    audit.record("event.unpublish", actor=actor, target=event, summary=f"Unpublished “{event.title}”")
    logger.info("Event %s unpublished by %s", event.id, actor.id)


def cancel_event(event: Event, *, actor: User, reason: str = "", now: datetime | None = None) -> None:
    """Cancel an event for good; attendees' calendars see the cancellation."""
    _require_manager(actor, event)
    if event.is_cancelled:
        raise Conflict(gettext("This event is already cancelled."))
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise DomainError(gettext("Keep the message under 2,000 characters."), field="reason")
    event.status = EventStatus.cancelled
    event.cancelled_at = now or utcnow()
    event.cancellation_reason = reason
    event.ics_sequence += 1
    db.session.flush()
    teams.queue_cancellation(event, reason)
    audit.record("event.cancel", actor=actor, target=event, summary=f"Cancelled “{event.title}”")
    signals.event_cancelled.send(event, actor=actor, was_published=event.published_at is not None)
    logger.info("Event %s cancelled by %s", event.id, actor.id)


def clone_event(event: Event, *, actor: User, shift: timedelta = CLONE_SHIFT) -> Event:
    """Copy an event (questions, speakers, sessions, images, settings) as a new draft one week later."""
    _require_manager(actor, event)
    base = f"{event.slug[: SLUG_MAX - 12].rstrip('-')}-copy"
    title = f"{event.title} (copy)"
    if len(title) > 200:
        title = event.title[:193].rstrip() + " (copy)"
    shifted = lambda value: value + shift if value is not None else None  # noqa: E731
    clone = Event(
        title=title,
        slug=unique_slug(base),
        description=event.description,
        status=EventStatus.draft,
        timezone=event.timezone,
        starts_at=shifted(event.starts_at),
        ends_at=shifted(event.ends_at),
        capacity=event.capacity,
        registration_opens_at=shifted(event.registration_opens_at),
        registration_closes_at=shifted(event.registration_closes_at),
        approval_required=event.approval_required,
        waitlist_enabled=event.waitlist_enabled,
        attendee_lobby=event.attendee_lobby,
        allow_attendee_mic=event.allow_attendee_mic,
        allow_attendee_camera=event.allow_attendee_camera,
        meeting_chat=event.meeting_chat,
        call_experience=event.call_experience,
        join_opens_minutes=event.join_opens_minutes,
        join_grace_minutes=event.join_grace_minutes,
        reminder_offsets=list(event.reminder_offsets or []),
        banner_filename=uploads.copy_upload(event.banner_filename),
        banner_thumb_filename=uploads.copy_upload(event.banner_thumb_filename),
        banner_alt=event.banner_alt,
        ics_sequence=0,
        owner_id=actor.id,
    )
    clone.banner_alt = clone.banner_alt if clone.banner_filename else ""
    shared = {u.id: u for u in event.co_organizers if u.id != actor.id}
    if event.owner_id != actor.id:
        shared[event.owner_id] = event.owner
    clone.co_organizers = sorted(shared.values(), key=lambda u: u.email)
    for q in event.questions:
        clone.questions.append(Question(position=q.position, kind=q.kind, label=q.label, help_text=q.help_text,
                                        required=q.required, options=list(q.options or [])))
    catalog.set_tags(clone, event.tags)
    for language, text in event.texts.items():
        clone.texts[language] = EventText(language=language, title=text.title, description=text.description)
    for s in event.speakers:
        clone.speakers.append(Speaker(position=s.position, name=s.name, title=s.title, bio=s.bio, email=s.email,
                                      photo_filename=uploads.copy_upload(s.photo_filename)))
    for session in event.sessions:  # a course's copy is a course one week later, with no meetings yet
        clone.sessions.append(EventSession(name=session.name, starts_at=shifted(session.starts_at),
                                           ends_at=shifted(session.ends_at)))
    db.session.add(clone)
    db.session.flush()
    audit.record("event.clone", actor=actor, target=clone, summary=f"Cloned from event {event.id}",
                 details={"source_event_id": event.id})
    logger.info("Event %s cloned to %s by %s", event.id, clone.id, actor.id)
    return clone


# --- ordered children: questions and speakers -------------------------------------------------------


def _renumber(items: Sequence[Question | Speaker]) -> None:
    for position, item in enumerate(items):
        item.position = position


def _move(items: list, item, direction: str) -> bool:
    """Swap an item with its neighbour; False when it is already at that end."""
    if direction not in ("up", "down"):
        raise DomainError(gettext("Choose to move up or down."))
    ordered = sorted(items, key=lambda i: (i.position, i.id or 0))
    index = ordered.index(item)
    target = index - 1 if direction == "up" else index + 1
    if not 0 <= target < len(ordered):
        return False
    ordered[index], ordered[target] = ordered[target], ordered[index]
    _renumber(ordered)
    return True


@dataclass
class QuestionData:
    kind: QuestionKind
    label: str
    help_text: str = ""
    required: bool = False
    options: list[str] = field(default_factory=list)


def _check_question(data: QuestionData) -> tuple[str, list[str]]:
    label = " ".join((data.label or "").split())
    if not label:
        raise DomainError(gettext("Write the question."), field="label")
    if len(label) > 300:
        raise DomainError(gettext("Keep the question under 300 characters."), field="label")
    if len(data.help_text or "") > 500:
        raise DomainError(gettext("Keep the help text under 500 characters."), field="help_text")
    return label, clean_options(QuestionKind(data.kind), data.options)


def add_question(event: Event, data: QuestionData, *, actor: User) -> Question:
    """Append a registration question to the event."""
    _require_manager(actor, event)
    _require_editable(event)
    label, options = _check_question(data)
    question = Question(kind=QuestionKind(data.kind), label=label, help_text=(data.help_text or "").strip(),
                        required=data.required, options=options, position=len(event.questions))
    event.questions.append(question)
    db.session.flush()
    audit.record("event.question_added", actor=actor, target=event, summary=f"Question added: {question.label}")
    logger.info("Question %s added to event %s by %s", question.id, event.id, actor.id)
    return question


def update_question(question: Question, data: QuestionData, *, actor: User) -> Question:
    """Change a registration question."""
    event = question.event
    _require_manager(actor, event)
    _require_editable(event)
    label, options = _check_question(data)
    question.kind = QuestionKind(data.kind)
    question.label = label
    question.help_text = (data.help_text or "").strip()
    question.required = data.required
    question.options = options
    db.session.flush()
    audit.record("event.question_edited", actor=actor, target=event, summary=f"Question edited: {question.label}")
    logger.info("Question %s of event %s edited by %s", question.id, event.id, actor.id)
    return question


def remove_question(question: Question, *, actor: User) -> None:
    """Delete a registration question; the others close up the gap."""
    event = question.event
    _require_manager(actor, event)
    _require_editable(event)
    event.questions.remove(question)
    _renumber(sorted(event.questions, key=lambda q: q.position))
    db.session.flush()
    audit.record("event.question_removed", actor=actor, target=event, summary=f"Question removed: {question.label}")
    logger.info("Question %s removed from event %s by %s", question.id, event.id, actor.id)


def move_question(question: Question, direction: str, *, actor: User) -> None:
    """Move a registration question one place up or down."""
    _move_child(question, "questions", "question", direction, actor=actor)


@dataclass
class SpeakerData:
    name: str
    title: str = ""
    bio: str = ""
    email: str = ""
    photo: ProcessedImage | None = None
    remove_photo: bool = False


def _check_speaker_email(raw: str) -> str:
    """An optional speaker address: '' or a valid, normalised one (it becomes a Teams invitee)."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise DomainError(gettext("Enter a valid email address, or leave it empty."), field="email") from exc


def _check_speaker(data: SpeakerData) -> str:
    name = " ".join((data.name or "").split())
    if not name:
        raise DomainError(gettext("Give the speaker's name."), field="name")
    if len(name) > 200 or len(data.title or "") > 200:
        raise DomainError(gettext("Keep names and titles under 200 characters."), field="name")
    if len(data.bio or "") > 5000:
        raise DomainError(gettext("Keep the bio under 5,000 characters."), field="bio")
    return name


def _apply_speaker(speaker: Speaker, data: SpeakerData, name: str) -> None:
    speaker.name = name
    speaker.title = (data.title or "").strip()
    speaker.bio = (data.bio or "").strip()
    speaker.email = _check_speaker_email(data.email)
    if data.photo is not None:
        uploads.discard_upload(speaker.photo_filename)
        speaker.photo_filename = uploads.store_image(data.photo)
    elif data.remove_photo and speaker.photo_filename:
        uploads.discard_upload(speaker.photo_filename)
        speaker.photo_filename = None


def add_speaker(event: Event, data: SpeakerData, *, actor: User) -> Speaker:
    """Add a speaker at the end of the event's list."""
    _require_manager(actor, event)
    _require_editable(event)
    name = _check_speaker(data)
    speaker = Speaker(position=len(event.speakers))
    _apply_speaker(speaker, data, name)
    event.speakers.append(speaker)
    db.session.flush()
    if speaker.email:
        teams.queue_presenters(event)
    audit.record("event.speaker_added", actor=actor, target=event, summary=f"Speaker added: {speaker.name}")
    logger.info("Speaker %s added to event %s by %s", speaker.id, event.id, actor.id)
    return speaker


def update_speaker(speaker: Speaker, data: SpeakerData, *, actor: User) -> Speaker:
    """Change a speaker's details or photo."""
    event = speaker.event
    _require_manager(actor, event)
    _require_editable(event)
    before = teams.presenters(event)
    _apply_speaker(speaker, data, _check_speaker(data))
    db.session.flush()
    if teams.presenters(event) != before:
        teams.queue_presenters(event)
    audit.record("event.speaker_edited", actor=actor, target=event, summary=f"Speaker edited: {speaker.name}")
    logger.info("Speaker %s of event %s edited by %s", speaker.id, event.id, actor.id)
    return speaker


def remove_speaker(speaker: Speaker, *, actor: User) -> None:
    """Remove a speaker (and their photo, once committed)."""
    event = speaker.event
    _require_manager(actor, event)
    _require_editable(event)
    uploads.discard_upload(speaker.photo_filename)
    event.speakers.remove(speaker)
    _renumber(sorted(event.speakers, key=lambda s: s.position))
    db.session.flush()
    if speaker.email:
        teams.queue_presenters(event)
    audit.record("event.speaker_removed", actor=actor, target=event, summary=f"Speaker removed: {speaker.name}")
    logger.info("Speaker %s removed from event %s by %s", speaker.id, event.id, actor.id)


def move_speaker(speaker: Speaker, direction: str, *, actor: User) -> None:
    """Move a speaker one place up or down."""
    _move_child(speaker, "speakers", "speaker", direction, actor=actor)


def _move_child(child: Question | Speaker, children: str, noun: str, direction: str, *, actor: User) -> None:
    """Move one of an event's ordered children (`children` names the relationship) up or down."""
    event = child.event
    _require_manager(actor, event)
    _require_editable(event)
    if _move(getattr(event, children), child, direction):
        db.session.flush()
        db.session.expire(event, [children])
        audit.record(f"event.{noun}_moved", actor=actor, target=event, summary=f"{noun.capitalize()} moved {direction}")
        logger.info("%s %s of event %s moved %s by %s", noun.capitalize(), child.id, event.id, direction, actor.id)


# --- an event's own wording of its emails -----------------------------------------------------------


def save_email_wording(event: Event, kind: str, subject: str, intro: str, *,
                       actor: User) -> MessageOverride | None:
    """Set an event's own subject / opening paragraph for one email type; both empty removes it."""
    if not can_manage(actor, event):
        raise NotAllowed(gettext("You cannot change this event's emails."))
    if kind not in OVERRIDABLE:
        raise DomainError(gettext("This email cannot be changed."))
    subject = clean_header(subject)
    intro = (intro or "").replace("\r\n", "\n").strip()
    if len(subject) > SUBJECT_MAX:
        raise DomainError(gettext("Keep the subject under %(max)s characters.", max=SUBJECT_MAX), field="subject")
    if len(intro) > INTRO_MAX:
        raise DomainError(gettext("Keep the paragraph under %(max)s characters.", max=format_number(INTRO_MAX)),
                          field="intro")
    override = rendering.get_override(event, kind)
    if not subject and not intro:
        if override is not None:
            db.session.delete(override)
            audit.record("message.wording", actor=actor, target=event, event=event,
                         summary=f"Restored the standard wording of the “{KINDS[kind].label}” email")
        return None
    if override is None:
        override = MessageOverride(event_id=event.id, kind=kind)
        db.session.add(override)
    override.subject, override.intro = subject, intro
    db.session.flush()
    audit.record("message.wording", actor=actor, target=event, event=event,
                 summary=f"Changed the wording of the “{KINDS[kind].label}” email",
                 details={"kind": kind, "subject": subject, "intro": intro})
    logger.info("Email %s of event %s reworded by %s", kind, event.id, actor.id)
    return override
