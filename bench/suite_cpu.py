"""Where the test suite's time goes: CPU by kind of process, busy share of the cores, slowest tests (not run in CI).

    bench/suite_cpu.py                                   # `CI=true make test`, as .ci/run runs it
    bench/suite_cpu.py -- make test-fast                 # any command that runs pytest
    bench/suite_cpu.py --top 30 -- make test PYTEST_ARGS="tests/browser"

The suite is CPU-bound on a 2-core machine (four pytest workers keep both cores busy), so its wall time is
the CPU it needs over the cores it has: this bench says whose CPU that is. While the command runs it reads
every process's CPU time from /proc twice a second (processes that ran before it count only what they used
since), and the cores' busy share from /proc/stat; a pytest plugin (`bench/suite_plugin/suite_timeline.py`)
records each test's wall time, the CPU of the pytest process that ran it, and the CPU of the children it
reaped. It prints the CPU by kind of process (the pytest workers, Chromium, `flask worker`, PostgreSQL…),
the busy share per 30 seconds, the pytest workers' CPU by test folder, and the tests that cost most.

A process that ends between two readings loses up to half a second of its CPU here; the kinds are told
apart by command line. Figures are for one machine and one run: compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402  (puts the repository on sys.path)

PLUGIN_DIR = c.BENCH / "suite_plugin"
SAMPLE_SECONDS = 0.5
WINDOW_SECONDS = 30
PYTEST_SUMMARY = re.compile(r"(\d+) passed.* in ([\d.]+)s")

#: Kinds of process, by the first pattern their command line (or name) matches.
KINDS = (
    ("chromium", re.compile(r"chrom", re.I)),
    ("postgresql", re.compile(r"^postgres|postgres:")),
    ("flask worker", re.compile(r"flask.* worker\b")),
    ("flask db", re.compile(r"flask.* db ")),
    ("flask run", re.compile(r"flask.* run\b")),
    ("emulator", re.compile(r"flask.* emulator\b")),
    ("gunicorn", re.compile(r"gunicorn")),
    # xdist's workers are `python -c "import sys;exec(eval(sys.stdin.readline()))"` (execnet).
    ("pytest", re.compile(r"pytest|exec\(eval\(sys\.stdin")),
    ("npm, node, esbuild", re.compile(r"\bnode\b|npm|esbuild")),
    ("other python", re.compile(r"python")),
)


def kind_of(name: str, command: str) -> str:
    for kind, pattern in KINDS:
        if pattern.search(command) or pattern.search(name):
            return kind
    return "other"


class ProcSampler(threading.Thread):
    """Reads every process's CPU time until stopped; `by_kind()` sums what each kind used meanwhile."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._done = threading.Event()
        self.processes: dict[tuple[str, str], list] = {}  # (pid, start time) -> [name, command, first, last]
        self.busy: list[tuple[float, int, int]] = []  # (time, idle ticks, all ticks) per sample

    def run(self) -> None:
        first = True
        previous = _cpu_ticks()
        while not self._done.is_set():
            self._read_processes(first)
            first = False
            current = _cpu_ticks()
            self.busy.append((time.time(), current[0] - previous[0], current[1] - previous[1]))
            previous = current
            self._done.wait(SAMPLE_SECONDS)
        self._read_processes(False)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _read_processes(self, first: bool) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                name, fields = c.process_stat(pid)
                cpu = c.cpu_seconds_of(fields)
                key = (pid, fields[19])  # the pid and the process's start time: pids are reused
                if key in self.processes:
                    self.processes[key][3] = cpu
                    continue
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                # A process running before the command counts from now; a new one from its start.
                self.processes[key] = [name, command[:300], cpu if first else 0.0, cpu]
            except (OSError, ValueError, IndexError):
                continue  # it ended while being read

    def by_kind(self) -> tuple[Counter, Counter]:
        cpu, count = Counter(), Counter()
        for (pid, _), (name, command, first, last) in self.processes.items():
            if last > first and pid != str(os.getpid()):  # not this bench's own readings
                kind = kind_of(name, command)
                cpu[kind] += last - first
                count[kind] += 1
        return cpu, count


def _cpu_ticks() -> tuple[int, int]:
    """(idle, all) ticks of every core since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return values[3] + values[4], sum(values)


def busy_windows(samples: list[tuple[float, int, int]], began: float) -> dict[str, float]:
    """The cores' busy share in each WINDOW_SECONDS from `began`."""
    windows: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for at, idle, total in samples:
        window = windows[int((at - began) // WINDOW_SECONDS) * WINDOW_SECONDS]
        window[0] += idle
        window[1] += total
    return {f"{start}s": round(1 - idle / total, 2) for start, (idle, total) in sorted(windows.items()) if total}


def read_tests(directory: Path) -> list[dict]:
    tests = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            tests.append({**json.loads(line), "worker": path.stem})
    return tests


def folder_of(test_id: str) -> str:
    parts = test_id.split("::", 1)[0].split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


def report(tests: list[dict], cpu: Counter, count: Counter, windows, *, wall: float, pytest_seconds: str | None,
           top: int) -> dict:
    total = sum(cpu.values())
    folders: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for test in tests:
        folder = folders[folder_of(test["id"])]
        folder[0] += test["cpu"]
        folder[1] += test["end"] - test["start"]
        folder[2] += 1
    workers = defaultdict(float)
    for test in tests:
        workers[test["worker"]] = max(workers[test["worker"]], test["end"])
    last_end = max(workers.values(), default=0.0)
    return {
        "command_wall_seconds": round(wall, 1),
        "pytest_seconds": pytest_seconds,
        "cpu_seconds": round(total, 1),
        "cpu_by_kind": {kind: {"seconds": round(seconds, 1), "share": round(seconds / total, 3) if total else 0,
                               "processes": count[kind]} for kind, seconds in cpu.most_common()},
        "busy_share_per_30s": windows,
        "workers_idle_before_the_last_ended_seconds": {worker: round(last_end - end, 1)
                                                       for worker, end in sorted(workers.items())},
        "tests": len(tests),
        "pytest_cpu_by_folder": {name: {"cpu_seconds": round(v[0], 1), "wall_seconds": round(v[1], 1), "tests": v[2]}
                                 for name, v in sorted(folders.items(), key=lambda kv: -kv[1][0])},
        "most_cpu": [_brief(t) for t in sorted(tests, key=lambda t: -(t["cpu"] + t["children"]))[:top]],
        "longest": [_brief(t) for t in sorted(tests, key=lambda t: t["start"] - t["end"])[:top]],
    }


def _brief(test: dict) -> dict:
    return {"id": test["id"], "cpu": round(test["cpu"], 2), "children_cpu": round(test["children"], 2),
            "wall": round(test["end"] - test["start"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15, help="how many of the costliest and longest tests to list")
    parser.add_argument("command", nargs="*", help="the command to run (default: make test), after --")
    args = parser.parse_args()
    command = args.command or ["make", "test"]

    with tempfile.TemporaryDirectory(prefix="foyer-suite-") as timeline:
        environ = {**os.environ, "CI": os.environ.get("CI", "true"), "FOYER_SUITE_TIMELINE_DIR": timeline,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")])),
                   "PYTEST_ADDOPTS": " ".join(filter(None, [os.environ.get("PYTEST_ADDOPTS"), "-p suite_timeline"]))}
        sampler = ProcSampler()
        began = time.time()
        sampler.start()
        completed = subprocess.run(command, cwd=c.ROOT, env=environ, capture_output=True, text=True)  # noqa: S603
        wall = time.time() - began
        sampler.stop()
        tests = read_tests(Path(timeline))

    output = completed.stdout + completed.stderr
    found = PYTEST_SUMMARY.findall(output)
    cpu, count = sampler.by_kind()
    result = report(tests, cpu, count, busy_windows(sampler.busy, began), wall=wall,
                    pytest_seconds=found[-1][1] if found else None, top=args.top)
    result["exit_status"] = completed.returncode
    result["machine"] = c.machine()
    shares = ", ".join(f"{kind} {v['seconds']:.0f} s ({v['share']:.0%})" for kind, v in result["cpu_by_kind"].items()
                       if v["share"] >= 0.01)
    c.emit(result, f"{' '.join(command)}: exit {completed.returncode}, {wall:.0f} s ({result['pytest_seconds'] or '?'} "
                   f"s of pytest), {len(tests)} tests; {result['cpu_seconds']:.0f} s of CPU: {shares}")
    if completed.returncode:
        print(output[-3000:], file=sys.stderr)
        sys.exit(completed.returncode)


if __name__ == "__main__":
    main()
