"""What differs between Foyer's built-in Microsoft and a configured one, seen through the pages: with
Microsoft endpoints set (here the emulator served over loopback TLS, as real Microsoft would be reached)
there is no one-click connect, no emulator notice, the health page names the Microsoft cloud, the join
page offers the real call, and the emulator's reserved tenant domain is not a valid staff email.
The in-process app (the built-in one) shows the opposite of each on the same pages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import Event, EventStatus, Registration, RegistrationState, Role, User
from app.models.microsoft import ConnectionStatus, MicrosoftConnection
from app.services.accounts import accounts
from app.services.attendance import join_links
from app.services.core.errors import DomainError

TEAMS_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_caps%40thread.v2/0?context=%7b%7d"
ADMIN = "admin@example.org"
PASSWORD = "a long secret pw"
ADELE = "adele.vance@contoso.emulator.invalid"


@pytest.fixture(params=["built-in", "configured"])
def setup(request, app, client, tls_app, emulator):
    """(the app, a signed-in admin's client, whether Microsoft is the built-in one)."""
    built_in = request.param == "built-in"
    target = app if built_in else tls_app
    target.test_client_class = type(client)
    http = target.test_client()
    with target.app_context():
        accounts.create_user(ADMIN, role=Role.admin, password=PASSWORD, name="Admin")
        db.session.commit()
    assert http.submit("/login", {"email": ADMIN, "password": PASSWORD}).status_code == 303
    return target, http, built_in


def _open_event_token(target) -> str:
    with target.app_context():
        owner = db.session.query(User).filter_by(email=ADMIN).one()
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        event = Event(title="Caps call", slug="caps-call", timezone="Europe/Berlin", starts_at=start,
                      ends_at=start + timedelta(hours=1), status=EventStatus.published, published_at=start,
                      owner_id=owner.id, join_url=TEAMS_URL)
        db.session.add(event)
        db.session.flush()
        reg = Registration(event_id=event.id, email="p@example.org", first_name="Pat", last_name="T", timezone="UTC",
                           manage_token_hash="0" * 64, state=RegistrationState.confirmed)
        reg.event = event
        db.session.add(reg)
        db.session.flush()
        token = join_links.join_token_for(reg)
        db.session.commit()
        return token


@pytest.mark.db_agnostic
def test_connection_page_offers_one_click_only_with_the_built_in_microsoft(setup):
    _, http, built_in = setup
    page = http.get("/admin/microsoft/").get_data(as_text=True)
    assert ("Connect in one click" in page) is built_in
    assert ("built-in Microsoft emulator" in page) is built_in
    assert ("Connect the emulated service account" in page) is built_in
    events = http.get("/manage/events/").get_data(as_text=True)
    assert ("Connect the emulated service account" in events) is built_in
    assert "Connect Microsoft 365" in events


def test_one_click_connect_is_refused_where_a_person_must_sign_in(setup):
    target, http, built_in = setup
    response = http.submit("/admin/microsoft/connect-emulated")
    assert response.status_code == 303
    page = http.get(response.headers["Location"]).get_data(as_text=True)
    if built_in:
        assert "Connected to the emulated Microsoft 365 as foyer.service@contoso.emulator.invalid" in page
    else:
        assert "could not be connected: Only the built-in emulator can be connected in one click." in page
    with target.app_context():
        row = db.session.get(MicrosoftConnection, 1)
        status = row.status if row is not None else ConnectionStatus.disconnected
        assert (status == ConnectionStatus.connected) is built_in


@pytest.mark.db_agnostic
def test_health_page_names_who_answers_for_microsoft(setup):
    _, http, built_in = setup
    page = http.get("/admin/health/").get_data(as_text=True)
    assert ("Built-in emulator" in page) is built_in
    assert ("Microsoft cloud" in page) is not built_in


@pytest.mark.db_agnostic
def test_join_page_shows_the_sandbox_stage_only_with_the_built_in_microsoft(setup):
    target, http, built_in = setup
    page = http.get(f"/j/{_open_event_token(target)}").get_data(as_text=True)
    assert 'data-stage="sandbox"' in page if built_in else 'data-stage="call"' in page


@pytest.mark.db_agnostic
def test_the_local_tenants_reserved_domain_is_a_staff_email_only_with_the_built_in_microsoft(setup):
    target, _, built_in = setup
    with target.app_context():
        if built_in:
            assert accounts.normalize_email("Adele.Vance@Contoso.Emulator.Invalid") == ADELE
        else:
            with pytest.raises(DomainError):
                accounts.normalize_email(ADELE)
