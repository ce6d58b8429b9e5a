"""The Teams meeting's recordings after an event: the worker imports them from Graph, the organizer
approves one, and only then does the follow-up go out with a link to it.

Graph serves a meeting's recording (`GET /me/onlineMeetings/{id}/recordings/{id}/content`) to the
meeting's organizer only, through the delegated `OnlineMeetingRecording.Read.All`; transcripts need
`OnlineMeetingTranscript.Read.All`. So the worker copies the recording (and its WebVTT transcript, when
one exists and may be read) into RECORDING_FOLDER, and attendees watch Foyer's copy through their
personal link. The transcript is shown as captions only when the organizer chooses to share it.

While a recording may still come (the connection allows recordings, the event has a meeting and no
recording link of the organizer's own), the follow-up waits: for the organizer's decision once one is
imported, or until a day after the end when none appears. A connection made before Foyer asked for the
recording permissions lacks them: the import then records "permission missing" (the dashboard and the
admin's Microsoft page say an admin must reconnect once) and the follow-up goes out as before.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import event as sa_event
from sqlalchemy import select

from app.models import (
    Event,
    EventRecording,
    RecordingsState,
    RecordingStatus,
    Registration,
    RegistrationState,
    User,
    db,
    utcnow,
)
from app.models.base import begin_write
from app.services.core import audit, links
from app.services.core.errors import Conflict
from app.services.events.teams import _outcome as teams_outcome
from app.services.microsoft.connection import missing_recording_scopes, require_connected
from app.services.microsoft.entra import RECORDING_SCOPES
from app.services.microsoft.errors import ConsentRequired, GraphError, MicrosoftError
from app.services.microsoft.graph import CallArtifact, ContentTooLarge
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox
from app.services.registration import privacy, registrations

logger = logging.getLogger(__name__)

IMPORT_KIND = "recordings.import"
RELEASE_KIND = "recordings.release_followup"
#: Teams stores the recording a few minutes after the meeting ends (the attendance import waits as long).
IMPORT_DELAY = timedelta(minutes=15)
RETRY_EVERY_SECONDS = 3600.0
#: How long after the end Foyer keeps looking (and the follow-up keeps waiting) for a recording.
WAIT_FOR_RECORDING = timedelta(hours=24)
TRANSCRIPT_MAX_BYTES = 20 * 1024 * 1024
#: One scope per call, so a connection without the transcript permission still imports recordings.
READ_RECORDINGS = [RECORDING_SCOPES[0]]
READ_TRANSCRIPTS = [RECORDING_SCOPES[1]]
#: The longest a download may hold the worker's claim on the import.
DOWNLOAD_SECONDS = 3 * 3600.0


# --- where things stand ------------------------------------------------------------------------------


def folder() -> Path:
    return Path(current_app.config["RECORDING_FOLDER"])


def max_bytes() -> int:
    return int(current_app.config["RECORDING_MAX_MB"]) * 1024 * 1024


def missing_scopes() -> list[str]:
    return missing_recording_scopes()


def recordings_of(event: Event) -> list[EventRecording]:
    return list(db.session.scalars(select(EventRecording).where(EventRecording.event_id == event.id)
                                   .order_by(EventRecording.recorded_at, EventRecording.id)))


def meetings_of(event: Event) -> list[tuple[str, str]]:
    """The Teams meetings whose recordings are the event's, as (session label, online meeting id): each
    session's of a course, else the event's own; those without a meeting are left out.
    """
    if event.is_course:
        return [(s.english_label, s.online_meeting_id) for s in event.sessions if s.online_meeting_id]
    return [("", event.online_meeting_id)] if event.online_meeting_id else []


def approved_recordings(event: Event) -> list[EventRecording]:
    """What attendees may watch: of each recorded meeting (a course: of each session) the newest recording
    the organizer approved, in the order they were recorded.
    """
    newest: dict[str, EventRecording] = {}
    for row in db.session.scalars(select(EventRecording).where(
            EventRecording.event_id == event.id, EventRecording.status == RecordingStatus.approved)
            .order_by(EventRecording.decided_at.desc(), EventRecording.id.desc())):
        newest.setdefault(row.session_label, row)
    return sorted(newest.values(), key=lambda r: (r.recorded_at or r.imported_at, r.id))


def holds_followup(event: Event, now: datetime | None = None) -> bool:
    """Must the follow-up wait for a recording (still to come, or imported and awaiting the organizer)?"""
    if not meetings_of(event) or event.followup_recording_url or READ_RECORDINGS[0] in missing_scopes():
        return False
    if any(r.status == RecordingStatus.pending for r in recordings_of(event)):
        return True
    if approved_recordings(event):
        return False
    waiting = event.recordings_state in (RecordingsState.none, RecordingsState.waiting)
    return waiting and (now or utcnow()) < event.ends_at + WAIT_FOR_RECORDING


def release_followup(event: Event) -> int:
    """Queue the follow-up now that nothing holds it (once attendance is in; each person once, ever)."""
    from app.services.after_event import followups  # noqa: PLC0415 — follow-ups build on recordings; this is the one call back

    if not event.followup_enabled or event.attendance_imported_at is None or holds_followup(event):
        return 0
    return followups.queue_followups(event)


def attendee_url(reg: Registration) -> str:
    """The personal link to the event's approved recording (the attendee's manage token is the key)."""
    return links.public_url("public_after_event.recording_GET", token=registrations.manage_token_for(reg))


def may_watch(reg: Registration) -> bool:
    """Attendees and confirmed no-shows get the recording: the people the follow-up goes to."""
    return bool(reg.attended) or reg.state == RegistrationState.confirmed


# --- queueing -----------------------------------------------------------------------------------------


def queue_import(event: Event, *, at_once: bool = False) -> bool:
    """Queue the import a while after the end, or at once (an import already queued becomes due now)."""
    return outbox.enqueue_after_end(IMPORT_KIND, event.id, event.ends_at, delay=IMPORT_DELAY,
                                    patience=WAIT_FOR_RECORDING, retry_every_seconds=RETRY_EVERY_SECONDS,
                                    at_once=at_once)


def request_import(event: Event, *, actor: User, now: datetime | None = None) -> None:
    """An organizer's "look for recordings now" (after the event)."""
    if event.ends_at > (now or utcnow()):
        raise Conflict(gettext("Recordings can be looked for once the event has ended."))
    if event.personal_data_purged_at is not None:
        raise Conflict(gettext("This event's data has been purged."))
    if not meetings_of(event):
        raise Conflict(gettext("This event has no Teams meeting, so there is no recording to import."))
    queue_import(event, at_once=True)
    audit.record("recordings.import_requested", actor=actor, target=event, summary="Asked Foyer to look for recordings")


# --- the organizer's decision -------------------------------------------------------------------------


def _queue_release(recording: EventRecording) -> bool:
    """After a decision: let the worker queue the follow-up (thousands of emails are rendered there, not
    in the organizer's request). Returns whether a follow-up is due at all.
    """
    event = recording.event
    if not event.followup_enabled or event.attendance_imported_at is None:
        return False
    stamp = recording.decided_at.strftime("%Y%m%d%H%M%S%f")
    outbox.enqueue(RELEASE_KIND, {"event_id": event.id}, event_id=event.id,
                   dedupe_key=f"{RELEASE_KIND}:{event.id}:{recording.id}:{recording.status.value}:{stamp}")
    return True


@outbox.handler(RELEASE_KIND)
def release_followup_job(payload: dict[str, Any]) -> None:
    """Queue the follow-up the organizer's decision released (each person once, ever)."""
    db.session.rollback()
    begin_write()
    event = db.session.get(Event, payload["event_id"])
    if event is None or event.personal_data_purged_at is not None or event.is_cancelled:
        db.session.rollback()
        return
    queued = release_followup(event)
    db.session.commit()
    logger.info("Follow-up of event %s released: %s email(s) queued", event.id, queued)


def approve(recording: EventRecording, *, share_transcript: bool, actor: User) -> bool:
    """Approve a recording for the follow-up (others imported stay as they are); returns whether the
    follow-up is now on its way.
    """
    if recording.status == RecordingStatus.approved and recording.share_transcript == bool(share_transcript):
        return False
    recording.status = RecordingStatus.approved
    recording.share_transcript = bool(share_transcript) and recording.transcript_stored_name is not None
    recording.decided_by_id, recording.decided_at = actor.id, utcnow()
    db.session.flush()
    audit.record("recordings.approve", actor=actor, target=recording.event,
                 summary="Approved the meeting recording for the follow-up",
                 details={"recording": recording.id, "share_transcript": recording.share_transcript})
    return _queue_release(recording)


def decline(recording: EventRecording, *, actor: User) -> bool:
    """Keep a recording from attendees; the follow-up goes out without it unless another is pending."""
    recording.status = RecordingStatus.declined
    recording.decided_by_id, recording.decided_at = actor.id, utcnow()
    db.session.flush()
    audit.record("recordings.decline", actor=actor, target=recording.event,
                 summary="Declined the meeting recording", details={"recording": recording.id})
    return _queue_release(recording)


# --- performing (outbox handler, in the worker) -----------------------------------------------------------


def _outcome(exc: MicrosoftError) -> Exception:
    return teams_outcome(exc)


def _set_state(event_id: int, state: RecordingsState, *, summary: str | None = None) -> None:
    """Record the outcome in a fresh writer transaction, releasing the follow-up when nothing holds it."""
    db.session.rollback()
    begin_write()
    event = db.session.get(Event, event_id)
    event.recordings_state = state.value
    event.recordings_checked_at = utcnow()
    db.session.flush()
    if summary:
        audit.record(f"recordings.{state.value}", target=event, summary=summary)
    release_followup(event)
    db.session.commit()


def _new_name(suffix: str) -> str:
    return secrets.token_hex(16) + suffix


def _download(fetch, suffix: str) -> tuple[str, Any]:
    """Stream one artifact into a new file; the file is removed if the download fails."""
    target = folder()
    target.mkdir(parents=True, exist_ok=True)
    name = _new_name(suffix)
    path = target / name
    try:
        with open(path, "xb") as handle:
            result = fetch(handle)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return name, result


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _transcript_for(recording: CallArtifact, transcripts: list[CallArtifact]) -> CallArtifact | None:
    """The transcript of the same call (Graph links them by contentCorrelationId), else the only one."""
    same = [t for t in transcripts if t.correlation_id and t.correlation_id == recording.correlation_id]
    if same:
        return same[0]
    return transcripts[0] if len(transcripts) == 1 else None


def _import_failed(payload: dict[str, Any], error: str) -> None:
    """The import gave up for good: say so on the event and stop holding the follow-up."""
    event = db.session.get(Event, payload["event_id"])
    if event is None:
        return
    event.recordings_state, event.recordings_checked_at = RecordingsState.failed.value, utcnow()
    db.session.flush()
    release_followup(event)


@outbox.handler(IMPORT_KIND, on_failure=_import_failed)
def import_recordings(payload: dict[str, Any]) -> None:
    """List the recordings of the event's meetings (a course: each session's), copy new ones (with their
    transcript) and leave them for approval.
    """
    event = db.session.get(Event, payload["event_id"])
    if event is None or event.personal_data_purged_at is not None or event.is_cancelled:
        return
    event_id, meetings, ends_at = event.id, meetings_of(event), event.ends_at
    if not meetings:
        _set_state(event_id, RecordingsState.not_recorded)
        return
    try:
        require_connected()
    except MicrosoftError as exc:
        raise _outcome(exc) from exc
    missing = missing_scopes()
    if READ_RECORDINGS[0] in missing:
        _set_state(event_id, RecordingsState.permission_missing,
                   summary="Recordings not imported: the Microsoft 365 connection lacks the recording permission")
        return
    known = set(db.session.scalars(select(EventRecording.graph_id).where(EventRecording.event_id == event_id)))
    db.session.commit()  # no transaction held open across the Graph calls
    graph = get_microsoft().graph
    try:
        found = [(label, meeting_id, recording) for label, meeting_id in meetings
                 for recording in graph.list_recordings(meeting_id, scopes=READ_RECORDINGS)]
    except ConsentRequired as exc:
        _set_state(event_id, RecordingsState.permission_missing,
                   summary=f"Recordings not imported: the recording permission is not granted ({exc.code})")
        return
    except GraphError as exc:
        if exc.status == 403:
            _set_state(event_id, RecordingsState.permission_missing,
                       summary=f"Recordings not imported: Graph refused the recording permission ({exc.code})")
            return
        raise _outcome(exc) from exc
    except MicrosoftError as exc:
        raise _outcome(exc) from exc
    new = [(label, meeting_id, r) for label, meeting_id, r in found if r.id not in known]
    if not found:
        if utcnow() < ends_at + WAIT_FOR_RECORDING:
            db.session.rollback()
            begin_write()
            row = db.session.get(Event, event_id)
            row.recordings_state, row.recordings_checked_at = RecordingsState.waiting.value, utcnow()
            db.session.commit()
            raise outbox.RetryLater("Teams has no recording of the meeting yet", retry_after=RETRY_EVERY_SECONDS)
        _set_state(event_id, RecordingsState.not_recorded, summary="The meeting has no recording")
        return
    transcripts: dict[str, list[CallArtifact]] = {}
    if new and READ_TRANSCRIPTS[0] not in missing:
        try:
            for meeting_id in dict.fromkeys(meeting_id for _label, meeting_id, _r in new):
                transcripts[meeting_id] = graph.list_transcripts(meeting_id, scopes=READ_TRANSCRIPTS)
        except ConsentRequired:
            transcripts = {}  # no transcript permission: the recordings come without one
        except GraphError as exc:
            if exc.status != 403:
                raise _outcome(exc) from exc
            transcripts = {}
    rows, written, too_large = [], [], 0
    try:
        for label, meeting_id, recording in new:
            outbox.fence(DOWNLOAD_SECONDS)
            db.session.commit()
            try:
                name, content = _download(lambda handle, r=recording, m=meeting_id: graph.download_recording(
                    m, r.id, handle, scopes=READ_RECORDINGS, max_bytes=max_bytes()), ".media")
            except ContentTooLarge:
                too_large += 1
                continue
            written.append(name)
            transcript_name = None
            transcript = _transcript_for(recording, transcripts.get(meeting_id, []))
            if transcript is not None:
                transcript_name, _ = _download(lambda handle, t=transcript, m=meeting_id: graph.download_transcript(
                    m, t.id, handle, scopes=READ_TRANSCRIPTS, max_bytes=TRANSCRIPT_MAX_BYTES), ".vtt")
                written.append(transcript_name)
            rows.append(EventRecording(
                event_id=event_id, graph_id=recording.id, session_label=label, recorded_at=_parse(recording.created),
                recording_ended_at=_parse(recording.ended), content_type=content.content_type[:100],
                size_bytes=content.size, stored_name=name, transcript_stored_name=transcript_name))
    except MicrosoftError as exc:
        _remove(written)
        raise _outcome(exc) from exc
    except BaseException:
        _remove(written)
        raise
    db.session.rollback()
    begin_write()
    event = db.session.get(Event, event_id)
    db.session.add_all(rows)
    state = RecordingsState.too_large if too_large and not rows and not known else RecordingsState.found
    event.recordings_state, event.recordings_checked_at = state.value, utcnow()
    db.session.flush()
    if rows:
        audit.record("recordings.import", target=event,
                     summary=f"Imported {len(rows)} meeting recording(s) for the organizer to approve",
                     details={"recordings": len(rows), "transcripts": sum(1 for r in rows if r.transcript_stored_name)})
    if too_large:
        audit.record("recordings.too_large", target=event,
                     summary=f"{too_large} recording(s) larger than {max_bytes() // 1048576:,} MB were not copied")
        release_followup(event)
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _remove(written)
        raise
    logger.info("Imported %s recording(s) of event %s", len(rows), event_id)


def _remove(names: list[str]) -> None:
    for name in names:
        try:
            os.unlink(folder() / name)
        except FileNotFoundError:
            pass


# --- retention ----------------------------------------------------------------------------------------


@privacy.purger("recordings", before="registrations")
def purge(event: Event) -> int:
    """Delete the event's recordings, files and rows (people's faces, voices and names); returns rows."""
    rows = recordings_of(event)
    names = [n for r in rows for n in (r.stored_name, r.transcript_stored_name) if n]
    for row in rows:
        db.session.delete(row)
    db.session.flush()
    _remove_after_commit(names)
    return len(rows)


def _remove_after_commit(names: list[str]) -> None:
    """Delete the files once the transaction that forgot them commits (a rollback keeps them)."""
    if not names:
        return
    base = folder()
    session = db.session()

    def _after_commit(_session) -> None:
        sa_event.remove(session, "after_soft_rollback", _after_rollback)
        for name in names:
            try:
                os.unlink(base / name)
            except FileNotFoundError:
                pass

    def _after_rollback(_session, _previous) -> None:
        sa_event.remove(session, "after_commit", _after_commit)

    sa_event.listen(session, "after_commit", _after_commit, once=True)
    sa_event.listen(session, "after_soft_rollback", _after_rollback, once=True)
