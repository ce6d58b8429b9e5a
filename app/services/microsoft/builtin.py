"""Foyer's built-in Microsoft: the emulator (the top-level `emulator` package) as the default when no
Microsoft endpoint is configured.

Its well-known, non-secret values become the configuration's defaults, and the one-click connect answers
its sign-in page for the admin. Together with `wiring.py` and `emulator_cli.py` this is the only code in
app/ that imports the emulator (tests/test_emulator_boundary.py checks it); everything else asks the
installed `MicrosoftClients` what this installation's Microsoft can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import requests

from emulator.core import EmulatorConfig

#: The emulator's reserved hosts and domains (RFC 2606 `.invalid`): never resolvable, never Microsoft's.
RESERVED_SUFFIX = ".emulator.invalid"
#: The sender address used while no ACS sender is configured.
SENDER_ADDRESS = f"DoNotReply@foyer{RESERVED_SUFFIX}"


@dataclass(frozen=True)
class Endpoints:
    """What the configuration needs to reach the built-in Microsoft."""

    authority: str
    tenant_id: str
    client_id: str
    client_secret: str
    graph_base_url: str
    acs_connection_string: str


def served_at(origin: str) -> Endpoints:
    """The emulator service (`flask emulator serve`) answering on `origin` (e.g. https://127.0.0.1:8443)."""
    emu = EmulatorConfig()
    return Endpoints(authority=f"{origin}/{emu.tenant_id}", tenant_id=emu.tenant_id, client_id=emu.client_id,
                     client_secret=emu.client_secret, graph_base_url=f"{origin}/v1.0",
                     acs_connection_string=f"endpoint={origin}/;accesskey={emu.acs_access_key}")


def in_process() -> Endpoints:
    """The reserved `*.emulator.invalid` hosts, which the wiring routes to an emulator inside the process
    through a transport adapter (the test suite: no sockets).
    """
    emu = EmulatorConfig()
    return Endpoints(authority=f"https://{emu.login_host}/{emu.tenant_id}", tenant_id=emu.tenant_id,
                     client_id=emu.client_id, client_secret=emu.client_secret,
                     graph_base_url=f"https://{emu.graph_host}/v1.0",
                     acs_connection_string=f"endpoint=https://{emu.acs_host}/;accesskey={emu.acs_access_key}")


def answers_for(config) -> bool:
    """Whether the built-in emulator stands behind this configuration (as a service or in-process)."""
    return bool(config.get("MICROSOFT_EMULATED")) or RESERVED_SUFFIX in str(config.get("GRAPH_BASE_URL", ""))


class _HiddenFields(HTMLParser):
    """Collects the hidden inputs and the form action of a sign-in page."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action")
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def sign_in_service_account(session: requests.Session, auth_uri: str, config: EmulatorConfig, *,
                            timeout: float) -> dict[str, str]:
    """Answer the emulator's sign-in page as its service account would (the first of its users), through
    the same authorize page a browser uses; returns the fields it posts back to the redirect URI.
    """
    page = _HiddenFields()
    page.feed(session.get(auth_uri, timeout=timeout).text)
    authorize = auth_uri.split("?", 1)[0]
    answer = _HiddenFields()
    answer.feed(session.post(authorize, data={**page.fields, "user": config.users[0].oid}, timeout=timeout).text)
    return answer.fields
