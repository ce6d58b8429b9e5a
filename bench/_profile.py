"""Where a request's CPU goes: the profile a bench prints beside a target it missed.

A bench that misses one of the registration performance targets ends with the measured gap *and* the
top entries of an in-process cProfile of the requests behind it (`gap_profiles`), so its output says
where to look next. The profile is taken on a database of its own (the same kind as the bench's), through
Flask's test client: the same code path as a served request, without the HTTP server, and with the
database server's own CPU (PostgreSQL's backend) outside it.

The request kinds:

* `fresh page`: the public event page rendered for every view (`PUBLIC_PAGE_CACHE_SECONDS=0`);
* `reused page`: the same page reused for a second, as by default;
* `registration POST`: a registration with a new address (the event carries four questions);
* `result page`: the "Check your inbox" page the POST redirects to.

Each page view comes from a new visitor without cookies, as wrk's requests and the flows' first views do.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
from pathlib import Path

import _common as c

KINDS = ("fresh page", "reused page", "registration POST", "result page")
PG_DATABASE = "foyer_bench_gap_profile"


def seed_questions(app, slug: str) -> None:
    """Four questions, one of each common kind, added as an organizer would."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Event, QuestionKind
    from app.services.events import events

    with app.app_context():
        event = db.session.scalar(select(Event).filter_by(slug=slug))
        owner = event.owner
        event_state = event.status
        # Questions can be added only while the event is editable; published events are.
        for data in (
            events.QuestionData(kind=QuestionKind.short_text, label="Your organization", required=True),
            events.QuestionData(kind=QuestionKind.single_choice, label="How did you hear of us?",
                                options=["A colleague", "Our newsletter", "Social media", "Elsewhere"]),
            events.QuestionData(kind=QuestionKind.multiple_choice, label="Topics you care about",
                                options=["Planning", "Budget", "Tools", "People"]),
            events.QuestionData(kind=QuestionKind.long_text, label="Anything we should know?"),
        ):
            events.add_question(event, data, actor=owner)
        db.session.commit()
        assert event.status == event_state
        db.session.remove()
        db.engine.dispose()


def answers_for(app, slug: str) -> dict[str, str | list[str]]:
    """A valid answer to each of the event's questions, as its form field names them."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Event, QuestionKind
    from app.services.registration import registrations

    with app.app_context():
        event = db.session.scalar(select(Event).filter_by(slug=slug))
        out: dict[str, str | list[str]] = {}
        for q in event.questions:
            name = registrations.answer_field(q)
            if q.kind == QuestionKind.short_text:
                out[name] = "Example Ltd"
            elif q.kind == QuestionKind.single_choice:
                out[name] = q.options[1]
            elif q.kind == QuestionKind.multiple_choice:
                out[name] = q.options[:2]
            else:
                out[name] = "Nothing in particular."
        db.session.remove()
        return out


def top(profile: cProfile.Profile, count: int, sort: str) -> str:
    """The profile's first `count` entries by `sort` (file names without their directories)."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(count)
    text = out.getvalue()
    return text[text.find("   ncalls"):] if "   ncalls" in text else text


def _check(response, status: int, what: str):
    if response.status_code != status:
        raise SystemExit(f"{what} answered {response.status_code}:\n{response.get_data(as_text=True)[:2000]}")
    return response


def _profile_kind(app, kind: str, slug: str, answers: dict, n: int) -> cProfile.Profile:
    """n requests of one kind, the last n of 2n (the first n warm up imports and caches), under cProfile."""
    page = f"/events/{slug}"
    form = None
    if kind in ("registration POST", "result page"):
        client = app.test_client()
        token = c.CSRF.search(_check(client.get(page), 200, "the event page").get_data(as_text=True))
        if token is None:
            raise SystemExit("the event page has no registration form with a CSRF token")
        form = {"csrf_token": token.group(1), "first_name": "Profile", "last_name": "Person",
                "timezone": "Europe/Berlin", "consent": "y", **answers}
    profile = cProfile.Profile()
    result_url = None
    for i in range(2 * n):
        if i == n:
            profile.enable()
        if form is None:  # a page view by a new visitor
            _check(app.test_client().get(page), 200, "the event page")
        elif kind == "registration POST" or result_url is None:
            response = _check(client.post(f"{page}/register", data={**form, "email": f"gap{i}@example.org"}),
                              303, "a registration")
            result_url = response.headers["Location"]
        else:
            _check(client.get(result_url), 200, "the result page")
    profile.disable()
    return profile


def gap_profiles(db: str, kinds: list[str], *, n: int = 200, count: int = 15, sort: str = "tottime") -> str:
    """The top `count` entries (by `sort`) of each request kind's in-process profile, as printable text."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown request kinds {unknown}; known: {KINDS}")
    sections = []
    with c.temporary_directory() as tmp_name, c.fresh_database(db, Path(tmp_name), PG_DATABASE) as url:
        tmp = Path(tmp_name)
        environ = c.foyer_environ(url)
        c.migrate(environ)
        seeding = c.make_app(environ, tmp)
        slug = c.seed_event(seeding, slug="profile", title="Profile", capacity=None)
        seed_questions(seeding, slug)
        answers = answers_for(seeding, slug)
        for kind in kinds:
            reuse = "1" if kind == "reused page" else "0"
            app = c.make_app({**environ, "PUBLIC_PAGE_CACHE_SECONDS": reuse}, tmp)
            profile = _profile_kind(app, kind, slug, answers, n)
            sections.append(f"== where a {kind}'s CPU goes ({db}, in process, {n} requests, "
                            f"top {count} by {sort}) ==\n{top(profile, count, sort)}")
            with app.app_context():
                from app.extensions import db as database

                database.session.remove()
                database.engine.dispose()
    return "\n".join(sections)


def print_gap_profiles(db: str, kinds: list[str]) -> None:
    """Print the profiles of the request kinds behind missed targets (none: prints nothing).

    Smaller under BENCH_SMOKE, whose figures prove only that the benches work.
    """
    if kinds:
        print(gap_profiles(db, list(dict.fromkeys(kinds)), n=20 if os.environ.get("BENCH_SMOKE") else 200),
              flush=True)
