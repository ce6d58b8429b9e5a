"""`flask emulator serve`: the built-in Microsoft emulator as its own loopback service.

`make run` starts it beside the web server and the worker. It serves Entra, Graph and ACS over TLS on
`https://127.0.0.1:EMULATOR_PORT` with a CA kept in `instance/emulator/`, and the sign-in page (only
it) on `http://localhost:EMULATOR_PORT+1` for browsers. Its state lives in
`instance/emulator/state.pickle`, so restarting any process keeps the Microsoft connection.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import click
from flask import Flask, current_app

from app.services.microsoft.wiring import redirect_uris

logger = logging.getLogger(__name__)


def register(app: Flask, *, delivery_webhook_url: Callable[[], str]) -> None:
    """Add the `flask emulator` commands; `delivery_webhook_url` gives the address of Foyer's delivery-report
    webhook (with its secret), which the emulator's Event Grid is subscribed to.
    """

    @app.cli.group("emulator")
    def emulator_group() -> None:
        """The built-in Microsoft emulator (used when no Microsoft variables are set)."""

    @emulator_group.command("serve")
    @click.option("--port", type=int, default=None, help="TLS port (default: EMULATOR_PORT).")
    def serve(port: int | None) -> None:
        """Serve the emulator until interrupted; its CA and state are kept in instance/emulator/."""
        from emulator.core import Emulator, EmulatorConfig  # noqa: PLC0415 — the emulator is loaded only when it is used
        from emulator.server import EmulatorServer  # noqa: PLC0415 — the emulator is loaded only when it is used

        config = current_app.config
        port = port or config["EMULATOR_PORT"]
        directory = config["EMULATOR_DIR"]
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        emulator = Emulator(
            EmulatorConfig(
                faults=config.get("FOYER_EMULATOR_FAULTS") or "",
                redirect_uris=redirect_uris(config["PUBLIC_BASE_URL"]),
                sign_in_base_url=f"http://localhost:{port + 1}",
                # As on Azure, where an Event Grid subscription delivers ACS's reports as they happen.
                auto_deliver_reports=True,
            ),
            state_path=directory / "state.pickle",
        )
        server = EmulatorServer(emulator, port=port, ca_dir=directory, sign_in_port=port + 1)
        webhook = delivery_webhook_url()
        with server:
            threading.Thread(target=_keep_delivery_reports_flowing, args=(emulator, webhook), daemon=True,
                             name="foyer-emulator-event-grid").start()
            ends = server.endpoints
            click.echo(f"Microsoft emulator on {server.base_url} (CA {server.ca_bundle_path})")
            click.echo(f"  sign-in page: {server.sign_in_base_url}   Graph: {ends.graph_base_url}")
            click.echo(f"  registered redirect URIs: {', '.join(emulator.config.redirect_uris or ())}", nl=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass

    @emulator_group.command("wait-ready")
    @click.option("--url", "urls", multiple=True, help="Also wait until this URL answers (e.g. the web server).")
    @click.option("--timeout", type=float, default=60.0, show_default=True)
    def wait_ready(urls: tuple[str, ...], timeout: float) -> None:
        """Wait until the emulator (when Microsoft is emulated) and every --url answer; exit 1 on timeout."""
        config = current_app.config
        targets = list(urls)
        if config.get("MICROSOFT_EMULATED"):
            targets.insert(0, config["ENTRA_AUTHORITY"] + "/v2.0/.well-known/openid-configuration")
        missing = wait_until_answering(targets, timeout=timeout, ca_bundle=config["MICROSOFT_CA_BUNDLE"] or None)
        if missing:
            raise click.ClickException(f"No answer within {timeout:g} s from: {', '.join(missing)}")


def _keep_delivery_reports_flowing(emulator, webhook: str, *, every: float = 2.0) -> None:
    """Subscribe Foyer's delivery-report webhook as an admin would in Azure (once the web server answers the
    handshake), then post any report that could not be delivered while Foyer was down.
    """
    from emulator.acs import EventGridError  # noqa: PLC0415 — the emulator is loaded only when it is used

    while True:
        try:
            if not any(s.endpoint == webhook for s in list(emulator.acs.event_subscriptions.values())):
                emulator.acs.unsubscribe()  # e.g. a secret or address that changed since the last start
                emulator.acs.subscribe(webhook)
            elif emulator.acs.pending_reports:
                emulator.acs.deliver_reports()
        except EventGridError:
            pass  # the web server is not up yet: try again
        except Exception:  # noqa: BLE001 - a background loop must not die; the next turn tries again
            logger.exception("Delivering the emulator's ACS delivery reports failed")
        time.sleep(every)


def wait_until_answering(urls: list[str], *, timeout: float, ca_bundle: str | None = None) -> list[str]:
    """Poll each URL until it gives any HTTP answer; returns those that never did."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            context = None
            if url.startswith("https://"):
                try:
                    context = ssl.create_default_context(cafile=ca_bundle)
                except (FileNotFoundError, ssl.SSLError):
                    continue  # the emulator has not written its CA yet
            try:
                urllib.request.urlopen(url, timeout=2, context=context).close()  # noqa: S310 - our own URLs
            except urllib.error.HTTPError:
                pass  # any HTTP answer means it is up
            except (OSError, ValueError):
                continue
            pending.remove(url)
        if pending:
            time.sleep(0.2)
    return pending
