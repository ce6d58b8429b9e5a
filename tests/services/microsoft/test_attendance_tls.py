"""The attendance import over loopback TLS: reports seeded through the emulator's HTTP control API,
read page by page by the real GraphClient, merged into the registrations by the outbox handler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState, User
from app.services.attendance import attendance
from app.services.microsoft.graph import EventDetails
from app.services.outbox import outbox


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_import_over_tls_with_reports_seeded_over_http(connected, emulator, tls_emulator):
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=1)
    ref = connected.graph.create_event(EventDetails(subject="TLS call", body_html="<p>x</p>", start=start, end=end,
                                                    timezone="UTC"))
    meeting = connected.graph.get_online_meeting_by_join_url(ref.join_url)
    owner = db.session.scalar(select(User))
    event = Event(title="TLS call", slug="tls-call", timezone="UTC", starts_at=start, ends_at=end, owner_id=owner.id,
                  status=EventStatus.published, graph_event_id=ref.id, online_meeting_id=meeting.id,
                  join_url=ref.join_url)
    db.session.add(event)
    db.session.flush()
    for i, first in enumerate(["Ada", "Bob"]):
        db.session.add(Registration(event_id=event.id, state=RegistrationState.confirmed, first_name=first,
                                    last_name="Test", email=f"{first.lower()}@example.org", timezone="UTC",
                                    manage_token_hash=f"{i:064d}"))
    db.session.commit()

    at = lambda minutes: _iso(start + timedelta(minutes=minutes))  # noqa: E731
    records = [{"emailAddress": "ada@example.org", "intervals": [[at(0), at(20)], [at(25), at(40)]]}]
    records += [{"emailAddress": f"guest{i}@elsewhere.example", "intervals": [[at(1), at(2)]]} for i in range(11)]
    seeded = requests.post(f"{tls_emulator.base_url}/_emulator/graph/online-meetings/{meeting.id}/attendance-reports",
                           json={"start": at(0), "end": at(60), "records": records}, timeout=10,
                           verify=tls_emulator.ca_bundle_path)
    assert seeded.status_code == 201

    assert attendance.queue_due_imports() == 1
    db.session.commit()
    outbox.drain()

    rows = {r.first_name: r for r in db.session.scalars(select(Registration).where(Registration.event_id == event.id))}
    assert (rows["Ada"].attended, rows["Ada"].attendance_minutes) == (True, 35)
    assert (rows["Bob"].attended, rows["Bob"].attendance_seconds) == (False, 0)
    summary = db.session.get(Event, event.id).attendance_summary
    assert summary["records"] == 12 and summary["unknown_attendees"] == 11
    pages = [r for r in emulator.requests_for("graph") if r.path.endswith("/attendanceRecords")]
    assert len(pages) == 2  # 12 records, 10 per page: the nextLink was followed over TLS
