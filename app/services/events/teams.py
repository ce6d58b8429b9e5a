"""Teams meetings for events: queued when an event is published, changed or cancelled, and
performed by the worker through Graph. Registration never waits for any of it.

A course (an event with sessions) has one meeting per session instead of one for the event: the same
handlers run with a `session_id` in their payload and keep the meeting's fields on the session, and the
event's provisioning status sums its sessions' up.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import escape
from sqlalchemy import select

from app.models import Event, EventSession, ProvisioningStatus, db
from app.models.base import begin_write
from app.models.outbox import OutboxItem, OutboxStatus
from app.services.core import links
from app.services.microsoft.connection import require_connected
from app.services.microsoft.errors import GraphError, MicrosoftError, NotConnected, ReconnectRequired
from app.services.microsoft.graph import EventDetails, GraphEventRef, MeetingOptions, OnlineMeeting
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox

logger = logging.getLogger(__name__)

TRANSACTION_NAMESPACE = uuid.UUID("0b8f4a1e-7d1c-4c55-9b0a-3f2f7d6e8a21")
#: Graph lobby-bypass scopes for the event's "how are attendees admitted" setting. Foyer attendees
#: join as anonymous ACS users, so only "everyone" lets them straight in.
LOBBY_SCOPES = {"bypass": "everyone", "lobby": "organization"}
#: Teams sets a new meeting up asynchronously: the JoinWebUrl lookup may come back empty for a while
#: after the calendar event is created. Until this long after creation, an empty answer means "not yet".
MEETING_SETUP_GRACE = timedelta(minutes=5)


# --- queueing (called by the event verbs, inside their transaction) ---------------------------------


def queue_provisioning(event: Event) -> None:
    """Ask for the event's Teams meeting (once per event; a retry re-arms the same item); a course's
    sessions each get theirs.
    """
    if event.sessions:
        for session in event.sessions:
            queue_session_provisioning(session)
        return
    if event.graph_event_id and event.provisioning_status == ProvisioningStatus.ready:
        return
    event.provisioning_status = ProvisioningStatus.pending
    event.provisioning_error = ""
    key = f"teams.provision:{event.id}"
    if outbox.enqueue("teams.provision", {"event_id": event.id}, dedupe_key=key, event_id=event.id) is None:
        _rearm(key)


def queue_session_provisioning(session: EventSession) -> None:
    """Ask for one course session's Teams meeting (the event's status follows its sessions')."""
    event = session.event
    if session.graph_event_id and session.provisioning_status == ProvisioningStatus.ready:
        return
    session.provisioning_status = ProvisioningStatus.pending
    session.provisioning_error = ""
    event.provisioning_status = ProvisioningStatus.pending
    event.provisioning_error = ""
    db.session.flush()
    key = f"teams.provision:session:{session.id}"
    if outbox.enqueue("teams.provision", {"event_id": event.id, "session_id": session.id}, dedupe_key=key,
                      event_id=event.id) is None:
        _rearm(key)


def queue_session_update(session: EventSession) -> None:
    """Push a session's changed name or time to its calendar event (after provisioning)."""
    if session.provisioning_status == ProvisioningStatus.not_requested:
        return
    event = session.event
    outbox.enqueue("teams.update", {"event_id": event.id, "session_id": session.id, "sequence": event.ics_sequence},
                   dedupe_key=f"teams.update:session:{session.id}:{event.ics_sequence}", event_id=event.id)


def queue_session_cancellation(session: EventSession, comment: str) -> None:
    """Cancel one session's Teams meeting (the session itself may be gone by then: the payload says
    which calendar event).
    """
    if not session.graph_event_id and session.provisioning_status == ProvisioningStatus.not_requested:
        return
    outbox.enqueue("teams.cancel", {"event_id": session.event_id, "session_id": session.id,
                                    "graph_event_id": session.graph_event_id, "comment": comment},
                   dedupe_key=f"teams.cancel:session:{session.id}", event_id=session.event_id)


def queue_update(event: Event) -> None:
    """Push a changed title, description or time to the calendar event (after provisioning)."""
    if event.sessions:
        for session in event.sessions:
            queue_session_update(session)
        return
    if event.provisioning_status == ProvisioningStatus.not_requested:
        return
    outbox.enqueue("teams.update", {"event_id": event.id, "sequence": event.ics_sequence},
                   dedupe_key=f"teams.update:{event.id}:{event.ics_sequence}", event_id=event.id)


def queue_cancellation(event: Event, comment: str) -> None:
    """Cancel the Teams meeting with the organizer's comment."""
    if event.sessions:
        for session in event.sessions:
            queue_session_cancellation(session, comment)
        return
    if event.provisioning_status == ProvisioningStatus.not_requested:
        return
    outbox.enqueue("teams.cancel", {"event_id": event.id, "comment": comment},
                   dedupe_key=f"teams.cancel:{event.id}", event_id=event.id)


def meetings_to_cancel(event: Event) -> int:
    """How many Teams meetings `queue_cancellation` would cancel for the event (its own, or its sessions')."""
    if event.sessions:
        return sum(1 for s in event.sessions
                   if s.graph_event_id or s.provisioning_status != ProvisioningStatus.not_requested)
    return 0 if event.provisioning_status == ProvisioningStatus.not_requested else 1


def retry_provisioning(event: Event) -> None:
    """The organizer's "retry" after a failure."""
    queue_provisioning(event)


def _rearm(key: str) -> None:
    item = db.session.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == key))
    if item is not None and item.status in (OutboxStatus.failed, OutboxStatus.done, OutboxStatus.waiting):
        outbox.retry_now(item)


# --- performing (outbox handlers, in the worker) -----------------------------------------------------


Meeting = Event | EventSession


def _owner(meeting: Meeting) -> Event:
    """The event whose settings a meeting follows (itself, or a session's course)."""
    return meeting.event if isinstance(meeting, EventSession) else meeting


def _meeting_options(event: Event) -> MeetingOptions:
    """The meeting settings Foyer owns for an event.

    Only the organizer (and the speakers Foyer names as presenters) present: ACS guests keep the role the
    meeting gives them, and with the tenant's usual default ("everyone") an anonymous registrant could
    share their screen or remove others.
    """
    return MeetingOptions(
        lobby_scope=LOBBY_SCOPES.get(event.attendee_lobby, "everyone"),
        allowed_presenters=allowed_presenters(event),
        presenters=[address for address, _ in presenters(event)],
        allow_attendee_mic=event.allow_attendee_mic,
        allow_attendee_camera=event.allow_attendee_camera,
        meeting_chat=event.meeting_chat,
    )


def _details(meeting: Meeting) -> EventDetails:
    event = _owner(meeting)
    link = links.event_url(event)  # works in the worker, where there is no request
    body = (f"<p>{escape(meeting.title)}</p>"
            f"<p>Registration and details: <a href=\"{escape(link)}\">{escape(link)}</a></p>"
            "<p>Attendees join from their personal Foyer link.</p>")
    return EventDetails(subject=meeting.title, body_html=body, start=meeting.starts_at, end=meeting.ends_at,
                        timezone=event.timezone,
                        transaction_id=_transaction_id(meeting), attendees=tuple(presenters(event)))


def _transaction_id(meeting: Meeting) -> str:
    """The same for every attempt to create one meeting, so Graph de-duplicates retries; the
    creation time is in it because SQLite can give a deleted event's id to a new one.
    """
    kind = "session" if isinstance(meeting, EventSession) else "event"
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{kind}:{meeting.id}:{meeting.created_at.isoformat()}"))


def _outcome(exc: MicrosoftError) -> Exception:
    """The outbox outcome for a Microsoft failure: park, retry later, or give up."""
    if isinstance(exc, ReconnectRequired | NotConnected):
        return outbox.WaitForReconnect(str(exc))
    if exc.transient:
        return outbox.retry_transient(str(exc), exc.retry_after)
    return outbox.PermanentFailure(str(exc))


def _graph_call(fn):
    try:
        return fn()
    except MicrosoftError as exc:
        raise _outcome(exc) from exc


def _load(payload: dict[str, Any]) -> Meeting | None:
    """The event, or the course session, whose meeting a payload names."""
    if payload.get("session_id"):
        return db.session.get(EventSession, payload["session_id"])
    return db.session.get(Event, payload["event_id"])


def _mark_failed(payload: dict[str, Any], error: str) -> None:
    meeting = _load(payload)
    if meeting is not None:
        meeting.provisioning_status = ProvisioningStatus.failed
        meeting.provisioning_error = error[:2000]
        if isinstance(meeting, EventSession):
            sum_up(meeting.event)


def sum_up(event: Event) -> None:
    """A course's provisioning status from its sessions': failed if one failed, ready once all are."""
    states = {s.provisioning_status for s in event.sessions}
    if not states or states == {ProvisioningStatus.not_requested}:
        return
    if ProvisioningStatus.failed in states:
        event.provisioning_status = ProvisioningStatus.failed
        failed = [s for s in event.sessions if s.provisioning_status == ProvisioningStatus.failed]
        event.provisioning_error = "; ".join(f"{s.english_label}: {s.provisioning_error}" for s in failed)[:2000]
    elif states == {ProvisioningStatus.ready}:
        event.provisioning_status = ProvisioningStatus.ready
        event.provisioning_error = ""
    elif ProvisioningStatus.pending in states:
        event.provisioning_status = ProvisioningStatus.pending


def _save(meeting_or_id: Meeting | int, **values: Any) -> Meeting:
    """Write results in a fresh writer transaction (the read before the remote call is ended first)."""
    if isinstance(meeting_or_id, int):
        model, ident = Event, meeting_or_id
    else:
        model, ident = type(meeting_or_id), meeting_or_id.id
    db.session.rollback()
    begin_write()
    meeting = db.session.get(model, ident)
    for name, value in values.items():
        setattr(meeting, name, value)
    if isinstance(meeting, EventSession) and "provisioning_status" in values:
        sum_up(meeting.event)
    db.session.commit()
    return meeting


@outbox.handler("teams.provision", on_failure=_mark_failed)
def provision(payload: dict[str, Any]) -> None:
    """Create the calendar event with a Teams meeting, find its onlineMeeting, apply the meeting options."""
    event = _load(payload)
    if event is None or event.is_cancelled:
        return
    _graph_call(require_connected)
    graph = get_microsoft().graph
    what = repr(event)
    if not event.graph_event_id:
        ref = _graph_call(lambda: graph.create_event(_details(event)))
        # Keep the id at once: a crash after this point must not create a second meeting.
        event = _save(event, graph_event_id=ref.id, join_url=ref.join_url)
        logger.info("Teams meeting created for %s", what)
    if not event.join_url:
        ref = _graph_call(lambda: graph.get_event(event.graph_event_id))
        event = _save(event, join_url=ref.join_url)
    if not event.join_url:
        raise outbox.PermanentFailure("Graph created the calendar event without a Teams meeting")
    event = _apply_meeting_options(_find_meeting(event))
    _save(event, provisioning_status=ProvisioningStatus.ready, provisioning_error="")
    logger.info("Teams meeting for %s is ready", what)


@outbox.handler("teams.update")
def update(payload: dict[str, Any]) -> None:
    """PATCH the calendar event's subject, times and location (never its body), then follow its join URL.

    Graph answers the PATCH with the event as it now is; if its join URL changed, Foyer stores the new
    one and finds the new meeting, so attendees never get a dead link. Then the meeting options again.
    """
    event = _load(payload)
    if event is None or event.is_cancelled:
        return
    if not event.graph_event_id:
        return  # not created yet: provisioning will use the current details
    _graph_call(require_connected)
    graph = get_microsoft().graph
    ref = _graph_call(lambda: graph.update_event(event.graph_event_id, _details(event)))
    event = _follow_join_url(event, ref)
    if event.provisioning_status == ProvisioningStatus.ready or event.online_meeting_id:
        _apply_meeting_options(_find_meeting(event))


def _follow_join_url(event: Event, ref: GraphEventRef) -> Event:
    """Keep the stored join URL equal to the calendar event's; a changed one means a new meeting."""
    if ref.join_url == event.join_url:
        return event
    if not ref.join_url:
        message = ("The Teams meeting is gone from the calendar event (Microsoft returned no join link). "
                   "Attendees cannot join until the meeting is set up again.")
        logger.warning("%r: %s", event, message)
        _save(event, provisioning_status=ProvisioningStatus.failed, provisioning_error=message)
        raise outbox.PermanentFailure(message)
    logger.info("%r: the Teams join URL changed; storing the new one", event)
    return _save(event, join_url=ref.join_url, online_meeting_id=None, join_meeting_id=None, join_passcode=None)


def _find_meeting(event: Event) -> Event:
    """Look the onlineMeeting up by its join URL (once per join URL) and keep its ID and passcode."""
    if event.online_meeting_id:
        return event
    graph = get_microsoft().graph
    try:
        meeting = graph.get_online_meeting_by_join_url(event.join_url)
    except MicrosoftError as exc:
        if not (isinstance(exc, GraphError) and exc.status == 404):
            raise _outcome(exc) from exc
        _wait_for_setup(event)
    return _save(event, online_meeting_id=meeting.id, **_join_by_id(meeting))


def _wait_for_setup(event: Event) -> None:
    """An empty lookup: "not yet" while the meeting is new (retried with growing waits), then permanent."""
    ref = _graph_call(lambda: get_microsoft().graph.get_event(event.graph_event_id))
    age = _age(ref.created)
    if age is not None and age < MEETING_SETUP_GRACE:
        wait = min(60.0, max(2.0, age.total_seconds()))
        raise outbox.Defer(f"Teams is still setting the meeting up; looking again in {wait:.0f} s", seconds=wait)
    raise outbox.PermanentFailure("Microsoft has no online meeting for the calendar event's join link")


def _age(created: str | None) -> timedelta | None:
    if not created:
        return None
    text = created.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Graph sends 7 fractional digits; Python takes at most 6
        digits = re.match(r"\d*", rest).group(0)
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return datetime.now(UTC) - (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _join_by_id(meeting: OnlineMeeting) -> dict[str, Any]:
    return {"join_meeting_id": meeting.join_meeting_id, "join_passcode": meeting.passcode}


def _apply_meeting_options(event: Event) -> Event:
    """PATCH the meeting's options; its answer refreshes the meeting ID and passcode."""
    graph = get_microsoft().graph
    meeting = _graph_call(lambda: graph.update_online_meeting(event.online_meeting_id,
                                                              _meeting_options(_owner(event))))
    values = _join_by_id(meeting)
    if any(getattr(event, name) != value for name, value in values.items()):
        event = _save(event, **values)
    return event


@outbox.handler("teams.cancel")
def cancel(payload: dict[str, Any]) -> None:
    """POST /me/events/{id}/cancel with the organizer's comment (a removed session's id is in the payload)."""
    event = _load(payload)
    graph_event_id = event.graph_event_id if event is not None else None
    graph_event_id = graph_event_id or payload.get("graph_event_id")
    if not graph_event_id:
        return
    what = repr(event) if event is not None else f"removed session {payload.get('session_id')}"
    _graph_call(require_connected)
    graph = get_microsoft().graph
    try:
        graph.cancel_event(graph_event_id, payload.get("comment") or "")
    except GraphError as exc:
        if exc.status == 404:  # already gone at Microsoft: nothing left to cancel
            logger.info("Calendar event for %s was already gone", what)
            return
        raise _outcome(exc) from exc
    logger.info("Teams meeting for %s cancelled", what)


# --- speakers as presenters ----------------------------------------------------------------------------


def presenters(event: Event) -> list[tuple[str, str]]:
    """(address, name) of the speakers who present in the meeting: those with an address, once each."""
    seen: dict[str, tuple[str, str]] = {}
    for speaker in event.speakers:
        if speaker.email and speaker.email.lower() not in seen:
            seen[speaker.email.lower()] = (speaker.email, speaker.name)
    return list(seen.values())


def allowed_presenters(event: Event) -> str:
    """Graph gives the presenter role only in meetings whose allowedPresenters is "roleIsPresenter";
    without speakers only the organizer presents (ACS guests keep the role the meeting gives them).
    """
    return "roleIsPresenter" if presenters(event) else "organizer"


def queue_presenters(event: Event) -> None:
    """Send the changed speaker list to the calendar event and the meeting (after provisioning)."""
    if event.provisioning_status == ProvisioningStatus.not_requested:
        return
    # Every change gets its own item: the handler sends the list as it is when it runs.
    for payload in ([{"event_id": event.id, "session_id": s.id} for s in event.sessions]
                    or [{"event_id": event.id}]):
        outbox.enqueue("teams.presenters", payload,
                       dedupe_key=f"teams.presenters:{event.id}:{uuid.uuid4().hex}", event_id=event.id)


@outbox.handler("teams.presenters")
def update_presenters(payload: dict[str, Any]) -> None:
    """PATCH the calendar event's attendees (Outlook invites new speakers, cancels for removed ones),
    then the meeting's participants, giving each speaker the presenter role.
    """
    meeting = _load(payload)
    if meeting is None or meeting.is_cancelled or not meeting.graph_event_id:
        return  # not created yet: provisioning sends the current speakers
    event = _owner(meeting)
    _graph_call(require_connected)
    graph = get_microsoft().graph
    people = presenters(event)
    _graph_call(lambda: graph.update_event_attendees(meeting.graph_event_id, people))
    if meeting.online_meeting_id:
        options = MeetingOptions(allowed_presenters=allowed_presenters(event),
                                 presenters=[address for address, _ in people])
        _graph_call(lambda: graph.update_online_meeting(meeting.online_meeting_id, options))
    logger.info("Teams presenters of %r updated (%s)", meeting, len(people))
