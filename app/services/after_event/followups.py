"""The follow-up after an event: "thank you for joining" to attendees (with the recording and the
feedback survey when there are any) and "sorry we missed you" to no-shows, each person once, ever.

They are queued when the attendance import announces itself (`signals.attendance_imported`), unless a
recording may still come or awaits the organizer's decision: then releasing the recording queues them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from app.models import Event, Message, Registration, User, db, utcnow
from app.services.after_event import feedback, recordings
from app.services.attendance import attendance
from app.services.core import audit
from app.services.core.errors import DomainError
from app.services.messaging import queueing, rendering


def on_attendance_imported(event: Event, *, meeting_id: str | None = None, **_: Any) -> None:
    """Receiver of `signals.attendance_imported`: import the meeting's recordings, then follow up."""
    if meeting_id and event.recordings_state == "":
        recordings.queue_import(event)  # the follow-up waits for the organizer's decision on a recording
    if event.followup_enabled and not recordings.holds_followup(event):
        queue_followups(event)


def queue_followup(reg: Registration, *, attended: bool) -> Message | None:
    """Queue "thank you for joining" (attended) or "sorry we missed you" to a registrant, once ever,
    with the event's recording link when there is one.
    """
    key = f"registration:{reg.id}:followup"
    if queueing.existing_message(key) is not None:
        return None
    event = reg.event
    kind = "followup_attended" if attended else "followup_missed"
    link = event.followup_recording_url or None
    if link is None and recordings.approved_recordings(event):
        link = recordings.attendee_url(reg)
    feedback_link = feedback.attendee_url(reg) if event.feedback_enabled and attended else None
    rendered = rendering.render(kind, event=event, language=reg.language, name=reg.first_name, zone=reg.timezone,
                                link=link, feedback_link=feedback_link)
    return queueing.queue_email(kind, event=event, to=reg.email, name=reg.full_name, dedupe_key=key,
                                rendered=rendered, registration=reg, deadline=utcnow() + timedelta(hours=6))


def queue_followups(event: Event) -> int:
    """Queue "thanks" to attendees and "sorry we missed you" to no-shows (each person once, ever)."""
    count = 0
    for segment, attended in (("attended", True), ("no_show", False)):
        regs = db.session.scalars(select(Registration).where(Registration.event_id == event.id,
                                                             attendance.SEGMENTS[segment]()).order_by(Registration.id))
        for reg in regs:
            count += 1 if queue_followup(reg, attended=attended) is not None else 0
    return count


def update_followup(event: Event, *, enabled: bool, recording_url: str, actor: User) -> None:
    """Switch the automatic follow-up on or off and set the recording link."""
    url = (recording_url or "").strip()
    if url and not url.lower().startswith(("https://", "http://")):
        raise DomainError(gettext("Enter a link starting with https://."), field="recording_url")
    if len(url) > 2000:
        raise DomainError(gettext("Keep the link under 2,000 characters."), field="recording_url")
    event.followup_enabled = bool(enabled)
    event.followup_recording_url = url
    audit.record("event.followup", actor=actor, target=event,
                 summary=f"Automatic follow-up {'on' if enabled else 'off'}", details={"recording_url": url})
    db.session.flush()
