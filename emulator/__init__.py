"""Foyer's offline emulator of the Microsoft slice it uses: Entra ID, Graph and ACS.

See `/work/shared/docs/microsoft.md` for the contract and `core.py` for how hosts map to services.
Typical use:

    emulator = Emulator()
    session = emulator_session(emulator)          # in-process, https://*.emulator.invalid
    with EmulatorServer(emulator) as server:      # or over loopback TLS
        server.endpoints.authority, server.ca_bundle_path
"""

from __future__ import annotations

from .core import (
    FAULTS_ENV,
    WELL_KNOWN_ACS_KEY,
    EmulatedUser,
    Emulator,
    EmulatorConfig,
    EmulatorEndpoints,
    RecordedRequest,
)
from .faults import Fault, FaultSet, parse_spec
from .server import EmulatorServer
from .transport import EmulatorAdapter, emulator_session, mount_emulator

__all__ = [
    "FAULTS_ENV",
    "WELL_KNOWN_ACS_KEY",
    "EmulatedUser",
    "Emulator",
    "EmulatorAdapter",
    "EmulatorConfig",
    "EmulatorEndpoints",
    "EmulatorServer",
    "Fault",
    "FaultSet",
    "RecordedRequest",
    "emulator_session",
    "mount_emulator",
    "parse_spec",
]
