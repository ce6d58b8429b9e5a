"""Durable emulator state: one snapshot file, written atomically after each state-changing request.

A served emulator (`flask emulator serve`) keeps everything Foyer relies on between restarts: Entra's
codes, tokens, consents and signing key; Graph's events, meetings and attendance; ACS's identities,
email operations, mailbox and SMS; and the clock offset. Fault rules and the request log are not kept
(they are test and debugging aids).

A service may define `state() -> dict` and `load_state(dict)`; otherwise every picklable attribute
except its wiring (`_emulator`, `config`, `_url_map`, `signer`, `users`) is kept. The file is a pickle
written only by the emulator itself into `instance/emulator/` (mode 0600); never point it at a file
from elsewhere.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._util import JwtSigner

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
_WIRING = frozenset({"_emulator", "config", "_url_map", "signer", "users"})


def _service_state(service: Any) -> dict[str, Any]:
    if hasattr(service, "state"):
        return service.state()
    state = {}
    for key, value in vars(service).items():
        if key in _WIRING or callable(value):
            continue
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - a value that cannot be kept is simply not kept
            logger.debug("Emulator state %s.%s is not kept", service.name, key)
            continue
        state[key] = value
    return state


def _load_service_state(service: Any, state: dict[str, Any]) -> None:
    if hasattr(service, "load_state"):
        service.load_state(state)
    else:
        vars(service).update(state)


def trim_mailbox(emulator: Emulator) -> None:
    """Keep the bodies and attachments of only the newest `mailbox_bodies_kept` emails (the rest keep
    their envelope: sender, recipients, subject, operation id), so snapshots stay small.
    """
    keep = emulator.config.mailbox_bodies_kept
    emails = emulator.acs.sent_emails
    for email in emails[: max(0, len(emails) - keep)]:
        if email.html is None and email.plain_text is None and not email.attachments:
            continue
        email.html, email.plain_text, email.attachments = None, None, []


class StateFile:
    """Saves and loads one emulator's state at `path`."""

    def __init__(self, emulator: Emulator, path: str | os.PathLike[str]) -> None:
        self.emulator = emulator
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._generation = 0
        self._written = 0

    def snapshot(self) -> tuple[int, bytes]:
        """The current state as bytes, with a generation number (taken under the emulator's lock)."""
        emu = self.emulator
        with emu.lock:
            trim_mailbox(emu)
            self._generation += 1
            data = {
                "version": SNAPSHOT_VERSION,
                "signing_key": emu.entra.signer.to_pem(),
                "clock_offset": emu.clock.offset,
                "services": {name: _service_state(s) for name, s in emu.services.items()},
            }
            return self._generation, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)

    def save(self) -> None:
        """Write the state atomically (a temporary file renamed over the old one); never an older one last."""
        generation, blob = self.snapshot()
        with self._write_lock:
            if generation <= self._written:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._written = generation

    def load(self) -> bool:
        """Restore the saved state; False (and a fresh emulator) when there is none or it is unreadable."""
        try:
            data = pickle.loads(self.path.read_bytes())  # noqa: S301 - our own file, see the module docstring
        except FileNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001 - a damaged snapshot must not stop the emulator
            logger.warning("Emulator state %s is unreadable (%s); starting empty", self.path, exc)
            return False
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            logger.warning("Emulator state %s has another format; starting empty", self.path)
            return False
        emu = self.emulator
        with emu.lock:
            pem, kid = data["signing_key"]
            emu.entra.signer = JwtSigner.from_pem(pem, kid)
            emu.clock.advance(data.get("clock_offset", 0.0) - emu.clock.offset)
            for name, state in data["services"].items():
                if name in emu.services:
                    _load_service_state(emu.services[name], state)
        return True
