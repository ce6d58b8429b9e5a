"""Messages to people: render (branded HTML + plain text, the recipient's own zone, absolute links),
record one `Message` per logical message, and send it through ACS from the outbox at a pace the
resource's quota allows, most urgent first.

Guarantees:
* one logical message -> one row (unique dedupe key) -> one outbox item -> one ACS operation whose
  Operation-Id Foyer chooses (a random UUID stored with the message before the first attempt). Before
  any second attempt the worker asks ACS for that operation; if ACS already has it, it is not sent again.
* the dispatcher never lets the provider see more than the admin-set quota: every send first takes a
  slot (a `reserved_at` stamp) under a lock (PostgreSQL advisory lock, SQLite's write lock), counted
  over a slightly longer window than the provider's so clock skew cannot push it over.
* when the quota is used up the send is deferred (not failed, not counted as an attempt), and messages
  come back in deadline order: a reminder due in ten minutes goes before an organizer's newsletter.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from markupsafe import Markup, escape
from sqlalchemy import case, func, select, text, update

from app.models import (
    ACTIVE_STATES,
    Event,
    EventStatus,
    Message,
    MessageChannel,
    MessageOverride,
    MessageStatus,
    OutboxItem,
    OutboxStatus,
    Registration,
    RegistrationState,
    Setting,
    User,
    db,
    utcnow,
)
from app.models.base import begin_write, insert_unless_exists
from app.services import audit, outbox
from app.services.dates import format_datetime
from app.services.errors import DomainError, NotAllowed
from app.services.markdown import render_markdown
from app.services.microsoft.acs import EmailMessage
from app.services.microsoft.errors import AcsError
from app.services.microsoft.wiring import get_microsoft
from app.services.timezones import is_valid_zone

logger = logging.getLogger(__name__)
#: A recipient's name as the message log keeps it (a first and a last name may each be 100 characters).
RECIPIENT_NAME_MAX = 200

QUOTA_SETTING = "acs_email_quota"
#: ACS Email's documented default for a custom domain (microsoft.md F.3).
DEFAULT_PER_MINUTE, DEFAULT_PER_HOUR = 30, 100
#: Windows a little longer than the provider's, so a send that reaches ACS a moment after its slot
#: was taken can never make ACS count one too many.
MINUTE_WINDOW, HOUR_WINDOW = 61.0, 3601.0
#: Advisory-lock keys (PostgreSQL): the quota slot counter and the reminder sweep.
QUOTA_LOCK_KEY, SWEEP_LOCK_KEY = 0x466F7901, 0x466F7902
#: How long after "sent" the operation's final status is read.
STATUS_POLL_DELAY = 30.0
#: An ACS key that is refused (revoked, rotated) keeps messages queued; they are tried again this often.
CREDENTIALS_RETRY_SECONDS = 300.0

SUBJECT_MAX = 200
BODY_MAX = 20_000
INTRO_MAX = 5_000


@dataclass(frozen=True)
class Kind:
    label: str
    subject: str
    intro: str
    #: Show the personal manage link.
    manage_link: bool = True


#: Every message type. Subjects and intros may use {title}; the intro also {position} (waitlist).
KINDS: dict[str, Kind] = {
    "confirmed": Kind("Registration confirmed", "You're registered: {title}",
                      "You're registered for {title}. Your seat is confirmed."),
    "pending": Kind("Pending approval", "Registration received: {title}",
                    "Thanks for registering for {title}. The organizer approves each registration by hand; "
                    "we'll email you as soon as they decide."),
    "approved": Kind("Approved", "Approved: {title}",
                     "Good news: your registration for {title} has been approved. Your seat is confirmed."),
    "approved_waitlisted": Kind("Approved, on the waitlist", "Approved — on the waitlist: {title}",
                                "Your registration for {title} has been approved, but the event is fully booked, "
                                "so you're on the waitlist{position}. If a seat frees up, you'll get it "
                                "automatically and we'll email you."),
    "denied": Kind("Declined", "Registration declined: {title}",
                   "Sorry, your registration for {title} was not accepted.", manage_link=False),
    "waitlisted": Kind("Waitlisted", "You're on the waitlist: {title}",
                       "{title} is fully booked, so you're on the waitlist{position}. If a seat frees up, "
                       "you'll get it automatically in the order people joined, and we'll email you."),
    "promoted": Kind("Promoted from the waitlist", "A seat is yours: {title}",
                     "A seat has become free and it's yours: you're now confirmed for {title}."),
    "reminder": Kind("Reminder", "Reminder: {title} starts {when}",
                     "This is a reminder: {title} starts {when}."),
    "event_changed": Kind("Event changed", "Changed: {title}",
                          "The organizer has changed the details of {title}. Please check the new date and "
                          "time below; the updated calendar invitation is attached."),
    "event_cancelled": Kind("Event cancelled", "Cancelled: {title}",
                            "We're sorry: {title} has been cancelled.", manage_link=False),
    "cancelled": Kind("Registration cancelled", "Registration cancelled: {title}",
                      "Your registration for {title} has been cancelled.", manage_link=False),
    "organizer": Kind("Organizer message", "{title}", ""),
    "verify": Kind("Confirm email address", "Confirm your email address: {title}",
                   "Please confirm your email address to complete your registration for {title}.",
                   manage_link=False),
    "resend": Kind("Link re-sent", "Your registration link: {title}",
                   "Someone — probably you — tried to register for {title} with this address, which is already "
                   "registered. Nothing has changed. Here is your personal link again."),
    "test": Kind("Test email", "Test email from {title}", "This is a test email from {title}.", manage_link=False),
    "followup_attended": Kind("Follow-up: thanks for joining", "Thank you for joining {title}",
                              "Thank you for joining {title}.", manage_link=False),
    "followup_missed": Kind("Follow-up: sorry we missed you", "Sorry we missed you at {title}",
                            "We are sorry we missed you at {title}.", manage_link=False),
    "join_link": Kind("New join link", "Your new join link: {title}",
                      "The organizer of {title} has issued you a new personal join link. The previous link no "
                      "longer works.", manage_link=False),
    # Staff emails: about the installation, not an event ({site} is the site name).
    "admin_alert": Kind("Admin alert", "{site} needs you to re-connect Microsoft 365",
                        "{site} could not renew its access to Microsoft 365 and has paused Teams meeting work.",
                        manage_link=False),
    "staff_invite": Kind("Staff invitation", "You're invited to {site}",
                         "You have been invited to {site} as {role}. Choose a password to finish setting up your "
                         "account.", manage_link=False),
    "password_reset": Kind("Password reset", "Reset your {site} password",
                           "Someone — probably you — asked to reset the password of your {site} account. Choose a "
                           "new password with the link below.", manage_link=False),
}
#: Kinds sent to staff, rendered by `render_staff` (no event).
STAFF_KINDS = ("admin_alert", "staff_invite", "password_reset")
#: Types whose subject and intro an organizer may override per event.
OVERRIDABLE = ("confirmed", "pending", "approved", "denied", "waitlisted", "promoted", "reminder", "event_changed",
               "event_cancelled", "cancelled")

def _in_states(*states: RegistrationState):
    return lambda: Registration.state.in_(states)


def _attendance(name: str):
    def condition():
        from app.services import attendance

        return attendance.SEGMENTS[name]()

    return condition


#: Who an organizer message can go to: name -> (label, SQL condition). The attendance segments
#: exist for an event once its attendance has been imported (see `available_segments`).
SEGMENTS: dict[str, tuple[str, Callable[[], Any]]] = {
    "all": ("Everyone registered", _in_states(RegistrationState.confirmed, RegistrationState.waitlisted,
                                              RegistrationState.pending)),
    "confirmed": ("Confirmed", _in_states(RegistrationState.confirmed)),
    "waitlisted": ("Waitlisted", _in_states(RegistrationState.waitlisted)),
    "pending": ("Awaiting approval", _in_states(RegistrationState.pending)),
    "attended": ("Attended", _attendance("attended")),
    "no_show": ("Registered but did not attend", _attendance("no_show")),
}
ATTENDANCE_SEGMENTS = ("attended", "no_show")


def available_segments(event: Event) -> list[str]:
    """The segments an organizer can choose for this event (attendance ones once it is known)."""
    return [key for key in SEGMENTS
            if key not in ATTENDANCE_SEGMENTS or event.attendance_imported_at is not None]


def clean_header(value: str) -> str:
    """No CR/LF or control characters in anything that becomes a header (subject, names)."""
    return " ".join("".join(ch if ch >= " " and ch != "\x7f" else " " for ch in value or "").split())


def new_operation_id() -> str:
    """The Operation-Id Foyer chooses for one logical send, stored with the message before it is sent
    (so a retry or a crash check reuses it). Random, not derived from the dedupe key: keys name rows by
    id, and SQLite can hand a deleted row's id to a new one.
    """
    return str(uuid.uuid4())


# --- quota -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    per_minute: int = DEFAULT_PER_MINUTE
    per_hour: int = DEFAULT_PER_HOUR


def get_quota() -> Quota:
    row = db.session.get(Setting, QUOTA_SETTING)
    if row is None or not isinstance(row.value, dict):
        return Quota()
    try:
        return Quota(max(1, int(row.value["per_minute"])), max(1, int(row.value["per_hour"])))
    except (KeyError, TypeError, ValueError):
        return Quota()


def save_quota(per_minute: Any, per_hour: Any, *, actor: User) -> Quota:
    """Set the ACS resource's email quota (admins)."""
    if not actor.is_admin:
        raise NotAllowed("Only admins can change the email quota.")
    values = {}
    for name, raw, label in (("per_minute", per_minute, "per minute"), ("per_hour", per_hour, "per hour")):
        try:
            number = int(str(raw).strip())
        except (TypeError, ValueError):
            raise DomainError(f"Enter a whole number of emails {label}.", field=name) from None
        if not 1 <= number <= 1_000_000:
            raise DomainError(f"Enter between 1 and 1,000,000 emails {label}.", field=name)
        values[name] = number
    if values["per_hour"] < values["per_minute"]:
        raise DomainError("The hourly quota cannot be smaller than the per-minute quota.", field="per_hour")
    row = db.session.get(Setting, QUOTA_SETTING)
    if row is None:
        db.session.add(Setting(key=QUOTA_SETTING, value=values))
    else:
        row.value = values
    logger.info("Email quota set to %s/min, %s/h by %s", values["per_minute"], values["per_hour"], actor.id)
    return Quota(**values)


def drain_seconds(count: int, quota: Quota | None = None, *, used_minute: int = 0, used_hour: int = 0) -> float:
    """How long `count` more emails take to go out at the quota (seconds until the last one leaves)."""
    quota = quota or get_quota()
    if count <= 0:
        return 0.0
    first_hour = max(quota.per_hour - used_hour, 0)
    if count <= first_hour:
        return (math.ceil((count + used_minute) / quota.per_minute) - 1) * MINUTE_WINDOW
    rest = count - first_hour
    hours = math.ceil(rest / quota.per_hour)
    last = rest - (hours - 1) * quota.per_hour
    return hours * HOUR_WINDOW + (math.ceil(last / quota.per_minute) - 1) * MINUTE_WINDOW


def backlog() -> int:
    """Emails waiting to go out."""
    return db.session.scalar(select(func.count(Message.id)).where(
        Message.channel == MessageChannel.email,
        Message.status.in_([MessageStatus.queued, MessageStatus.sending]))) or 0


def eta(extra: int = 0, *, now: datetime | None = None) -> datetime:
    """When the current backlog plus `extra` more emails will have gone out."""
    now = now or utcnow()
    used_minute, used_hour = _used(now)
    return now + timedelta(seconds=drain_seconds(backlog() + extra, used_minute=used_minute, used_hour=used_hour))


def _used(now: datetime) -> tuple[int, int]:
    """Slots taken in the last minute and hour (one query)."""
    minute_ago, hour_ago = now - timedelta(seconds=MINUTE_WINDOW), now - timedelta(seconds=HOUR_WINDOW)
    row = db.session.execute(select(
        func.coalesce(func.sum(case((Message.reserved_at > minute_ago, 1), else_=0)), 0),
        func.count(Message.id),
    ).where(Message.channel == MessageChannel.email, Message.reserved_at > hour_ago)).one()
    return int(row[0]), int(row[1])


def _lock(key: int) -> None:
    """Serialise with other workers for the rest of this transaction."""
    begin_write()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


#: When the quota is used up, queued sends wake up together once this many slots are free again.
WAKE_BATCH = 10


def _slot_wait(now: datetime, quota: Quota, used_minute: int, used_hour: int, need: int = 1) -> float:
    """Seconds until `need` slots are free (0 when they are free now)."""
    wait = 0.0
    for window, limit, used in ((MINUTE_WINDOW, quota.per_minute, used_minute),
                                (HOUR_WINDOW, quota.per_hour, used_hour)):
        need_here = min(need, limit)
        if used + need_here <= limit:
            continue
        nth = db.session.scalar(
            select(Message.reserved_at)
            .where(Message.channel == MessageChannel.email, Message.reserved_at > now - timedelta(seconds=window))
            .order_by(Message.reserved_at.desc()).offset(limit - need_here).limit(1)
        )
        if nth is not None:
            wait = max(wait, (nth + timedelta(seconds=window) - now).total_seconds())
    return wait


def _ahead(message_id: int, deadline: datetime, now: datetime, *, cap: int | None = None) -> int:
    """Queued emails more urgent than this one (an earlier deadline); counted up to `cap`.

    Equally urgent messages are not ranked among themselves: whichever the worker picks up first goes.
    """
    query = select(Message.id).where(
        Message.channel == MessageChannel.email,
        Message.status == MessageStatus.queued,
        Message.reserved_at.is_(None),
        Message.created_at <= now,
        Message.deadline < deadline,
    )
    if cap is not None:
        query = query.limit(cap)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


def reserve_slot(message_id: int, *, now: datetime | None = None) -> float:
    """Take a send slot for a message (commits). Returns 0 when taken, else seconds to wait first.

    When the quota is used up, every queued send is put back until a few slots are free again (one
    UPDATE), rather than each of them waking up, finding no slot and going back to sleep.
    """
    now = now or utcnow()
    db.session.rollback()
    _lock(QUOTA_LOCK_KEY)
    deadline = db.session.scalar(select(Message.deadline).where(Message.id == message_id))
    quota = get_quota()
    used_minute, used_hour = _used(now)
    free = min(quota.per_minute - used_minute, quota.per_hour - used_hour)
    if free > 0:
        ahead = _ahead(message_id, deadline, now, cap=free)
        if ahead < free:
            db.session.execute(update(Message).where(Message.id == message_id).values(
                reserved_at=now, status=MessageStatus.sending, attempts=Message.attempts + 1, updated_at=now)
                .execution_options(synchronize_session=False))
            db.session.commit()
            return 0.0
        # The free slots are owed to more urgent messages (queued, due now): let them have them. Every
        # queued send no more urgent than this one steps back with it, so the worker reaches the urgent
        # ones next instead of stepping through a long backlog one message at a time.
        _put_back(now + timedelta(seconds=1), due_by=now, not_before=deadline)
        db.session.commit()
        return 1.0
    # Wake once a batch of slots is free, but never wait for more than the hour has left: when only the
    # minute is used up and the hour has five slots left, those five go a minute later, not an hour later.
    free_hour = quota.per_hour - used_hour
    need = WAKE_BATCH if free_hour <= 0 else min(WAKE_BATCH, free_hour)
    wait = max(_slot_wait(now, quota, used_minute, used_hour, need=need), 0.5)
    _put_back(now + timedelta(seconds=wait))
    db.session.commit()
    return wait


def _put_back(until: datetime, *, due_by: datetime | None = None, not_before: datetime | None = None) -> None:
    """Make queued sends that would run before `until` (or by `due_by`) wait until then, in one UPDATE;
    with `not_before`, only those whose deadline is no earlier than that.
    """
    condition = [OutboxItem.kind == "message.send", OutboxItem.status == OutboxStatus.pending,
                 OutboxItem.next_attempt_at <= due_by if due_by is not None else OutboxItem.next_attempt_at < until]
    if not_before is not None:
        condition.append(OutboxItem.dedupe_key.in_(
            select("message:" + Message.dedupe_key).where(Message.status == MessageStatus.queued,
                                                          Message.deadline >= not_before)))
    db.session.execute(update(OutboxItem).where(*condition).values(next_attempt_at=until)
                       .execution_options(synchronize_session=False))


# --- rendering ---------------------------------------------------------------------------------------


def describe_when(event: Event, zone_name: str) -> str:
    """'Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)' in the given zone."""
    from app.services.registrations import describe_when as when

    return when(event, zone_name)


def relative_start(event: Event, now: datetime, zone_name: str) -> str:
    """'in 1 hour', 'in 15 minutes', 'tomorrow at 14:00', 'on Tue 3 Mar at 14:00' (recipient's zone)."""
    zone = ZoneInfo(zone_name if is_valid_zone(zone_name) else "UTC")
    minutes = max(0, round((event.starts_at - now).total_seconds() / 60))
    if minutes < 1:
        return "now"
    if minutes < 90:
        return f"in {minutes} minute{'s' if minutes != 1 else ''}" if minutes % 60 else "in 1 hour"
    if minutes < 12 * 60:
        hours = round(minutes / 60)
        return f"in {hours} hours"
    start, today = event.starts_at.astimezone(zone), now.astimezone(zone).date()
    if start.date() == today:
        return f"today at {start:%H:%M}"
    if start.date() == today + timedelta(days=1):
        return f"tomorrow at {start:%H:%M}"
    return f"on {start:%a} {start.day} {start:%b} at {start:%H:%M}"  # the date as Foyer writes it everywhere


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _fill(template: str, values: dict[str, str]) -> str:
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
    from flask import g

    return g.setdefault("_message_render_cache", {})


def _cached(key: tuple, compute):
    cache = _render_cache()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def preload_rendering(event: Event) -> None:
    """Read what an event's emails are rendered with (branding, the event's own wording) now, so that
    rendering one later in this request reads nothing: a registration renders its email while it holds
    the event's lock, and these reads need none.
    """
    from app.services.settings import get_branding

    cache = _render_cache()
    saved = {o.kind: Wording(o.subject, o.intro)
             for o in db.session.scalars(select(MessageOverride).where(MessageOverride.event_id == event.id))}
    for kind in OVERRIDABLE:
        cache[("override", event.id, kind)] = saved.get(kind)
    cache[("branding",)] = get_branding()


def render(kind: str, *, event: Event, name: str = "", zone: str = "UTC", manage_link: str | None = None,
           extra: str = "", position: int | None = None, link: str | None = None, now: datetime | None = None,
           subject: str | None = None, intro: str | None = None, attachment_note: bool = False,
           expires: datetime | None = None, join_link: str | None = None,
           device_link: str | None = None) -> Rendered:
    """Render one message: subject, inline-styled HTML and plain text.

    `subject` / `intro` (Markdown) replace Foyer's wording (organizer overrides and messages);
    None uses the event's saved override, then Foyer's default.
    """
    from app.services import catalog
    from app.services.settings import get_branding

    if kind in STAFF_KINDS:
        return render_staff(kind, name=name, zone=zone, link=link, extra=extra, expires=expires)
    spec = KINDS[kind]
    now = now or utcnow()
    zone = zone if is_valid_zone(zone) else "UTC"
    override = (_cached(("override", event.id, kind), lambda: _wording(event, kind))
                if subject is None and intro is None else None)
    when_relative = relative_start(event, now, zone)
    values = {"title": event.title, "position": f" (number {position} in line)" if position else "",
              "when": when_relative}
    subject_text = subject if subject is not None else (override.subject if override and override.subject else "")
    subject_text = clean_header(_fill(subject_text or spec.subject, {k: values[k] for k in ("title", "when")}))
    intro_md = intro if intro is not None else (override.intro if override and override.intro else "")
    if intro_md:
        intro_html = render_markdown(_fill(intro_md, {"title": event.title}))
        intro_text = catalog.markdown_to_text(_fill(intro_md, {"title": event.title}), links=True)
    else:
        intro_text = _fill(spec.intro, values)
        intro_html = Markup("<p>{}</p>").format(intro_text)
    branding = _cached(("branding",), get_branding)
    logo_url = (catalog.public_url("public.upload_GET", filename=branding.logo_filename)
                if branding.logo_filename else None)
    expires_text = ""
    if expires is not None:
        expires_text = format_datetime(expires, zone)
    context = {
        "kind": kind, "branding": branding, "logo_url": logo_url, "event": event, "name": clean_header(name),
        "when": describe_when(event, zone), "when_relative": when_relative, "zone": zone,
        "event_url": catalog.event_url(event), "manage_url": manage_link if spec.manage_link else None,
        "join_url": join_link, "device_url": device_link,
        "link": link, "intro_html": intro_html, "intro_text": intro_text, "extra": (extra or "").strip(),
        "subject": subject_text, "attachment_note": attachment_note, "expires": expires_text,
    }
    # The environment's own render (not render_template): emails need no request context processors.
    env = current_app.jinja_env
    html = env.get_template(f"emails/{kind}.html").render(**context)
    body = env.get_template(f"emails/{kind}.txt").render(**context)
    return Rendered(subject=subject_text or event.title, html=html, text=body.strip() + "\n")


#: Stands in a message's stored body for a one-time link that signs someone in (invitation, password
#: reset): the link itself travels encrypted in the outbox item and is put in only as the email is sent,
#: so the message log (and whoever reads it in /admin/messages) never holds it.
SECRET_LINK = "{one-time-link}"  # noqa: S105  (a placeholder, not a secret)


def render_staff(kind: str, *, name: str = "", zone: str = "UTC", link: str | None = None, extra: str = "",
                 expires: datetime | None = None, role: str = "") -> Rendered:
    """Render an email to staff (about the installation, no event), branded, times in `zone`."""
    from app.services import catalog
    from app.services.settings import get_branding

    spec = KINDS[kind]
    zone = zone if is_valid_zone(zone) else "UTC"
    branding = _cached(("branding",), get_branding)
    values = {"site": branding.site_name, "role": clean_header(role)}
    subject_text = clean_header(_fill(spec.subject, values))
    intro_text = _fill(spec.intro, values)
    expires_text = ""
    if expires is not None:
        local = expires.astimezone(ZoneInfo(zone))
        expires_text = f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M} ({zone})"
    context = {
        "kind": kind, "branding": branding, "zone": zone, "name": clean_header(name), "subject": subject_text,
        "logo_url": (catalog.public_url("public.upload_GET", filename=branding.logo_filename)
                     if branding.logo_filename else None),
        "intro_html": Markup("<p>{}</p>").format(intro_text), "intro_text": intro_text, "link": link,
        "extra": (extra or "").strip(), "expires": expires_text,
    }
    env = current_app.jinja_env
    html = env.get_template(f"emails/{kind}.html").render(**context)
    body = env.get_template(f"emails/{kind}.txt").render(**context)
    return Rendered(subject=subject_text, html=html, text=body.strip() + "\n")


def _with_secret_link(payload: dict[str, Any], text_body: str, html_body: str) -> tuple[str, str]:
    """The bodies as sent: a one-time link kept out of the log is put back in (see SECRET_LINK)."""
    sealed = payload.get("secret_link")
    if not sealed:
        return text_body, html_body
    from app.services import crypto

    link = crypto.decrypt(sealed)
    return text_body.replace(SECRET_LINK, link), html_body.replace(SECRET_LINK, str(escape(link)))


def save_override(event: Event, kind: str, subject: str, intro: str, *, actor: User) -> MessageOverride | None:
    """Set an event's own subject / opening paragraph for one email type; both empty removes it."""
    from app.services.events import can_manage

    if not can_manage(actor, event):
        raise NotAllowed("You cannot change this event's emails.")
    if kind not in OVERRIDABLE:
        raise DomainError("This email cannot be changed.")
    subject = clean_header(subject)
    intro = (intro or "").replace("\r\n", "\n").strip()
    if len(subject) > SUBJECT_MAX:
        raise DomainError(f"Keep the subject under {SUBJECT_MAX} characters.", field="subject")
    if len(intro) > INTRO_MAX:
        raise DomainError(f"Keep the paragraph under {INTRO_MAX:,} characters.", field="intro")
    override = get_override(event, kind)
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


def nl2br(value: str) -> Markup:
    """Escape text and keep its line breaks (for organizer notes in HTML)."""
    return Markup("<br>\n").join(escape(line) for line in (value or "").splitlines())


# --- queueing ------------------------------------------------------------------------------------


def _existing(dedupe_key: str) -> Message | None:
    return db.session.scalar(select(Message).where(Message.dedupe_key == dedupe_key))


def _add(message: Message) -> Message | None:
    """Record a message; None when its key was recorded before (or by a concurrent transaction first)."""
    return insert_unless_exists(message, "dedupe_key")


def queue_email(kind: str, *, event: Event | None, to: str, name: str, dedupe_key: str, rendered: Rendered,
                registration: Registration | None = None, attachments: list[tuple[str, str, bytes]] | None = None,
                invite: dict[str, Any] | None = None, deadline: datetime | None = None,
                batch: str | None = None, secret_link: str | None = None) -> Message | None:
    """Record one email and queue its sending, in the caller's transaction; a repeated key is a no-op.

    `invite` is an invitation spec (`_invite_spec`): the .ics is built when the email is sent.
    `event` is None for staff emails. `secret_link` replaces SECRET_LINK in the body as it is sent.
    """
    now = utcnow()
    files = [{"name": clean_header(n), "contentType": t, "contentInBase64": base64.b64encode(b).decode()}
             for n, t, b in (attachments or [])]
    described = [{"name": f["name"], "contentType": f["contentType"], "size": len(b)}
                 for f, (_, _, b) in zip(files, attachments or [], strict=True)]
    if invite is not None:
        described.append(_invite_description(invite["method"]))  # its size is recorded once it is built
    message = _add(Message(
        dedupe_key=dedupe_key, channel=MessageChannel.email, kind=kind, status=MessageStatus.queued,
        event_id=event.id if event is not None else None,
        registration_id=registration.id if registration is not None else None, batch=batch,
        recipient=to, recipient_name=clean_header(name)[:RECIPIENT_NAME_MAX], subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html, attachments=described,
        deadline=deadline or now + timedelta(minutes=10), operation_id=new_operation_id(),
        created_at=now,
    ))
    if message is None:
        return None
    payload: dict[str, Any] = {"message_id": message.id, "attachments": files}
    if invite is not None:
        payload["invite"] = invite
    if secret_link is not None:
        from app.services import crypto

        payload["secret_link"] = crypto.encrypt(secret_link)
    outbox.enqueue("message.send", payload, dedupe_key=f"message:{dedupe_key}",
                   event_id=event.id if event is not None else None)
    return message


def queue_sms(kind: str, *, event: Event, registration: Registration, dedupe_key: str, body: str,
              deadline: datetime | None = None, batch: str | None = None) -> Message | None:
    """Record one SMS and queue its sending (the registrant opted in and gave a number)."""
    if not registration.phone:
        return None
    message = _add(Message(
        dedupe_key=dedupe_key, channel=MessageChannel.sms, kind=kind, status=MessageStatus.queued,
        event_id=event.id, registration_id=registration.id, batch=batch, recipient=registration.phone,
        recipient_name=clean_header(registration.full_name)[:RECIPIENT_NAME_MAX], subject="", body_text=body,
        body_html="",
        deadline=deadline or utcnow() + timedelta(minutes=10), created_at=utcnow(),
    ))
    if message is None:
        return None
    outbox.enqueue("message.send", {"message_id": message.id, "attachments": []},
                   dedupe_key=f"message:{dedupe_key}", event_id=event.id)
    return message


def record_suppressed(kind: str, *, event: Event, registration: Registration, dedupe_key: str, reason: str,
                      batch: str | None = None, channel: MessageChannel = MessageChannel.email) -> Message | None:
    """Record a message deliberately not sent (e.g. a reminder for an event that already started)."""
    return _add(Message(
        dedupe_key=dedupe_key, channel=channel, kind=kind, status=MessageStatus.suppressed, event_id=event.id,
        registration_id=registration.id, batch=batch, recipient=registration.email if channel == "email"
        else (registration.phone or ""), recipient_name=clean_header(registration.full_name)[:RECIPIENT_NAME_MAX],
        last_error=reason, operation_id="", created_at=utcnow(),
    ))


# --- registration messages -------------------------------------------------------------------------


def _invite_description(method: str) -> dict[str, str]:
    """The file name and content type of a registrant's invitation (REQUEST) or its cancellation (CANCEL)."""
    # ACS's attachment allow-list names the bare type; the METHOD travels inside the file.
    return {"name": "cancel.ics" if method == "CANCEL" else "invite.ics", "contentType": "text/calendar"}


def _invite_spec(reg: Registration, method: str, link: str | None) -> dict[str, Any]:
    """What the sender needs to build a registrant's invitation when the email goes out.

    The personal link is the one the email itself carries (issued now, inside the registration's
    transaction), so building the file later never has to issue a token.
    """
    from app.services import ics

    return {"registration_id": reg.id, "method": method, "link": link or ics.personal_link(reg)}


def _cancel_sent_before(registration_id: int) -> bool:
    """Whether a calendar cancellation already went out for this registration."""
    rows = db.session.scalars(select(Message.attachments).where(
        Message.registration_id == registration_id, Message.channel == MessageChannel.email,
        Message.status == MessageStatus.sent))
    return any(isinstance(a, dict) and a.get("name") == "cancel.ics" for files in rows for a in files or [])


def build_invite(spec: dict[str, Any]) -> dict[str, str] | None:
    """A registrant's invitation as an email attachment, built from its spec as the email is sent.

    A REQUEST shows the event as it is now (times, title, SEQUENCE); a CANCEL stays a CANCEL. None when
    it cannot be built: the email still goes out, as its links work without the file.
    """
    from app.services import ics

    method = spec.get("method")
    reg = db.session.get(Registration, spec.get("registration_id") or 0)
    if reg is None or method not in ics.INVITE_METHODS:
        logger.warning("No calendar invite for registration %s: it no longer exists", spec.get("registration_id"))
        return None
    if method == "REQUEST" and not reg.is_active and _cancel_sent_before(reg.id):
        # Sent late (retries): an invitation must never follow the cancellation into the calendar.
        logger.info("Calendar invite of registration %s left out: its cancellation went out first", reg.id)
        return None
    try:
        data = ics.registration_invite(reg, method=method, link=spec.get("link"))
    except Exception:  # an invite must never stop an email; the link still works
        logger.exception("Could not build the calendar invite for registration %s", reg.id)
        return None
    return {**_invite_description(method), "contentInBase64": base64.b64encode(data).decode()}


def message_attachments(payload: dict[str, Any]) -> list[dict[str, str]]:
    """The files of a `message.send` item: those stored with it, and the invitation built now."""
    files = list(payload.get("attachments") or [])
    if payload.get("invite"):
        invite = build_invite(payload["invite"])
        if invite is not None:
            files.append(invite)
    return files


#: Messages that carry a confirmed attendee's personal join link.
JOIN_LINK_KINDS = frozenset({"confirmed", "approved", "promoted", "reminder", "event_changed", "resend"})


def notify_registration(reg: Registration, kind: str, *, dedupe_key: str, extra: str = "",
                        invite: str | None = None, token: str | None = None, position: int | None = None,
                        link: str | None = None, expires: datetime | None = None,
                        deadline: datetime | None = None, batch: str | None = None,
                        now: datetime | None = None, new_key: bool = False) -> Message | None:
    """Render and queue one email to a registrant; `invite` attaches the .ics (REQUEST or CANCEL).

    A key seen before is skipped before rendering; `new_key` says it names a transition recorded in
    this transaction, so that look-up is left out (a repeat is still a no-op when it is recorded).
    """
    from app.services import registrations

    event = reg.event
    if not new_key and _existing(dedupe_key) is not None:
        return None
    manage = registrations.manage_url(token or registrations.manage_token_for(reg)) \
        if KINDS[kind].manage_link else None
    join_link = device_link = None
    if reg.state == RegistrationState.confirmed and kind in JOIN_LINK_KINDS:
        from app.services import joins

        join_link = joins.join_url(reg)
        device_link = joins.device_check_url(reg) if kind == "reminder" else None
    spec = _invite_spec(reg, invite, join_link) if invite else None
    rendered = render(kind, event=event, name=reg.first_name, zone=reg.timezone, manage_link=manage, extra=extra,
                      position=position, link=link, expires=expires, now=now,
                      attachment_note=invite == "REQUEST", join_link=join_link, device_link=device_link)
    return queue_email(kind, event=event, to=reg.email, name=reg.full_name, dedupe_key=dedupe_key, rendered=rendered,
                       registration=reg, invite=spec, deadline=deadline, batch=batch)


def queue_followup(reg: Registration, *, attended: bool) -> Message | None:
    """Queue "thank you for joining" (attended) or "sorry we missed you" to a registrant, once ever,
    with the event's recording link when there is one.
    """
    key = f"registration:{reg.id}:followup"
    if _existing(key) is not None:
        return None
    event = reg.event
    kind = "followup_attended" if attended else "followup_missed"
    rendered = render(kind, event=event, name=reg.first_name, zone=reg.timezone,
                      link=event.followup_recording_url or None)
    return queue_email(kind, event=event, to=reg.email, name=reg.full_name, dedupe_key=key, rendered=rendered,
                       registration=reg, deadline=utcnow() + timedelta(hours=6))


def queue_new_join_link(reg: Registration, join_link: str) -> Message | None:
    """Queue a registrant's newly issued join link (the organizer re-issued it; the old one stopped working)."""
    event = reg.event
    rendered = render("join_link", event=event, name=reg.first_name, zone=reg.timezone, join_link=join_link)
    return queue_email("join_link", event=event, to=reg.email, name=reg.full_name, rendered=rendered,
                       dedupe_key=f"registration:{reg.id}:join-link:{reg.join_token_hash}", registration=reg)


def queue_admin_alert(admin: User, *, reason: str, key: str) -> Message | None:
    """Queue the "re-connect Microsoft 365" alert to one admin (`key` names the breakage)."""
    from app.services import catalog

    rendered = render_staff("admin_alert", name=admin.name, extra=reason,
                            link=catalog.public_url("admin_microsoft.connection_GET"))
    return queue_email("admin_alert", event=None, to=admin.email, name=admin.name, rendered=rendered,
                       dedupe_key=f"admin-alert:{key}:{admin.id}")


def queue_staff_link(kind: str, user: User, *, link: str, expires: datetime, key: str) -> Message | None:
    """Queue a staff invitation or password-reset email; the one-time link never enters the log."""
    rendered = render_staff(kind, name=user.name, link=SECRET_LINK, expires=expires,
                            role="an admin" if user.is_admin else "an organizer")
    return queue_email(kind, event=None, to=user.email, name=user.name, rendered=rendered,
                       dedupe_key=f"{kind}:{user.id}:{key}", secret_link=link,
                       deadline=utcnow() + timedelta(minutes=5))


# --- event-wide messages (fan-out in the worker) -----------------------------------------------------


def segment_query(event: Event, segment: str):
    _, condition = SEGMENTS[segment]
    return (select(Registration).where(Registration.event_id == event.id, condition())
            .order_by(Registration.id))


def segment_count(event: Event, segment: str) -> int:
    _, condition = SEGMENTS[segment]
    return db.session.scalar(select(func.count(Registration.id)).where(
        Registration.event_id == event.id, condition())) or 0


def queue_event_changed(event: Event, *, previous: dict[str, str] | None = None) -> None:
    """Tell every active registrant an event's time or title changed (confirmed ones get the new .ics);
    `previous` (title, ISO start and end) lets each email show what it was.
    """
    outbox.enqueue("messages.fanout", {"event_id": event.id, "kind": "event_changed", "sequence": event.ics_sequence,
                                       "batch": f"event_changed:{event.id}:{event.ics_sequence}",
                                       "previous": previous},
                   dedupe_key=f"fanout:event_changed:{event.id}:{event.ics_sequence}", event_id=event.id)


def previous_details(event: Event, previous: dict[str, str] | None, zone: str) -> str:
    """What an event was before a change, in the recipient's zone: "Was: …" lines ('' when unknown)."""
    if not previous:
        return ""
    from types import SimpleNamespace

    lines = []
    if previous.get("title") and previous["title"] != event.title:
        lines.append(f"Was called: {previous['title']}")
    try:
        before = SimpleNamespace(starts_at=datetime.fromisoformat(previous["starts_at"]),
                                 ends_at=datetime.fromisoformat(previous["ends_at"]))
    except (KeyError, TypeError, ValueError):
        before = None
    if before is not None and (before.starts_at, before.ends_at) != (event.starts_at, event.ends_at):
        lines.append(f"Was: {describe_when(before, zone)}")
        lines.append(f"Now: {describe_when(event, zone)}")
    return "\n".join(lines)


def queue_event_cancelled(event: Event) -> None:
    """Tell every active registrant the event is cancelled (confirmed ones get METHOD:CANCEL)."""
    outbox.enqueue("messages.fanout", {"event_id": event.id, "kind": "event_cancelled",
                                       "sequence": event.ics_sequence, "batch": f"event_cancelled:{event.id}"},
                   dedupe_key=f"fanout:event_cancelled:{event.id}", event_id=event.id)


@dataclass(frozen=True)
class Composition:
    segment: str
    subject: str
    body: str


def check_composition(event: Event, segment: str, subject: str, body: str) -> Composition:
    """Validate an organizer message; DomainError naming the field otherwise."""
    if segment not in available_segments(event):
        raise DomainError("Choose who receives the message.", field="segment")
    subject = clean_header(subject)
    if not subject:
        raise DomainError("Enter a subject.", field="subject")
    if len(subject) > SUBJECT_MAX:
        raise DomainError(f"Keep the subject under {SUBJECT_MAX} characters.", field="subject")
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise DomainError("Write the message.", field="body")
    if len(body) > BODY_MAX:
        raise DomainError(f"Keep the message under {BODY_MAX:,} characters.", field="body")
    return Composition(segment, subject, body)


def render_organizer_message(event: Event, composition: Composition, *, name: str = "", zone: str | None = None,
                             manage_link: str | None = None) -> Rendered:
    return render("organizer", event=event, name=name, zone=zone or event.timezone, manage_link=manage_link,
                  subject=composition.subject, intro=composition.body)


def send_organizer_message(event: Event, composition: Composition, *, actor: User) -> str:
    """Queue an organizer message to a segment; returns the batch key for the progress view."""
    from app.services.events import can_manage

    if not can_manage(actor, event):
        raise NotAllowed("You cannot message this event's attendees.")
    batch = f"organizer:{event.id}:{uuid.uuid4().hex[:12]}"
    expected = segment_count(event, composition.segment)
    outbox.enqueue("messages.fanout", {"event_id": event.id, "kind": "organizer", "segment": composition.segment,
                                       "subject": composition.subject, "body": composition.body, "batch": batch,
                                       "expected": expected,
                                       "actor_id": actor.id},
                   dedupe_key=f"fanout:{batch}", event_id=event.id)
    audit.record("message.send", actor=actor, target=event, event=event,
                 summary=f"Messaged “{SEGMENTS[composition.segment][0]}”: {composition.subject}",
                 details={"batch": batch, "segment": composition.segment, "subject": composition.subject,
                          "recipients": expected})
    logger.info("Organizer message %s to %s of event %s queued by %s", batch, composition.segment, event.id,
                actor.id)
    return batch


@outbox.handler("messages.fanout")
def fanout(payload: dict[str, Any]) -> None:
    """Queue one message per recipient of an event-wide send (idempotent: per-recipient dedupe keys)."""
    db.session.rollback()
    begin_write()
    event = db.session.get(Event, payload["event_id"])
    if event is None:
        return
    kind, batch = payload["kind"], payload["batch"]
    if kind == "organizer":
        query = segment_query(event, payload["segment"])
    else:
        query = (select(Registration).where(Registration.event_id == event.id,
                                            Registration.state.in_(ACTIVE_STATES),
                                            Registration.state != RegistrationState.unverified)
                 .order_by(Registration.id))
    count = 0
    for reg in db.session.scalars(query):
        if kind == "organizer":
            from app.services import registrations

            key = f"{batch}:{reg.id}"
            if _existing(key) is not None:
                continue
            manage = registrations.manage_url(registrations.manage_token_for(reg))
            rendered = render("organizer", event=event, name=reg.first_name, zone=reg.timezone, manage_link=manage,
                              subject=payload["subject"], intro=payload["body"])
            queued = queue_email("organizer", event=event, to=reg.email, name=reg.full_name, dedupe_key=key,
                                 rendered=rendered, registration=reg, batch=batch,
                                 deadline=utcnow() + timedelta(hours=6))
        else:
            confirmed = reg.state == RegistrationState.confirmed
            method = ("CANCEL" if kind == "event_cancelled" else "REQUEST") if confirmed else None
            key = f"{batch}:{reg.id}"
            extra = (event.cancellation_reason if kind == "event_cancelled"
                     else previous_details(event, payload.get("previous"), reg.timezone))
            queued = notify_registration(reg, kind, dedupe_key=key, invite=method, batch=batch, extra=extra,
                                         deadline=utcnow() + timedelta(minutes=30))
        count += 1 if queued is not None else 0
    db.session.commit()
    logger.info("Fan-out %s queued %s message(s)", batch, count)


# --- sending ------------------------------------------------------------------------------------------


def _settle(message_id: int, **values: Any) -> None:
    """Record a step of the send in its own short transaction."""
    db.session.rollback()
    begin_write()
    db.session.execute(update(Message).where(Message.id == message_id).values(**values, updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _mark_failed(payload: dict[str, Any], error: str) -> None:
    """The outbox gave up: the message shows as failed (perform() commits)."""
    message = db.session.get(Message, payload.get("message_id"))
    if message is not None and message.status not in (MessageStatus.sent, MessageStatus.suppressed):
        message.status = MessageStatus.failed
        message.last_error = error[:2000]


_SEND_COLUMNS = (Message.id, Message.status, Message.kind, Message.channel, Message.attempts, Message.operation_id,
                 Message.recipient, Message.recipient_name, Message.subject, Message.body_text, Message.body_html,
                 Message.event_id, Message.registration_id)


def _still_wanted(row, now: datetime) -> str:
    """Why a queued reminder should no longer go out ('' when it should)."""
    if row.kind != "reminder":
        return ""
    event = db.session.execute(select(Event.status, Event.starts_at).where(Event.id == row.event_id)).first() \
        if row.event_id else None
    if event is None or event.status != EventStatus.published:
        return "The event is no longer published."
    if event.starts_at <= now:
        return "The event had already started."
    state = db.session.scalar(select(Registration.state).where(Registration.id == row.registration_id)) \
        if row.registration_id else None
    if state != RegistrationState.confirmed:
        return "The registration is no longer confirmed."
    return ""


@outbox.handler("message.send", on_failure=_mark_failed)
def send_message(payload: dict[str, Any]) -> None:
    """Send one message: check ACS for an earlier attempt first, take a quota slot, submit, record."""
    message_id = payload["message_id"]
    db.session.rollback()
    row = db.session.execute(select(*_SEND_COLUMNS).where(Message.id == message_id)).first()
    if row is None or row.status in (MessageStatus.sent, MessageStatus.suppressed, MessageStatus.failed):
        return
    now = utcnow()
    reason = _still_wanted(row, now)
    if reason:
        _settle(message_id, status=MessageStatus.suppressed, last_error=reason)
        logger.info("Message %s suppressed: %s", message_id, reason)
        return
    if row.channel == MessageChannel.sms:
        _send_sms(row)
        return
    client = get_microsoft().acs_email
    if row.attempts > 0 and row.operation_id:
        # An earlier attempt may have reached ACS (crash, timeout): ask before sending again.
        db.session.commit()
        try:
            previous = client.operation_status(row.operation_id)
        except AcsError as exc:
            _raise_for(message_id, exc)
        if previous is not None:
            _accepted(message_id, row.operation_id, row.event_id, previous.status, previous.error)
            logger.info("Message %s was already accepted by ACS (operation %s); not sent again",
                        message_id, row.operation_id)
            return
    wait = reserve_slot(message_id, now=now)
    if wait > 0:
        raise outbox.Defer("email quota in use", seconds=wait)
    reply_to = sender_reply_to()
    files = message_attachments(payload)
    db.session.rollback()  # building the invite read rows: no transaction stays open during the call
    text_body, html_body = _with_secret_link(payload, row.body_text, row.body_html)
    email = EmailMessage(to=[(row.recipient, row.recipient_name)], subject=row.subject, plain_text=text_body,
                         html=html_body, attachments=files or None, reply_to=reply_to)
    outbox.fence()  # still this worker's to send, and no one else's until the call is over
    try:
        result = client.submit(email, operation_id=row.operation_id)
    except AcsError as exc:
        if exc.status == 429:
            # ACS did not count it: give the slot back.
            _settle(message_id, reserved_at=None)
        _raise_for(message_id, exc)
    _accepted(message_id, row.operation_id, row.event_id, result.status, result.error, files=files)


# --- sender settings and the admin's test email ---------------------------------------------------


def sender_reply_to() -> list[tuple[str, str]] | None:
    """The admin's reply-to address, named with the sender name, for every email sent; None without one.

    ACS sends From the configured sender address; its display name belongs to that MailFrom address in
    Azure (the send request has no field for it), so the sender name travels with the reply-to.
    """
    from app.services.settings import get_branding, get_email_settings

    sender = get_email_settings()
    if not sender.reply_to:
        return None
    return [(sender.reply_to, clean_header(sender.sender_name or get_branding().site_name))]


def queue_test_email(*, actor: User, now: datetime | None = None) -> Message | None:
    """Queue a test email to the acting admin through the pipeline; None when one was queued this minute."""
    from app.services.settings import get_branding, get_email_settings

    if not actor.is_admin:
        raise NotAllowed("Only admins can send a test email.")
    now = now or utcnow()
    branding, sender = get_branding(), get_email_settings()
    subject = clean_header(_fill(KINDS["test"].subject, {"title": branding.site_name}))
    context = {"branding": branding, "subject": subject, "name": clean_header(actor.name or ""),
               "sender_name": sender.sender_name, "reply_to": sender.reply_to,
               "sent_from": current_app.config.get("ACS_SENDER_ADDRESS", "")}
    env = current_app.jinja_env
    message = _add(Message(
        dedupe_key=f"test:{actor.id}:{now:%Y%m%d%H%M}", channel=MessageChannel.email, kind="test",
        status=MessageStatus.queued, event_id=None, recipient=actor.email,
        recipient_name=clean_header(context["name"])[:RECIPIENT_NAME_MAX],
        subject=subject, body_text=env.get_template("emails/test.txt").render(**context).strip() + "\n",
        body_html=env.get_template("emails/test.html").render(**context), attachments=[],
        deadline=now + timedelta(minutes=10), operation_id=new_operation_id(), created_at=now,
    ))
    if message is None:
        return None
    outbox.enqueue("message.send", {"message_id": message.id, "attachments": []},
                   dedupe_key=f"message:{message.dedupe_key}")
    from app.services import audit

    audit.record("message.test_email", actor=actor, target=("message", message.id),
                 summary=f"Sent a test email to {actor.email}")
    return message
@outbox.handler("email.send", on_failure=_mark_failed)
def send_legacy_email(payload: dict[str, Any]) -> None:
    """An email an earlier version queued outside the message log: record it as a message (keeping its
    Operation-Id, counted as tried so ACS is asked about it first) and send it as one.
    """
    db.session.rollback()
    begin_write()
    operation_id = str(payload.get("operation_id") or new_operation_id())
    key = f"legacy-email:{operation_id}"
    # Its event and registration (from the item and its key), so that erasure and retention find it.
    item = next((i for i in db.session.scalars(select(OutboxItem).where(OutboxItem.kind == "email.send",
                                                                         OutboxItem.status == OutboxStatus.running))
                 if isinstance(i.payload, dict) and i.payload.get("operation_id") == operation_id), None)
    found = re.match(r"email:registration:(\d+):", item.dedupe_key) if item is not None else None
    registration_id = int(found.group(1)) if found else None
    if registration_id is not None and db.session.get(Registration, registration_id) is None:
        registration_id = None
    message = _existing(key) or _add(Message(
        dedupe_key=key, channel=MessageChannel.email, kind="legacy", status=MessageStatus.queued,
        event_id=item.event_id if item is not None else None, registration_id=registration_id,
        recipient=str(payload.get("to", "")),
        recipient_name=clean_header(str(payload.get("name", "")))[:RECIPIENT_NAME_MAX],
        subject=clean_header(str(payload.get("subject", ""))), body_text=str(payload.get("text", "")),
        body_html=str(payload.get("html") or "") or f"<pre>{escape(str(payload.get('text', '')))}</pre>",
        deadline=utcnow(), operation_id=operation_id, attempts=1, created_at=utcnow())) or _existing(key)
    db.session.commit()
    send_message({**payload, "message_id": message.id})


def _raise_for(message_id: int, exc: AcsError) -> None:
    """Turn an ACS error into the outbox's verdict, recording it on the message."""
    if exc.status in (401, 403):
        _settle(message_id, status=MessageStatus.queued,
                last_error="ACS refused Foyer's credentials (check ACS_CONNECTION_STRING); kept queued.")
        raise outbox.RetryLater(str(exc), retry_after=CREDENTIALS_RETRY_SECONDS) from exc
    if exc.transient:
        _settle(message_id, status=MessageStatus.queued, last_error=str(exc)[:2000])
        raise outbox.retry_transient(str(exc), exc.retry_after) from exc
    _settle(message_id, status=MessageStatus.failed, last_error=str(exc)[:2000])
    raise outbox.PermanentFailure(str(exc)) from exc


_TERMINAL = ("Succeeded", "Failed", "Canceled")


def _accepted(message_id: int, operation_id: str, event_id: int | None, status: str, error: str, *,
              files: list[dict[str, str]] | None = None) -> None:
    """ACS has the operation: the message is sent; its final status is recorded now or polled later.

    `files` are the attachments that went with it, recorded by name, type and size.
    """
    sent_files = {} if files is None else {"attachments": [
        {"name": f["name"], "contentType": f["contentType"], "size": len(base64.b64decode(f["contentInBase64"]))}
        for f in files]}
    if status in ("Failed", "Canceled"):
        _settle(message_id, status=MessageStatus.failed, operation_status=status, sent_at=utcnow(),
                last_error=f"ACS could not deliver: {error or status}"[:2000], **sent_files)
        return
    db.session.rollback()
    begin_write()
    db.session.execute(update(Message).where(Message.id == message_id).values(
        status=MessageStatus.sent, sent_at=utcnow(), last_error="", updated_at=utcnow(), **sent_files,
        operation_status=status if status in _TERMINAL else "Running").execution_options(synchronize_session=False))
    if status not in _TERMINAL:
        outbox.enqueue("message.status", {"message_id": message_id, "operation_id": operation_id},
                       dedupe_key=f"message-status:{operation_id}", event_id=event_id,
                       run_at=utcnow() + timedelta(seconds=current_app.config.get("ACS_STATUS_POLL_SECONDS",
                                                                                  STATUS_POLL_DELAY)))
    db.session.commit()


@outbox.handler("message.status")
def poll_status(payload: dict[str, Any]) -> None:
    """Record an email operation's final status from ACS (Succeeded: accepted for delivery; see delivery_reports)."""
    client = get_microsoft().acs_email
    try:
        result = client.operation_status(payload["operation_id"])
    except AcsError as exc:
        if exc.transient and exc.retry_after is not None:
            raise outbox.retry_transient(str(exc), exc.retry_after) from exc
        if exc.transient or exc.status in (401, 403):
            raise outbox.RetryLater(str(exc), retry_after=exc.retry_after or 60) from exc
        raise outbox.PermanentFailure(str(exc)) from exc
    if result is None:
        raise outbox.PermanentFailure("ACS does not know this operation")
    if result.status not in _TERMINAL:
        raise outbox.RetryLater(f"operation still {result.status}",
                                retry_after=current_app.config.get("ACS_STATUS_POLL_SECONDS", STATUS_POLL_DELAY))
    if result.status == "Succeeded":
        _settle(payload["message_id"], operation_status="Succeeded")
    else:
        _settle(payload["message_id"], operation_status=result.status, status=MessageStatus.failed,
                last_error=f"ACS could not deliver: {result.error or result.status}"[:2000])


def _send_sms(row) -> None:
    sms = get_microsoft().acs_sms
    message_id = row.id
    if sms is None:
        _settle(message_id, status=MessageStatus.suppressed, last_error="No SMS sender number is configured.")
        return
    _settle(message_id, status=MessageStatus.sending, attempts=row.attempts + 1)
    outbox.fence()
    try:
        results = sms.send([row.recipient], row.body_text, tag=f"foyer-{message_id}")
    except AcsError as exc:
        _raise_for(message_id, exc)
    result = results[0] if results else None
    if result is not None and result.successful:
        _settle(message_id, status=MessageStatus.sent, sent_at=utcnow(), operation_id=result.message_id or "",
                operation_status="Accepted", last_error="")
    else:
        error = result.error if result is not None else "no result"
        _settle(message_id, status=MessageStatus.failed, last_error=f"SMS not accepted: {error}"[:2000])
        raise outbox.PermanentFailure(error)


# --- admin: listing and retry -----------------------------------------------------------------------


def retry(message: Message, *, actor: User) -> None:
    """Send a failed message again (admins): a new Operation-Id, fresh attempts."""
    if not actor.is_admin:
        raise NotAllowed("Only admins can retry messages.")
    if message.status != MessageStatus.failed:
        raise DomainError("Only failed messages can be retried.")
    retries = message.attempts or 0
    message.status = MessageStatus.queued
    message.operation_id = new_operation_id() \
        if message.channel == MessageChannel.email else ""
    message.attempts = 0
    message.reserved_at = None
    message.last_error = f"Retried by an admin after {retries} attempt(s)."
    message.operation_status = ""
    message.delivery, message.delivery_details, message.delivery_reported_at = "", "", None
    item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"message:{message.dedupe_key}"))
    if item is None:
        outbox.enqueue("message.send", {"message_id": message.id, "attachments": []},
                       dedupe_key=f"message:{message.dedupe_key}", event_id=message.event_id)
    else:
        outbox.retry_now(item)
    logger.info("Message %s retried by %s", message.id, actor.id)


PAGE_SIZE = 50


def list_messages(*, event_id: int | None = None, kind: str = "", status: str = "", page: int = 1):
    query = select(Message)
    if event_id:
        query = query.where(Message.event_id == event_id)
    if kind in KINDS:
        query = query.where(Message.kind == kind)
    if status in MessageStatus.__members__:
        query = query.where(Message.status == MessageStatus(status))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(query.order_by(Message.id.desc()).limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE))
    return list(rows), total


def batch_progress(batch: str) -> dict[str, int]:
    rows = db.session.execute(select(Message.status, func.count()).where(Message.batch == batch)
                              .group_by(Message.status)).all()
    counts = {s.value: 0 for s in MessageStatus}
    for state, count in rows:
        counts[MessageStatus(state).value] = count
    return counts


def fanout_pending(batch: str) -> bool:
    item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"fanout:{batch}"))
    return item is not None and item.status.value in ("pending", "running")


def fanout_expected(batch: str) -> int | None:
    item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == f"fanout:{batch}"))
    return item.payload.get("expected") if item is not None else None
