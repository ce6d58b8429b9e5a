"""Fault injection, in the spirit of Microsoft's Dev Proxy.

A `Fault` matches requests by service group (`entra`, `graph`, `acs`), path glob and method, and
then does one thing: add latency, answer with an error status (429/503/504/...), time out, drop the
connection, expire every access token, or revoke every refresh token. Faults can be limited to the
next N matching requests (`count`), skip the first N (`skip`), or fire with a probability (`rate`).

Faults are set from Python (`emulator.faults.add(...)`), over HTTP (`/_emulator/faults`), or from the
`FOYER_EMULATOR_FAULTS` environment variable, read once when an `Emulator` is constructed.

Spec syntax (env variable, `FaultSet.add_spec`, and `{"spec": ...}` over HTTP); rules are separated
by `;`:

    <target>:<action>[,<option>=<value>...]

    target  = entra | graph | acs | *          optionally followed by a path glob:  graph/v1.0/me/events*
              or just a path glob:              /emails:send
    action  = latency=<seconds> | status=<code> | timeout[=<seconds>] | drop | expire-tokens | revoke-tokens
    option  = count=<n> | skip=<n> | rate=<0..1> | retry_after=<value> | method=<VERB> | latency=<seconds>
              | code=<error code> | process=<true|false>

Examples:

    FOYER_EMULATOR_FAULTS="graph:latency=0.5"
    FOYER_EMULATOR_FAULTS="graph/v1.0/me/events*:status=429,retry_after=0.5,count=3; acs:status=503,rate=0.1"
    FOYER_EMULATOR_FAULTS="/emails:send:timeout,count=1,process=true"

`process=true` on a timeout or drop means the emulator performs the request and then loses the
response, i.e. the side effect happened but the client cannot know (crash-between-send-and-commit).
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

GROUPS = ("entra", "graph", "acs")
KINDS = ("latency", "status", "timeout", "drop", "expire-tokens", "revoke-tokens")
#: Kinds that decide the response (at most one of these fires per request).
TERMINAL_KINDS = ("status", "timeout", "drop")


@dataclass
class Fault:
    """One injected misbehaviour. Fields left as None match everything."""

    kind: str
    group: str | None = None
    path: str | None = None
    method: str | None = None
    #: HTTP status for kind "status".
    status: int = 503
    #: Value of the Retry-After header (a string, so "0.5" and "2.128" stay exact); None = no header.
    retry_after: str | None = None
    #: Seconds: extra delay for "latency" (and before any other kind); how long a "timeout" hangs.
    latency: float = 0.0
    #: Fire for at most this many matching requests (None = unlimited).
    count: int | None = None
    #: Let this many matching requests through before firing.
    skip: int = 0
    #: Probability of firing for each matching request.
    rate: float = 1.0
    #: Service error code to put in the body (defaults per status and service).
    code: str | None = None
    #: For timeout/drop: perform the request before losing the response.
    process: bool = False
    id: int = 0
    #: How many times this fault has fired.
    hits: int = 0
    #: How many matching requests it has seen (including skipped ones).
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.group not in (None, *GROUPS):
            raise ValueError(f"unknown fault group {self.group!r}; expected one of {', '.join(GROUPS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        if self.kind == "status" and not 400 <= int(self.status) <= 599:
            raise ValueError("fault status must be an HTTP error status (400-599)")
        if self.method:
            self.method = self.method.upper()
        if self.retry_after is not None:
            self.retry_after = str(self.retry_after)

    @property
    def exhausted(self) -> bool:
        """True when a count-limited fault has fired its last time."""
        return self.count is not None and self.hits >= self.count

    def matches(self, group: str, method: str, path: str) -> bool:
        """Whether this fault applies to a request (ignoring count/skip/rate)."""
        if self.group and self.group != group:
            return False
        if self.method and self.method != method.upper():
            return False
        return not self.path or fnmatch.fnmatchcase(path, self.path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for the inspection API."""
        return asdict(self)


@dataclass
class FaultDecision:
    """What the fault layer decided for one request."""

    latency: float = 0.0
    terminal: Fault | None = None
    actions: list[Fault] = field(default_factory=list)
    fired: list[Fault] = field(default_factory=list)


class FaultSet:
    """The thread-safe set of active faults of one emulator."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._random = random.Random(seed)  # noqa: S311 - fault sampling, not security

    def add(self, fault: Fault | None = None, /, **fields: Any) -> Fault:
        """Add a fault (a `Fault` or its fields as keywords) and return it."""
        if fault is None:
            fault = Fault(**fields)
        elif fields:
            raise TypeError("pass either a Fault or keyword fields, not both")
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        logger.info("Emulator fault %s added: %s", fault.id, fault)
        return fault

    def add_spec(self, spec: str) -> list[Fault]:
        """Add every rule of a spec string (see module docstring); returns the faults added."""
        return [self.add(fault) for fault in parse_spec(spec)]

    def remove(self, fault_id: int) -> bool:
        """Remove one fault by id; False if there was none."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def decide(self, group: str, method: str, path: str) -> FaultDecision:
        """Evaluate the faults for one request and consume their counts atomically."""
        decision = FaultDecision()
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(group, method, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                if fault.kind in TERMINAL_KINDS and decision.terminal is not None:
                    continue  # one terminal outcome per request; later faults keep their budget
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                fault.hits += 1
                decision.fired.append(fault)
                if fault.kind == "latency":
                    decision.latency += fault.latency
                elif fault.kind in TERMINAL_KINDS:
                    decision.terminal = fault
                    if fault.kind != "timeout":
                        decision.latency += fault.latency
                else:
                    decision.actions.append(fault)
        return decision


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_spec(spec: str) -> list[Fault]:
    """Parse the compact fault syntax (see module docstring) into `Fault` objects.

    Raises ValueError with the offending rule, so a typo in FOYER_EMULATOR_FAULTS fails loudly.
    """
    faults: list[Fault] = []
    for raw_rule in spec.split(";"):
        rule = raw_rule.strip()
        if not rule:
            continue
        try:
            faults.append(_parse_rule(rule))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad fault rule {rule!r}: {exc}") from exc
    return faults


def _parse_rule(rule: str) -> Fault:
    # The target may itself contain ':' (e.g. "/emails:send"), so split at the last ':' that is
    # followed by a known action keyword.
    split_at = -1
    for kind in KINDS:
        for marker in (f":{kind}=", f":{kind},", f":{kind}"):
            index = rule.rfind(marker)
            if index != -1 and (index + len(marker) == len(rule) or marker[-1] in "=,"):
                split_at = max(split_at, index)
    if split_at == -1:
        raise ValueError("expected '<target>:<action>[,option=value...]'")
    target, body = rule[:split_at].strip(), rule[split_at + 1 :].strip()
    group: str | None = None
    path: str | None = None
    if target and target != "*":
        if target.startswith("/"):
            path = target
        else:
            name, slash, rest = target.partition("/")
            group = None if name == "*" else name
            path = "/" + rest if slash else None
    parts = [p.strip() for p in body.split(",") if p.strip()]
    action, _, action_value = parts[0].partition("=")
    fields: dict[str, Any] = {"kind": action, "group": group, "path": path}
    if action == "latency":
        fields["latency"] = float(action_value)
    elif action == "status":
        fields["status"] = int(action_value)
    elif action == "timeout" and action_value:
        fields["latency"] = float(action_value)
    elif action_value:
        raise ValueError(f"action {action!r} takes no value")
    for option in parts[1:]:
        key, eq, value = option.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise ValueError(f"option {option!r} needs a value")
        if key in ("count", "skip"):
            fields[key] = int(value)
        elif key in ("rate", "latency"):
            fields[key] = float(value)
        elif key in ("retry_after", "method", "code"):
            fields[key] = value.strip()
        elif key == "process":
            fields[key] = _parse_bool(value)
        else:
            raise ValueError(f"unknown option {key!r}")
    return Fault(**fields)
