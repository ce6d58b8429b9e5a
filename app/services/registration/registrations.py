"""The registration engine: who may register, seats that hold under a rush, the waitlist, approval,
email verification, and the plain emails every transition queues.

Capacity lives in the database, as seat rows (`EventSeat`): an event with a capacity has that many,
free or taken, and a confirmed registration names the seat it holds (`registrations.seat_id`, unique).
A seat is taken by one guarded UPDATE whose returned row decides whether there was one (`_take_seat`):

    UPDATE event_seats SET taken = true
    WHERE id = (SELECT id FROM event_seats WHERE event_id = :id AND NOT taken
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id

so on PostgreSQL sign-ups for one event claim different rows and commit side by side instead of queueing
behind one counter. Should every free seat be held by sign-ups still in flight, the claim looks once
more without SKIP LOCKED and waits for them: a seat one of them gives back (it rolled back) is taken,
never left free while someone is waitlisted. An unlimited event inserts a taken seat per confirmation.

Two kinds of lock on the event row (PostgreSQL): a sign-up reads it `FOR SHARE` (`_share_event`), which
sign-ups hold together; every verb that frees seats, moves the waitlist or changes the capacity takes it
`FOR UPDATE` (`_lock_event`), which waits for the sign-ups in flight and holds new ones back. So the
waitlist moves, and the seat rows follow a new capacity, with no claim racing them. On SQLite every
writer is serialised anyway (`BEGIN IMMEDIATE`), and both are that.

One active registration per (event, email) is a partial unique index. A sign-up reads an existing one
`FOR UPDATE`, so two repeats of one address queue for each other; two first sign-ups of one address at
the same moment are settled by the index: the second transaction fails (IntegrityError) and the
registration route runs it once more, which then answers "duplicate".

On SQLite a unit of work that changes seats is one writer transaction from its first query: routes get
that from `app.web`'s unit of work, and these verbs begin as writers too (a no-op once a transaction is
open).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext
from sqlalchemy import bindparam, delete, func, insert, inspect, select, update
from werkzeug.routing import BuildError

from app.models import (
    ACTIVE_STATES,
    Event,
    EventSeat,
    EventStatus,
    Message,
    Question,
    QuestionKind,
    Registration,
    RegistrationAnswer,
    RegistrationState,
    RegistrationTransition,
    Setting,
    User,
    db,
    utcnow,
)
from app.models.base import begin_write
from app.services.attendance import join_links
from app.services.core import audit, crypto, links, settings, signals, tokens
from app.services.core.dates import format_range
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.core.timezones import is_valid_zone
from app.services.events import catalog
from app.services.messaging import rendering
from app.services.registration import emails

logger = logging.getLogger(__name__)

#: How long an unverified hold (and its verification link) lasts.
VERIFY_TTL = timedelta(hours=24)
#: Re-sends of someone's link for repeated sign-ups: at most one per registration per bucket.
RESEND_BUCKET_SECONDS = 15 * 60
NAME_MAX = 100
EMAIL_MAX = 320
SHORT_TEXT_MAX = 300
LONG_TEXT_MAX = 5000
WHO_CAN_REGISTER = ("everyone", "organization")
ORGANIZATION_SETTING = "organization"
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
#: Control characters (NUL breaks PostgreSQL text) and bidi overrides that disguise text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\r\n\t\u2028\u2029]+")


# --- errors ---------------------------------------------------------------------------------------


class RegistrationClosed(DomainError):
    """The event is not open for registration (draft, cancelled, outside the window)."""


class EventFull(Conflict):
    """No seat is free and the event has no waitlist."""


class RegistrationNotAllowed(NotAllowed):
    """This address may not register (organization-only events)."""


# --- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationData:
    """What the registration form collects."""

    first_name: str
    last_name: str
    email: str
    timezone: str
    #: question id -> str (text, single choice) | list[str] (multiple choice) | bool (checkbox)
    answers: dict[int, Any] = field(default_factory=dict)
    #: The privacy-notice version the attendee agreed to.
    consent_version: int | None = None
    #: A mobile number for SMS reminders, kept only with its own consent (`sms_opt_in`).
    phone: str = ""
    sms_opt_in: bool = False
    #: The language the attendee used Foyer in (their emails are written in it); "" for the default.
    language: str = ""


@dataclass(frozen=True)
class PreparedRegistration:
    """A registration checked and given its personal token before the event is locked (`prepare`)."""

    first_name: str
    last_name: str
    email: str
    timezone: str
    phone: str | None
    #: The personal manage-link token, its hash and its encryption at rest.
    token: str
    token_hash: str
    token_encrypted: str


@dataclass(frozen=True)
class RegistrationOutcome:
    #: "confirmed" | "waitlisted" | "pending" | "unverified" | "duplicate"
    kind: str
    registration: Registration | None
    #: The plain manage-link token, only when the registration was just created.
    manage_token: str | None = None


# --- organization domains ---------------------------------------------------------------------------


def organization_domains() -> list[str]:
    """The email domains of the organization (for organization-only events)."""
    row = db.session.get(Setting, ORGANIZATION_SETTING)
    if row is None or not isinstance(row.value, dict):
        return []
    return [d for d in row.value.get("domains", []) if isinstance(d, str)]


def parse_domains(text: str) -> list[str]:
    """Domains from free text (commas, spaces or lines); raises DomainError naming a bad one."""
    domains: list[str] = []
    for raw in re.split(r"[\s,;]+", text or ""):
        domain = raw.strip().lower().lstrip("@").rstrip(".")
        if not domain:
            continue
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        if not _DOMAIN.match(domain):
            shown = raw.strip()[:80]
            raise DomainError(gettext("“%(domain)s” is not a domain name like example.org.", domain=shown),
                              field="domains")
        if domain not in domains:
            domains.append(domain)
    return domains


def save_organization_domains(domains: list[str], *, actor: User) -> list[str]:
    """Set the organization's email domains (admins)."""
    if not actor.is_admin:
        raise NotAllowed(gettext("Only admins can change the organization's domains."))
    value = {"domains": list(domains)}
    settings.store(ORGANIZATION_SETTING, value)
    audit.record("settings.organization_domains", actor=actor, target=("setting", ORGANIZATION_SETTING),
                 summary="Changed the organization's email domains", details={"domains": list(domains)})
    logger.info("Organization domains set to %s by %s", domains, actor.id)
    return list(domains)


def is_organization_email(email: str, domains: list[str] | None = None) -> bool:
    domain = email.rsplit("@", 1)[-1].lower()
    return domain in (domains if domains is not None else organization_domains())


def needs_verification(event: Event) -> bool:
    """Verification is the event's choice, and forced for organization-only events."""
    return bool(event.require_email_verification) or event.who_can_register == "organization"


# --- validation -------------------------------------------------------------------------------------


def clean_line(value: Any) -> str:
    """One line of text: control characters and line breaks removed, spaces collapsed, NFC."""
    text = unicodedata.normalize("NFC", str(value or ""))
    text = _LINE_BREAKS.sub(" ", text)
    return " ".join(_CONTROL.sub("", text).split())


def clean_text(value: Any) -> str:
    """Multi-line text: control characters removed (line breaks kept), NFC, trimmed."""
    text = unicodedata.normalize("NFC", str(value or "")).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def normalize_email(email: str) -> str:
    """A syntactically valid address, lower-cased; DomainError(field="email") otherwise."""
    raw = (email or "").strip()
    if not raw:
        raise DomainError(gettext("Enter your email address."), field="email")
    if len(raw) > EMAIL_MAX or _CONTROL.search(raw) or _LINE_BREAKS.search(raw):
        raise DomainError(gettext("Enter a valid email address, like name@example.org."), field="email")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(gettext("Enter a valid email address, like name@example.org."), field="email") from exc
    return result.normalized.lower()


def normalize_phone(value: str) -> str:
    """A mobile number in E.164 (+4915123456789); DomainError(field="phone") otherwise."""
    raw = clean_line(value)
    if not raw:
        raise DomainError(gettext("Enter your mobile number to get reminders by SMS."), field="phone")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError(gettext("Enter a mobile number with its country code, like +44 7911 123456."), field="phone")
    if phonenumbers.number_type(number) not in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise DomainError(gettext("This is not a mobile number; SMS reminders need one."), field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean_name(value: str, field_name: str, label: str) -> str:
    name = clean_line(value)
    first = field_name == "first_name"  # the two names the form asks for, each with its own wording
    if not name:
        raise DomainError(gettext("Enter your first name.") if first else gettext("Enter your last name."),
                          field=field_name)
    if len(name) > NAME_MAX:
        raise DomainError(gettext("Keep your first name under %(num)d characters.", num=NAME_MAX) if first
                          else gettext("Keep your last name under %(num)d characters.", num=NAME_MAX), field=field_name)
    return name


def answer_field(question: Question | int) -> str:
    """The form field name of a question's answer."""
    return f"q_{question if isinstance(question, int) else question.id}"


def check_answer(question: Question, raw: Any) -> Any:
    """One answer, validated and normalised for its question; DomainError(field="q_<id>") otherwise."""
    name = answer_field(question)
    if question.kind == QuestionKind.checkbox:
        value: Any = bool(raw) and raw not in ("", "0", "false", "n", "no", "off")
        if question.required and not value:
            raise DomainError(gettext("Tick this box to continue."), field=name)
    elif question.kind == QuestionKind.multiple_choice:
        chosen = raw if isinstance(raw, list | tuple) else ([raw] if raw else [])
        chosen = [str(c) for c in chosen if str(c) != ""]
        if any(c not in question.options for c in chosen):
            raise DomainError(gettext("Choose from the options listed."), field=name)
        value = [o for o in question.options if o in chosen]  # options order, no repeats
        if question.required and not value:
            raise DomainError(gettext("Choose at least one option."), field=name)
    elif question.kind == QuestionKind.single_choice:
        value = str(raw) if raw not in (None, "") else ""
        if value and value not in question.options:
            raise DomainError(gettext("Choose one of the options listed."), field=name)
        if question.required and not value:
            raise DomainError(gettext("Choose one option."), field=name)
    else:
        long = question.kind == QuestionKind.long_text
        value = clean_text(raw) if long else clean_line(raw)
        limit = LONG_TEXT_MAX if long else SHORT_TEXT_MAX
        if len(value) > limit:
            shown = f"{limit:,}"
            raise DomainError(gettext("Keep this answer under %(limit)s characters.", limit=shown), field=name)
        if question.required and not value:
            raise DomainError(gettext("Answer this question."), field=name)
    return value


def clean_answers(event: Event, answers: dict[int, Any], questions: Sequence[Question] | None = None,
                  ) -> list[tuple[Question, Any]]:
    """Each of the event's questions (`questions`, or the event's own) with its validated answer (empty
    for an unanswered optional one).
    """
    return [(question, check_answer(question, answers.get(question.id)))
            for question in (event.questions if questions is None else questions)]


#: Where a new registration keeps its answers until its row exists (`_answer_rows`, `_write_new_answers`).
_NEW_ANSWERS = "_foyer_new_answers"


def _answer_rows(reg: Registration, cleaned: list[tuple[Question, Any]]) -> None:
    """Keep a new registration's answers to be written with its row, in one INSERT (`_write_new_answers`),
    rather than as ORM objects flushed one statement each (SQLite) and loaded back into the session.
    """
    setattr(reg, _NEW_ANSWERS, [
        {"question_id": question.id, "question_label": question.label, "value": value}
        for question, value in cleaned
        if value not in ("", None, [], False) or question.kind == QuestionKind.checkbox
    ])


def _write_new_answers(reg: Registration) -> None:
    rows = reg.__dict__.pop(_NEW_ANSWERS, None)
    if rows:
        db.session.execute(_INSERT_ANSWERS, [{**row, "registration_id": reg.id} for row in rows])


def _set_answers(reg: Registration, cleaned: list[tuple[Question, Any]]) -> None:
    by_question = {a.question_id: a for a in reg.answers if a.question_id is not None}
    for question, value in cleaned:
        empty = value in ("", None, [], False)
        existing = by_question.get(question.id)
        if empty and question.kind != QuestionKind.checkbox:
            if existing is not None:
                reg.answers.remove(existing)
            continue
        if existing is None:
            reg.answers.append(RegistrationAnswer(question_id=question.id, question_label=question.label, value=value))
        else:
            existing.value = value
            existing.question_label = question.label


# --- rules ------------------------------------------------------------------------------------------


def check_open(event: Event, now: datetime | None = None) -> None:
    """Raise RegistrationClosed unless the event takes registrations right now."""
    now = now or utcnow()
    if event.status == EventStatus.cancelled:
        raise RegistrationClosed(gettext("Registration is closed: this event has been cancelled."))
    if event.status != EventStatus.published:
        raise RegistrationClosed(gettext("This event is not open for registration."))
    if event.ends_at <= now:
        raise RegistrationClosed(gettext("Registration is closed: this event has ended."))
    if event.registration_opens_at is not None and now < event.registration_opens_at:
        raise RegistrationClosed(gettext("Registration has not opened yet."))
    closes = event.registration_closes_at or event.ends_at
    if now >= closes:
        raise RegistrationClosed(gettext("Registration for this event has closed."))


def _check_allowed(event: Event, email: str) -> None:
    if event.who_can_register == "organization" and not is_organization_email(email):
        raise RegistrationNotAllowed(
            gettext("This event is only open to members of the organization. Use your work or school address."),
            field="email",
        )


# The statements of a sign-up, built once: a statement object keeps its cache key, so each use only
# binds values (building one per call costs more than running it on SQLite). FOR UPDATE / FOR SHARE and
# SKIP LOCKED are PostgreSQL's; SQLite, whose writers are serialised anyway, renders none of them.
_EVENT_ID = bindparam("the_event_id")
_EVENT_FOR_UPDATE = (select(Event).where(Event.id == _EVENT_ID).with_for_update()
                     .execution_options(populate_existing=True))
_EVENT_FOR_SHARE = (select(Event).where(Event.id == _EVENT_ID).with_for_update(read=True)
                    .execution_options(populate_existing=True))
_ACTIVE_REGISTRATION = select(Registration).where(
    Registration.event_id == _EVENT_ID, Registration.email == bindparam("email"),
    Registration.state.in_(ACTIVE_STATES))
_ACTIVE_REGISTRATION_FOR_UPDATE = _ACTIVE_REGISTRATION.with_for_update()
_FREE_SEAT = select(EventSeat.id).where(EventSeat.event_id == _EVENT_ID, EventSeat.taken.is_(False))


def _claim_statement(*, skip_locked: bool):
    free = _FREE_SEAT.order_by(EventSeat.id).limit(1).with_for_update(skip_locked=skip_locked)
    return (update(EventSeat).where(EventSeat.id == free.scalar_subquery()).values(taken=True)
            .returning(EventSeat.id).execution_options(synchronize_session=False))


_CLAIM_SKIP_LOCKED = _claim_statement(skip_locked=True)
_CLAIM_WAITING = _claim_statement(skip_locked=False)
_NEW_TAKEN_SEAT = insert(EventSeat).values(event_id=_EVENT_ID, taken=True).returning(EventSeat.id)
_HAS_FREE_SEAT = _FREE_SEAT.limit(1)
_INSERT_ANSWERS = insert(RegistrationAnswer)


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _event_id(event: Event) -> int:
    # The id from the identity key: an event expired by the caller's rollback is not loaded twice.
    identity = inspect(event).identity
    return identity[0] if identity else event.id


def _lock_event(event: Event) -> Event:
    """Take the event's exclusive lock (no sign-up in flight, none starting) and refresh its rules."""
    begin_write()
    event = db.session.scalars(_EVENT_FOR_UPDATE, {"the_event_id": _event_id(event)}).one()
    _forget_seat_count(event)
    return event


def _share_event(event: Event) -> Event:
    """Read the event for a sign-up: other sign-ups go on side by side, the exclusive lock waits."""
    begin_write()
    event = db.session.scalars(_EVENT_FOR_SHARE, {"the_event_id": _event_id(event)}).one()
    _forget_seat_count(event)
    return event


def _forget_seat_count(event: Event) -> None:
    """The seats-taken count is read again when next used (it changes with every claim)."""
    if "confirmed_count" in inspect(event).dict:
        db.session.expire(event, ["confirmed_count"])


def _take_seat(event: Event, reg: Registration) -> bool:
    """Give `reg` a seat if one is free (the database decides); it names the seat in `seat_id`."""
    values = {"the_event_id": event.id}
    if event.capacity is None:
        seat = db.session.execute(_NEW_TAKEN_SEAT, values).scalar_one()
    else:
        seat = db.session.execute(_CLAIM_SKIP_LOCKED, values).scalar_one_or_none()
        if seat is None and _postgresql():
            # Every free seat may be held by a sign-up still in flight: wait for them, and take a seat
            # one of them gives back rather than waitlist this person beside it.
            seat = db.session.execute(_CLAIM_WAITING, values).scalar_one_or_none()
        if seat is None:
            return False
    reg.seat_id = seat
    _forget_seat_count(event)
    return True


def _has_free_seat(event: Event) -> bool:
    """Whether a free seat exists (for the "full" answer before any claim; the claim still decides)."""
    if event.capacity is None:
        return True
    return db.session.scalar(_HAS_FREE_SEAT, {"the_event_id": event.id}) is not None


def _release_seat(reg: Registration) -> int | None:
    """Take the seat off `reg` (written with its next transition); returns the seat to free after it."""
    seat, reg.seat_id = reg.seat_id, None
    return seat


def _free_seat(event: Event, seat: int | None) -> None:
    """Give a released seat back: free again with a capacity, gone when the event is unlimited.

    A confirmed registration without a seat (made before seats were rows, beyond the old counter) frees
    nothing.
    """
    if seat is None:
        return
    if event.capacity is None:
        db.session.execute(delete(EventSeat).where(EventSeat.id == seat).execution_options(synchronize_session=False))
    else:
        db.session.execute(update(EventSeat).where(EventSeat.id == seat).values(taken=False)
                           .execution_options(synchronize_session=False))
    _forget_seat_count(event)


# --- transitions --------------------------------------------------------------------------------


def record_transition(reg: Registration, to_state: RegistrationState, *, actor: User | None = None,
                      actor_kind: str = "system", note: str = "") -> RegistrationTransition:
    """Move a registration to `to_state` and record who did it, when and why."""
    if actor is not None and actor_kind == "system":
        actor_kind = "organizer"
    now = utcnow()
    # The first transition of a new registration comes "from nothing".
    from_state = reg.state.value if reg.state is not None and reg.transitions else None
    transition = RegistrationTransition(
        from_state=from_state, to_state=to_state.value, at=now, actor_user_id=actor.id if actor else None,
        actor_kind=actor_kind, note=clean_text(note)[:2000],
    )
    reg.transitions.append(transition)
    reg.state = to_state
    if to_state == RegistrationState.confirmed:
        reg.confirmed_at = now
    if to_state in (RegistrationState.cancelled, RegistrationState.denied):
        reg.cancelled_at = now

        join_links.queue_token_revocation(reg, to_state.value)  # a call token must not outlive the place
    db.session.add(reg)  # a new registration is written with its first transition
    db.session.flush()
    _write_new_answers(reg)  # and its answers, before anyone hears of it
    signals.registration_state_changed.send(reg, from_state=from_state, transition=transition)
    logger.info("Registration %s: %s -> %s by %s", reg.id, from_state, to_state.value,
                actor.id if actor else actor_kind)
    return transition


def _issue_manage_token(reg: Registration) -> str:
    token = tokens.new_token()
    reg.manage_token_hash = tokens.hash_token(token)
    reg.manage_token_encrypted = crypto.encrypt(token)
    return token


def _issue_verify_token(reg: Registration, now: datetime) -> str:
    token = tokens.new_token()
    reg.verify_token_hash = tokens.hash_token(token)
    reg.verify_expires_at = now + VERIFY_TTL
    return token


def _seat_or_wait(event: Event, reg: Registration, *, actor: User | None, actor_kind: str, note: str = "",
                  waitlist_anyway: bool = False) -> RegistrationState:
    """Confirm with a seat, or waitlist when full; EventFull when full without a waitlist."""
    if _take_seat(event, reg):
        # The confirmation email carries the personal join link: issued now, it is written with the
        # state change (one statement) rather than by a second UPDATE when the email is rendered.
        join_links.join_token_for(reg)
        record_transition(reg, RegistrationState.confirmed, actor=actor, actor_kind=actor_kind, note=note)
    elif event.waitlist_enabled or waitlist_anyway:
        record_transition(reg, RegistrationState.waitlisted, actor=actor, actor_kind=actor_kind, note=note)
    else:
        raise EventFull(gettext("Sorry, this event is fully booked."))
    return reg.state


def expire_unverified(now: datetime | None = None, *, event: Event | None = None, email: str | None = None) -> int:
    """Cancel unverified holds whose verification link has lapsed; returns how many."""
    now = now or utcnow()
    query = select(Registration).where(Registration.state == RegistrationState.unverified,
                                       Registration.verify_expires_at <= now)
    if event is not None:
        query = query.where(Registration.event_id == event.id)
    if email is not None:
        query = query.where(Registration.email == email)
    expired = list(db.session.scalars(query))
    for reg in expired:
        record_transition(reg, RegistrationState.cancelled, note="Email address not confirmed in time")
        reg.verify_token_hash = None
    return len(expired)


def _lapsed(reg: Registration, now: datetime) -> bool:
    return (reg.state == RegistrationState.unverified and reg.verify_expires_at is not None
            and reg.verify_expires_at <= now)


def _active_registration(event: Event, email: str, *, lock: bool = False) -> Registration | None:
    query = _ACTIVE_REGISTRATION_FOR_UPDATE if lock else _ACTIVE_REGISTRATION
    return db.session.scalar(query, {"the_event_id": event.id, "email": email})


def prepare(event: Event, data: RegistrationData) -> PreparedRegistration:
    """The part of `register` that needs no lock: check the person's details (DomainError naming the
    field), make and encrypt their personal token, and read what their email is rendered with.

    Call it before the writer transaction starts (it reads), so the event's lock is held for less time.
    """
    prepared = _checked(data)
    if needs_verification(event):
        rendering.preload_rendering(event)  # the address-confirmation email is rendered under the lock
    return prepared


def _checked(data: RegistrationData) -> PreparedRegistration:
    """The person's details checked and their personal token made (no database access)."""
    first_name = _clean_name(data.first_name, "first_name", "first name")
    last_name = _clean_name(data.last_name, "last_name", "last name")
    email = normalize_email(data.email)
    if not is_valid_zone(data.timezone):
        raise DomainError(gettext("Choose your time zone from the list."), field="timezone")
    # The number is kept only with its own consent; without it, nothing typed there is stored.
    phone = normalize_phone(data.phone) if data.sms_opt_in else None
    token = tokens.new_token()
    return PreparedRegistration(first_name, last_name, email, data.timezone, phone, token,
                                tokens.hash_token(token), crypto.encrypt(token))


def register(event: Event, data: RegistrationData, *, now: datetime | None = None,
             prepared: PreparedRegistration | None = None) -> RegistrationOutcome:
    """Register someone for an event: confirmed, waitlisted, pending approval, held until their
    address is verified, or recognised as a duplicate (whose owner is re-sent their link).

    `prepared` is `prepare(event, data)`, done before the transaction; without it the checks run here
    (reading nothing before the lock, as `begin_write` requires). Under the event's lock the
    registration, its first transition and answers are written in one flush, with the state the
    seat count decided.
    """
    now = now or utcnow()
    prepared = prepared or _checked(data)
    email = prepared.email
    reg = Registration(email=email, first_name=prepared.first_name, last_name=prepared.last_name,
                       timezone=prepared.timezone, consent_version=data.consent_version, created_at=now,
                       phone=prepared.phone, sms_opt_in=prepared.phone is not None, language=data.language or None,
                       manage_token_hash=prepared.token_hash, manage_token_encrypted=prepared.token_encrypted)
    token = prepared.token

    event = _share_event(event)
    check_open(event, now)
    _check_allowed(event, email)
    # The questions of the version just read under the lock, from this process's copy (read when the
    # form was built): no statement while the lock is held.
    cleaned = clean_answers(event, data.answers, catalog.kept_questions(event))
    # Full before duplicate: a full event says "full" to everyone, registered or not.
    if not event.approval_required and not event.waitlist_enabled and not _has_free_seat(event):
        raise EventFull(gettext("Sorry, this event is fully booked."))

    # Read FOR UPDATE: a repeat of this address waits for this one; a first sign-up of it in flight
    # elsewhere is settled by the partial unique index (the route runs the loser once more).
    existing = _active_registration(event, email, lock=True)
    if existing is not None and _lapsed(existing, now):
        # An expired hold never blocks signing up again: sweep it first.
        expire_unverified(now, event=event, email=email)
        existing = None
    if existing is not None:
        return _duplicate(existing, now)

    reg.event = event
    # Filled while the row is new, so no collection is loaded back from the database.
    reg.transitions = []
    _answer_rows(reg, cleaned)
    # Not in the session yet: its row is written by its first transition, with the state decided.
    if needs_verification(event):
        verify = _issue_verify_token(reg, now)
        record_transition(reg, RegistrationState.unverified, actor_kind="attendee",
                          note="Registered; address not yet confirmed")
        _send_verification(reg, verify)
    else:
        _place(event, reg, actor_kind="attendee", note="Registered", token=token)
    return RegistrationOutcome(reg.state.value, reg, token)


def _place(event: Event, reg: Registration, *, actor_kind: str, note: str, token: str | None = None) -> None:
    """Pending when approval is required, else a seat or the waitlist; queues the matching email."""
    if event.approval_required:
        record_transition(reg, RegistrationState.pending, actor_kind=actor_kind, note=note)
        _notify(reg, "pending", token=token)
        return
    state = _seat_or_wait(event, reg, actor=None, actor_kind=actor_kind, note=note)
    _notify(reg, "confirmed" if state == RegistrationState.confirmed else "waitlisted", token=token)


def _duplicate(existing: Registration, now: datetime) -> RegistrationOutcome:
    """Someone signed up again with an address already registered: re-send that person their link,
    at most once per time bucket, and reveal nothing on the page.
    """
    bucket = int(now.timestamp()) // RESEND_BUCKET_SECONDS
    key = f"registration:{existing.id}:resend:{bucket}"
    if _already_queued(key):
        logger.info("Repeated sign-up for registration %s; link already re-sent recently", existing.id)
        return RegistrationOutcome("duplicate", existing, None)
    if existing.state == RegistrationState.unverified:
        verify = _issue_verify_token(existing, now)
        _send_verification(existing, verify, dedupe_key=key)
    else:
        _notify(existing, "resend", dedupe_key=key)
    logger.info("Repeated sign-up for registration %s; link re-sent", existing.id)
    return RegistrationOutcome("duplicate", existing, None)


def _already_queued(dedupe_key: str) -> bool:
    return db.session.scalar(select(Message.id).where(Message.dedupe_key == dedupe_key)) is not None


def verify_email(token: str, *, now: datetime | None = None) -> Registration | None:
    """Confirm an unverified hold from its emailed link, then place it by the usual rules.

    None for an unknown or expired link. A registration that was already verified is returned as is.
    """
    now = now or utcnow()
    reg = by_verify_token(token)
    if reg is None:
        return None
    if reg.state != RegistrationState.unverified:
        return reg if reg.is_active else None
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    if reg.state != RegistrationState.unverified:
        return reg if reg.is_active else None
    if reg.verify_expires_at is not None and reg.verify_expires_at <= now:
        expire_unverified(now, event=event, email=reg.email)
        return None
    check_open(event, now)
    _place(event, reg, actor_kind="attendee", note="Email address confirmed")
    return reg


def _require_state(reg: Registration, *states: RegistrationState, message: str) -> None:
    if reg.state not in states:
        raise Conflict(message)


def approve(reg: Registration, *, actor: User) -> Registration:
    """Approve a pending registration: it takes a seat, or joins the waitlist when the event is full
    (even if the event's public waitlist is off — the organizer has said yes).
    """
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, RegistrationState.pending,
                   message=gettext("Only registrations awaiting approval can be approved."))
    state = _seat_or_wait(event, reg, actor=actor, actor_kind="organizer", note="Approved", waitlist_anyway=True)
    _notify(reg, "approved" if state == RegistrationState.confirmed else "approved_waitlisted")
    return reg


def deny(reg: Registration, *, actor: User, message: str = "") -> Registration:
    """Decline a registration, with an optional message to the person; a freed seat goes to the waitlist."""
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, *ACTIVE_STATES, message=gettext("This registration is no longer active."))
    had_seat = reg.state == RegistrationState.confirmed
    seat = _release_seat(reg)
    message = clean_text(message)[:2000]
    record_transition(reg, RegistrationState.denied, actor=actor, note=message)
    reg.verify_token_hash = None
    _notify(reg, "denied", extra=message)
    if had_seat:
        _free_seat(event, seat)
        promote_from_waitlist(event)
    return reg


def cancel(reg: Registration, *, actor: User | None = None, note: str = "") -> Registration:
    """Cancel a registration (actor None: the attendee themself); a freed seat goes to the waitlist."""
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, *ACTIVE_STATES, message=gettext("This registration is already cancelled."))
    had_seat = reg.state == RegistrationState.confirmed
    seat = _release_seat(reg)
    record_transition(reg, RegistrationState.cancelled, actor=actor,
                      actor_kind="organizer" if actor else "attendee", note=note)
    reg.verify_token_hash = None
    _notify(reg, "cancelled", extra=clean_text(note) if actor else "", cancel_invite=had_seat)
    if had_seat:
        _free_seat(event, seat)
        promote_from_waitlist(event)
    return reg


def move_from_waitlist(reg: Registration, *, actor: User) -> Registration:
    """Give a waitlisted person a free seat now (organizers may pick anyone, not only the first)."""
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, RegistrationState.waitlisted, message=gettext("Only waitlisted registrations can be moved."))
    if not _take_seat(event, reg):
        raise EventFull(gettext("No seat is free. Raise the capacity or cancel a registration first."))
    record_transition(reg, RegistrationState.confirmed, actor=actor, note="Moved from the waitlist")
    _notify(reg, "promoted")
    return reg


def promote_from_waitlist(event: Event) -> list[Registration]:
    """Fill free seats from the waitlist, first come first served, in the caller's transaction."""
    event = _lock_event(event)
    promoted: list[Registration] = []
    while True:
        first = db.session.scalar(
            select(Registration)
            .where(Registration.event_id == event.id, Registration.state == RegistrationState.waitlisted)
            .order_by(Registration.created_at, Registration.id)
            .limit(1)
        )
        if first is None or not _take_seat(event, first):
            break
        record_transition(first, RegistrationState.confirmed, note="Promoted from the waitlist")
        _notify(first, "promoted")
        promoted.append(first)
    if promoted:
        logger.info("Promoted %s registration(s) from the waitlist of event %s", len(promoted), event.id)
    return promoted


def on_event_capacity_changed(event: Event, *, capacity: int | None, actor: User) -> None:
    """Receiver of `signals.event_capacity_changed`: an edited event's new capacity goes through the engine."""
    set_capacity(event, capacity, actor=actor)


def set_capacity(event: Event, capacity: int | None, *, actor: User) -> list[Registration]:
    """Change the capacity (None: unlimited); never below the seats taken; promotes into new seats."""
    event = _lock_event(event)
    if capacity is not None and capacity < 0:
        raise DomainError(gettext("Capacity cannot be negative."), field="capacity")
    taken = event.confirmed_count
    if capacity is not None and capacity < taken:
        raise Conflict(
            gettext("%(taken)s people already have a seat; the capacity cannot be lower than that. "
                    "Cancel registrations first.", taken=taken),
            field="capacity",
        )
    if capacity != event.capacity:
        logger.info("Capacity of event %s: %s -> %s by %s", event.id, event.capacity, capacity, actor.id)
    event.capacity = capacity
    db.session.flush()  # the seat rows follow the capacity (models.registration.sync_seats)
    return promote_from_waitlist(event)


def update_details(reg: Registration, *, first_name: str, last_name: str, answers: dict[int, Any], timezone: str,
                   actor: User | None = None) -> Registration:
    """Change the name, time zone and answers (never the email: that is the registration's identity)."""
    if not reg.is_active:
        raise Conflict(gettext("A cancelled registration cannot be changed."))
    first = _clean_name(first_name, "first_name", "first name")
    last = _clean_name(last_name, "last_name", "last name")
    if not is_valid_zone(timezone):
        raise DomainError(gettext("Choose your time zone from the list."), field="timezone")
    cleaned = clean_answers(reg.event, answers)
    if (first, last) != (reg.first_name, reg.last_name):
        reg.ics_sequence += 1  # the invite's ATTENDEE name changes
    reg.first_name, reg.last_name, reg.timezone = first, last, timezone
    _set_answers(reg, cleaned)
    db.session.flush()
    logger.info("Registration %s details updated by %s", reg.id, actor.id if actor else "the attendee")
    return reg


# --- lookups ----------------------------------------------------------------------------------------


def by_manage_token(token: str) -> Registration | None:
    """The registration behind a manage link; None for anything unknown (compared in constant time)."""
    return tokens.holder(Registration.manage_token_hash, token)


def by_verify_token(token: str) -> Registration | None:
    """The registration behind an address-confirmation link (any state); None for anything unknown."""
    return tokens.holder(Registration.verify_token_hash, token)


def manage_token_for(reg: Registration) -> str:
    """The plain manage-link token (decrypted), issuing one for registrations that never stored it."""
    if reg.manage_token_encrypted:
        try:
            return crypto.decrypt(reg.manage_token_encrypted)
        except crypto.SecretUnreadable:
            logger.warning("Manage token of registration %s unreadable; issuing a new one", reg.id)
    return _issue_manage_token(reg)


def manage_url(token: str) -> str:
    """The absolute personal manage link."""
    for endpoint in ("public_registration_manage.manage_GET", "public_registration.manage_GET"):
        try:
            return links.public_url(endpoint, token=token)
        except BuildError:
            continue
    return current_app.config["PUBLIC_BASE_URL"] + "/r/" + token


def verify_url(token: str) -> str:
    return links.public_url("public_registration.verify_GET", token=token)


def state_counts(event: Event) -> dict[RegistrationState, int]:
    """How many registrations the event has in each state (every state present, zeros included)."""
    rows = db.session.execute(
        select(Registration.state, func.count()).where(Registration.event_id == event.id).group_by(Registration.state)
    ).all()
    counts = {state: 0 for state in RegistrationState}
    for state, count in rows:
        counts[RegistrationState(state)] = count
    return counts


def seats_left(event: Event) -> int | None:
    """Free seats (capacity minus confirmed), or None when unlimited."""
    if event.capacity is None:
        return None
    return max(event.capacity - (event.confirmed_count or 0), 0)


def waitlist_position(reg: Registration) -> int | None:
    """1 for the first person on the waitlist; None when not waitlisted."""
    if reg.state != RegistrationState.waitlisted:
        return None
    ahead = db.session.scalar(
        select(func.count()).select_from(Registration).where(
            Registration.event_id == reg.event_id,
            Registration.state == RegistrationState.waitlisted,
            (Registration.created_at < reg.created_at)
            | ((Registration.created_at == reg.created_at) & (Registration.id < reg.id)),
        )
    ) or 0
    return ahead + 1


# --- emails -------------------------------------------------------------------------------------------


def describe_when(event: Event, zone_name: str) -> str:
    """'Tue 3 Mar 2026, 14:00–15:00 (Europe/Berlin)' in the given zone."""
    return format_range(event.starts_at, event.ends_at, zone_name)


def _notify(reg: Registration, kind: str, *, extra: str = "", dedupe_key: str | None = None,
            cancel_invite: bool = False, token: str | None = None) -> None:
    """Queue the email for a transition (branded, the attendee's zone, personal link, .ics when it applies)."""
    invite = None
    if kind in ("confirmed", "approved", "promoted"):
        invite = "REQUEST"
    elif cancel_invite:
        invite = "CANCEL"
    key = dedupe_key or f"registration:{reg.id}:{kind}:{reg.transitions[-1].id if reg.transitions else 0}"
    emails.notify_registration(reg, kind, dedupe_key=key, extra=extra, invite=invite, token=token,
                                 position=waitlist_position(reg), new_key=dedupe_key is None and bool(reg.transitions))


def _send_verification(reg: Registration, token: str, *, dedupe_key: str | None = None) -> None:
    """Queue the address-confirmation email with its link and expiry in the attendee's zone."""
    key = dedupe_key or f"registration:{reg.id}:verify:{reg.verify_token_hash}"
    emails.notify_registration(reg, "verify", dedupe_key=key, link=verify_url(token),
                                 expires=reg.verify_expires_at)


def _event_url(event: Event) -> str:
    return links.event_url(event)
