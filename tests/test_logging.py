"""What Foyer prints: libraries that talk at INFO (the Azure SDK's request and response headers,
APScheduler's jobs, Alembic's context on every start) are quiet unless LOG_LEVEL is DEBUG."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import config as foyer_config
from app import create_app, logs

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURE_HTTP = "azure.core.pipeline.policies.http_logging_policy"


@pytest.fixture
def restore_levels():
    yield
    logs.quiet_chatty_libraries("INFO")


@pytest.mark.parametrize("level", ["INFO", "WARNING", "DEBUG"])
def test_chatty_libraries_speak_only_when_debugging(tmp_path, restore_levels, level):
    create_app(foyer_config.TestConfig, instance_path=tmp_path, LOG_LEVEL=level,
               SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'foyer.db'}")
    for name in (AZURE_HTTP, "apscheduler.scheduler", "alembic.runtime.migration"):
        assert logging.getLogger(name).isEnabledFor(logging.INFO) is (level == "DEBUG"), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def _upgrade(tmp_path: Path, level: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": "C.UTF-8", "DATABASE_URL": f"sqlite:///{tmp_path / f'{level}.db'}", "SECRET_KEY": "x" * 32,
           "LOG_LEVEL": level}
    done = subprocess.run(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_database_upgrade_is_quiet_on_every_start(tmp_path):
    assert "alembic" not in _upgrade(tmp_path, "INFO")
    assert "Running upgrade" in _upgrade(tmp_path, "DEBUG")
