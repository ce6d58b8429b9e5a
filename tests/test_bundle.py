"""The join page's call bundle builds reproducibly from package.json + package-lock.json: the pinned
UI Library (1.34.x) with React 18 and the matching ACS packages, byte-identical on every build."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _lock(repo_root) -> dict:
    return json.loads((repo_root / "package-lock.json").read_text(encoding="utf-8"))["packages"]


def test_lockfile_pins_the_ui_library_with_react_18_and_matching_acs_packages(repo_root):
    packages = _lock(repo_root)
    version = {name: packages[f"node_modules/{name}"]["version"] for name in (
        "@azure/communication-react", "@azure/communication-calling", "@azure/communication-chat",
        "@azure/communication-common", "react", "react-dom", "esbuild")}
    assert version["@azure/communication-react"].startswith("1.34.")
    assert version["react"].startswith("18.") and version["react-dom"] == version["react"]
    peers = packages["node_modules/@azure/communication-react"]["peerDependencies"]
    assert peers["@azure/communication-calling"] == "^1.40.1"
    assert version["@azure/communication-calling"].startswith("1.")
    assert int(version["@azure/communication-calling"].split(".")[1]) >= 40
    assert version["@azure/communication-chat"] >= "1.6.0"
    # package.json asks for exactly what the lockfile holds (no ranges that drift).
    manifest = json.loads((repo_root / "package.json").read_text(encoding="utf-8"))
    for name, wanted in {**manifest["dependencies"], **manifest["devDependencies"]}.items():
        assert packages[f"node_modules/{name}"]["version"] == wanted, name


def test_bundle_builds_byte_identically_from_the_lockfile(repo_root, tmp_path):
    esbuild = repo_root / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        message = "node_modules is missing: run `npm ci` (or `make test`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    script = json.loads((repo_root / "package.json").read_text(encoding="utf-8"))["scripts"]["build"]
    args = shlex.split(script)
    assert args[0] == "esbuild" and "--outfile=app/static/build/join-call.js" in args
    digests = []
    for run in ("first", "second"):
        out = tmp_path / run / "join-call.js"  # the same name: the bundle links its LEGAL.txt by name
        command = [str(esbuild), *[f"--outfile={out}" if a.startswith("--outfile=") else a for a in args[1:]]]
        subprocess.run(command, cwd=repo_root, check=True, capture_output=True, timeout=300)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        text = out.read_text(encoding="utf-8")
        assert "window.FoyerCall" in text or "FoyerCall=" in text
        assert '"1.34.0"' in text  # the UI Library's own version string
    assert digests[0] == digests[1]
