"""Every page at phone (390 px) and desktop (1280 px) width, filled with hostile long unbroken strings
(titles, question labels, names, addresses, audit entries): the page never scrolls sideways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Event, EventStatus, Message, Question, QuestionKind, Role, Speaker
from app.services.accounts import accounts
from app.services.attendance import join_links
from app.services.core import audit
from app.services.events import events
from app.services.registration import registrations

PASSWORD = "a long secret pw"
WIDTHS = (1280, 390)


def _word(prefix: str, length: int) -> str:
    return (prefix + "Supercalifragilistic" * 20)[:length]


def _hostile_data(app) -> dict:
    """Two events (one cancelled) whose every visible string is a single long word."""
    with app.app_context():
        owner = accounts.create_user("owner@example.org", role=Role.admin, password=PASSWORD, name=_word("Owner", 200))
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=6)
        made = {}
        for key, slug in (("open", "long-words"), ("cancelled", "long-words-cancelled")):
            event = Event(title=_word("Title", 200), slug=slug, timezone="America/Argentina/ComodRivadavia",
                          starts_at=start, ends_at=start + timedelta(hours=1), status=EventStatus.published,
                          published_at=datetime.now(UTC), capacity=2, owner_id=owner.id,
                          description=_word("Description", 2000), banner_alt=_word("Alt", 300))
            event.questions = [
                Question(position=0, kind=QuestionKind.short_text, label=_word("Label", 300),
                         help_text=_word("Help", 500)),
                Question(position=1, kind=QuestionKind.single_choice, label=_word("Choice", 300),
                         options=[_word("Option", 200), "Short"]),
                Question(position=2, kind=QuestionKind.checkbox, label=_word("Consent", 300), required=True),
            ]
            event.speakers = [Speaker(position=0, name=_word("Speaker", 200), title=_word("Role", 200),
                                      bio=_word("Bio", 1000))]
            db.session.add(event)
            db.session.commit()
            tokens = []
            for n in range(3):  # two confirmed, one waitlisted
                outcome = registrations.register(event, registrations.RegistrationData(
                    first_name=_word(f"First{n}", 100), last_name=_word("Last", 100),
                    email=f"{'a' * 60}{n}@{'b' * 60}.example.org", timezone="America/Argentina/ComodRivadavia",
                    answers={event.questions[0].id: _word("Answer", 300), event.questions[1].id: "Short",
                             event.questions[2].id: True}))
                db.session.commit()
                tokens.append((outcome.registration, outcome.manage_token))
            reg, token = tokens[0]
            made[key] = {"id": event.id, "slug": slug, "manage": f"/r/{token}",
                         "join": join_links.join_url(reg).split("://", 1)[1].split("/", 1)[1], "reg_id": reg.id}
            db.session.commit()
        cancelled = db.session.get(Event, made["cancelled"]["id"])
        events.cancel_event(cancelled, actor=owner, reason=_word("Reason", 1000))
        audit.record("event.note", actor=owner, target=cancelled, summary=_word("Summary", 1000),
                     details={"note": _word("Detail", 400)})
        db.session.commit()
        made["owner_id"] = owner.id
        made["message_id"] = db.session.scalar(select(Message.id).order_by(Message.id))
        return made


def _assert_no_sideways_scroll(page, path: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        result = page.evaluate("""() => {
            const inner = window.innerWidth, scroll = document.documentElement.scrollWidth;
            const culprits = [...document.querySelectorAll("body *")]
                .filter(e => e.getBoundingClientRect().right > inner + 1)
                .slice(-5).map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : ""));
            return {inner, scroll, culprits};
        }""")
        assert result["scroll"] <= result["inner"], (
            f"{path} scrolls sideways at {width}px: {result['scroll']}px wide; widest: {result['culprits']}")


@pytest.mark.parametrize("context_options", [{"viewport": {"width": 1280, "height": 900}}])
def test_no_page_scrolls_sideways_with_long_unbroken_text(page, visit, live_server):
    visit("/setup")  # first run, before anyone exists
    _assert_no_sideways_scroll(page, "/setup")
    data = _hostile_data(live_server.app)
    opened, cancelled = data["open"], data["cancelled"]
    public = ["/", f"/events/{opened['slug']}", f"/events/{opened['slug']}/register",
              "/" + opened["join"] + "/device-check",
              f"/events/{cancelled['slug']}", opened["manage"], f"{opened['manage']}/cancel",
              f"{opened['manage']}/erase", cancelled["manage"], "/" + opened["join"], "/" + cancelled["join"],
              "/privacy", "/login"]
    for path in public:
        visit(path)
        _assert_no_sideways_scroll(page, path)
        if path == cancelled["manage"]:  # the event's state comes first, with nothing to join or change
            expect(page.get_by_role("heading", level=2).first).to_have_text("This event has been cancelled")
            expect(page.get_by_text("Your seat is confirmed")).to_have_count(0)
            expect(page.get_by_role("button", name="Save changes")).to_have_count(0)

    visit("/login")
    page.get_by_label("Email").fill("owner@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your events", level=1)).to_be_visible()
    base = f"/manage/events/{opened['id']}"
    staff = ["/manage/events/", base, f"{base}/edit", f"{base}/questions", f"{base}/speakers",
             f"{base}/registrations", f"{base}/messages", f"{base}/emails/confirmed", f"{base}/teams",
             f"{base}/in-call", f"{base}/cancel", f"{base}/registrations/{opened['reg_id']}/join-link",
             f"/manage/events/{cancelled['id']}", "/manage/events/new", "/account/password",
             "/admin/users", f"/admin/users/{data['owner_id']}", "/admin/users/new", "/admin/users/invite",
             "/admin/audit/", "/admin/messages", f"/admin/messages/{data['message_id']}", "/admin/branding",
             "/admin/privacy/", "/admin/health/",
             "/admin/microsoft/"]
    for path in staff:
        visit(path)
        _assert_no_sideways_scroll(page, path)
