"""Attendance after an event: the worker reads the Teams meeting's Graph attendance reports and merges
them with Foyer's own join records, so each registration gets attended yes/no, a first join and the
minutes present (overlapping intervals — a second device, a re-join, two reports — counted once).

Graph keeps only the 50 most recent reports per meeting and produces them a little after the
meeting ends, so the import is queued a while after the end and retried while none exists yet.
Unknown attendees (guests who did not register) are counted, never stored.

A course (an event with sessions) has a meeting per session: the import, queued after the last session,
reads each session's reports, records who attended which session (`SessionAttendance`), and counts
someone as having attended the course when they attended any session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import ColumnElement, and_, select

from app.models import (
    Event,
    EventSession,
    EventStatus,
    Registration,
    RegistrationState,
    SessionAttendance,
    User,
    db,
    utcnow,
)
from app.models.base import begin_write
from app.services.core import audit, signals
from app.services.core.errors import Conflict
from app.services.events.teams import _outcome
from app.services.microsoft.connection import require_connected
from app.services.microsoft.errors import MicrosoftError
from app.services.microsoft.graph import AttendanceRecord
from app.services.microsoft.wiring import get_microsoft
from app.services.outbox import outbox

logger = logging.getLogger(__name__)

#: Teams produces the report a few minutes after the meeting ends.
IMPORT_DELAY = timedelta(minutes=15)
#: While no report exists yet, try again this often, for this long after the end.
RETRY_EVERY_SECONDS = 3600.0
WAIT_FOR_REPORTS = timedelta(hours=24)
#: Events that ended longer ago than this are not swept (an organizer can still ask by hand).
SWEEP_LOOKBACK = timedelta(days=7)
#: Graph lists at most this many reports per meeting (the most recent).
GRAPH_REPORT_LIMIT = 50
IMPORT_KIND = "attendance.import"


# --- segments (for organizer messages) -----------------------------------------------------------------


def attended_filter() -> ColumnElement[bool]:
    """SQL condition for the "attended" segment: registrations seen in the meeting."""
    return Registration.attended.is_(True)


def no_show_filter() -> ColumnElement[bool]:
    """SQL condition for the "no-show" segment: confirmed registrations that never joined."""
    return and_(Registration.state == RegistrationState.confirmed, Registration.attended.is_(False))


SEGMENTS = {"attended": attended_filter, "no_show": no_show_filter}


# --- merging ------------------------------------------------------------------------------------------


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _record_intervals(record: AttendanceRecord) -> list[tuple[datetime, datetime]]:
    intervals = []
    for interval in record.intervals:
        start, end = _parse(interval.get("joinDateTime")), _parse(interval.get("leaveDateTime"))
        if start is not None:
            intervals.append((start, max(end or start, start)))
    return intervals


def union_seconds(intervals: list[tuple[datetime, datetime]]) -> int:
    """Seconds covered by the intervals, overlaps counted once."""
    total = 0.0
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += (current_end - current_start).total_seconds()
    return int(total)


@dataclass
class MergeResult:
    attended: int = 0
    no_shows: int = 0
    matched_records: int = 0
    unknown_attendees: int = 0


def merge(event: Event, records: list[AttendanceRecord], *, own_joins: bool = True) -> MergeResult:
    """Set attended / first join / seconds present on every registration of the event (flushes).

    A Graph record belongs to a registration when its address or its identity (the registrant's ACS
    user) matches. Confirmed registrations seen nowhere become no-shows; others not seen stay unknown.
    `own_joins` adds Foyer's join record on the registration (a course passes its per-session ones as
    records instead: one interval from the first session's join to the last one's would count the gaps).
    """
    regs = list(db.session.scalars(select(Registration).where(Registration.event_id == event.id)))
    by_email = {r.email.lower(): r for r in regs if r.is_active}
    by_email.update({r.email.lower(): r for r in regs if r.email.lower() not in by_email})
    by_identity = {r.acs_user_id: r for r in regs if r.acs_user_id}
    intervals: dict[int, list[tuple[datetime, datetime]]] = {r.id: [] for r in regs}
    result = MergeResult()
    unknown: set[str] = set()
    for record in records:
        reg = by_identity.get(record.identity_id or "") or by_email.get((record.email or "").strip().lower())
        if reg is None:
            if (record.role or "").lower() != "organizer":
                unknown.add((record.email or "").lower() or record.identity_id or str(id(record)))
            continue
        result.matched_records += 1
        intervals[reg.id].extend(_record_intervals(record))
    for reg in regs:
        own = intervals[reg.id]
        if own_joins and reg.first_joined_at is not None:  # Foyer's own join record from the join page
            own.append((reg.first_joined_at, max(reg.last_seen_at or reg.first_joined_at, reg.first_joined_at)))
        if own:
            reg.attended = True
            reg.attendance_first_join_at = min(start for start, _ in own)
            reg.attendance_seconds = union_seconds(own)
            result.attended += 1
        elif reg.state == RegistrationState.confirmed:
            reg.attended, reg.attendance_first_join_at, reg.attendance_seconds = False, None, 0
            result.no_shows += 1
        else:
            reg.attended, reg.attendance_first_join_at, reg.attendance_seconds = None, None, None
    result.unknown_attendees = len(unknown)
    db.session.flush()
    return result


def merge_session(session: EventSession, records: list[AttendanceRecord]) -> int:
    """Record who attended one session of a course (its meeting's records and Foyer's join records for
    it); returns how many of the course's registrations attended it (flushes).
    """
    regs = list(db.session.scalars(select(Registration).where(Registration.event_id == session.event_id)))
    by_email = {r.email.lower(): r for r in regs if r.is_active}
    by_email.update({r.email.lower(): r for r in regs if r.email.lower() not in by_email})
    by_identity = {r.acs_user_id: r for r in regs if r.acs_user_id}
    rows = {row.registration_id: row for row in db.session.scalars(
        select(SessionAttendance).where(SessionAttendance.session_id == session.id))}
    intervals: dict[int, list[tuple[datetime, datetime]]] = {r.id: [] for r in regs}
    for record in records:
        reg = by_identity.get(record.identity_id or "") or by_email.get((record.email or "").strip().lower())
        if reg is not None:
            intervals[reg.id].extend(_record_intervals(record))
    attended = 0
    for reg in regs:
        own = intervals[reg.id]
        row = rows.get(reg.id)
        if row is not None and row.first_joined_at is not None:
            own.append((row.first_joined_at, max(row.last_seen_at or row.first_joined_at, row.first_joined_at)))
        if not own and reg.state != RegistrationState.confirmed and row is None:
            continue
        if row is None:
            row = SessionAttendance(session_id=session.id, registration_id=reg.id)
            db.session.add(row)
        row.attended = bool(own)
        row.seconds = union_seconds(own) if own else 0
        attended += bool(own)
    db.session.flush()
    return attended


def _own_session_records(event: Event) -> list[AttendanceRecord]:
    """Foyer's per-session join records as records, so the course-wide merge sees every session's joins."""
    rows = db.session.execute(select(SessionAttendance, Registration.acs_user_id, Registration.email).join(
        Registration, Registration.id == SessionAttendance.registration_id).join(
        EventSession, EventSession.id == SessionAttendance.session_id).where(
        EventSession.event_id == event.id, SessionAttendance.first_joined_at.is_not(None))).all()
    return [AttendanceRecord(email=email, display_name=None, identity_id=acs_user_id, role="Attendee",
                             total_seconds=0, intervals=[
        {"joinDateTime": row.first_joined_at.isoformat(),
         "leaveDateTime": (row.last_seen_at or row.first_joined_at).isoformat()}])
        for row, acs_user_id, email in rows]


# --- queueing -----------------------------------------------------------------------------------------


def _enqueue(event: Event, *, at_once: bool = False) -> bool:
    """Queue the import: a while after the end (Teams needs time for its reports), or at once when asked
    (an import already queued becomes due now).
    """
    return outbox.enqueue_after_end(IMPORT_KIND, event.id, event.ends_at, delay=IMPORT_DELAY,
                                    patience=WAIT_FOR_REPORTS, retry_every_seconds=RETRY_EVERY_SECONDS,
                                    at_once=at_once)


def queue_due_imports(now: datetime | None = None) -> int:
    """Queue the import for every published event that ended a little while ago and has none yet."""
    now = now or utcnow()
    due = db.session.scalars(select(Event).where(
        Event.status == EventStatus.published, Event.ends_at <= now - IMPORT_DELAY,
        Event.ends_at >= now - SWEEP_LOOKBACK, Event.attendance_imported_at.is_(None),
        Event.personal_data_purged_at.is_(None),
    ))
    return sum(1 for event in due if _enqueue(event))


def request_import(event: Event, *, actor: User, now: datetime | None = None) -> None:
    """An organizer's "import attendance now" (after the event has ended)."""
    if event.ends_at > (now or utcnow()):
        raise Conflict(gettext("Attendance can be imported once the event has ended."))
    if event.personal_data_purged_at is not None:
        raise Conflict(gettext("This event's personal data has been purged; there is nothing to import into."))
    _enqueue(event, at_once=True)
    audit.record("attendance.import_requested", actor=actor, target=event, summary="Asked for attendance import")


# --- performing (outbox handler, in the worker) -----------------------------------------------------------


def _graph(fn):
    try:
        return fn()
    except MicrosoftError as exc:
        raise _outcome(exc) from exc


def fetch_records(meeting_id: str) -> tuple[int, list[AttendanceRecord]]:
    """Every attendance record of every report Graph still has for the meeting (all pages)."""
    _graph(require_connected)
    graph = get_microsoft().graph
    reports = _graph(lambda: graph.list_attendance_reports(meeting_id))
    records: list[AttendanceRecord] = []
    for report in reports:
        records.extend(_graph(lambda report=report: graph.list_attendance_records(meeting_id, report.id)))
    return len(reports), records


@outbox.handler(IMPORT_KIND)
def import_attendance(payload: dict[str, Any]) -> None:
    """Fetch the meeting's attendance reports, merge, record the summary and announce the import."""
    event = db.session.get(Event, payload["event_id"])
    if event is None or event.personal_data_purged_at is not None or event.is_cancelled:
        return
    meeting_id, event_id, ends_at = event.online_meeting_id, event.id, event.ends_at
    course = [(s.id, s.online_meeting_id) for s in event.sessions]
    db.session.commit()  # no transaction held open across the Graph calls
    report_count, records = 0, []
    per_session: dict[int, list[AttendanceRecord]] = {}
    if course:
        for session_id, session_meeting in course:
            count, per_session[session_id] = fetch_records(session_meeting) if session_meeting else (0, [])
            if session_meeting and count == 0 and utcnow() < ends_at + WAIT_FOR_REPORTS:
                raise outbox.RetryLater("Teams has not produced an attendance report for every session yet",
                                        retry_after=RETRY_EVERY_SECONDS)
            report_count += count
            records.extend(per_session[session_id])
        meeting_id = next((m for _, m in course if m), None)
    elif meeting_id:
        report_count, records = fetch_records(meeting_id)
        if report_count == 0 and utcnow() < ends_at + WAIT_FOR_REPORTS:
            raise outbox.RetryLater("Teams has not produced an attendance report yet",
                                    retry_after=RETRY_EVERY_SECONDS)
    db.session.rollback()
    begin_write()
    event = db.session.get(Event, event_id)
    sessions_summary = [{"session_id": s.id, "label": s.english_label,
                         "attended": merge_session(s, per_session.get(s.id, []))} for s in event.sessions]
    if event.sessions:
        records = records + _own_session_records(event)
    result = merge(event, records, own_joins=not event.sessions)
    event.attendance_imported_at = utcnow()
    event.attendance_summary = {
        "reports": report_count, "reports_capped": report_count >= GRAPH_REPORT_LIMIT,
        "records": len(records), "matched_records": result.matched_records, "attended": result.attended,
        "no_shows": result.no_shows, "unknown_attendees": result.unknown_attendees,
        "source": "graph+foyer" if meeting_id else "foyer",
    }
    if sessions_summary:
        event.attendance_summary["sessions"] = sessions_summary
    audit.record("attendance.import", target=event,
                 summary=f"Attendance imported: {result.attended} attended, {result.no_shows} no-shows, "
                         f"{result.unknown_attendees} unknown attendee(s) from {report_count} report(s)",
                 details=dict(event.attendance_summary))
    signals.attendance_imported.send(event, meeting_id=meeting_id)  # recordings, follow-ups, webhooks
    db.session.commit()
    logger.info("Attendance of event %s imported (%s attended, %s no-shows)", event_id, result.attended,
                result.no_shows)


