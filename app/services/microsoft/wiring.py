"""Build Foyer's Microsoft clients from configuration and install them on the app.

When a configured endpoint is one of the emulator's reserved `*.emulator.invalid` hosts, an emulator
is created in this process and the shared `requests.Session` reaches it through a transport adapter;
nothing else differs. Any other host is reached over the network with the same clients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from flask import Flask, current_app

from app.services.microsoft.acs import AcsEmailClient, AcsIdentityClient, AcsSettings, AcsSmsClient
from app.services.microsoft.entra import EntraAuth
from app.services.microsoft.graph import GraphClient

if TYPE_CHECKING:
    from app.emulator.core import Emulator

logger = logging.getLogger(__name__)

EMULATOR_SUFFIX = ".emulator.invalid"


@dataclass
class MicrosoftClients:
    session: requests.Session
    entra: EntraAuth
    graph: GraphClient
    acs_identity: AcsIdentityClient
    acs_email: AcsEmailClient
    acs_sms: AcsSmsClient | None
    emulator: Emulator | None
    verify: bool | str

    @property
    def uses_emulator(self) -> bool:
        return self.emulator is not None


def _hosts(config) -> list[str]:
    acs = AcsSettings.from_connection_string(config["ACS_CONNECTION_STRING"])
    return [urlsplit(u).hostname or "" for u in (config["ENTRA_AUTHORITY"], config["GRAPH_BASE_URL"], acs.endpoint)]


def build(config, *, token_provider=None) -> MicrosoftClients:
    """Create the session and every client from a config mapping."""
    session = requests.Session()
    verify: bool | str = True
    if config["MICROSOFT_CA_BUNDLE"]:
        verify = config["MICROSOFT_CA_BUNDLE"]
        session.verify = verify
        # Otherwise REQUESTS_CA_BUNDLE from the environment would override the bundle given here.
        session.trust_env = False
    emulator = None
    if any(h.endswith(EMULATOR_SUFFIX) for h in _hosts(config)):
        from app.emulator.core import Emulator, EmulatorConfig
        from app.emulator.transport import mount_emulator

        emulator = Emulator(EmulatorConfig(faults=config.get("FOYER_EMULATOR_FAULTS") or ""))
        mount_emulator(session, emulator)
        logger.info("Microsoft services are emulated in-process (no Azure account in use)")
    timeout = config["MICROSOFT_TIMEOUT"]
    entra = EntraAuth(config["ENTRA_AUTHORITY"], config["ENTRA_CLIENT_ID"], config["ENTRA_CLIENT_SECRET"],
                      session=session, timeout=timeout)
    if token_provider is None:
        from app.services.microsoft_connection import service_account_token

        token_provider = service_account_token
    graph = GraphClient(config["GRAPH_BASE_URL"], token_provider, session=session, timeout=timeout)
    acs = AcsSettings.from_connection_string(config["ACS_CONNECTION_STRING"])
    identity = AcsIdentityClient(acs, session=session, verify=verify, timeout=timeout)
    email = AcsEmailClient(acs, config["ACS_SENDER_ADDRESS"], session=session, verify=verify, timeout=timeout)
    sms = (AcsSmsClient(acs, config["ACS_SMS_SENDER"], session=session, verify=verify, timeout=timeout)
           if config["ACS_SMS_SENDER"] else None)
    return MicrosoftClients(session=session, entra=entra, graph=graph, acs_identity=identity, acs_email=email,
                            acs_sms=sms, emulator=emulator, verify=verify)


def install(app: Flask) -> None:
    app.extensions["microsoft"] = build(app.config)


def get_microsoft() -> MicrosoftClients:
    return current_app.extensions["microsoft"]


#: Where Foyer serves the emulator's sign-in page to browsers when the emulator runs in-process
#: (browsers cannot resolve `*.emulator.invalid`).
EMULATOR_SIGN_IN_PREFIX = "/_microsoft-emulator"


def browser_url(url: str) -> str:
    """A URL a person's browser can open: emulator login URLs are mapped onto Foyer's own origin."""
    clients = get_microsoft()
    if clients.emulator is None:
        return url
    login = f"https://{clients.emulator.config.login_host}"
    if url.startswith(login + "/"):
        return current_app.config["PUBLIC_BASE_URL"] + EMULATOR_SIGN_IN_PREFIX + url[len(login):]
    return url


class EmulatorSignInMount:
    """Serve only the emulator's authorize page under EMULATOR_SIGN_IN_PREFIX; everything else is Foyer's.

    Its inspection and fault APIs are deliberately not reachable this way.
    """

    def __init__(self, app, emulator) -> None:
        self.app = app
        self.emulator = emulator

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(EMULATOR_SIGN_IN_PREFIX + "/") and path.endswith("/oauth2/v2.0/authorize"):
            environ = dict(environ)
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + EMULATOR_SIGN_IN_PREFIX
            environ["PATH_INFO"] = path[len(EMULATOR_SIGN_IN_PREFIX):]
            return self.emulator.wsgi_app(environ, start_response)
        return self.app(environ, start_response)
