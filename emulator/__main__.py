"""`python -m emulator [--port 8443] [--ca-dir DIR] [--state FILE] [--sign-in-port N]`: serve the
emulator over loopback TLS (without Foyer's configuration; `flask emulator serve` is the usual way).

Prints the base URLs, credentials and the CA bundle to trust, then serves until interrupted. Faults
come from FOYER_EMULATOR_FAULTS (see emulator/faults.py) or `POST /_emulator/faults`.
"""

from __future__ import annotations

import argparse
import logging
import threading

from .core import Emulator
from .server import EmulatorServer


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start the server and block until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--ca-dir", default=None, help="where the CA is kept, reused if present (default: a temp dir)")
    parser.add_argument("--state", default=None, help="file keeping the emulator's state across restarts")
    parser.add_argument("--sign-in-port", type=int, default=None, help="plain-HTTP port for the sign-in page")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = Emulator(state_path=args.state)
    with EmulatorServer(
        emulator, host=args.host, port=args.port, ca_dir=args.ca_dir, sign_in_port=args.sign_in_port
    ) as server:
        ends = server.endpoints
        print(f"Microsoft emulator on {server.base_url}")
        print(f"  CA bundle (set REQUESTS_CA_BUNDLE): {server.ca_bundle_path}")
        print(f"  MSAL authority:   {ends.authority}   (instance_discovery=False)")
        print(f"  client id/secret: {emulator.client_id} / {emulator.client_secret}")
        print(f"  service account:  {emulator.service_account_upn}")
        print(f"  Graph base URL:   {ends.graph_base_url}")
        print(f"  ACS connection:   {ends.acs_connection_string}")
        print(f"  control API:      {server.base_url}/_emulator/", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
