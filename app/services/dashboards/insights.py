"""The organizer's dashboard for one event: counts by state, seats left, registrations over time (with
the geometry of a small server-rendered SVG chart), the event's queued messages (and when its emails will
have gone out at the email quota) and its attendance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select

from app.models import (
    Event,
    Message,
    MessageChannel,
    MessageStatus,
    OutboxItem,
    OutboxStatus,
    Registration,
    RegistrationState,
    db,
)
from app.services.core.dates import format_day
from app.services.messaging import dispatch
from app.services.registration import privacy, registrations

#: Chart canvas (SVG user units) and the margins left for the axis labels.
CHART_WIDTH, CHART_HEIGHT = 640, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 16, 40
#: A chart wider than this many days is still drawn whole; only the x labels are thinned.
MAX_X_LABELS = 8


@dataclass(frozen=True)
class DayPoint:
    day: date
    new: int
    total: int
    x: float = 0.0
    y: float = 0.0

    @property
    def short_label(self) -> str:
        """The day under the chart's x axis: '3 Mar'."""
        return format_day(self.day, year=False)


@dataclass(frozen=True)
class Chart:
    points: list[DayPoint]
    y_ticks: list[tuple[int, float]]
    x_labels: list[DayPoint]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = MARGIN_LEFT
    bottom: float = CHART_HEIGHT - MARGIN_BOTTOM
    right: float = CHART_WIDTH - MARGIN_RIGHT

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def description(self) -> str:
        if not self.points:
            return gettext("No registrations yet.")
        first, last = self.points[0], self.points[-1]
        busiest = max(self.points, key=lambda p: p.new)
        return gettext("Registrations received, cumulative, from %(first)s to %(last)s: %(total)s in all. "
                       "Busiest day: %(busiest)s with %(new)s.", first=format_day(first.day), last=format_day(last.day),
                       total=last.total, busiest=format_day(busiest.day), new=busiest.new)


@dataclass(frozen=True)
class EmailBacklog:
    """This event's emails waiting to go out, and when the last of them will have left."""

    waiting: int
    done_by: datetime


@dataclass
class Dashboard:
    counts: dict[str, int]
    total: int
    seats_left: int | None
    chart: Chart
    queue: dict[str, int] = field(default_factory=dict)
    emails: EmailBacklog | None = None
    failed_messages: int = 0
    attendance: dict[str, Any] | None = None
    purged: dict[str, Any] | None = None
    purge_on: Any = None
    retention_days: int = 0
    retention_is_default: bool = True


def registrations_per_day(event: Event) -> list[tuple[date, int]]:
    """New registrations per calendar day in the event's time zone (every state counted once)."""
    zone = event.zone
    days = Counter(created.astimezone(zone).date() for created in db.session.scalars(
        select(Registration.created_at).where(Registration.event_id == event.id)))
    if not days:
        return []
    first, last = min(days), max(days)
    return [(first + timedelta(days=i), days.get(first + timedelta(days=i), 0))
            for i in range((last - first).days + 1)]


def _nice_max(value: int) -> int:
    """A round upper bound for the y axis (1, 2, 5 × 10^n)."""
    if value <= 5:
        return max(value, 1)
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def build_chart(per_day: list[tuple[date, int]]) -> Chart:
    """Cumulative registrations over time as chart geometry (x by day, y by running total)."""
    plot_w = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    running, points = 0, []
    top = _nice_max(sum(n for _, n in per_day))
    span = max(len(per_day) - 1, 1)
    for i, (day, new) in enumerate(per_day):
        running += new
        x = MARGIN_LEFT + (plot_w * i / span if len(per_day) > 1 else plot_w / 2)
        y = MARGIN_TOP + plot_h - plot_h * running / top
        points.append(DayPoint(day=day, new=new, total=running, x=round(x, 1), y=round(y, 1)))
    ticks = sorted({round(top * f) for f in (0, 0.25, 0.5, 0.75, 1)})
    y_ticks = [(t, round(MARGIN_TOP + plot_h - plot_h * t / top, 1)) for t in ticks]
    step = max(1, -(-len(points) // MAX_X_LABELS))
    x_labels = points[::step]
    if points and x_labels[-1] is not points[-1]:
        x_labels.append(points[-1])
    return Chart(points=points, y_ticks=y_ticks, x_labels=x_labels)


def message_queue(event: Event) -> dict[str, int]:
    """The event's outbox items by status (emails and Teams work)."""
    rows = db.session.execute(select(OutboxItem.status, func.count()).where(OutboxItem.event_id == event.id)
                              .group_by(OutboxItem.status)).all()
    counts = {status.value: 0 for status in OutboxStatus}
    for status, count in rows:
        counts[OutboxStatus(status).value] = count
    return counts


def email_backlog(event: Event) -> EmailBacklog | None:
    """The event's emails still to send and, at the current quota, when the last has gone (None when none wait).

    The whole queue's drain time is used: the event's emails are among it, so the last of them leaves no
    later than that, whatever order their deadlines give them.
    """
    waiting = db.session.scalar(select(func.count(Message.id)).where(
        Message.event_id == event.id, Message.channel == MessageChannel.email,
        Message.status.in_([MessageStatus.queued, MessageStatus.sending]))) or 0
    return EmailBacklog(waiting=waiting, done_by=dispatch.eta()) if waiting else None


def attendance_summary(event: Event) -> dict[str, Any] | None:
    """Attended / no-show counts and minutes after the import (None before it)."""
    if event.attendance_imported_at is None:
        return None
    row = db.session.execute(select(
        func.count().filter(Registration.attended.is_(True)),
        func.count().filter(Registration.attended.is_(False), Registration.state == RegistrationState.confirmed),
        func.coalesce(func.sum(Registration.attendance_seconds).filter(Registration.attended.is_(True)), 0),
    ).where(Registration.event_id == event.id)).one()
    attended, no_shows, seconds = row
    summary = dict(event.attendance_summary or {})
    summary.update({"attended": attended, "no_shows": no_shows, "imported_at": event.attendance_imported_at,
                    "average_minutes": round(seconds / 60 / attended) if attended else 0})
    return summary


def event_dashboard(event: Event) -> Dashboard:
    """Everything the event's overview page shows about how it is going."""
    counts = {state.value: n for state, n in registrations.state_counts(event).items()}
    retention = privacy.retention_for(event)
    return Dashboard(
        counts=counts, total=sum(counts.values()), seats_left=registrations.seats_left(event),
        chart=build_chart(registrations_per_day(event)), queue=message_queue(event), emails=email_backlog(event),
        attendance=attendance_summary(event), purged=event.purged_counts,
        purge_on=event.personal_data_purged_at or privacy.purge_date(event), retention_days=retention,
        retention_is_default=event.retention_days is None,
    )
