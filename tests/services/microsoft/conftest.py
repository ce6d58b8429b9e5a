"""Foyer configured purely by environment variables to talk to the emulator over loopback TLS."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
import requests

from app import create_app
from app.config import TestConfig
from app.extensions import db
from app.models import Role, User
from app.services.microsoft import connection
from emulator import Emulator, EmulatorConfig, EmulatorServer

_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture(scope="session")
def tls_emulator():
    emulator = Emulator(EmulatorConfig(email_per_minute=1000, email_per_hour=10000, faults="", meeting_lookup_delay=0))
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture(scope="session")
def tls_app(app, tls_emulator, database_url, tmp_path_factory):
    """A second app on the same test database whose Microsoft settings point at https://127.0.0.1:PORT."""
    ends = tls_emulator.endpoints
    environ = {
        "ENTRA_AUTHORITY": ends.authority,
        "ENTRA_CLIENT_ID": tls_emulator.emulator.client_id,
        "ENTRA_CLIENT_SECRET": tls_emulator.emulator.client_secret,
        "GRAPH_BASE_URL": ends.graph_base_url,
        "ACS_CONNECTION_STRING": ends.acs_connection_string,
        "ACS_SENDER_ADDRESS": "events@foyer.example",
        "ACS_SMS_SENDER": "+18005550100",
        "MICROSOFT_CA_BUNDLE": tls_emulator.ca_bundle_path,
    }
    application = create_app(TestConfig, instance_path=tmp_path_factory.mktemp("tls-instance"), environ=environ,
                             SQLALCHEMY_DATABASE_URI=database_url)
    assert application.extensions["microsoft"].emulator is None  # reached over the network, not in-process
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def emulator(tls_emulator):
    tls_emulator.emulator.reset()
    yield tls_emulator.emulator
    tls_emulator.emulator.reset()


@pytest.fixture
def tls_ctx(tls_app, emulator):
    with tls_app.app_context():
        tls_app.extensions["microsoft"].entra.reset_cache()
        yield tls_app
        db.session.remove()


@pytest.fixture
def connected(tls_ctx, emulator, tls_emulator):
    """Connect the service account the way an admin's browser would, over TLS."""
    admin = User(email="admin@example.org", role=Role.admin, name="Admin")
    db.session.add(admin)
    db.session.commit()
    flow = connection.start_connect("http://localhost/admin/microsoft/callback")
    browser = requests.Session()
    browser.verify = tls_emulator.ca_bundle_path
    browser.trust_env = False
    page = browser.get(flow["auth_uri"], timeout=10)
    fields = {k: unescape(v) for k, v in _INPUT.findall(page.text)}
    answer = browser.post(urlsplit(flow["auth_uri"])._replace(query="").geturl(),
                          data={**fields, "user": emulator.config.users[0].oid}, timeout=10)
    posted = {k: unescape(v) for k, v in _INPUT.findall(answer.text)}
    connection.finish_connect(flow, posted, actor=admin)
    db.session.commit()
    return tls_ctx.extensions["microsoft"]
