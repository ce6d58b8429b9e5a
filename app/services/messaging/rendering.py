"""Rendering a message: branded HTML and plain text from the email templates, times in the recipient's
own zone, absolute links, and an event's own wording of an email (the organizer's overrides).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from flask import current_app, g
from flask_babel import force_locale, get_locale, gettext, ngettext
from markupsafe import Markup, escape
from sqlalchemy import select

from app.models import Event, MessageOverride, db, utcnow
from app.models.session import session_label
from app.services.core import links
from app.services.core.dates import format_datetime, format_range, format_time
from app.services.core.markdown import markdown_to_text, render_markdown
from app.services.core.settings import get_branding, get_languages, text_language
from app.services.core.timezones import is_valid_zone
from app.services.messaging.kinds import KINDS, OVERRIDABLE, STAFF_KINDS, clean_header

logger = logging.getLogger(__name__)

def describe_when(event: Event, zone_name: str) -> str:
    """'Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)' in the given zone."""
    return format_range(event.starts_at, event.ends_at, zone_name)


def relative_start(event: Event, now: datetime, zone_name: str) -> str:
    """'in 1 hour', 'in 15 minutes', 'tomorrow at 14:00', 'on Tue 3 Mar at 14:00' (recipient's zone)."""
    zone = ZoneInfo(zone_name if is_valid_zone(zone_name) else "UTC")
    minutes = max(0, round((event.starts_at - now).total_seconds() / 60))
    if minutes < 1:
        return gettext("now")
    if minutes < 90:
        return ngettext("in %(num)d minute", "in %(num)d minutes", minutes) if minutes % 60 else gettext("in 1 hour")
    if minutes < 12 * 60:
        hours = round(minutes / 60)
        return gettext("in %(hours)d hours", hours=hours)
    start, today = event.starts_at.astimezone(zone), now.astimezone(zone).date()
    if start.date() == today:
        return gettext("today at %(time)s", time=format_time(start, zone.key))
    if start.date() == today + timedelta(days=1):
        return gettext("tomorrow at %(time)s", time=format_time(start, zone.key))
    if get_locale() is not None and get_locale().language != "en":
        day = format_skeleton("MMMEd", start, locale=get_locale())
    else:
        day = f"{start:%a} {start.day} {start:%b}"  # the date as Foyer writes it everywhere
    return gettext("on %(day)s at %(time)s", day=day, time=format_time(start, zone.key))


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def fill(template: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders by plain substitution (never str.format on organizer text)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def get_override(event: Event | None, kind: str) -> MessageOverride | None:
    if event is None or event.id is None or kind not in OVERRIDABLE:
        return None
    return db.session.scalar(select(MessageOverride).where(MessageOverride.event_id == event.id,
                                                           MessageOverride.kind == kind))


@dataclass(frozen=True)
class Wording:
    """An event's own subject and opening paragraph for one email type (plain values, kept per request)."""

    subject: str
    intro: str


def _wording(event: Event, kind: str) -> Wording | None:
    override = get_override(event, kind)
    return Wording(override.subject, override.intro) if override is not None else None


def _render_cache() -> dict[tuple, Any]:
    """Per app context (one request, one worker job): branding and wording do not change mid-batch."""
    return g.setdefault("_message_render_cache", {})


def _cached(key: tuple, compute):
    cache = _render_cache()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


#: Writes a message queued to be written as it is sent, from its spec (plain values); None when there is
#: nothing left to write it for. Registered by the code that knows what a spec names (the registration
#: emails' `deferred_renderer`): messaging renders and sends, and never knows a registration.
_deferred_renderer: Callable[[dict[str, Any]], Rendered | None] | None = None


def deferred_renderer(render_spec: Callable[[dict[str, Any]], Rendered | None]):
    """Register the function that writes a message from its spec as it is sent (a decorator)."""
    global _deferred_renderer
    _deferred_renderer = render_spec
    return render_spec


def render_deferred(spec: dict[str, Any]) -> Rendered | None:
    """The message a spec describes, written now (None: nothing left to write it for)."""
    if _deferred_renderer is None:
        raise RuntimeError("no renderer is registered for messages written as they are sent")
    return _deferred_renderer(spec)


def preload_rendering(event: Event) -> None:
    """Read what an event's emails are rendered with (branding, the event's own wording) now, so that
    rendering one later in this request reads nothing: a registration renders its email while it holds
    the event's lock, and these reads need none.
    """
    cache = _render_cache()
    saved = {o.kind: Wording(o.subject, o.intro)
             for o in db.session.scalars(select(MessageOverride).where(MessageOverride.event_id == event.id))}
    for kind in OVERRIDABLE:
        cache[("override", event.id, kind)] = saved.get(kind)
    cache[("branding",)] = get_branding()
    cache[("sessions", event.id)] = _session_times(event)
    event.title_in(text_language())  # in another language, the event's own texts: read now, not under the lock


@dataclass(frozen=True)
class SessionTimes:
    """A course session as emails show it (plain values, kept per request; the label in each email's language)."""

    number: int
    name: str
    starts_at: datetime
    ends_at: datetime

    @property
    def label(self) -> str:
        return session_label(self.number, self.name)


def _session_times(event: Event) -> list[SessionTimes]:
    return [SessionTimes(number, s.name, s.starts_at, s.ends_at) for number, s in enumerate(event.sessions, 1)]


def render(kind: str, *, event: Event, language: str | None = None, **kwargs: Any) -> Rendered:
    """Render one message (see `_render`) in `language` (a registration's; None: the current locale).

    The worker renders with no request, so the language is set here rather than chosen per request.
    """
    if language and kind not in STAFF_KINDS and language in get_languages().offered:
        with force_locale(language):
            return _render(kind, event=event, **kwargs)
    return _render(kind, event=event, **kwargs)


def _render(kind: str, *, event: Event, name: str = "", zone: str = "UTC", manage_link: str | None = None,
            extra: str = "", position: int | None = None, link: str | None = None, now: datetime | None = None,
            subject: str | None = None, intro: str | None = None, attachment_note: bool = False,
            expires: datetime | None = None, join_link: str | None = None,
            device_link: str | None = None, feedback_link: str | None = None, session: Any = None) -> Rendered:
    """Render one message: subject, inline-styled HTML and plain text.

    `session` (a course session: starts_at, ends_at, label) makes the times its own (reminders).

    `subject` / `intro` (Markdown) replace Foyer's wording (organizer overrides and messages);
    None uses the event's saved override, then Foyer's default (in the current language).
    """
    if kind in STAFF_KINDS:
        return render_staff(kind, name=name, zone=zone, link=link, extra=extra, expires=expires)
    spec = KINDS[kind]
    now = now or utcnow()
    zone = zone if is_valid_zone(zone) else "UTC"
    override = (_cached(("override", event.id, kind), lambda: _wording(event, kind))
                if subject is None and intro is None else None)
    timing = session or event
    when_relative = relative_start(timing, now, zone)
    title = event.title_in(text_language())
    values = {"title": title, "position": gettext(" (number %(position)d in line)", position=position)
              if position else "", "when": when_relative}
    subject_text = subject if subject is not None else (override.subject if override and override.subject else "")
    subject_text = clean_header(fill(subject_text or gettext(spec.subject), {k: values[k] for k in ("title", "when")}))
    intro_md = intro if intro is not None else (override.intro if override and override.intro else "")
    if intro_md:
        intro_html = render_markdown(fill(intro_md, {"title": title}))
        intro_text = markdown_to_text(fill(intro_md, {"title": title}), links=True)
    else:
        intro_text = fill(gettext(spec.intro) if spec.intro else "", values)
        intro_html = Markup("<p>{}</p>").format(intro_text)
    branding = _cached(("branding",), get_branding)
    logo_url = links.upload_url(branding.logo_filename)
    expires_text = ""
    if expires is not None:
        expires_text = format_datetime(expires, zone)
    context = {
        "kind": kind, "branding": branding, "logo_url": logo_url, "event": event, "name": clean_header(name),
        "when": describe_when(timing, zone), "when_relative": when_relative, "zone": zone,
        "session_label": session.label if session is not None else "",
        "session_lines": [f"{s.label}: {describe_when(s, zone)}" for s in
                          _cached(("sessions", event.id), lambda: _session_times(event))] if session is None else [],
        "event_url": links.event_url(event), "manage_url": manage_link if spec.manage_link else None,
        "join_url": join_link, "device_url": device_link, "feedback_url": feedback_link,
        "link": link, "intro_html": intro_html, "intro_text": intro_text, "extra": (extra or "").strip(),
        "subject": subject_text, "attachment_note": attachment_note, "expires": expires_text,
    }
    # The environment's own render (not render_template): emails need no request context processors.
    env = current_app.jinja_env
    html = env.get_template(f"emails/{kind}.html").render(**context)
    body = env.get_template(f"emails/{kind}.txt").render(**context)
    return Rendered(subject=subject_text or title, html=html, text=body.strip() + "\n")


#: Stands in a message's stored body for a one-time link that signs someone in (invitation, password
#: reset): the link itself travels encrypted in the outbox item and is put in only as the email is sent,
#: so the message log (and whoever reads it in /admin/messages) never holds it.
SECRET_LINK = "{one-time-link}"  # noqa: S105  (a placeholder, not a secret)


def render_staff(kind: str, *, name: str = "", zone: str = "UTC", link: str | None = None, extra: str = "",
                 expires: datetime | None = None, role: str = "") -> Rendered:
    """Render an email to staff (about the installation, no event), branded, times in `zone`."""
    spec = KINDS[kind]
    zone = zone if is_valid_zone(zone) else "UTC"
    branding = _cached(("branding",), get_branding)
    values = {"site": branding.site_name, "role": clean_header(role)}
    subject_text = clean_header(fill(gettext(spec.subject), values))
    intro_text = fill(gettext(spec.intro), values)
    expires_text = ""
    if expires is not None and get_locale() is not None and get_locale().language != "en":
        expires_text = format_datetime(expires, zone)  # in that language's own format
    elif expires is not None:
        local = expires.astimezone(ZoneInfo(zone))
        expires_text = f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M} ({zone})"
    context = {
        "kind": kind, "branding": branding, "zone": zone, "name": clean_header(name), "subject": subject_text,
        "logo_url": links.upload_url(branding.logo_filename),
        "intro_html": Markup("<p>{}</p>").format(intro_text), "intro_text": intro_text, "link": link,
        "extra": (extra or "").strip(), "expires": expires_text,
    }
    env = current_app.jinja_env
    html = env.get_template(f"emails/{kind}.html").render(**context)
    body = env.get_template(f"emails/{kind}.txt").render(**context)
    return Rendered(subject=subject_text, html=html, text=body.strip() + "\n")


def nl2br(value: str) -> Markup:
    """Escape text and keep its line breaks (for organizer notes in HTML)."""
    return Markup("<br>\n").join(escape(line) for line in (value or "").splitlines())
