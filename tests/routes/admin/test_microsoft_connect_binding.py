"""Login CSRF on the service-account connect flow: Microsoft's answer is honoured only in the browser
whose admin pressed Connect."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import ConnectionStatus, MicrosoftConnection, Role
from tests.conftest import PASSWORD
from tests.microsoft_helpers import emulator_answer, hidden_fields


def _answer(app, browser) -> tuple[str, dict[str, str]]:
    """Press Connect in `browser` and pick the service account on Microsoft's page; return its answer, unsent."""
    start = browser.submit("/admin/microsoft/connect")
    assert start.status_code == 303
    oid = app.extensions["microsoft"].emulator.config.users[0].oid
    return emulator_answer(browser, start.headers["Location"], oid)


def _status(app):
    with app.app_context():
        row = db.session.get(MicrosoftConnection, 1)
        return row.status if row else None


@pytest.mark.db_agnostic
def test_another_browser_cannot_finish_an_admins_connect(app, client, auth, make_user):
    auth.login_as_admin()
    path, fields = _answer(app, client)  # the first admin stops before the callback
    other = app.test_client()
    other.__class__ = type(client)
    second = make_user("second.admin@example.org", Role.admin)
    assert other.submit("/login", {"email": second.email, "password": PASSWORD}).status_code == 303

    bounce = other.post(path, data=fields)
    assert bounce.status_code == 200 and 'name="foyer_resubmitted"' in bounce.get_data(as_text=True)
    refused = other.post(path, data=hidden_fields(bounce.get_data(as_text=True)))
    assert refused.status_code == 400 and "not started in this browser" in refused.get_data(as_text=True)
    assert _status(app) in (None, ConnectionStatus.disconnected)
    assert other.get("/admin/microsoft/").status_code == 200  # still signed in as themself

    done = client.post(path, data=fields)  # the admin who pressed Connect can still finish
    assert done.status_code == 303 and "outcome=connected" in done.headers["Location"]
    assert _status(app) == ConnectionStatus.connected
    again = client.post(path, data=fields)  # single use: the state left this browser's session
    assert again.status_code == 200 and _status(app) == ConnectionStatus.connected
