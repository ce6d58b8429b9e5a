"""The registration engine: who may register, seats that hold under a rush, the waitlist, approval,
email verification, and the plain emails every transition queues.

Capacity lives in the database. Every verb that takes or frees a seat first locks the event
(`_lock_event`: `BEGIN IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on PostgreSQL) and then changes
`events.confirmed_count` with a guarded UPDATE whose row count decides whether a seat was taken:

    UPDATE events SET confirmed_count = confirmed_count + 1
    WHERE id = :id AND (capacity IS NULL OR confirmed_count < capacity)

One active registration per (event, email) is a partial unique index. Every verb that makes a
registration active holds the event's lock, so `register`'s look-up under that lock finds a duplicate
exactly; should the index still refuse a row, the transaction fails (IntegrityError) and the
registration route runs it once more, which then answers "duplicate".

Callers (routes, jobs) should call `app.models.base.begin_write()` before their first query when
they will call a seat-changing verb, so that on SQLite the whole unit of work is one writer
transaction; these verbs call it too (a no-op once a transaction is open).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, inspect, select, update
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.routing import BuildError

from app.models import (
    ACTIVE_STATES,
    Event,
    EventStatus,
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
from app.services import audit, crypto, tokens
from app.services.errors import Conflict, DomainError, NotAllowed
from app.services.timezones import is_valid_zone

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
            raise DomainError(f"“{shown}” is not a domain name like example.org.", field="domains")
        if domain not in domains:
            domains.append(domain)
    return domains


def save_organization_domains(domains: list[str], *, actor: User) -> list[str]:
    """Set the organization's email domains (admins)."""
    if not actor.is_admin:
        raise NotAllowed("Only admins can change the organization's domains.")
    value = {"domains": list(domains)}
    row = db.session.get(Setting, ORGANIZATION_SETTING)
    if row is None:
        db.session.add(Setting(key=ORGANIZATION_SETTING, value=value))
    else:
        row.value = value
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
        raise DomainError("Enter your email address.", field="email")
    if len(raw) > EMAIL_MAX or _CONTROL.search(raw) or _LINE_BREAKS.search(raw):
        raise DomainError("Enter a valid email address, like name@example.org.", field="email")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(f"Enter a valid email address: {exc}", field="email") from exc
    return result.normalized.lower()


def normalize_phone(value: str) -> str:
    """A mobile number in E.164 (+4915123456789); DomainError(field="phone") otherwise."""
    import phonenumbers

    raw = clean_line(value)
    if not raw:
        raise DomainError("Enter your mobile number to get reminders by SMS.", field="phone")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError("Enter a mobile number with its country code, like +44 7911 123456.", field="phone")
    if phonenumbers.number_type(number) not in (phonenumbers.PhoneNumberType.MOBILE,
                                                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise DomainError("This is not a mobile number; SMS reminders need one.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean_name(value: str, field_name: str, label: str) -> str:
    name = clean_line(value)
    if not name:
        raise DomainError(f"Enter your {label}.", field=field_name)
    if len(name) > NAME_MAX:
        raise DomainError(f"Keep your {label} under {NAME_MAX} characters.", field=field_name)
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
            raise DomainError("Tick this box to continue.", field=name)
    elif question.kind == QuestionKind.multiple_choice:
        chosen = raw if isinstance(raw, list | tuple) else ([raw] if raw else [])
        chosen = [str(c) for c in chosen if str(c) != ""]
        if any(c not in question.options for c in chosen):
            raise DomainError("Choose from the options listed.", field=name)
        value = [o for o in question.options if o in chosen]  # options order, no repeats
        if question.required and not value:
            raise DomainError("Choose at least one option.", field=name)
    elif question.kind == QuestionKind.single_choice:
        value = str(raw) if raw not in (None, "") else ""
        if value and value not in question.options:
            raise DomainError("Choose one of the options listed.", field=name)
        if question.required and not value:
            raise DomainError("Choose one option.", field=name)
    else:
        long = question.kind == QuestionKind.long_text
        value = clean_text(raw) if long else clean_line(raw)
        limit = LONG_TEXT_MAX if long else SHORT_TEXT_MAX
        if len(value) > limit:
            raise DomainError(f"Keep this answer under {limit:,} characters.", field=name)
        if question.required and not value:
            raise DomainError("Answer this question.", field=name)
    return value


def clean_answers(event: Event, answers: dict[int, Any]) -> list[tuple[Question, Any]]:
    """Each of the event's questions with its validated answer (empty for an unanswered optional one)."""
    return [(question, check_answer(question, answers.get(question.id))) for question in event.questions]


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
        raise RegistrationClosed("Registration is closed: this event has been cancelled.")
    if event.status != EventStatus.published:
        raise RegistrationClosed("This event is not open for registration.")
    if event.ends_at <= now:
        raise RegistrationClosed("Registration is closed: this event has ended.")
    if event.registration_opens_at is not None and now < event.registration_opens_at:
        raise RegistrationClosed("Registration has not opened yet.")
    closes = event.registration_closes_at or event.ends_at
    if now >= closes:
        raise RegistrationClosed("Registration for this event has closed.")


def _check_allowed(event: Event, email: str) -> None:
    if event.who_can_register == "organization" and not is_organization_email(email):
        raise RegistrationNotAllowed(
            "This event is only open to members of the organization. Use your work or school address.",
            field="email",
        )


def _lock_event(event: Event) -> Event:
    """Take the event's write lock and refresh its seat counter (and rules) from the database."""
    begin_write()
    # The id from the identity key: an event expired by the caller's rollback is not loaded twice.
    identity = inspect(event).identity
    event_id = identity[0] if identity else event.id
    query = select(Event).where(Event.id == event_id).execution_options(populate_existing=True)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return db.session.scalars(query).one()


def _take_seat(event: Event) -> bool:
    """Take one seat if one is free; the database decides (guarded UPDATE)."""
    taken = db.session.execute(
        update(Event)
        .where(Event.id == event.id, (Event.capacity.is_(None)) | (Event.confirmed_count < Event.capacity))
        .values(confirmed_count=Event.confirmed_count + 1)
        .returning(Event.confirmed_count)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if taken is None:
        return False
    set_committed_value(event, "confirmed_count", taken)
    return True


def _free_seat(event: Event) -> None:
    left = db.session.execute(
        update(Event).where(Event.id == event.id, Event.confirmed_count > 0)
        .values(confirmed_count=Event.confirmed_count - 1)
        .returning(Event.confirmed_count)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if left is not None:
        set_committed_value(event, "confirmed_count", left)


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
        from app.services import joins

        joins.queue_token_revocation(reg, to_state.value)  # a call token must not outlive the place
    db.session.add(reg)  # a new registration is written with its first transition
    db.session.flush()
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
    if _take_seat(event):
        from app.services import joins

        # The confirmation email carries the personal join link: issued now, it is written with the
        # state change (one statement) rather than by a second UPDATE when the email is rendered.
        joins.join_token_for(reg)
        record_transition(reg, RegistrationState.confirmed, actor=actor, actor_kind=actor_kind, note=note)
    elif event.waitlist_enabled or waitlist_anyway:
        record_transition(reg, RegistrationState.waitlisted, actor=actor, actor_kind=actor_kind, note=note)
    else:
        raise EventFull("Sorry, this event is fully booked.")
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


def _active_registration(event: Event, email: str) -> Registration | None:
    return db.session.scalar(select(Registration).where(
        Registration.event_id == event.id, Registration.email == email, Registration.state.in_(ACTIVE_STATES)))


def prepare(event: Event, data: RegistrationData) -> PreparedRegistration:
    """The part of `register` that needs no lock: check the person's details (DomainError naming the
    field), make and encrypt their personal token, and read what their email is rendered with.

    Call it before the writer transaction starts (it reads), so the event's lock is held for less time.
    """
    from app.services import messages

    prepared = _checked(data)
    messages.preload_rendering(event)
    return prepared


def _checked(data: RegistrationData) -> PreparedRegistration:
    """The person's details checked and their personal token made (no database access)."""
    first_name = _clean_name(data.first_name, "first_name", "first name")
    last_name = _clean_name(data.last_name, "last_name", "last name")
    email = normalize_email(data.email)
    if not is_valid_zone(data.timezone):
        raise DomainError("Choose your time zone from the list.", field="timezone")
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
                       phone=prepared.phone, sms_opt_in=prepared.phone is not None,
                       manage_token_hash=prepared.token_hash, manage_token_encrypted=prepared.token_encrypted)
    token = prepared.token

    event = _lock_event(event)
    check_open(event, now)
    _check_allowed(event, email)
    cleaned = clean_answers(event, data.answers)
    # Full before duplicate: a full event says "full" to everyone, registered or not.
    if not event.approval_required and not event.waitlist_enabled and seats_left(event) == 0:
        raise EventFull("Sorry, this event is fully booked.")

    # Under the event's lock this look-up is exact: every verb that makes a registration active holds
    # that lock, and the partial unique index stands behind it.
    existing = _active_registration(event, email)
    if existing is not None and _lapsed(existing, now):
        # An expired hold never blocks signing up again: sweep it first.
        expire_unverified(now, event=event, email=email)
        existing = None
    if existing is not None:
        return _duplicate(existing, now)

    reg.event = event
    # Filled while the row is new, so no collection is loaded back from the database.
    reg.transitions = []
    _set_answers(reg, cleaned)
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
    from app.models import Message

    return db.session.scalar(select(Message.id).where(Message.dedupe_key == dedupe_key)) is not None


def verify_email(token: str, *, now: datetime | None = None) -> Registration | None:
    """Confirm an unverified hold from its emailed link, then place it by the usual rules.

    None for an unknown or expired link. A registration that was already verified is returned as is.
    """
    now = now or utcnow()
    if not _plausible_token(token):
        return None
    reg = db.session.scalar(select(Registration).where(Registration.verify_token_hash == tokens.hash_token(token)))
    if reg is None or not tokens.token_matches(token, reg.verify_token_hash):
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


def _plausible_token(token: Any) -> bool:
    return isinstance(token, str) and 20 <= len(token) <= 100


def _require_state(reg: Registration, *states: RegistrationState, message: str) -> None:
    if reg.state not in states:
        raise Conflict(message)


def approve(reg: Registration, *, actor: User) -> Registration:
    """Approve a pending registration: it takes a seat, or joins the waitlist when the event is full
    (even if the event's public waitlist is off — the organizer has said yes).
    """
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, RegistrationState.pending, message="Only registrations awaiting approval can be approved.")
    state = _seat_or_wait(event, reg, actor=actor, actor_kind="organizer", note="Approved", waitlist_anyway=True)
    _notify(reg, "approved" if state == RegistrationState.confirmed else "approved_waitlisted")
    return reg


def deny(reg: Registration, *, actor: User, message: str = "") -> Registration:
    """Decline a registration, with an optional message to the person; a freed seat goes to the waitlist."""
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, *ACTIVE_STATES, message="This registration is no longer active.")
    had_seat = reg.state == RegistrationState.confirmed
    message = clean_text(message)[:2000]
    record_transition(reg, RegistrationState.denied, actor=actor, note=message)
    reg.verify_token_hash = None
    _notify(reg, "denied", extra=message)
    if had_seat:
        _free_seat(event)
        promote_from_waitlist(event)
    return reg


def cancel(reg: Registration, *, actor: User | None = None, note: str = "") -> Registration:
    """Cancel a registration (actor None: the attendee themself); a freed seat goes to the waitlist."""
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, *ACTIVE_STATES, message="This registration is already cancelled.")
    had_seat = reg.state == RegistrationState.confirmed
    record_transition(reg, RegistrationState.cancelled, actor=actor,
                      actor_kind="organizer" if actor else "attendee", note=note)
    reg.verify_token_hash = None
    _notify(reg, "cancelled", extra=clean_text(note) if actor else "", cancel_invite=had_seat)
    if had_seat:
        _free_seat(event)
        promote_from_waitlist(event)
    return reg


def move_from_waitlist(reg: Registration, *, actor: User) -> Registration:
    """Give a waitlisted person a free seat now (organizers may pick anyone, not only the first)."""
    event = _lock_event(reg.event)
    db.session.refresh(reg)
    _require_state(reg, RegistrationState.waitlisted, message="Only waitlisted registrations can be moved.")
    if not _take_seat(event):
        raise EventFull("No seat is free. Raise the capacity or cancel a registration first.")
    record_transition(reg, RegistrationState.confirmed, actor=actor, note="Moved from the waitlist")
    _notify(reg, "promoted")
    return reg


def promote_from_waitlist(event: Event) -> list[Registration]:
    """Fill free seats from the waitlist, first come first served, in the caller's transaction."""
    event = _lock_event(event)
    promoted: list[Registration] = []
    while True:
        if event.capacity is not None and event.confirmed_count >= event.capacity:
            break
        first = db.session.scalar(
            select(Registration)
            .where(Registration.event_id == event.id, Registration.state == RegistrationState.waitlisted)
            .order_by(Registration.created_at, Registration.id)
            .limit(1)
        )
        if first is None or not _take_seat(event):
            break
        record_transition(first, RegistrationState.confirmed, note="Promoted from the waitlist")
        _notify(first, "promoted")
        promoted.append(first)
    if promoted:
        logger.info("Promoted %s registration(s) from the waitlist of event %s", len(promoted), event.id)
    return promoted


def set_capacity(event: Event, capacity: int | None, *, actor: User) -> list[Registration]:
    """Change the capacity (None: unlimited); never below the seats taken; promotes into new seats."""
    event = _lock_event(event)
    if capacity is not None and capacity < 0:
        raise DomainError("Capacity cannot be negative.", field="capacity")
    if capacity is not None and capacity < event.confirmed_count:
        raise Conflict(
            f"{event.confirmed_count} people already have a seat; the capacity cannot be lower than that. "
            "Cancel registrations first.",
            field="capacity",
        )
    if capacity != event.capacity:
        logger.info("Capacity of event %s: %s -> %s by %s", event.id, event.capacity, capacity, actor.id)
    event.capacity = capacity
    db.session.flush()
    return promote_from_waitlist(event)


def update_details(reg: Registration, *, first_name: str, last_name: str, answers: dict[int, Any], timezone: str,
                   actor: User | None = None) -> Registration:
    """Change the name, time zone and answers (never the email: that is the registration's identity)."""
    if not reg.is_active:
        raise Conflict("A cancelled registration cannot be changed.")
    first = _clean_name(first_name, "first_name", "first name")
    last = _clean_name(last_name, "last_name", "last name")
    if not is_valid_zone(timezone):
        raise DomainError("Choose your time zone from the list.", field="timezone")
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
    if not _plausible_token(token):
        return None
    reg = db.session.scalar(select(Registration).where(Registration.manage_token_hash == tokens.hash_token(token)))
    if reg is None or not tokens.token_matches(token, reg.manage_token_hash):
        return None
    return reg


def by_verify_token(token: str) -> Registration | None:
    """The registration behind an address-confirmation link (any state); None for anything unknown."""
    if not _plausible_token(token):
        return None
    reg = db.session.scalar(select(Registration).where(Registration.verify_token_hash == tokens.hash_token(token)))
    if reg is None or not tokens.token_matches(token, reg.verify_token_hash):
        return None
    return reg


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
    from app.services import catalog

    for endpoint in ("public_registration_manage.manage_GET", "public_registration.manage_GET"):
        try:
            return catalog.public_url(endpoint, token=token)
        except BuildError:
            continue
    return current_app.config["PUBLIC_BASE_URL"] + "/r/" + token


def verify_url(token: str) -> str:
    from app.services import catalog

    return catalog.public_url("public_registration.verify_GET", token=token)


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
    from app.services.dates import format_range

    return format_range(event.starts_at, event.ends_at, zone_name)


def _notify(reg: Registration, kind: str, *, extra: str = "", dedupe_key: str | None = None,
            cancel_invite: bool = False, token: str | None = None) -> None:
    """Queue the email for a transition (branded, the attendee's zone, personal link, .ics when it applies)."""
    from app.services import messages

    invite = None
    if kind in ("confirmed", "approved", "promoted"):
        invite = "REQUEST"
    elif cancel_invite:
        invite = "CANCEL"
    key = dedupe_key or f"registration:{reg.id}:{kind}:{reg.transitions[-1].id if reg.transitions else 0}"
    messages.notify_registration(reg, kind, dedupe_key=key, extra=extra, invite=invite, token=token,
                                 position=waitlist_position(reg), new_key=dedupe_key is None and bool(reg.transitions))


def _send_verification(reg: Registration, token: str, *, dedupe_key: str | None = None) -> None:
    """Queue the address-confirmation email with its link and expiry in the attendee's zone."""
    from app.services import messages

    key = dedupe_key or f"registration:{reg.id}:verify:{reg.verify_token_hash}"
    messages.notify_registration(reg, "verify", dedupe_key=key, link=verify_url(token),
                                 expires=reg.verify_expires_at)


def _event_url(event: Event) -> str:
    from app.services import catalog

    return catalog.event_url(event)
