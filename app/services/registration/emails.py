"""The emails a registration sends: each transition's email to the registrant (with the personal manage
and join links) and its calendar invitation, built as the email goes out (a REQUEST never after its
CANCEL). Messaging renders, records and sends them; this module knows registrations.

The invitation is the registrant's own iCalendar file (iTIP REQUEST / CANCEL, with the personal link),
built from events/ics.py's pieces; the manage page offers the same file for download.
"""

from __future__ import annotations

import base64
import logging
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import force_locale, gettext
from icalendar import Alarm, Calendar, vCalAddress
from icalendar import Event as VEvent
from sqlalchemy import select

from app.models import (
    EventSession,
    Message,
    MessageChannel,
    MessageStatus,
    Registration,
    RegistrationState,
    db,
    utcnow,
)
from app.services.attendance import join_links
from app.services.core.links import event_url
from app.services.core.markdown import markdown_to_text
from app.services.core.settings import get_branding, get_languages, text_language
from app.services.events import ics
from app.services.messaging import attachments, kinds, queueing, rendering
from app.services.registration import registrations

logger = logging.getLogger(__name__)


# --- a registrant's personal invitation (iTIP) ----------------------------------------------------

#: How long before the start the invitation's reminder pops up.
INVITE_ALARM_BEFORE = timedelta(minutes=15)
INVITE_METHODS = ("REQUEST", "CANCEL")


def registration_uid(reg: Registration) -> str:
    """The stable UID of one registrant's invitation: the same for every update and the cancellation."""
    return f"registration-{reg.id}@{ics.uid_host()}"


def registration_sequence(reg: Registration, method: str = "REQUEST") -> int:
    """SEQUENCE of the invitation: event changes plus changes to this registration.

    A cancellation counts one more, so calendars rank it above the last invitation they received
    even when nothing else changed (a registrant cancelling their own seat changes neither counter).
    """
    return (reg.event.ics_sequence or 0) + (reg.ics_sequence or 0) + (1 if method == "CANCEL" else 0)


def personal_link(reg: Registration) -> str:
    """The attendee's personal join link (/j/<token>) for a place that has one; else the manage link.
    Never the raw Teams URL: the join link checks the registration and can be revoked.
    """
    if reg.state == RegistrationState.confirmed or reg.join_token_hash:
        return join_links.join_url(reg)
    return registrations.manage_url(registrations.manage_token_for(reg))


def registration_vevent(reg: Registration, method: str = "REQUEST", *, stamp: datetime | None = None,
                        link: str | None = None) -> VEvent:
    """The VEVENT of a registrant's invitation: ORGANIZER, ATTENDEE, personal link, a 15-minute alarm."""
    if method not in INVITE_METHODS:
        raise ValueError(f"unsupported iTIP method {method!r}")
    event = reg.event
    link = link or personal_link(reg)
    cancelled = method == "CANCEL"
    site = get_branding().site_name
    organizer = vCalAddress(f"mailto:{current_app.config['ACS_SENDER_ADDRESS']}")
    organizer.params["CN"] = site
    attendee = vCalAddress(f"mailto:{reg.email}")
    attendee.params.update({"CN": reg.full_name or reg.email, "ROLE": "REQ-PARTICIPANT",
                            "PARTSTAT": "DECLINED" if cancelled else "ACCEPTED", "RSVP": "FALSE",
                            "CUTYPE": "INDIVIDUAL"})
    parts = []
    if event.is_cancelled:
        parts.append(gettext("This event has been cancelled. %(reason)s",
                             reason=event.cancellation_reason.strip()).strip())
    elif cancelled:
        parts.append(gettext("Your registration has been cancelled."))
    title = event.title_in(text_language())
    text = markdown_to_text(event.description_in(text_language()))
    if text:
        parts.append(text)
    parts.append(gettext("Join the event (personal link, keep it to yourself): %(link)s", link=link))
    parts.append(gettext("Event page: %(url)s", url=event_url(event)))
    vevent = VEvent.new(
        uid=registration_uid(reg),
        sequence=registration_sequence(reg, method),
        start=event.local_starts_at,
        end=event.local_ends_at,
        summary=gettext("Cancelled: %(title)s", title=title) if cancelled else title,
        description="\n\n".join(parts),
        location=link,
        url=link,
        organizer=organizer,
        attendees=[attendee],
        status="CANCELLED" if cancelled else "CONFIRMED",
        transparency="TRANSPARENT" if cancelled else "OPAQUE",
        stamp=stamp or utcnow(),
        last_modified=max(t for t in (event.updated_at, reg.updated_at, event.created_at) if t is not None),
        created=reg.created_at,
    )
    if not cancelled:
        vevent.add_component(_alarm(title))
    return vevent


def _alarm(title: str) -> Alarm:
    alarm = Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("DESCRIPTION", gettext("%(title)s starts in 15 minutes", title=title))
    alarm.add("TRIGGER", -INVITE_ALARM_BEFORE)
    return alarm


def course_vevents(reg: Registration, method: str = "REQUEST", *, stamp: datetime | None = None,
                   link: str | None = None) -> list[VEvent]:
    """A course registrant's invitation as one recurring meeting (iTIP allows one UID per object): the
    first session as the master with the other starts as RDATEs, and one RECURRENCE-ID instance per
    session with its own end and name, so calendars show each session as it is.
    """
    event = reg.event
    stamp = stamp or utcnow()
    master = registration_vevent(reg, method, stamp=stamp, link=link)
    first, *others = event.sessions
    for name in ("DTSTART", "DTEND"):
        del master[name]
    master.add("DTSTART", first.local_starts_at)
    master.add("DTEND", first.local_ends_at)
    if others:
        master.add("RDATE", [s.local_starts_at for s in others])
    components = [master]
    if method == "CANCEL":
        return components  # cancelling the UID cancels every instance
    course_title = event.title_in(text_language())
    for session in event.sessions:
        instance = registration_vevent(reg, method, stamp=stamp, link=link)
        for name in ("DTSTART", "DTEND", "SUMMARY"):
            del instance[name]
        instance.subcomponents = []
        instance.add("RECURRENCE-ID", session.local_starts_at)
        instance.add("DTSTART", session.local_starts_at)
        instance.add("DTEND", session.local_ends_at)
        instance.add("SUMMARY", f"{course_title} — {session.label}")
        instance.add_component(_alarm(f"{course_title} — {session.label}"))
        components.append(instance)
    return components


def registration_invite(reg: Registration, method: str = "REQUEST", *, link: str | None = None) -> bytes:
    """A registrant's calendar invitation (METHOD:REQUEST) or its cancellation (METHOD:CANCEL), as bytes.

    `link` is the personal link to put in it (default: the attendee's join link). Its text is in the
    language the registration was made in.
    """
    if reg.language and reg.language in get_languages().offered:
        with force_locale(reg.language):
            return _registration_invite(reg, method, link=link)
    return _registration_invite(reg, method, link=link)


def _registration_invite(reg: Registration, method: str, *, link: str | None) -> bytes:
    calendar = Calendar.new(prodid=ics.PRODID, method=method)
    if reg.event.sessions:
        for component in course_vevents(reg, method, link=link):
            calendar.add_component(component)
    else:
        calendar.add_component(registration_vevent(reg, method, link=link))
    start = reg.event.local_starts_at.date()
    end = reg.event.local_ends_at.date()
    ics.add_timezones(calendar, date(start.year - 1, 1, 1), date(end.year + 2, 1, 1))
    return calendar.to_ical()


def invite_spec(reg: Registration, method: str, link: str | None) -> dict[str, Any]:
    """What the sender needs to build a registrant's invitation when the email goes out.

    The personal link is the one the email itself carries (issued now, inside the registration's
    transaction), so building the file later never has to issue a token.
    """
    return {"registration_id": reg.id, "method": method, "link": link or personal_link(reg)}


def _cancel_sent_before(registration_id: int) -> bool:
    """Whether a calendar cancellation already went out for this registration."""
    rows = db.session.scalars(select(Message.attachments).where(
        Message.registration_id == registration_id, Message.channel == MessageChannel.email,
        Message.status == MessageStatus.sent))
    return any(isinstance(a, dict) and a.get("name") == "cancel.ics" for files in rows for a in files or [])


@attachments.invite_builder
def build_invite(spec: dict[str, Any]) -> dict[str, str] | None:
    """A registrant's invitation as an email attachment, built from its spec as the email is sent.

    A REQUEST shows the event as it is now (times, title, SEQUENCE); a CANCEL stays a CANCEL. None when
    it cannot be built: the email still goes out, as its links work without the file.
    """
    method = spec.get("method")
    reg = db.session.get(Registration, spec.get("registration_id") or 0)
    if reg is None or method not in INVITE_METHODS:
        logger.warning("No calendar invite for registration %s: it no longer exists", spec.get("registration_id"))
        return None
    if method == "REQUEST" and not reg.is_active and _cancel_sent_before(reg.id):
        # Sent late (retries): an invitation must never follow the cancellation into the calendar.
        logger.info("Calendar invite of registration %s left out: its cancellation went out first", reg.id)
        return None
    try:
        data = registration_invite(reg, method=method, link=spec.get("link"))
    except Exception:  # an invite must never stop an email; the link still works
        logger.exception("Could not build the calendar invite for registration %s", reg.id)
        return None
    return {**attachments.invite_description(method), "contentInBase64": base64.b64encode(data).decode()}


#: Messages that carry a confirmed attendee's personal join link.
JOIN_LINK_KINDS = frozenset({"confirmed", "approved", "promoted", "reminder", "event_changed", "resend"})


def notify_registration(reg: Registration, kind: str, *, dedupe_key: str, extra: str = "",
                        invite: str | None = None, token: str | None = None, position: int | None = None,
                        link: str | None = None, expires: datetime | None = None,
                        deadline: datetime | None = None, batch: str | None = None,
                        now: datetime | None = None, new_key: bool = False,
                        session: EventSession | None = None, subject: str | None = None,
                        intro: str | None = None) -> Message | None:
    """Queue one email to a registrant; `invite` attaches the .ics (REQUEST or CANCEL).

    The email is written as it is sent (`write_registration_email`), so the request that queues it
    renders nothing and the email shows the event as it is when it goes out. Its personal links are
    issued now, in this transaction, so writing it later only reads them. An email with a one-time
    link only this request knows (`link`, with its `expires`: the address confirmation) is rendered now.

    A key seen before is skipped before anything else; `new_key` says it names a transition recorded in
    this transaction, so that look-up is left out (a repeat is still a no-op when it is recorded).
    `session` names the course session a reminder is about; `subject` and `intro` (Markdown) are an
    organizer's own words for it (an organizer message).
    """
    if not new_key and queueing.existing_message(dedupe_key) is not None:
        return None
    join_link = _join_link(reg, kind)  # issued now when it has none, like the manage link below
    queued = {"event": reg.event, "to": reg.email, "name": reg.full_name, "dedupe_key": dedupe_key,
              "registration": reg, "invite": invite_spec(reg, invite, join_link) if invite else None,
              "deadline": deadline, "batch": batch}
    if link is None and expires is None:
        if kinds.KINDS[kind].manage_link and token is None:
            registrations.manage_token_for(reg)  # issued now when it has none
        spec = {"registration_id": reg.id, "kind": kind, "extra": extra, "position": position,
                "now": now.isoformat() if now is not None else None,
                "session_id": session.id if session is not None else None, "attachment_note": invite == "REQUEST"}
        spec.update({name: words for name, words in (("subject", subject), ("intro", intro)) if words is not None})
        return queueing.queue_email(kind, render=spec, **queued)
    rendered = _write(reg, kind, token=token, extra=extra, position=position, link=link, expires=expires, now=now,
                      attachment_note=invite == "REQUEST", session=session, subject=subject, intro=intro)
    return queueing.queue_email(kind, rendered=rendered, **queued)


def _join_link(reg: Registration, kind: str) -> str | None:
    """The personal join link an email of this kind carries (a confirmed registration's), else None."""
    if reg.state == RegistrationState.confirmed and kind in JOIN_LINK_KINDS:
        return join_links.join_url(reg)
    return None


@rendering.deferred_renderer
def write_registration_email(spec: dict[str, Any]) -> rendering.Rendered | None:
    """A registrant's email queued by `notify_registration`, written from its spec as it is sent: in the
    registration's language and zone, with its links; None when the registration no longer exists.
    """
    reg = db.session.get(Registration, spec.get("registration_id") or 0)
    if reg is None:
        return None
    session = db.session.get(EventSession, spec["session_id"]) if spec.get("session_id") else None
    now = datetime.fromisoformat(spec["now"]) if spec.get("now") else None
    return _write(reg, spec["kind"], extra=spec.get("extra") or "", position=spec.get("position"), now=now,
                  attachment_note=bool(spec.get("attachment_note")), session=session, subject=spec.get("subject"),
                  intro=spec.get("intro"))


def _write(reg: Registration, kind: str, *, token: str | None = None, extra: str = "", position: int | None = None,
           link: str | None = None, expires: datetime | None = None, now: datetime | None = None,
           attachment_note: bool = False, session: EventSession | None = None, subject: str | None = None,
           intro: str | None = None) -> rendering.Rendered:
    """Render a registrant's email: their name, zone and language, the manage and join links it carries."""
    manage = registrations.manage_url(token or registrations.manage_token_for(reg)) \
        if kinds.KINDS[kind].manage_link else None
    join_link = _join_link(reg, kind)
    device_link = join_links.device_check_url(reg) if join_link is not None and kind == "reminder" else None
    return rendering.render(kind, event=reg.event, language=reg.language, name=reg.first_name, zone=reg.timezone,
                            manage_link=manage, extra=extra, position=position, link=link, expires=expires, now=now,
                            attachment_note=attachment_note, join_link=join_link, device_link=device_link,
                            session=session, subject=subject, intro=intro)
