"""Every endpoint, walked with hostile and random input (Hypothesis), signed in as an admin with a valid
CSRF token so the input reaches the forms.

The endpoints come from the app's URL map and the field names from its own pages, so a new route or
form is fuzzed without touching this file. Input: huge strings, control characters, invalid UTF-8,
wrong types, missing and repeated fields, bogus dates, zones and ids, hostile path segments, with and
without htmx headers. Two properties hold for every request: no response is a server error (≥ 500), and
a rejected request (4xx) changes nothing in the database.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from flask_login import current_user
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.models import Event, EventStatus, Question, QuestionKind, Role, Speaker
from app.services.registration import registrations
from tests.conftest import PASSWORD
from tests.database import fingerprint

#: Endpoints not worth fuzzing: static files are served by werkzeug's file handling.
SKIP = {"static"}
#: Tables whose rows change on any request by design (counters of the rate limiter).
VOLATILE_TABLES = {"rate_limit_counters"}


def _rules() -> list[tuple[str, str, str]]:
    app = create_app(TestConfig, instance_path=Path(tempfile.mkdtemp(prefix="foyer-fuzz-")))
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule, rule.endpoint))
    return sorted(found)


RULES = _rules()
ARGUMENT = re.compile(r"<(?:(\w+):)?(\w+)>")

# --- hostile values ----------------------------------------------------------------------------------

control_text = st.text(st.characters(codec="utf-8", categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Lu", "Ll", "So", "Po")),
                       max_size=40)
huge = st.integers(min_value=1_000, max_value=30_000).map(lambda n: "Ab<" * (n // 3))
invalid_utf8 = st.binary(min_size=1, max_size=24).filter(lambda b: not _decodes(b))
numbers = st.one_of(st.integers().map(str), st.sampled_from(["-1", "0", "1e309", "NaN", "Infinity", "0x10", "1.5"]))
dates = st.sampled_from(["2026-02-30T25:61", "0000-00-00T00:00", "9999-12-31T23:59", "2026-13-01", "now", "",
                         "2030-01-01T10:00", "1970-01-01", "2026-11-27T10:00:00+99:00"])
zones = st.sampled_from(["Mars/Base", "Europe/Berlin", "../../etc/passwd", "UTC", "Etc/GMT+99", "", "\x00"])
markup = st.sampled_from(["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "javascript:alert(1)",
                          "=cmd|' /C calc'!A0", "{{ 7*7 }}", "{% raw %}", "a\r\nBcc: victim@example.org",
                          "\u202eevil", "%00", "'; DROP TABLE users; --"])
value = st.one_of(control_text, huge, invalid_utf8, numbers, dates, zones, markup, st.just(""),
                  st.sampled_from(["y", "on", "true", "approve", "cancel", "deny", "move", "bypass", "organization"]))


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fingerprint(app) -> str:
    """A digest of every row of every table (except volatile ones): equal means nothing changed."""
    with app.app_context():
        digest = fingerprint(exclude=VOLATILE_TABLES)
        db.session.remove()
    return digest


@pytest.fixture
def world(app, client, make_user, make_event):
    """An admin (signed in), a published event with questions and a speaker, a registration."""
    admin = make_user("fuzz-admin@example.org", role=Role.admin)
    other = make_user("someone@example.org")
    start = datetime.now(UTC) + timedelta(days=10)
    event = make_event(admin, status=EventStatus.published, published_at=datetime.now(UTC), capacity=5,
                       starts_at=start, ends_at=start + timedelta(hours=1))
    with app.app_context():
        row = db.session.get(Event, event.id)
        row.questions = [Question(position=0, kind=QuestionKind.short_text, label="Company", required=True),
                         Question(position=1, kind=QuestionKind.single_choice, label="Track", options=["A", "B"])]
        row.speakers = [Speaker(position=0, name="Grace Hopper")]
        db.session.commit()
        outcome = registrations.register(row, registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/Berlin",
            answers={row.questions[0].id: "Engines"}))
        db.session.commit()
        ids = {"event_id": event.id, "reg_id": outcome.registration.id, "question_id": row.questions[0].id,
               "speaker_id": row.speakers[0].id, "user_id": other.id, "slug": event.slug,
               "token": outcome.manage_token, "filename": "logo.png"}
    return ids


def _sign_in(client) -> str:
    """Sign the admin in (again: a fuzzed request may have signed out) and return a CSRF token."""
    if not _signed_in(client):
        client.post("/login", data={"csrf_token": client.form_csrf_token(), "email": "fuzz-admin@example.org",
                                    "password": PASSWORD})
    return client.form_csrf_token()


def _signed_in(client) -> bool:
    """Whether the client's session cookie still signs someone in, as the app itself decides it (the
    session's age and version, the account still active): a request context with that cookie, without
    rendering a page."""
    app = client.application
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None:
        return False
    with app.test_request_context(headers={"Cookie": f"{cookie.key}={cookie.value}"}):
        signed_in = current_user.is_authenticated
        db.session.remove()
    return signed_in


#: Field names per database, gathered by the first test: each test builds the same world (ids start at 1
#: again after the database is emptied), so the pages carry the same names.
_FIELD_NAMES: dict[str, list[str]] = {}


@pytest.fixture
def field_names(app, client, world) -> list[str]:
    """Every form field name on the app's own pages."""
    database = app.config["SQLALCHEMY_DATABASE_URI"]
    if database not in _FIELD_NAMES:
        _FIELD_NAMES[database] = _gather_field_names(client, world)
    return _FIELD_NAMES[database]


def _gather_field_names(client, world) -> list[str]:
    _sign_in(client)
    names = set()
    for path in ("/manage/events/new", f"/manage/events/{world['event_id']}/edit", f"/events/{world['slug']}",
                 "/admin/users/new", "/admin/branding", f"/r/{world['token']}",
                 f"/manage/events/{world['event_id']}/registrations", f"/manage/events/{world['event_id']}/questions",
                 f"/manage/events/{world['event_id']}/speakers", "/account/password"):
        names.update(re.findall(r'name="([^"]+)"', client.get(path).get_data(as_text=True)))
    names.discard("csrf_token")
    return sorted(names) or ["title"]


def _url(rule: str, world: dict, data) -> str:
    def fill(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        known = world.get(name)
        if converter == "int":
            choice = data.draw(st.one_of(st.just(known), st.integers(min_value=0, max_value=2**64)), label=name)
            return str(choice if choice is not None else 1)
        hostile = st.one_of(control_text, markup, st.just("x" * 3000)).filter(bool).map(lambda s: quote(s, safe=""))
        return data.draw(st.one_of(st.just(quote(str(known or "x"), safe="")), hostile), label=name)

    return ARGUMENT.sub(fill, rule)


@pytest.mark.parametrize(("method", "rule", "endpoint"), RULES, ids=[f"{m} {r}" for m, r, _ in RULES])
@settings(max_examples=4, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_input_never_breaks_anything(app, client, world, field_names, method, rule, endpoint, data):
    csrf = _sign_in(client)
    url = _url(rule, world, data)
    pairs = data.draw(st.lists(st.tuples(st.one_of(st.sampled_from(field_names), control_text), value), max_size=12),
                      label="fields")
    if data.draw(st.booleans(), label="with csrf"):
        pairs.insert(0, ("csrf_token", csrf))
    body = urlencode([(k.encode("utf-8", "surrogatepass"), v if isinstance(v, bytes) else v.encode())
                      for k, v in pairs])
    headers = {"HX-Request": "true", "X-CSRFToken": csrf} if data.draw(st.booleans(), label="htmx") else {}

    before = _fingerprint(app)
    if method == "GET":
        response = client.get(f"{url}?{body[:4000]}", headers=headers)
    else:
        response = client.open(url, method=method, data=body, headers=headers,
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500, f"{method} {url} -> {response.status_code}"
    if 400 <= response.status_code < 500:
        assert _fingerprint(app) == before, f"{method} {url} was refused ({response.status_code}) but changed data"


def test_the_fingerprint_sees_one_changed_value_and_nothing_else(app, world):
    """The check behind "a refused request changes nothing" fails on a single changed character."""
    before = _fingerprint(app)
    assert _fingerprint(app) == before
    with app.app_context():
        version = db.session.get(Speaker, world["speaker_id"]).event.updated_at
        db.session.get(Speaker, world["speaker_id"]).name = "Grace Hoppex"
        db.session.commit()
    changed = _fingerprint(app)
    assert changed != before
    with app.app_context():
        speaker = db.session.get(Speaker, world["speaker_id"])
        speaker.name = "Grace Hopper"
        db.session.commit()
        # A speaker's edit also moves its event's version (`updated_at`): put that back too.
        db.session.execute(update(Event).where(Event.id == speaker.event_id).values(updated_at=version))
        db.session.commit()
    assert _fingerprint(app) == before
