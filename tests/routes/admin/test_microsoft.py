"""Admin → Microsoft 365: connect the (emulated) service account through its real sign-in page."""

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ConnectionStatus, MicrosoftConnection
from app.services.core import crypto
from tests.first_run import setup_code
from tests.microsoft_helpers import sign_in_at_emulator


def _emulator(app):
    return app.extensions["microsoft"].emulator


def connect_service_account(app, client):
    response = client.submit("/admin/microsoft/connect")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://login.emulator.invalid/")  # Microsoft's origin
    service_oid = _emulator(app).config.users[0].oid
    return sign_in_at_emulator(client, response.headers["Location"], service_oid)


def test_admin_connects_service_account_and_tokens_are_encrypted(app, client, auth):
    auth.login_as_admin()
    page = client.get("/admin/microsoft/")
    assert "Not connected" in page.get_data(as_text=True)
    assert "built-in Microsoft emulator" in page.get_data(as_text=True)

    done = connect_service_account(app, client)
    assert done.status_code == 303 and "outcome=connected" in done.headers["Location"]
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Microsoft 365 is connected." in page
    assert "foyer.service@contoso.emulator.invalid" in page

    with app.app_context():
        row = db.session.get(MicrosoftConnection, 1)
        assert row.status == ConnectionStatus.connected
        assert "RefreshToken" not in row.token_cache_encrypted  # encrypted at rest
        cache = json.loads(crypto.decrypt(row.token_cache_encrypted))
        assert cache["RefreshToken"]
        # The scopes Foyer asked for were granted by the service account's consent.
    sign_in = _emulator(app).entra.sign_ins[-1]
    assert {"Calendars.ReadWrite", "OnlineMeetings.ReadWrite", "User.Read"} <= set(sign_in["scopes"])


@pytest.mark.db_agnostic
def test_callback_with_unknown_state_is_refused_without_touching_the_session(app, client, auth):
    auth.login_as_admin()
    response = client.post("/admin/microsoft/callback", data={"state": "forged", "code": "x"})
    # Not started in this browser: first the same-origin re-post page, then a refusal; no cookie either time.
    assert response.status_code == 200 and 'name="foyer_resubmitted" value="1"' in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers
    again = client.post("/admin/microsoft/callback", data={"state": "forged", "code": "x", "foyer_resubmitted": "1"})
    assert again.status_code == 400 and "not started in this browser" in again.get_data(as_text=True)
    assert "Set-Cookie" not in again.headers
    with app.app_context():
        assert db.session.scalar(select(MicrosoftConnection.status)) in (None, ConnectionStatus.disconnected)


@pytest.mark.db_agnostic
def test_cancelled_sign_in_shows_refusal(app, client, auth):
    auth.login_as_admin()
    start = client.submit("/admin/microsoft/connect")
    from tests.microsoft_helpers import _FORM, hidden_fields

    location = start.headers["Location"]
    session = app.extensions["microsoft"].session  # the emulator's sign-in page is on Microsoft's side
    html = session.get(location, timeout=10).text
    answer = session.post(location.split("?", 1)[0], data={**hidden_fields(html), "action": "cancel"},
                          timeout=10).text
    back = client.post("/admin/microsoft/callback", data=hidden_fields(answer))
    assert "outcome=refused" in back.headers["Location"]
    assert _FORM.search(answer)


def test_disconnect_asks_first_then_forgets_tokens(app, client, auth):
    auth.login_as_admin()
    connect_service_account(app, client)
    confirm = client.get("/admin/microsoft/disconnect")
    assert "Disconnect Microsoft 365?" in confirm.get_data(as_text=True)
    client.submit("/admin/microsoft/disconnect")
    with app.app_context():
        row = db.session.get(MicrosoftConnection, 1)
        assert row.status == ConnectionStatus.disconnected and row.token_cache_encrypted is None


@pytest.mark.db_agnostic
def test_organizers_cannot_see_the_connection_page(client, auth):
    auth.login_as_organizer()
    assert client.get("/admin/microsoft/").status_code == 404
    assert client.get("/admin/health/").status_code == 404


def test_health_page_reports_database_worker_outbox_and_connection(client, auth):
    auth.login_as_admin()
    page = client.get("/admin/health/").get_data(as_text=True)
    assert "Database" in page and "Not seen" in page and "Built-in emulator" in page


def test_first_run_offers_one_click_connection_of_the_emulated_account(app, client):
    client.submit("/setup", {"setup_code": setup_code(app), "name": "Ada", "email": "ada@example.org",
                             "password": "a long secret pw", "confirm": "a long secret pw"})
    events_page = client.get("/manage/events/").get_data(as_text=True)
    assert "Connect the emulated service account" in events_page
    response = client.submit("/admin/microsoft/connect-emulated")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Connected to the emulated Microsoft 365 as foyer.service@contoso.emulator.invalid" in page
    assert "Connect the emulated service account" not in page  # the prompt is gone
    with app.app_context():
        assert db.session.get(MicrosoftConnection, 1).status == ConnectionStatus.connected


@pytest.mark.db_agnostic
def test_organizers_are_not_prompted_to_connect(client, auth):
    auth.login_as_organizer()
    assert "Connect the emulated service account" not in client.get("/manage/events/").get_data(as_text=True)
