"""Attendee join: the personal join link `/j/<token>`, the join page's state, ACS sessions for the
embedded Teams meeting, and Foyer's own join records (first join, last seen, left).

The join token is separate from the manage token. Like it, only its sha256 is looked up and the token
itself is kept encrypted (MultiFernet) so that emails, calendar invites and organizers can repeat the
link. An organizer can revoke a link and issue a new one; the revoked link then says so.

A session is an ACS identity (created once per registration, then reused) and a user access token
for `voip.join` and `chat.join` (see TOKEN_SCOPES), valid 60–1440 minutes (ACS's bounds):
`JOIN_TOKEN_MINUTES` by default, never longer than the event still needs, never shorter than ACS allows.
The browser asks again before the token expires (long events). The tokens follow the registration: they
are revoked when it is cancelled or denied or the event is cancelled or unpublished, and the identity is
deleted on erasure (all through the outbox).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.routing import BuildError

from app.models import (
    Event,
    EventSession,
    EventStatus,
    Message,
    Registration,
    RegistrationState,
    SessionAttendance,
    User,
    db,
    utcnow,
)
from app.services.core import crypto, links, tokens
from app.services.core.errors import Conflict, DomainError
from app.services.events import sessions
from app.services.messaging import queueing, rendering
from app.services.microsoft.acs import AcsSettings
from app.services.microsoft.errors import AcsError
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox

logger = logging.getLogger(__name__)

#: Scopes of the attendee's ACS token: join calls and the meeting chat (CallWithChat), least privilege.
#: Microsoft's identity model (learn.microsoft.com/azure/communication-services/concepts/identity-model,
#: "VoIP token scopes" and "Chat token scopes") documents `voip.join` as joining calls with every in-call
#: operation but never starting one, and `chat.join` as reading and sending in an existing thread but never
#: creating, updating or deleting threads. An attendee only ever joins the event's Teams meeting (the UI
#: Library's join by meeting link) and its chat; with `voip` and `chat` a token copied out of the browser
#: could start calls and create chat threads on the organization's resource.
TOKEN_SCOPES = ["voip.join", "chat.join"]
#: ACS's bounds on a token's lifetime, in minutes.
TOKEN_MIN_MINUTES = 60
TOKEN_MAX_MINUTES = 1440
#: Someone whose join page reported in within this long is "in the call now".
PRESENCE_WINDOW = timedelta(minutes=2)
#: Seconds between the join page's "still here" reports while in the call.
HEARTBEAT_SECONDS = 45


class JoinState:
    """What the join page shows for a link at a given moment."""

    too_early = "too_early"
    open = "open"
    ended = "ended"
    cancelled = "cancelled"  # the registration or the whole event was cancelled (or denied)
    unpublished = "unpublished"  # the organizer took the event back to draft
    not_confirmed = "not_confirmed"  # pending, waitlisted or awaiting email confirmation
    revoked = "revoked"  # the organizer replaced this link


class JoinUnavailable(DomainError):
    """No session can be issued right now (wrong state, or ACS failed); `state` says why."""

    def __init__(self, message: str, *, state: str, retry: bool = False) -> None:
        super().__init__(message)
        self.state = state
        self.retry = retry


@dataclass(frozen=True)
class JoinLink:
    """The registration a link leads to; `revoked` when it is an organizer-replaced link."""

    registration: Registration
    revoked: bool = False


@dataclass(frozen=True)
class JoinStatus:
    state: str
    opens_at: datetime
    closes_at: datetime
    #: For a course: the session on now, or the next one (the window is that session's).
    session: EventSession | None = None

    @property
    def can_join(self) -> bool:
        return self.state == JoinState.open


@dataclass(frozen=True)
class JoinSession:
    """What the browser needs to mount the call; nothing else about the meeting."""

    user_id: str
    token: str
    expires_on: datetime
    display_name: str
    meeting_link: str
    endpoint: str
    #: The meeting's ID and passcode: the browser joins with them (TeamsMeetingIdLocator) when there is no link.
    meeting_id: str = ""
    passcode: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"userId": self.user_id, "token": self.token, "expiresOn": self.expires_on.isoformat(),
                "displayName": self.display_name, "meetingLink": self.meeting_link, "endpoint": self.endpoint,
                "meetingId": self.meeting_id, "passcode": self.passcode}


# --- the link ---------------------------------------------------------------------------------------


def _issue(reg: Registration) -> str:
    token = tokens.new_token()
    reg.join_token_hash = tokens.hash_token(token)
    reg.join_token_encrypted = crypto.encrypt(token)
    return token


def join_token_for(reg: Registration) -> str:
    """The plain join token (decrypted), issuing one when the registration has none yet."""
    if reg.join_token_hash and reg.join_token_encrypted:
        try:
            return crypto.decrypt(reg.join_token_encrypted)
        except crypto.SecretUnreadable:
            logger.warning("Join token of registration %s unreadable; issuing a new one", reg.id)
    return _issue(reg)


def join_url(reg: Registration) -> str:
    """The absolute personal join link of a registration (issued on first use)."""
    return join_url_for_token(join_token_for(reg))


def join_url_for_token(token: str) -> str:
    try:
        return links.public_url("public_join.join_GET", token=token)
    except BuildError:
        return current_app.config["PUBLIC_BASE_URL"] + "/j/" + token


def device_check_url(reg: Registration) -> str:
    """The absolute link of the attendee's camera and microphone check (for reminders)."""
    return links.public_url("public_join.device_check_GET", token=join_token_for(reg))


def reissue(reg: Registration, *, actor: User) -> str:
    """Revoke the registration's join link and issue a new one; the old link stops working at once."""
    if reg.state != RegistrationState.confirmed:
        raise Conflict(gettext("Only confirmed registrations have a join link."))
    reg.join_token_revoked_hash = reg.join_token_hash
    token = _issue(reg)
    db.session.flush()
    _send_new_link(reg, token)
    # Whoever held the old link may still hold a call token from it: ACS revokes every token issued so
    # far (a join from the new link gets a fresh one).
    queue_token_revocation(reg, "link-reissued")
    logger.info("Join link of registration %s revoked and reissued by %s", reg.id, actor.id)
    return token


# --- tokens follow the registration ------------------------------------------------------------------


def queue_token_revocation(reg: Registration, reason: str) -> None:
    """Queue ACS's revocation of every call token the registration was given (no identity: none was).

    ACS is never called in the request: the worker revokes (POST /identities/{id}/:revokeAccessTokens;
    Microsoft notes it can take up to 15 minutes to reach every service, so the join page also stops
    issuing sessions at once). The key names the ACS identity, not the row id (SQLite may give an
    erased row's id to a new one).
    """
    if not reg.acs_user_id:
        return
    outbox.enqueue("acs.revoke_tokens", {"user_id": reg.acs_user_id}, event_id=reg.event_id,
                   dedupe_key=f"acs.revoke_tokens:{reg.acs_user_id}:{reason}:{utcnow().isoformat()}")


def queue_event_token_revocation(event: Event, reason: str) -> int:
    """Queue the revocation of the call tokens of everyone who joined the event; returns how many."""
    regs = list(db.session.scalars(select(Registration).where(Registration.event_id == event.id,
                                                              Registration.acs_user_id.is_not(None))))
    for reg in regs:
        queue_token_revocation(reg, reason)
    return len(regs)


def on_event_unpublished(event: Event, *, actor: User) -> None:
    """Receiver of `signals.event_unpublished`: the event's call tokens stop working."""
    queue_event_token_revocation(event, "event-unpublished")


def on_event_cancelled(event: Event, *, actor: User, was_published: bool) -> None:
    """Receiver of `signals.event_cancelled`: the event's call tokens stop working."""
    queue_event_token_revocation(event, "event-cancelled")


def queue_identity_deletion(reg: Registration) -> None:
    """Queue the deletion of the registration's ACS identity (its tokens and data go with it)."""
    if not reg.acs_user_id:
        return
    outbox.enqueue("acs.delete_user", {"user_id": reg.acs_user_id}, event_id=reg.event_id,
                   dedupe_key=f"acs.delete_user:{reg.acs_user_id}")


def _identity_call(action: str, user_id: str) -> None:
    """Run one ACS identity operation for the worker; throttling and outages are retried, 404 is done."""
    identity = get_microsoft().acs_identity
    try:
        getattr(identity, action)(user_id)
    except AcsError as exc:
        if exc.transient:
            raise outbox.retry_transient(str(exc), exc.retry_after) from exc
        if exc.status == 404:
            return  # the identity is gone, and its tokens with it
        raise outbox.PermanentFailure(str(exc)) from exc


@outbox.handler("acs.revoke_tokens")
def revoke_acs_tokens(payload: dict[str, Any]) -> None:
    """Perform a queued token revocation."""
    _identity_call("revoke_tokens", payload["user_id"])


@outbox.handler("acs.delete_user")
def delete_acs_identity(payload: dict[str, Any]) -> None:
    """Perform a queued identity deletion (erasure)."""
    _identity_call("delete_user", payload["user_id"])


def queue_new_join_link(reg: Registration, join_link: str) -> Message | None:
    """Queue a registrant's newly issued join link (the organizer re-issued it; the old one stopped working)."""
    event = reg.event
    rendered = rendering.render("join_link", event=event, name=reg.first_name, zone=reg.timezone, join_link=join_link,
                                language=reg.language)
    return queueing.queue_email("join_link", event=event, to=reg.email, name=reg.full_name, rendered=rendered,
                                dedupe_key=f"registration:{reg.id}:join-link:{reg.join_token_hash}", registration=reg)


def _send_new_link(reg: Registration, token: str) -> None:
    """Email the attendee their new join link (the old one stopped working)."""
    queue_new_join_link(reg, join_url_for_token(token))


def by_join_token(token: str) -> JoinLink | None:
    """The registration behind a join link (or a revoked one); None for anything unknown."""
    reg = tokens.holder(Registration.join_token_hash, token)
    if reg is not None:
        return JoinLink(reg)
    reg = tokens.holder(Registration.join_token_revoked_hash, token)
    if reg is not None:
        return JoinLink(reg, revoked=True)
    return None


# --- the state machine ----------------------------------------------------------------------------


def _grace(event: Event) -> timedelta:
    return timedelta(minutes=event.join_grace_minutes if event.join_grace_minutes is not None else 30)


def current_session(event: Event, now: datetime | None = None) -> EventSession | None:
    """A course's session that attendees join now (or next); None for a single-session event."""
    return sessions.session_on(event, now or utcnow(), grace=_grace(event))


def window(event: Event, now: datetime | None = None) -> tuple[datetime, datetime]:
    """When joining opens (minutes before the start) and closes (grace period after the end); for a
    course, those of the session on now or next.
    """
    timing = current_session(event, now) or event
    opens = timing.starts_at - timedelta(minutes=event.join_opens_minutes if event.join_opens_minutes is not None
                                         else 15)
    return opens, timing.ends_at + _grace(event)


def meeting_for(event: Event, now: datetime | None = None) -> Event | EventSession:
    """Whose Teams meeting attendees join now: the event's, or a course's current session's."""
    return current_session(event, now) or event


def status(link: JoinLink, now: datetime | None = None) -> JoinStatus:
    """The link's state right now: revoked, cancelled, not confirmed, too early, open or ended."""
    now = now or utcnow()
    reg = link.registration
    event = reg.event
    opens, closes = window(event, now)
    if link.revoked:
        state = JoinState.revoked
    elif event.is_cancelled or reg.state in (RegistrationState.cancelled, RegistrationState.denied):
        state = JoinState.cancelled
    elif event.status == EventStatus.draft:
        state = JoinState.unpublished
    elif reg.state != RegistrationState.confirmed:
        state = JoinState.not_confirmed
    elif now >= closes:
        state = JoinState.ended
    elif now < opens:
        state = JoinState.too_early
    else:
        state = JoinState.open
    return JoinStatus(state=state, opens_at=opens, closes_at=closes, session=current_session(event, now))


_REFUSALS = {
    JoinState.revoked: _l("This join link has been replaced. Use the link in your most recent email."),
    JoinState.cancelled: _l("This registration or event has been cancelled, so the link no longer opens the call."),
    JoinState.unpublished: _l("The organizer has taken this event offline for now, so the call is closed. If they "
                              "publish it again, this link works again."),
    JoinState.not_confirmed: _l("Your place is not confirmed yet, so you cannot join the call."),
    JoinState.too_early: _l("The call has not opened yet."),
    JoinState.ended: _l("This event has ended."),
}


# --- sessions ---------------------------------------------------------------------------------------


def token_minutes(event: Event, now: datetime) -> int:
    """The token's lifetime: the configured length, never longer than the event still needs,
    within ACS's 60–1440 minutes.
    """
    configured = int(current_app.config["JOIN_TOKEN_MINUTES"])
    _, closes = window(event, now)
    needed = math.ceil((closes - now).total_seconds() / 60)
    minutes = min(configured, needed)
    return max(TOKEN_MIN_MINUTES, min(TOKEN_MAX_MINUTES, minutes))


def acs_endpoint() -> str:
    """The ACS resource URL the browser's chat client talks to."""
    return AcsSettings.from_connection_string(current_app.config["ACS_CONNECTION_STRING"]).endpoint + "/"


@dataclass(frozen=True)
class SessionRequest:
    """A join checked and read (`prepare_session`): what the ACS calls and the join's record need, as plain
    values, so the calls run with no transaction of Foyer's open and the record in a short one.
    """

    registration_id: int
    #: The link's token hash: a link the organizer replaces meanwhile is refused when the join is recorded.
    join_token_hash: str | None
    #: The registration's ACS identity when it has one (created on its first join, then reused).
    acs_user_id: str | None
    minutes: int
    display_name: str
    meeting_link: str
    meeting_id: str
    passcode: str


def prepare_session(link: JoinLink, *, now: datetime | None = None) -> SessionRequest:
    """Check that the link can join now and read what its session needs; writes nothing.
    JoinUnavailable when it cannot join (too early, ended, revoked, no meeting yet…).
    """
    now = now or utcnow()
    current = status(link, now)
    if not current.can_join:
        raise JoinUnavailable(str(_REFUSALS[current.state]), state=current.state)
    reg = link.registration
    event = reg.event
    meeting = meeting_for(event, now)
    if not meeting.join_url and not (meeting.join_meeting_id and meeting.join_passcode):
        raise JoinUnavailable(
            gettext("The online meeting for this event is not ready yet. Please try again in a minute."),
            state=JoinState.open, retry=True)
    return SessionRequest(registration_id=reg.id, join_token_hash=reg.join_token_hash, acs_user_id=reg.acs_user_id,
                          minutes=token_minutes(event, now), display_name=reg.full_name[:256] or "Guest",
                          meeting_link=meeting.join_url or "", meeting_id=meeting.join_meeting_id or "",
                          passcode=meeting.join_passcode or "")


def issue_session(wanted: SessionRequest) -> JoinSession:
    """The ACS calls of a join: an identity when the registration has none yet, and a token for it.
    Network calls only, no database: a slow ACS holds up this attendee and nobody else.
    JoinUnavailable (to try again) when ACS fails.
    """
    identity = get_microsoft().acs_identity
    try:
        user_id = wanted.acs_user_id or identity.create_user()
        issued = identity.issue_token(user_id, scopes=list(TOKEN_SCOPES), minutes=wanted.minutes)
    except AcsError as exc:
        logger.warning("No join session for registration %s: %s", wanted.registration_id, exc)
        raise JoinUnavailable(gettext("We could not connect you to the call service just now. Please try again."),
                              state=JoinState.open, retry=True) from exc
    return JoinSession(user_id=issued.user_id, token=issued.token, expires_on=issued.expires_on,
                       display_name=wanted.display_name, meeting_link=wanted.meeting_link, endpoint=acs_endpoint(),
                       meeting_id=wanted.meeting_id, passcode=wanted.passcode)


def record_join(wanted: SessionRequest, issued: JoinSession, *, now: datetime | None = None) -> str:
    """Record the join (first join, last seen, a course session's attendance) and keep the identity the
    token was issued for; flushes. Run as a writer transaction after `issue_session`.

    Returns the registration's identity. It differs from the token's when another join of the same
    registration stored its new identity first: the caller then issues a token for the stored one, so a
    registration keeps one identity. JoinUnavailable when the link stopped being joinable meanwhile (the
    registration cancelled, the event ended): the token is then never handed out.
    """
    now = now or utcnow()
    # FOR UPDATE (PostgreSQL; SQLite's writer lock does the same): a second join of this registration in
    # flight waits here, then reads the identity the first one stored instead of overwriting it.
    reg = db.session.get(Registration, wanted.registration_id, populate_existing=True, with_for_update=True)
    if reg is None:  # erased meanwhile
        raise JoinUnavailable(str(_REFUSALS[JoinState.cancelled]), state=JoinState.cancelled)
    current = status(JoinLink(reg, revoked=reg.join_token_hash != wanted.join_token_hash), now)
    if not current.can_join:
        raise JoinUnavailable(str(_REFUSALS[current.state]), state=current.state)
    if not reg.acs_user_id:
        reg.acs_user_id = issued.user_id
    if reg.first_joined_at is None:
        reg.first_joined_at = now
    reg.last_seen_at = now
    reg.last_left_at = None
    _seen_in_session(reg, current.session, now)
    db.session.flush()
    logger.info("Join session issued for registration %s (event %s)", reg.id, reg.event_id)
    return reg.acs_user_id


def _seen_in_session(reg: Registration, session: EventSession | None, now: datetime) -> None:
    """Foyer's own join record for one session of a course (the import merges it with Teams' reports)."""
    if session is None:
        return
    row = db.session.get(SessionAttendance, (session.id, reg.id))
    if row is None:
        row = SessionAttendance(session_id=session.id, registration_id=reg.id, first_joined_at=now)
        db.session.add(row)
    row.first_joined_at = row.first_joined_at or now
    row.last_seen_at = now


def record_presence(link: JoinLink, *, left: bool = False, now: datetime | None = None) -> bool:
    """The join page reports the attendee still in the call (or leaving it); False when not joinable."""
    now = now or utcnow()
    if not status(link, now).can_join and not left:
        return False
    reg = link.registration
    if reg.first_joined_at is None:
        return False
    if left:
        reg.last_left_at = now
    else:
        reg.last_seen_at = now
        reg.last_left_at = None
        _seen_in_session(reg, current_session(reg.event, now), now)
    db.session.flush()
    return True


def in_call_now(event: Event, now: datetime | None = None) -> list[Registration]:
    """Confirmed registrations whose join page reported in recently and has not left: who is in the call."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(Registration).where(
            Registration.event_id == event.id,
            Registration.state == RegistrationState.confirmed,
            Registration.last_seen_at >= now - PRESENCE_WINDOW,
        ).order_by(Registration.first_joined_at, Registration.id)
    )
    return [r for r in rows if r.last_left_at is None or r.last_left_at < r.last_seen_at]


def joined_count(event: Event) -> int:
    """How many registrations have joined the call at least once."""
    return db.session.scalar(select(func.count()).select_from(Registration).where(
        Registration.event_id == event.id, Registration.first_joined_at.is_not(None))) or 0
