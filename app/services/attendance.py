"""Attendance after an event: the worker reads the Teams meeting's Graph attendance reports and merges
them with Foyer's own join records, so each registration gets attended yes/no, a first join and the
minutes present (overlapping intervals — a second device, a re-join, two reports — counted once).

Graph keeps only the 50 most recent reports per meeting and produces them a little after the
meeting ends, so the import is queued a while after the end and retried while none exists yet.
Unknown attendees (guests who did not register) are counted, never stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select

from app.models import Event, EventStatus, Registration, RegistrationState, User, db, utcnow
from app.models.base import begin_write
from app.services import audit, messages, outbox
from app.services.microsoft.errors import MicrosoftError
from app.services.microsoft.graph import AttendanceRecord
from app.services.microsoft.wiring import get_microsoft

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


def merge(event: Event, records: list[AttendanceRecord]) -> MergeResult:
    """Set attended / first join / seconds present on every registration of the event (flushes).

    A Graph record belongs to a registration when its address or its identity (the registrant's ACS
    user) matches. Confirmed registrations seen nowhere become no-shows; others not seen stay unknown.
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
        if reg.first_joined_at is not None:  # Foyer's own join record from the join page
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


# --- queueing -----------------------------------------------------------------------------------------


def _enqueue(event: Event, *, at_once: bool = False) -> bool:
    """Queue the import: a while after the end (Teams needs time for its reports), or at once when asked."""
    run_at = utcnow() if at_once else max(utcnow(), event.ends_at + IMPORT_DELAY)
    item = outbox.enqueue(IMPORT_KIND, {"event_id": event.id}, dedupe_key=f"{IMPORT_KIND}:{event.id}",
                          event_id=event.id, run_at=run_at)
    if item is not None:
        item.max_attempts = int(WAIT_FOR_REPORTS.total_seconds() // RETRY_EVERY_SECONDS) + 10
    return item is not None


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
    from app.services.errors import Conflict

    if event.ends_at > (now or utcnow()):
        raise Conflict("Attendance can be imported once the event has ended.")
    if event.personal_data_purged_at is not None:
        raise Conflict("This event's personal data has been purged; there is nothing to import into.")
    if not _enqueue(event, at_once=True):
        item = db.session.scalar(select(outbox.OutboxItem).where(
            outbox.OutboxItem.dedupe_key == f"{IMPORT_KIND}:{event.id}"))
        if item is not None and item.status != outbox.OutboxStatus.running:
            outbox.retry_now(item)
    audit.record("attendance.import_requested", actor=actor, target=event, summary="Asked for attendance import")


# --- performing (outbox handler, in the worker) -----------------------------------------------------------


def _graph(fn):
    from app.services.teams import _outcome

    try:
        return fn()
    except MicrosoftError as exc:
        raise _outcome(exc) from exc


def fetch_records(meeting_id: str) -> tuple[int, list[AttendanceRecord]]:
    """Every attendance record of every report Graph still has for the meeting (all pages)."""
    from app.services.microsoft_connection import require_connected

    _graph(require_connected)
    graph = get_microsoft().graph
    reports = _graph(lambda: graph.list_attendance_reports(meeting_id))
    records: list[AttendanceRecord] = []
    for report in reports:
        records.extend(_graph(lambda report=report: graph.list_attendance_records(meeting_id, report.id)))
    return len(reports), records


@outbox.handler(IMPORT_KIND)
def import_attendance(payload: dict[str, Any]) -> None:
    """Fetch the meeting's attendance reports, merge, record the summary and queue any follow-up."""
    event = db.session.get(Event, payload["event_id"])
    if event is None or event.personal_data_purged_at is not None or event.is_cancelled:
        return
    meeting_id, event_id, ends_at = event.online_meeting_id, event.id, event.ends_at
    db.session.commit()  # no transaction held open across the Graph calls
    report_count, records = 0, []
    if meeting_id:
        report_count, records = fetch_records(meeting_id)
        if report_count == 0 and utcnow() < ends_at + WAIT_FOR_REPORTS:
            raise outbox.RetryLater("Teams has not produced an attendance report yet",
                                    retry_after=RETRY_EVERY_SECONDS)
    db.session.rollback()
    begin_write()
    event = db.session.get(Event, event_id)
    result = merge(event, records)
    event.attendance_imported_at = utcnow()
    event.attendance_summary = {
        "reports": report_count, "reports_capped": report_count >= GRAPH_REPORT_LIMIT,
        "records": len(records), "matched_records": result.matched_records, "attended": result.attended,
        "no_shows": result.no_shows, "unknown_attendees": result.unknown_attendees,
        "source": "graph+foyer" if meeting_id else "foyer",
    }
    queued = queue_followups(event) if event.followup_enabled else 0
    audit.record("attendance.import", target=event,
                 summary=f"Attendance imported: {result.attended} attended, {result.no_shows} no-shows, "
                         f"{result.unknown_attendees} unknown attendee(s) from {report_count} report(s)",
                 details={**event.attendance_summary, "followups_queued": queued})
    db.session.commit()
    logger.info("Attendance of event %s imported (%s attended, %s no-shows)", event_id, result.attended,
                result.no_shows)


# --- follow-up ---------------------------------------------------------------------------------------------


def queue_followups(event: Event) -> int:
    """Queue "thanks" to attendees and "sorry we missed you" to no-shows (each person once, ever)."""
    count = 0
    for segment, attended in (("attended", True), ("no_show", False)):
        regs = db.session.scalars(select(Registration).where(Registration.event_id == event.id,
                                                             SEGMENTS[segment]()).order_by(Registration.id))
        for reg in regs:
            count += 1 if messages.queue_followup(reg, attended=attended) is not None else 0
    return count


def update_followup(event: Event, *, enabled: bool, recording_url: str, actor: User) -> None:
    """Switch the automatic follow-up on or off and set the recording link."""
    from app.services.errors import DomainError

    url = (recording_url or "").strip()
    if url and not url.lower().startswith(("https://", "http://")):
        raise DomainError("Enter a link starting with https://.", field="recording_url")
    if len(url) > 2000:
        raise DomainError("Keep the link under 2,000 characters.", field="recording_url")
    event.followup_enabled = bool(enabled)
    event.followup_recording_url = url
    audit.record("event.followup", actor=actor, target=event,
                 summary=f"Automatic follow-up {'on' if enabled else 'off'}", details={"recording_url": url})
    db.session.flush()
