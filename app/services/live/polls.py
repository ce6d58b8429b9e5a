"""Polls: organizers prepare them before the event, launch and close them live; attendees vote once.

"Once per registration" is the database's rule (a unique constraint on poll and registration), so a
double submit or two tabs cannot vote twice. A vote outlives its voter's data: erasure and the retention
purge only drop the link to the registration, so results stay whole and anonymous.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.models import (
    Event,
    Poll,
    PollOption,
    PollStatus,
    PollVote,
    PollVoteChoice,
    Registration,
    User,
    db,
    utcnow,
)
from app.services.attendance.join_links import JoinLink
from app.services.core.errors import Conflict, DomainError
from app.services.live import require_open
from app.services.registration import exports, privacy
from app.services.registration.registrations import clean_line

logger = logging.getLogger(__name__)

PROMPT_MAX = 300
OPTION_MAX = 200
MIN_OPTIONS = 2
MAX_OPTIONS = 10


class AlreadyVoted(Conflict):
    """This registration has voted in this poll already."""


# --- organizers -----------------------------------------------------------------------------------------


def create_poll(event: Event, prompt: str, options: Sequence[str], *, multiple: bool, actor: User) -> Poll:
    """Prepare a poll (a draft: attendees see it once it is launched)."""
    text = clean_line(prompt)
    if not text:
        raise DomainError(gettext("Enter the poll's question."), field="prompt")
    if len(text) > PROMPT_MAX:
        raise DomainError(gettext("The question can be at most %(max)s characters long.", max=PROMPT_MAX),
                          field="prompt")
    labels = [clean_line(o) for o in options]
    labels = [label for label in labels if label]
    if len(labels) < MIN_OPTIONS:
        raise DomainError(gettext("Give at least %(min)s answers to choose from, one per line.", min=MIN_OPTIONS),
                          field="options")
    if len(labels) > MAX_OPTIONS:
        raise DomainError(gettext("A poll can have at most %(max)s answers.", max=MAX_OPTIONS), field="options")
    if any(len(label) > OPTION_MAX for label in labels):
        raise DomainError(gettext("Each answer can be at most %(max)s characters long.", max=OPTION_MAX),
                          field="options")
    if len({label.casefold() for label in labels}) != len(labels):
        raise DomainError(gettext("Each answer must be different."), field="options")
    poll = Poll(event_id=event.id, prompt=text, multiple=bool(multiple), status=PollStatus.draft,
                options=[PollOption(position=i, label=label) for i, label in enumerate(labels)])
    db.session.add(poll)
    db.session.flush()
    logger.info("Poll %s prepared for event %s by %s", poll.id, event.id, actor.id)
    return poll


def find(event: Event, poll_id: int) -> Poll | None:
    """The event's poll with this id, or None."""
    poll = db.session.get(Poll, poll_id)
    return poll if poll is not None and poll.event_id == event.id else None


def launch(poll: Poll, *, actor: User) -> None:
    """Open a prepared poll for votes."""
    if poll.status != PollStatus.draft:
        raise Conflict(gettext("Only a prepared poll can be launched."))
    _advance(poll, PollStatus.open, "opened_at", actor=actor)


def close(poll: Poll, *, actor: User) -> None:
    """Stop taking votes; attendees see the results."""
    if poll.status != PollStatus.open:
        raise Conflict(gettext("Only an open poll can be closed."))
    _advance(poll, PollStatus.closed, "closed_at", actor=actor)


def _advance(poll: Poll, status: PollStatus, stamp: str, *, actor: User) -> None:
    """One step of a poll's life (prepared → open → closed), with the moment it was taken."""
    poll.status = status
    setattr(poll, stamp, utcnow())
    db.session.flush()
    logger.info("Poll %s is now %s (by %s)", poll.id, status.value, actor.id)


def delete_poll(poll: Poll, *, actor: User) -> None:
    """Remove a poll that was never launched."""
    if poll.status != PollStatus.draft:
        raise Conflict(gettext("A poll that was launched keeps its votes and cannot be removed."))
    db.session.delete(poll)
    db.session.flush()
    logger.info("Poll %s removed by %s", poll.id, actor.id)


# --- attendees -----------------------------------------------------------------------------------------


def has_voted(poll: Poll, reg: Registration) -> bool:
    return db.session.scalar(select(PollVote.id).where(PollVote.poll_id == poll.id,
                                                       PollVote.registration_id == reg.id)) is not None


def vote(link: JoinLink, poll: Poll, option_ids: Sequence[int]) -> PollVote:
    """Record a registration's vote (one option, or several in a multiple-choice poll)."""
    require_open(link)
    reg = link.registration
    if poll.event_id != reg.event_id or poll.status == PollStatus.draft:
        raise Conflict(gettext("This poll is not open."))
    if poll.status != PollStatus.open:
        raise Conflict(gettext("This poll has closed."))
    chosen = list(dict.fromkeys(option_ids))
    valid = {o.id for o in poll.options}
    if not chosen:
        raise DomainError(gettext("Choose at least one answer.") if poll.multiple else gettext("Choose an answer."),
                          field="choice")
    if any(c not in valid for c in chosen) or (not poll.multiple and len(chosen) != 1):
        raise DomainError(gettext("Choose from the poll's answers."), field="choice")
    if has_voted(poll, reg):
        raise AlreadyVoted(gettext("You have voted in this poll already."))
    ballot = PollVote(poll_id=poll.id, registration_id=reg.id)
    try:
        with db.session.begin_nested():
            db.session.add(ballot)
            db.session.flush()
    except IntegrityError:
        raise AlreadyVoted(gettext("You have voted in this poll already.")) from None
    db.session.add_all(PollVoteChoice(vote_id=ballot.id, option_id=c) for c in chosen)
    db.session.flush()
    logger.info("Vote in poll %s by registration %s", poll.id, reg.id)
    return ballot


# --- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionResult:
    option: PollOption
    votes: int
    #: Share of the voters who picked it (multiple choice may add up to more than 100).
    percent: int


@dataclass(frozen=True)
class PollResult:
    poll: Poll
    voters: int
    options: list[OptionResult]


def results(poll: Poll) -> PollResult:
    """How many voted, and how many picked each answer."""
    voters = db.session.scalar(select(func.count()).select_from(PollVote).where(PollVote.poll_id == poll.id)) or 0
    counts = dict(db.session.execute(
        select(PollVoteChoice.option_id, func.count()).join(PollVote)
        .where(PollVote.poll_id == poll.id).group_by(PollVoteChoice.option_id)).all())
    return PollResult(poll, voters, [
        OptionResult(o, counts.get(o.id, 0), round(100 * counts.get(o.id, 0) / voters) if voters else 0)
        for o in poll.options])


@dataclass(frozen=True)
class AttendeePoll:
    poll: Poll
    voted: bool
    #: Shown once the attendee voted or the poll closed.
    result: PollResult | None


def for_attendee(event: Event, reg: Registration) -> list[AttendeePoll]:
    """The launched polls an attendee sees, open ones first (newest first)."""
    polls = db.session.scalars(select(Poll).where(Poll.event_id == event.id, Poll.status != PollStatus.draft)
                               .order_by(Poll.opened_at.desc(), Poll.id.desc()))
    voted = set(db.session.scalars(select(PollVote.poll_id).join(Poll).where(
        Poll.event_id == event.id, PollVote.registration_id == reg.id)))
    shown = []
    for poll in polls:
        done = poll.id in voted
        shown.append(AttendeePoll(poll, done, results(poll) if done or poll.status == PollStatus.closed else None))
    return sorted(shown, key=lambda p: p.poll.status != PollStatus.open)


def for_organizer(event: Event) -> list[PollResult]:
    """Every poll of the event with its results, in the order they were prepared."""
    polls = db.session.scalars(select(Poll).where(Poll.event_id == event.id).order_by(Poll.id))
    return [results(p) for p in polls]


# --- after the event: export, erasure, retention -------------------------------------------------------


def polls_csv(event: Event) -> Iterator[str]:
    """Every poll's results as CSV: one row per answer."""
    yield "\ufeff" + exports.encode_rows([["Poll id", "Question", "Kind", "Status", "Opened (UTC)", "Closed (UTC)",
                                           "Voters", "Answer", "Votes", "Percent of voters"]])
    rows = []
    for result in for_organizer(event):
        p = result.poll
        for o in result.options:
            rows.append([p.id, p.prompt, "multiple choice" if p.multiple else "single choice", p.status.value,
                         p.opened_at.isoformat() if p.opened_at else "", p.closed_at.isoformat() if p.closed_at else "",
                         result.voters, o.option.label, o.votes, o.percent])
    yield exports.encode_rows(rows)


@privacy.exporter("poll_votes")
def _export(reg: Registration) -> list[dict]:
    """How the person voted in each poll."""
    votes = db.session.scalars(select(PollVote).where(PollVote.registration_id == reg.id).order_by(PollVote.id))
    out = []
    for ballot in votes:
        poll = db.session.get(Poll, ballot.poll_id)
        labels = db.session.scalars(select(PollOption.label).join(PollVoteChoice)
                                    .where(PollVoteChoice.vote_id == ballot.id).order_by(PollOption.position))
        out.append({"poll": poll.prompt, "choices": list(labels), "at": ballot.created_at.isoformat()})
    return out


@privacy.eraser("poll_votes")
def _erase(reg: Registration) -> int:
    """The person's votes stay as anonymous counts: the link to them goes."""
    return db.session.execute(update(PollVote).where(PollVote.registration_id == reg.id).values(registration_id=None)
                              .execution_options(synchronize_session=False)).rowcount or 0


@privacy.purger("live_poll_votes", before="registrations")
def _purge(event: Event) -> int:
    """Votes in the event's polls become anonymous counts."""
    polls = select(Poll.id).where(Poll.event_id == event.id).scalar_subquery()
    return db.session.execute(update(PollVote).where(PollVote.poll_id.in_(polls), PollVote.registration_id.is_not(None))
                              .values(registration_id=None).execution_options(synchronize_session=False)).rowcount or 0
