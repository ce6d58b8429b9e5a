"""Build Foyer's Microsoft clients from configuration and install them on the app.

Every endpoint is reached over the network with the same clients: real Microsoft, or by default the
built-in emulator served by `flask emulator serve` on loopback TLS (one per installation, shared by
every Foyer process). Only the test suite uses the in-process mode: when a configured endpoint is one
of the emulator's reserved `*.emulator.invalid` hosts, an emulator is created in this process and the
shared `requests.Session` reaches it through a transport adapter.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from flask import Flask, current_app

from app.services.microsoft import builtin
from app.services.microsoft.acs import AcsEmailClient, AcsIdentityClient, AcsSettings, AcsSmsClient
from app.services.microsoft.entra import EntraAuth
from app.services.microsoft.graph import GraphClient

if TYPE_CHECKING:
    from emulator.core import Emulator, EmulatorConfig

logger = logging.getLogger(__name__)

@dataclass
class MicrosoftClients:
    session: requests.Session
    entra: EntraAuth
    graph: GraphClient
    acs_identity: AcsIdentityClient
    acs_email: AcsEmailClient
    acs_sms: AcsSmsClient | None
    #: The in-process emulator (test suite only); None when the emulator is a service or Microsoft is real.
    emulator: Emulator | None
    verify: bool | str
    #: The emulator's well-known configuration when Microsoft is emulated (in-process or as a service).
    emulator_config: EmulatorConfig | None = None

    # What this installation's Microsoft can do: the rest of Foyer asks these, never which Microsoft it is.

    @property
    def built_in(self) -> bool:
        """Foyer's built-in emulator answers for Microsoft: pages say that nothing reaches Azure."""
        return self.emulator_config is not None

    @property
    def connects_without_sign_in(self) -> bool:
        """The service account can be connected in one click, with no person signing in (the built-in
        emulator's first-run convenience; a real tenant always needs its sign-in page).
        """
        return self.emulator_config is not None

    @property
    def calls_reach_teams(self) -> bool:
        """Whether the calling SDK in an attendee's browser can reach the event's Teams meeting (not so
        with the built-in emulator, whose meetings exist only in it: the join page shows a sandbox stage).
        """
        return self.emulator_config is None

    def is_local_tenant_domain(self, domain: str) -> bool:
        """Whether `domain` is the built-in emulator's own tenant domain: a reserved `.invalid` one that is
        no public email domain, yet its staff may be Foyer users so that Microsoft sign-in can be tried.
        """
        return self.emulator_config is not None and domain.lower() == self.emulator_config.tenant_domain.lower()

    def sign_in_service_account(self, auth_uri: str) -> dict[str, str]:
        """Answer the sign-in page at `auth_uri` as the service account; returns what it posts back to the
        redirect URI. Only where `connects_without_sign_in`.
        """
        if self.emulator_config is None:
            raise RuntimeError("Only the built-in emulator's sign-in can be answered without a person.")
        return builtin.sign_in_service_account(self.session, auth_uri, self.emulator_config,
                                               timeout=self.entra.timeout)


class BundleSession(requests.Session):
    """A session that verifies with the given CA bundle even when REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE
    is exported, yet still takes HTTPS_PROXY/NO_PROXY from the environment (a private CA often means a
    TLS-inspecting proxy). Plain `trust_env=False` would switch the proxies off too.
    """

    def __init__(self, bundle: str) -> None:
        super().__init__()
        self.verify = bundle

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None or verify is True:
            settings["verify"] = self.verify
        if isinstance(settings["verify"], str) and not os.path.exists(settings["verify"]):
            # The built-in emulator writes its CA when it first starts: until then it is simply not
            # reachable (a transient error the outbox retries), not a broken installation.
            raise requests.exceptions.ConnectionError(f"CA bundle {settings['verify']} not found (is the "
                                                      "Microsoft emulator running? `flask emulator serve`)")
        return settings


def redirect_uris(base_url: str) -> tuple[str, str]:
    """Foyer's registered redirect URIs under `base_url`: the service-account connect callback and the
    staff sign-in callback (what an app registration in Entra lists).
    """
    base = base_url.rstrip("/")
    return (f"{base}{CONNECT_CALLBACK_PATH}", f"{base}{SIGN_IN_CALLBACK_PATH}")


#: The callback routes (app/routes/admin/microsoft.py, app/routes/auth.py); tests check they match.
CONNECT_CALLBACK_PATH = "/admin/microsoft/callback"
SIGN_IN_CALLBACK_PATH = "/login/microsoft/callback"


def _hosts(config) -> list[str]:
    acs = AcsSettings.from_connection_string(config["ACS_CONNECTION_STRING"])
    return [urlsplit(u).hostname or "" for u in (config["ENTRA_AUTHORITY"], config["GRAPH_BASE_URL"], acs.endpoint)]


def build(config, *, token_provider=None) -> MicrosoftClients:
    """Create the session and every client from a config mapping."""
    verify: bool | str = True
    session = requests.Session()
    if config["MICROSOFT_CA_BUNDLE"]:
        verify = config["MICROSOFT_CA_BUNDLE"]
        session = BundleSession(verify)
    emulator = None
    emulator_config = None
    if any(h.endswith(builtin.RESERVED_SUFFIX) for h in _hosts(config)):
        from emulator.core import Emulator, EmulatorConfig  # noqa: PLC0415 — the emulator is loaded only when it is used
        from emulator.transport import mount_emulator  # noqa: PLC0415 — the emulator is loaded only when it is used

        emulator_config = EmulatorConfig(faults=config.get("FOYER_EMULATOR_FAULTS") or "",
                                         redirect_uris=redirect_uris(config["PUBLIC_BASE_URL"]))
        emulator = Emulator(emulator_config)
        mount_emulator(session, emulator)
        logger.info("Microsoft services are emulated in-process (no Azure account in use)")
    elif config.get("MICROSOFT_EMULATED"):
        from emulator.core import EmulatorConfig  # noqa: PLC0415 — the emulator is loaded only when it is used

        emulator_config = EmulatorConfig()
    timeout = config["MICROSOFT_TIMEOUT"]
    entra = EntraAuth(config["ENTRA_AUTHORITY"], config["ENTRA_CLIENT_ID"], config["ENTRA_CLIENT_SECRET"],
                      session=session, timeout=timeout)
    if token_provider is None:
        from app.services.microsoft.connection import service_account_token  # noqa: PLC0415 — connection imports wiring at module level; the token source is looked up when called

        token_provider = service_account_token
    graph = GraphClient(config["GRAPH_BASE_URL"], token_provider, session=session, timeout=timeout)
    acs = AcsSettings.from_connection_string(config["ACS_CONNECTION_STRING"])
    identity = AcsIdentityClient(acs, session=session, verify=verify, timeout=timeout)
    email = AcsEmailClient(acs, config["ACS_SENDER_ADDRESS"], session=session, verify=verify, timeout=timeout)
    sms = (AcsSmsClient(acs, config["ACS_SMS_SENDER"], session=session, verify=verify, timeout=timeout)
           if config["ACS_SMS_SENDER"] else None)
    return MicrosoftClients(session=session, entra=entra, graph=graph, acs_identity=identity, acs_email=email,
                            acs_sms=sms, emulator=emulator, verify=verify, emulator_config=emulator_config)


def install(app: Flask) -> None:
    app.extensions["microsoft"] = build(app.config)


def get_microsoft() -> MicrosoftClients:
    return current_app.extensions["microsoft"]
