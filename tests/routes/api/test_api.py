"""The REST API through HTTP: token scopes and revocation, reading, registering through the engine
(capacity, waitlist, approval, questions, one confirmation email), JSON errors, rate limit, audit.
Every response is checked against the OpenAPI document by the `api` fixture.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import select

from app.extensions import db
from app.models import (
    ApiScope,
    ApiToken,
    AuditEntry,
    EventStatus,
    Question,
    QuestionKind,
    Registration,
    RegistrationState,
)
from app.services.outbox import outbox

PERSON = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "timezone": "Europe/London"}


def _person(n: int) -> dict:
    return {**PERSON, "email": f"person{n}@example.org", "first_name": f"Person{n}"}


@pytest.mark.db_agnostic
def test_openapi_document_is_openapi_3_1_with_valid_schemas(api, app):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "http://localhost/api/v1"}]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    documented = {(method.upper(), "/api/v1" + path) for path, ops in document["paths"].items() for method in ops}
    served = {(method, rule.rule.replace("<int:", "{").replace(">", "}")) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented
    assert set(document["webhooks"]) >= {"registration.created", "registration.promoted", "attendance.imported"}


def test_read_token_reads_events_and_registrations(api, issue_token, make_user, make_event, app):
    owner = make_user()
    published = make_event(owner, status=EventStatus.published, capacity=10, questions=1)
    make_event(owner)  # a draft
    with app.app_context():
        question_id = db.session.scalar(select(Question.id).where(Question.event_id == published.id))
    api.token = issue_token(ApiScope.write, "Writer")
    created = api.post(f"/events/{published.id}/registrations",
                       json={**PERSON, "answers": {str(question_id): "Hello"}})
    assert created.status_code == 201, created.get_json()
    api.token = issue_token(ApiScope.read)

    events = api.get("/events").get_json()
    assert events["total"] == 2
    only_published = api.get("/events?status=published").get_json()
    assert [e["id"] for e in only_published["data"]] == [published.id]
    answer = api.get(f"/events/{published.id}")
    assert answer.headers["Cache-Control"] == "no-store"
    event = answer.get_json()
    assert event["seats_left"] == 9 and event["starts_at"].endswith("Z")
    assert event["questions"][0]["label"] == "Question 1"

    regs = api.get(f"/events/{published.id}/registrations").get_json()
    assert regs["total"] == 1
    reg = regs["data"][0]
    assert (reg["email"], reg["state"]) == ("ada@example.org", "confirmed")
    assert reg["answers"] == [{"question_id": question_id, "label": "Question 1", "value": "Hello"}]
    assert api.get(f"/registrations/{reg['id']}").get_json()["id"] == reg["id"]
    assert api.get(f"/events/{published.id}/registrations?state=waitlisted").get_json()["total"] == 0
    assert api.get("/events/999999").status_code == 404
    assert api.get("/registrations/999999").status_code == 404


@pytest.mark.db_agnostic
def test_read_token_cannot_register_and_nothing_is_stored(api, issue_token, make_user, make_event, app):
    event = make_event(make_user(), status=EventStatus.published)
    api.token = issue_token(ApiScope.read)
    response = api.post(f"/events/{event.id}/registrations", json=PERSON)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "insufficient_scope"
    with app.app_context():
        assert db.session.scalar(select(Registration.id)) is None


@pytest.mark.db_agnostic
def test_missing_unknown_and_revoked_tokens_are_refused(api, issue_token, auth, client, make_user, make_event, app):
    event = make_event(make_user(), status=EventStatus.published)
    assert api.get("/events").status_code == 401
    unknown = api.get("/events", token="foyer_" + "x" * 43)
    assert unknown.status_code == 401 and unknown.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.get("/events", headers={"Authorization": "Basic YWRhOnB3"}).status_code == 401

    token = issue_token(ApiScope.write)
    assert api.get("/events", token=token).status_code == 200
    # A signed-in admin's session is no API credential: no token, no access (and no CSRF hole).
    auth.login_as_admin()
    assert api.post(f"/events/{event.id}/registrations", json=PERSON).status_code == 401
    page = client.get("/admin/api-tokens/").get_data(as_text=True)
    assert "CRM sync" in page and token not in page
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    revoked = client.submit(f"/admin/api-tokens/{token_id}/revoke")
    assert revoked.status_code == 303
    refused = api.get("/events", token=token)
    assert refused.status_code == 401
    assert api.post(f"/events/{event.id}/registrations", json=PERSON, token=token).status_code == 401
    with app.app_context():
        assert db.session.scalar(select(Registration.id)) is None


def test_registering_fills_seats_then_the_waitlist_with_one_confirmation_email_each(
        api, issue_token, make_user, make_event, app):
    event = make_event(make_user(), status=EventStatus.published, capacity=2, waitlist_enabled=True)
    api.token = issue_token(ApiScope.write)
    outcomes = [api.post(f"/events/{event.id}/registrations", json=_person(n)) for n in range(3)]
    assert [r.status_code for r in outcomes] == [201, 201, 201]
    assert [r.get_json()["outcome"] for r in outcomes] == ["confirmed", "confirmed", "waitlisted"]
    first_id = outcomes[0].get_json()["registration"]["id"]
    assert outcomes[0].headers["Location"].endswith(f"/api/v1/registrations/{first_id}")
    again = api.post(f"/events/{event.id}/registrations", json=_person(0))
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    assert api.get(f"/events/{event.id}").get_json()["seats_left"] == 0

    with app.app_context():
        outbox.drain()
        outbox.drain()  # a second pass sends nothing more
        sent = app.extensions["microsoft"].emulator.acs.sent_emails
        to_first = [e for e in sent if e.to[0]["address"] == "person0@example.org"]
        # The confirmation, plus the link re-sent for the repeated sign-up: each once.
        assert len(to_first) == 2
        assert len([e for e in sent if e.to[0]["address"] == "person2@example.org"]) == 1
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "api.registration_created")).all()
        assert len(entries) == 3 and all(e.actor_label.startswith("API token") for e in entries)


def test_registering_when_full_without_waitlist_is_a_conflict(api, issue_token, make_user, make_event):
    event = make_event(make_user(), status=EventStatus.published, capacity=1, waitlist_enabled=False)
    api.token = issue_token(ApiScope.write)
    assert api.post(f"/events/{event.id}/registrations", json=_person(1)).status_code == 201
    full = api.post(f"/events/{event.id}/registrations", json=_person(2))
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "event_full"
    closed = make_event(make_user("o2@example.org"))  # a draft takes no registrations
    refused = api.post(f"/events/{closed.id}/registrations", json=_person(3))
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "registration_closed"


def test_approval_and_required_questions_apply(api, issue_token, make_user, make_event, app):
    event = make_event(make_user(), status=EventStatus.published, approval_required=True)
    with app.app_context():
        db.session.add(Question(event_id=event.id, position=0, kind=QuestionKind.single_choice, label="Track",
                                required=True, options=["A", "B"]))
        db.session.commit()
        question_id = db.session.scalar(select(Question.id).where(Question.event_id == event.id))
    api.token = issue_token(ApiScope.write)
    missing = api.post(f"/events/{event.id}/registrations", json=PERSON)
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == f"answers.{question_id}"
    wrong = api.post(f"/events/{event.id}/registrations", json={**PERSON, "answers": {str(question_id): "C"}})
    assert wrong.status_code == 422
    pending = api.post(f"/events/{event.id}/registrations", json={**PERSON, "answers": {str(question_id): "B"}})
    assert pending.status_code == 201 and pending.get_json()["outcome"] == "pending"
    with app.app_context():
        reg = db.session.scalar(select(Registration))
        assert reg.state == RegistrationState.pending and reg.answers[0].value == "B"


def test_bad_requests_get_json_errors_never_html(api, issue_token, make_user, make_event, client, openapi_checker):
    event = make_event(make_user(), status=EventStatus.published)
    api.token = issue_token(ApiScope.write)
    url = f"/events/{event.id}/registrations"
    cases = [
        (api.post(url, data="{not json", content_type="application/json"), 400, "invalid_json"),
        (api.post(url, json=["a list"]), 400, "invalid_json"),
        (api.post(url, json={**PERSON, "admin": True}), 422, "invalid"),
        (api.post(url, json={**PERSON, "email": 42}), 422, "invalid"),
        (api.post(url, json={**PERSON, "email": "not an address"}), 422, "invalid"),
        (api.post(url, json={**PERSON, "timezone": "Mars/Olympus"}), 422, "invalid"),
        (api.post(url, json={**PERSON, "answers": {"12345": "x"}}), 422, "invalid"),
        (api.post(url, json={**PERSON, "consent_version": "yes"}), 422, "invalid"),
        (api.post(url, json={**PERSON, "first_name": "x" * 500}), 422, "invalid"),
        (api.get("/events?limit=0"), 400, "invalid_parameter"),
        (api.get("/events?limit=abc"), 400, "invalid_parameter"),
        (api.get("/events?status=secret"), 400, "invalid_parameter"),
        (api.get(f"/events/{event.id}/registrations?state=nope"), 400, "invalid_parameter"),
        (api.get("/events/99999999999999999999"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    bearer = {"Authorization": f"Bearer {api.token}"}
    for response in (client.get("/api/v1/nothing-here"), client.delete(f"/api/v1/events/{event.id}", headers=bearer)):
        assert response.status_code in (404, 405) and response.is_json
        openapi_checker.check_error(response)
        assert response.get_json()["error"]["code"] in ("not_found", "method_not_allowed")


def test_api_calls_are_rate_limited_per_token(api, issue_token, app, monkeypatch):
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "3 per minute")
    first, second = issue_token(ApiScope.read, "First"), issue_token(ApiScope.read, "Second")
    assert [api.get("/events", token=first).status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/events", token=first)
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "rate_limited"
    assert api.get("/events", token=second).status_code == 200


def test_a_client_address_has_a_ceiling_whatever_tokens_it_sends(api, issue_token, app, monkeypatch):
    monkeypatch.setitem(app.config, "API_ADDRESS_RATE_LIMIT", "3 per minute")
    token = issue_token(ApiScope.read)
    # Made-up tokens would each get a bucket of their own; the address's ceiling counts them all.
    assert [api.get("/events", token=f"foyer_guess{n:040d}").status_code for n in range(3)] == [401, 401, 401]
    limited = api.get("/events", token=token)
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "rate_limited"


def test_reads_of_registrations_are_audited_without_personal_data(api, issue_token, make_user, make_event, app):
    event = make_event(make_user(), status=EventStatus.published)
    api.token = issue_token(ApiScope.write)
    reg_id = api.post(f"/events/{event.id}/registrations", json=PERSON).get_json()["registration"]["id"]
    api.get(f"/events/{event.id}/registrations")
    api.get(f"/registrations/{reg_id}")
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action.like("api.%"))
                                     .order_by(AuditEntry.id)).all()
        actions = [e.action for e in entries]
        assert actions[-3:] == ["api.registration_created", "api.registrations_read", "api.registration_read"]
        assert "ada@example.org" not in " ".join(f"{e.summary} {e.details}" for e in entries)


@pytest.mark.db_agnostic
def test_the_document_check_fails_on_an_undocumented_answer(openapi_checker, app):
    """The checker the `api` fixture uses does refuse a body or a status the document does not allow."""
    bad_body = app.response_class('{"data": [{"id": "one"}], "total": 1, "limit": 50, "offset": 0}',
                                  status=200, mimetype="application/json")
    with pytest.raises(AssertionError, match="does not match"):
        openapi_checker.check("GET", "/api/v1/events", bad_body)
    undocumented = app.response_class('{}', status=418, mimetype="application/json")
    with pytest.raises(AssertionError, match="not documented"):
        openapi_checker.check("GET", "/api/v1/events", undocumented)


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
bodies = st.fixed_dictionaries({}, optional={
    "first_name": json_values, "last_name": json_values, "email": json_values | st.emails(), "timezone": json_values,
    "answers": json_values | st.dictionaries(st.sampled_from(["1", "2", "x", "-1"]), json_values, max_size=3),
    "consent_version": json_values,
}) | json_values


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.generate])
@given(body=bodies)
def test_any_json_body_gets_a_documented_answer_never_a_server_error(api, issue_token, make_user, make_event, body):
    if api.token is None:
        event = make_event(make_user(), status=EventStatus.published, capacity=1, waitlist_enabled=False)
        api.token = issue_token(ApiScope.write)
        api.event_id = event.id
    response = api.post(f"/events/{api.event_id}/registrations", json=body)  # checked against the document
    assert response.status_code < 500
