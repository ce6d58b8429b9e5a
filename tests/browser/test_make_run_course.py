"""A course on the embedded default, started as `make run` starts it (the emulator, the web server and
the worker as three processes): publish an event, add two sessions, and the worker creates a Teams
meeting per session in the emulator; a registrant's email carries one invitation with every session, and
their join link opens session 1's meeting."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

from icalendar import Calendar
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventSession
from tests.browser import test_make_run_journey as journey
from tests.browser.test_make_run_journey import (
    PEOPLE,
    TITLE,
    _connect_microsoft,
    _create_and_publish,
    _emailed_join_link,
    _first_run_setup,
    _join,
    _mailbox,
    _outbox_idle,
    _read,
    _register,
    _sign_in,
    _starts_at,
    _wait,
)
from tests.mail import queued_emails

#: The three processes on a temporary instance, as the journey starts them (module-scoped fixtures).
foyer = journey.foyer
live_server = journey.live_server


def _add_session(page: Page, days: int) -> None:
    starts = _starts_at(10) + timedelta(days=days)
    page.get_by_label("Name (optional)").fill(f"Day {days + 1}")
    page.get_by_label("Starts").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Add the session").click()
    expect(page.get_by_text(f"Session {days + 1}: Day {days + 1} added.")).to_be_visible()


def test_a_course_on_make_run_gets_a_meeting_per_session_and_one_invitation(page: Page, visit, audit, foyer,
                                                                            live_server):
    app = live_server.app
    _first_run_setup(page, visit, audit, foyer)
    _connect_microsoft(page, visit, audit, foyer)
    _create_and_publish(page, visit, audit)
    event_id, slug = _read(app, lambda: db.session.execute(select(Event.id, Event.slug)).one())

    visit(f"/manage/events/{event_id}/sessions")
    _add_session(page, 1)
    _add_session(page, 2)
    audit()
    _wait(lambda: _outbox_idle(app), what="the Teams meetings of the sessions")
    visit(f"/manage/events/{event_id}/sessions")
    expect(page.get_by_role("link", name=re.compile("^host link"))).to_have_count(3)
    sessions = _read(app, lambda: [(s.graph_event_id, s.join_url) for s in db.session.scalars(
        select(EventSession).where(EventSession.event_id == event_id).order_by(EventSession.starts_at))])
    graph_events = {e["id"]: e for e in foyer.emulator_api("graph/events")["value"]}
    assert [graph_events[g]["subject"] for g, _ in sessions] == [
        f"{TITLE} — Session 1", f"{TITLE} — Session 2: Day 2", f"{TITLE} — Session 3: Day 3"]
    assert len({url for _, url in sessions}) == 3

    page.get_by_role("button", name="Sign out").click()
    # Signing out starts a new session: a form loaded before that lands carries the old session's token.
    expect(page.get_by_role("status").filter(has_text="You have been signed out")).to_be_visible()
    _register(page, visit, audit, foyer, slug, *PEOPLE[0], subject="You're registered")
    [email] = [e for e in _mailbox(foyer, PEOPLE[0][2]) if "registered" in e["subject"]]
    assert [a["name"] for a in email["attachments"] if a["size"]] == ["invite.ics"]  # what ACS received
    # The same file as the worker built it (the emulator keeps only its size).
    [sent] = _read(app, lambda: [m for m in queued_emails(to=PEOPLE[0][2]) if m["kind"] == "confirmed"])
    [invite] = [a for a in sent["attachments"] if a["name"] == "invite.ics"]
    vevents = Calendar.from_ical(base64.b64decode(invite["contentInBase64"])).walk("VEVENT")
    assert len(vevents) == 4 and len({str(v["UID"]) for v in vevents}) == 1  # the series and its three instances
    link = _emailed_join_link(foyer, PEOPLE[0][2])
    visit(link.removeprefix(foyer.base_url))
    expect(page.get_by_text("Session 1 of 3")).to_be_visible()
    _join(page, visit, audit, foyer, link)

    _sign_in(page, visit)
    for name in ("web", "worker"):
        assert "Traceback" not in foyer.log(name), foyer.log(name)[-4000:]
