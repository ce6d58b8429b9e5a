"""pytest plugin for `bench/suite_cpu.py`: one JSON line per test, in each process that runs tests.

Loaded with `-p suite_timeline` (this folder on PYTHONPATH); writes to FOYER_SUITE_TIMELINE_DIR, one file per
xdist worker. A line holds the test's id, its wall-clock start and end (setup and teardown included), the
CPU time of the process that ran it, and the CPU of the child processes it reaped meanwhile (a worker it
started and stopped, say). Without the directory set it records nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

_DIRECTORY = os.environ.get("FOYER_SUITE_TIMELINE_DIR")
_started: dict[str, tuple[float, float, float]] = {}


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def pytest_runtest_logstart(nodeid: str, location) -> None:
    if _DIRECTORY:
        _started[nodeid] = (time.time(), time.process_time(), _children_cpu())


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    started = _started.pop(nodeid, None)
    if not _DIRECTORY or started is None or ("PYTEST_XDIST_WORKER" not in os.environ and _xdist_controller()):
        return
    wall_start, cpu_start, children_start = started
    line = {"id": nodeid, "start": wall_start, "end": time.time(), "cpu": time.process_time() - cpu_start,
            "children": _children_cpu() - children_start}
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (Path(_DIRECTORY) / f"{name}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def _xdist_controller() -> bool:
    """Whether this process only hands tests to xdist workers (its log hooks echo theirs)."""
    return _config is not None and getattr(_config.option, "numprocesses", None) not in (None, 0)


_config = None


def pytest_configure(config) -> None:
    global _config
    _config = config
