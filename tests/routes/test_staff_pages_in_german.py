"""What staff pages show from the code rather than from a template reads in the visitor's language too:
delivery reports, the health page, a registration's state, an API token's scope, a refused address and the
words the event form's script puts in. (English, the default, is checked where each page is tested.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from app.extensions import db
from app.models import Event, EventStatus, Message
from app.services.registration import registrations

GERMAN = {"Accept-Language": "de"}


def _page(response) -> str:
    return response.get_data(as_text=True)


def test_what_the_code_says_on_staff_pages_reads_in_german(app, client, auth, make_event):
    admin = auth.login_as_admin()
    event = make_event(admin, status=EventStatus.published, published_at=datetime.now(UTC))
    with app.app_context():
        outcome = registrations.register(db.session.get(Event, event.id), registrations.RegistrationData(
            first_name="Ada", last_name="Lovelace", email="ada@example.org", timezone="Europe/Berlin"))
        db.session.add(Message(dedupe_key="bounced", kind="confirmed", event_id=event.id,
                               registration_id=outcome.registration.id, recipient="ada@example.org",
                               delivery="Bounced", delivery_details="550 5.1.1 unknown user"))
        db.session.commit()

    health = _page(client.get("/admin/health/", headers=GERMAN))
    assert "Eingebauter Emulator" in health and "Built-in emulator" not in health
    board = _page(client.get(f"/manage/events/{event.id}/registrations", headers=GERMAN))
    assert "E-Mail: Unzustellbar (550 5.1.1 unknown user)" in board
    found = _page(client.submit("/admin/privacy/person", {"email": "ada@example.org"},
                                headers=GERMAN))
    assert "<td>bestätigt</td>" in found and "<td>confirmed</td>" not in found
    issued = _page(client.submit("/admin/api-tokens/", {"name": "CRM", "scope": "write"}, headers=GERMAN))
    assert "API-Token (Schreiben)" in issued and "<td>Schreiben</td>" in issued

    refused = client.submit("/admin/users/invite", {"email": "ada@@example.org", "name": "Ada", "role": "organizer"},
                            headers=GERMAN)
    assert refused.status_code == 422
    assert "Geben Sie eine gültige E-Mail-Adresse ein, z. B. name@example.org." in _page(refused)
    assert "@-sign" not in _page(refused)

    form = _page(client.get("/manage/events/new", headers=GERMAN))
    words = json.loads(re.search(r'<script type="application/json" id="foyer-strings">(.*?)</script>', form).group(1))
    assert words["zoneNote"] == ("Beginn und Ende unten gelten in dieser Zeitzone. Vorausgewählt: {zone} "
                                 "(die Zeitzone dieses Geräts).")
