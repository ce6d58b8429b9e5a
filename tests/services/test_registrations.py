"""The registration engine on both databases: seats, waitlist order, approval, windows, duplicates,
verification, organization-only events, validation, tokens and the emails each transition queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    Event,
    EventStatus,
    Question,
    QuestionKind,
    Registration,
    RegistrationAnswer,
    RegistrationState,
    RegistrationTransition,
    Role,
    Setting,
    User,
)
from app.services.core.errors import Conflict, DomainError, NotAllowed
from app.services.registration import registrations as regs
from tests.mail import queued_emails

S = RegistrationState


@pytest.fixture
def owner(make_user) -> User:
    return make_user("owner@example.org")


@pytest.fixture
def published(app_ctx, make_event, owner):
    """Make a published event (capacity etc. as keyword columns) and return it bound to the session."""

    def _make(**columns) -> Event:
        columns.setdefault("status", EventStatus.published)
        columns.setdefault("published_at", datetime.now(UTC))
        event = make_event(owner, **columns)
        db.session.commit()  # end any open read: the event was committed by another session
        return db.session.get(Event, event.id)

    return _make


def data(email: str, **overrides) -> regs.RegistrationData:
    values = {"first_name": "Ada", "last_name": "Lovelace", "email": email, "timezone": "America/New_York",
              "answers": {}, "consent_version": 1}
    values.update(overrides)
    return regs.RegistrationData(**values)


def register(event, email, **overrides) -> regs.RegistrationOutcome:
    now = overrides.pop("now", None)
    outcome = regs.register(event, data(email, **overrides), now=now)
    db.session.commit()
    return outcome


def emails(**filters) -> list[dict]:
    """Queued emails (in order), optionally only those to one address."""
    return queued_emails(**filters)


def subjects(to: str) -> list[str]:
    return [p["subject"].split(":")[0] for p in emails(to=to)]


def count_registrations() -> int:
    return db.session.scalar(select(func.count()).select_from(Registration))


def fresh(event: Event) -> Event:
    db.session.expire_all()
    return db.session.get(Event, event.id)


# --- seats and the waitlist ---------------------------------------------------------------------------


def test_register_confirms_until_capacity_then_waitlists(published):
    event = published(capacity=2)
    kinds = [register(event, f"p{i}@example.org").kind for i in range(4)]
    assert kinds == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    event = fresh(event)
    assert event.confirmed_count == 2
    assert regs.seats_left(event) == 0
    counts = regs.state_counts(event)
    assert counts[S.confirmed] == 2 and counts[S.waitlisted] == 2 and counts[S.cancelled] == 0
    assert subjects("p0@example.org") == ["You're registered"]
    assert subjects("p3@example.org") == ["You're on the waitlist"]
    assert "number 2 in line" in emails(to="p3@example.org")[0]["text"]


def test_full_event_without_waitlist_refuses_and_stores_nothing(published):
    event = published(capacity=1, waitlist_enabled=False)
    register(event, "first@example.org")
    with pytest.raises(regs.EventFull):
        regs.register(event, data("second@example.org"))
    db.session.rollback()
    assert count_registrations() == 1
    assert emails(to="second@example.org") == []


def test_unlimited_capacity_confirms_everyone_and_counts_seats(published):
    event = published(capacity=None)
    for i in range(5):
        assert register(event, f"p{i}@example.org").kind == "confirmed"
    event = fresh(event)
    assert regs.seats_left(event) is None and event.confirmed_count == 5


def test_cancelling_a_confirmed_seat_promotes_the_earliest_waitlisted(published):
    event = published(capacity=1)
    base = datetime.now(UTC) - timedelta(hours=1)
    first = register(event, "seat@example.org", now=base)
    # Ids and arrival disagree on purpose: order is by arrival (created_at), then id.
    late = register(event, "late@example.org", now=base + timedelta(minutes=30))
    early = register(event, "early@example.org", now=base + timedelta(minutes=10))
    assert late.kind == early.kind == "waitlisted"

    regs.cancel(first.registration, note="Can't make it")
    db.session.commit()

    assert db.session.get(Registration, early.registration.id).state == S.confirmed
    assert db.session.get(Registration, late.registration.id).state == S.waitlisted
    assert fresh(event).confirmed_count == 1
    assert subjects("early@example.org")[-1] == "A seat is yours"
    assert subjects("seat@example.org")[-1] == "Registration cancelled"
    history = db.session.scalars(select(RegistrationTransition).where(
        RegistrationTransition.registration_id == first.registration.id).order_by(RegistrationTransition.id)).all()
    assert [(t.from_state, t.to_state, t.actor_kind) for t in history] == [
        (None, "confirmed", "attendee"), ("confirmed", "cancelled", "attendee")]
    promoted = db.session.get(Registration, early.registration.id).transitions[-1]
    assert (promoted.from_state, promoted.to_state, promoted.actor_kind) == ("waitlisted", "confirmed", "system")


def test_cancelling_a_waitlisted_or_pending_registration_frees_no_seat(published):
    event = published(capacity=1)
    register(event, "seat@example.org")
    waiting = register(event, "wait@example.org")
    regs.cancel(waiting.registration)
    db.session.commit()
    assert fresh(event).confirmed_count == 1
    with pytest.raises(Conflict):
        regs.cancel(db.session.get(Registration, waiting.registration.id))


def test_raising_capacity_promotes_in_arrival_order_and_lowering_below_seats_is_refused(published, owner):
    event = published(capacity=1)
    register(event, "seat@example.org")
    waiting = [register(event, f"w{i}@example.org").registration.id for i in range(4)]

    promoted = regs.set_capacity(fresh(event), 3, actor=db.session.get(User, owner.id))
    db.session.commit()
    assert [r.id for r in promoted] == waiting[:2]
    assert [db.session.get(Registration, i).state for i in waiting] == [S.confirmed, S.confirmed, S.waitlisted,
                                                                      S.waitlisted]
    with pytest.raises(Conflict) as err:
        regs.set_capacity(fresh(event), 2, actor=db.session.get(User, owner.id))
    assert err.value.field == "capacity" and "3 people already have a seat" in err.value.message
    db.session.rollback()

    promoted = regs.set_capacity(fresh(event), None, actor=db.session.get(User, owner.id))
    db.session.commit()
    assert [r.id for r in promoted] == waiting[2:]
    assert fresh(event).confirmed_count == 5


def test_move_from_waitlist_needs_a_free_seat(published, owner):
    event = published(capacity=1)
    register(event, "seat@example.org")
    second = register(event, "second@example.org")
    third = register(event, "third@example.org")
    organizer = db.session.get(User, owner.id)
    with pytest.raises(regs.EventFull):
        regs.move_from_waitlist(third.registration, actor=organizer)
    db.session.rollback()
    event = fresh(event)
    event.capacity = 2  # a raise without promotion, as a direct edit would do
    db.session.commit()
    regs.move_from_waitlist(db.session.get(Registration, third.registration.id), actor=organizer)
    db.session.commit()
    assert db.session.get(Registration, third.registration.id).state == S.confirmed
    assert db.session.get(Registration, second.registration.id).state == S.waitlisted
    last = db.session.get(Registration, third.registration.id).transitions[-1]
    assert (last.actor_kind, last.actor_user_id) == ("organizer", owner.id)


# --- approval ------------------------------------------------------------------------------------------


def test_approval_pending_takes_no_seat_until_approved(published, owner):
    event = published(capacity=1, approval_required=True)
    a = register(event, "a@example.org")
    b = register(event, "b@example.org")
    assert a.kind == b.kind == "pending"
    assert fresh(event).confirmed_count == 0
    assert subjects("a@example.org") == ["Registration received"]

    organizer = db.session.get(User, owner.id)
    regs.approve(db.session.get(Registration, a.registration.id), actor=organizer)
    db.session.commit()
    assert db.session.get(Registration, a.registration.id).state == S.confirmed
    assert subjects("a@example.org")[-1] == "Approved"

    # Full now: approving the second puts them on the waitlist, and the email says so.
    regs.approve(db.session.get(Registration, b.registration.id), actor=organizer)
    db.session.commit()
    assert db.session.get(Registration, b.registration.id).state == S.waitlisted
    assert subjects("b@example.org")[-1] == "Approved — on the waitlist"
    with pytest.raises(Conflict):
        regs.approve(db.session.get(Registration, b.registration.id), actor=organizer)


def test_deny_sends_the_message_and_a_denied_seat_goes_to_the_waitlist(published, owner):
    event = published(capacity=1)
    seat = register(event, "seat@example.org")
    waiting = register(event, "wait@example.org")
    organizer = db.session.get(User, owner.id)
    regs.deny(seat.registration, actor=organizer, message="This session is for members only.\nSorry!")
    db.session.commit()
    assert db.session.get(Registration, seat.registration.id).state == S.denied
    assert db.session.get(Registration, waiting.registration.id).state == S.confirmed
    denied = emails(to="seat@example.org")[-1]
    assert denied["subject"].startswith("Registration declined")
    assert "This session is for members only.\nSorry!" in denied["text"]
    assert "/r/" not in denied["text"]  # no link to a registration that is gone
    transition = db.session.get(Registration, seat.registration.id).transitions[-1]
    assert transition.note.startswith("This session is for members only.")
    assert transition.actor_user_id == owner.id


# --- the registration window ------------------------------------------------------------------------


def test_window_edges_and_event_states(published):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
    opens, closes = start - timedelta(days=3), start - timedelta(days=1)
    event = published(starts_at=start, ends_at=start + timedelta(hours=1), registration_opens_at=opens,
                      registration_closes_at=closes)
    with pytest.raises(regs.RegistrationClosed, match="not opened yet"):
        regs.register(event, data("early@example.org"), now=opens - timedelta(seconds=1))
    assert regs.register(event, data("open@example.org"), now=opens).kind == "confirmed"
    assert regs.register(event, data("last@example.org"), now=closes - timedelta(seconds=1)).kind == "confirmed"
    with pytest.raises(regs.RegistrationClosed, match="closed"):
        regs.register(event, data("late@example.org"), now=closes)
    db.session.rollback()

    # Without a closing time registration stays open until the event ends.
    open_ended = published(starts_at=start, ends_at=start + timedelta(hours=1))
    assert regs.register(open_ended, data("during@example.org"), now=start + timedelta(minutes=30)).kind == "confirmed"
    with pytest.raises(regs.RegistrationClosed, match="ended"):
        regs.register(open_ended, data("after@example.org"), now=start + timedelta(hours=1))
    db.session.rollback()

    for status, message in ((EventStatus.draft, "not open"), (EventStatus.cancelled, "cancelled")):
        event = published(status=status)
        with pytest.raises(regs.RegistrationClosed, match=message):
            regs.register(event, data("x@example.org"))
        db.session.rollback()
    assert count_registrations() == 0


# --- duplicates --------------------------------------------------------------------------------------


def test_duplicate_email_is_recognised_without_a_new_row_and_the_link_is_resent_once_per_bucket(published):
    event = published(capacity=5)
    first = register(event, "Ada@Example.org")
    assert first.registration.email == "ada@example.org"
    now = datetime.now(UTC)
    for _ in range(5):  # a flood within one bucket
        outcome = register(event, "  ADA@example.ORG ", now=now)
        assert outcome.kind == "duplicate" and outcome.manage_token is None
    assert count_registrations() == 1
    resends = [p for p in emails(to="ada@example.org") if ":resend:" in p["dedupe_key"]]
    assert len(resends) == 1
    assert regs.manage_url(first.manage_token) in resends[0]["text"]

    register(event, "ada@example.org", now=now + timedelta(seconds=regs.RESEND_BUCKET_SECONDS))
    resends = [p for p in emails(to="ada@example.org") if ":resend:" in p["dedupe_key"]]
    assert len(resends) == 2


def test_cancelled_registration_does_not_block_registering_again(published):
    event = published(capacity=5)
    first = register(event, "again@example.org")
    regs.cancel(first.registration)
    db.session.commit()
    second = register(event, "again@example.org")
    assert second.kind == "confirmed" and second.registration.id != first.registration.id


def test_concurrent_duplicate_caught_by_the_unique_index(published):
    """The partial unique index is the last word: a second active row for the same address fails."""
    event = published(capacity=5)
    first = register(event, "twin@example.org")
    twin = Registration(event_id=event.id, email="twin@example.org", first_name="T", last_name="T",
                        timezone="UTC", state=S.waitlisted, manage_token_hash="x" * 64)
    db.session.add(twin)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        db.session.flush()
    db.session.rollback()
    assert count_registrations() == 1 and first.kind == "confirmed"


# --- verification -------------------------------------------------------------------------------------


def _verify_token(to: str) -> str:
    text = [p for p in emails(to=to) if p["subject"].startswith("Confirm your email")][-1]["text"]
    return text.split("/registrations/verify/", 1)[1].split()[0]


def test_verification_holds_then_places_by_the_usual_rules(published):
    event = published(capacity=1, require_email_verification=True)
    a = register(event, "a@example.org")
    b = register(event, "b@example.org")
    assert a.kind == b.kind == "unverified"
    assert fresh(event).confirmed_count == 0
    assert subjects("a@example.org") == ["Confirm your email address"]
    assert "/r/" not in emails(to="a@example.org")[0]["text"]  # no manage link before the address is proven

    reg = regs.verify_email(_verify_token("b@example.org"))
    db.session.commit()
    assert reg.state == S.confirmed  # first to verify gets the seat
    reg = regs.verify_email(_verify_token("a@example.org"))
    db.session.commit()
    assert reg.state == S.waitlisted
    # A second click shows the registration as it is; it does not place it twice.
    assert regs.verify_email(_verify_token("b@example.org")).state == S.confirmed
    assert fresh(event).confirmed_count == 1
    assert regs.verify_email("not-a-real-token-but-long-enough") is None


def test_expired_hold_is_swept_and_never_blocks_registering_again(published):
    event = published(require_email_verification=True)
    now = datetime.now(UTC)
    held = register(event, "slow@example.org", now=now - regs.VERIFY_TTL - timedelta(minutes=1))
    token = _verify_token("slow@example.org")
    assert regs.verify_email(token, now=now) is None
    db.session.commit()
    assert db.session.get(Registration, held.registration.id).state == S.cancelled

    stale = register(event, "stale@example.org", now=now - regs.VERIFY_TTL - timedelta(minutes=1))
    again = register(event, "stale@example.org", now=now)
    assert again.kind == "unverified" and again.registration.id != stale.registration.id
    assert db.session.get(Registration, stale.registration.id).state == S.cancelled
    assert regs.expire_unverified(now + regs.VERIFY_TTL + timedelta(seconds=1)) == 1


def test_duplicate_of_an_unverified_hold_gets_a_fresh_verification_link(published):
    event = published(require_email_verification=True)
    register(event, "hold@example.org")
    old = _verify_token("hold@example.org")
    assert register(event, "hold@example.org").kind == "duplicate"
    new = _verify_token("hold@example.org")
    assert new != old
    assert regs.verify_email(old) is None
    assert regs.verify_email(new).state == S.confirmed


# --- who may register -------------------------------------------------------------------------------


def test_organization_only_events_accept_only_its_domains_and_force_verification(published, make_user):
    admin = make_user("admin@example.org", Role.admin)
    regs.save_organization_domains(regs.parse_domains("@Staff.Example.org, school.edu"),
                                   actor=db.session.get(User, admin.id))
    db.session.commit()
    assert regs.organization_domains() == ["staff.example.org", "school.edu"]
    event = published(who_can_register="organization", require_email_verification=False)
    with pytest.raises(NotAllowed) as err:
        regs.register(event, data("outsider@gmail.example"))
    assert err.value.field == "email"
    db.session.rollback()
    with pytest.raises(NotAllowed):
        regs.register(event, data("sneaky@staff.example.org.evil.example"))
    db.session.rollback()
    assert register(event, "member@STAFF.example.org").kind == "unverified"
    assert register(event, "teacher@school.edu").kind == "unverified"


def test_parse_domains_rejects_garbage():
    with pytest.raises(DomainError, match="not a domain"):
        regs.parse_domains("example.org, not a domain!")
    assert regs.parse_domains(" a.example\nb.example ; a.example ") == ["a.example", "b.example"]


@pytest.mark.db_agnostic
def test_only_admins_set_organization_domains(app_ctx, owner):
    with pytest.raises(NotAllowed):
        regs.save_organization_domains(["example.org"], actor=db.session.get(User, owner.id))
    assert db.session.get(Setting, "organization") is None


# --- validation and hostile input -------------------------------------------------------------------


@pytest.fixture
def quiz(published):
    event = published(capacity=10)
    event.questions = [
        Question(position=0, kind=QuestionKind.short_text, label="Company", required=True),
        Question(position=1, kind=QuestionKind.long_text, label="Why"),
        Question(position=2, kind=QuestionKind.single_choice, label="Track", options=["A", "B"], required=True),
        Question(position=3, kind=QuestionKind.multiple_choice, label="Topics", options=["X", "Y", "Z"]),
        Question(position=4, kind=QuestionKind.checkbox, label="Code of conduct", required=True),
    ]
    db.session.commit()
    return event


def _answers(event, **by_label):
    ids = {q.label: q.id for q in event.questions}
    return {ids[label]: value for label, value in by_label.items()}


@pytest.mark.parametrize(("answers", "label", "message"), [
    ({"Track": "A", "Code of conduct": True}, "Company", "Answer this question"),
    ({"Company": "  ", "Track": "A", "Code of conduct": True}, "Company", "Answer this question"),
    ({"Company": "x" * 301, "Track": "A", "Code of conduct": True}, "Company", "under 300"),
    ({"Company": "C", "Track": "C", "Code of conduct": True}, "Track", "options listed"),
    ({"Company": "C", "Code of conduct": True}, "Track", "Choose one option"),
    ({"Company": "C", "Track": "A", "Topics": ["X", "Q"], "Code of conduct": True}, "Topics", "options listed"),
    ({"Company": "C", "Track": "A", "Code of conduct": False}, "Code of conduct", "Tick this box"),
    ({"Company": "C", "Track": "A", "Why": "w" * 5001, "Code of conduct": True}, "Why", "5,000"),
])
def test_answers_are_validated_against_the_questions(quiz, answers, label, message):
    with pytest.raises(DomainError, match=message) as err:
        regs.register(quiz, data("q@example.org", answers=_answers(quiz, **answers)))
    assert err.value.field == f"q_{next(q.id for q in quiz.questions if q.label == label)}"
    db.session.rollback()
    assert count_registrations() == 0


def test_answers_are_stored_normalised(quiz):
    outcome = register(quiz, "q@example.org", answers=_answers(
        quiz, Company="  Acme\x00 Corp  ", Why="Line one\r\nLine two", Track="B", Topics=["Z", "X", "X"],
        **{"Code of conduct": "y"}))
    stored = {a.question_label: a.value for a in db.session.scalars(
        select(RegistrationAnswer).where(RegistrationAnswer.registration_id == outcome.registration.id))}
    assert stored == {"Company": "Acme Corp", "Why": "Line one\nLine two", "Track": "B", "Topics": ["X", "Z"],
                      "Code of conduct": True}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"first_name": ""}, "first_name"),
    ({"first_name": "x" * 101}, "first_name"),
    ({"last_name": "\x00\x01"}, "last_name"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@example.org\r\nBcc: victim@example.org"}, "email"),
    ({"email": "a" * 320 + "@example.org"}, "email"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
])
def test_person_fields_are_validated(published, overrides, field):
    event = published()
    with pytest.raises(DomainError) as err:
        regs.register(event, data("p@example.org", **overrides) if "email" not in overrides else data(**{
            "email": overrides["email"]}))
    assert err.value.field == field
    db.session.rollback()
    assert count_registrations() == 0


def test_hostile_names_are_stored_as_text_without_line_breaks_or_controls(published):
    event = published()
    outcome = register(event, "h@example.org", first_name="<script>alert(1)</script>",
                       last_name="Smith\r\nBcc: evil@example.org\u202e")
    reg = db.session.get(Registration, outcome.registration.id)
    assert reg.first_name == "<script>alert(1)</script>"
    assert reg.last_name == "Smith Bcc: evil@example.org"
    payload = emails(to="h@example.org")[0]
    assert "\n" not in payload["name"] and "\r" not in payload["subject"]


# --- tokens and details --------------------------------------------------------------------------------


def test_manage_tokens_are_long_hashed_encrypted_and_not_interchangeable(published):
    event = published()
    a = register(event, "a@example.org")
    b = register(event, "b@example.org")
    assert len(a.manage_token) >= 43  # 256 bits, URL-safe base64
    reg = db.session.get(Registration, a.registration.id)
    assert a.manage_token not in (reg.manage_token_hash, reg.manage_token_encrypted)
    assert regs.by_manage_token(a.manage_token).id == a.registration.id
    assert regs.by_manage_token(b.manage_token).id == b.registration.id
    assert regs.manage_token_for(reg) == a.manage_token
    for wrong in ("", "short", a.manage_token[:-1], a.manage_token + "x", reg.manage_token_hash, "x" * 5000):
        assert regs.by_manage_token(wrong) is None
    assert regs.manage_url(a.manage_token).endswith("/r/" + a.manage_token)
    assert regs.manage_url(a.manage_token).startswith("http://localhost/")


def test_confirmation_email_is_complete_in_the_attendees_zone(published):
    start = datetime(2027, 3, 2, 17, 0, tzinfo=UTC)
    event = published(title="Spring call", starts_at=start, ends_at=start + timedelta(minutes=90),
                      timezone="Europe/Berlin")
    outcome = regs.register(event, data("tz@example.org", timezone="Asia/Tokyo"), now=start - timedelta(days=2))
    db.session.commit()
    mail = emails(to="tz@example.org")[0]
    assert mail["subject"] == "You're registered: Spring call"
    assert "When: Wed 3 Mar 2027, 02:00–03:30 (Asia/Tokyo)" in mail["text"]
    assert regs.manage_url(outcome.manage_token) in mail["text"]
    assert f"/events/{event.slug}" in mail["text"]


def test_update_details_changes_name_answers_and_zone_but_not_email(quiz):
    outcome = register(quiz, "d@example.org", answers=_answers(quiz, Company="C", Track="A",
                                                                **{"Code of conduct": True}))
    reg = db.session.get(Registration, outcome.registration.id)
    regs.update_details(reg, first_name=" Grace ", last_name="Hopper", timezone="Europe/Paris",
                        answers=_answers(quiz, Company="Navy", Track="B", Topics=["Y"], **{"Code of conduct": True}))
    db.session.commit()
    reg = db.session.get(Registration, outcome.registration.id)
    assert (reg.first_name, reg.last_name, reg.timezone, reg.email) == ("Grace", "Hopper", "Europe/Paris",
                                                                        "d@example.org")
    assert reg.ics_sequence == 1
    assert {a.question_label: a.value for a in reg.answers}["Topics"] == ["Y"]
    with pytest.raises(DomainError):
        regs.update_details(reg, first_name="G", last_name="H", timezone="Europe/Paris",
                            answers=_answers(quiz, Company="", Track="B", **{"Code of conduct": True}))
