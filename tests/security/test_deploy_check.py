"""`flask foyer deploy-check` loads the production configuration (not the test one) and fails on debug
mode, a missing or default secret key, missing keys for secrets at rest, a missing or plain-http
PUBLIC_BASE_URL and insecure cookies; a proper configuration passes."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import Config
from app.services.core.crypto import generate_key

GOOD = {
    "SECRET_KEY": "k" * 24 + "Zq8v7wX2pL0sN4mB9cD1eF3g",
    "PUBLIC_BASE_URL": "https://events.example.org",
    "SESSION_COOKIE_SECURE": "true",
    "OUTBOX_DRAIN_AFTER_REQUEST": "false",
}


def _check(tmp_path, environ: dict[str, str], **overrides):
    environ = {"DATABASE_URL": f"sqlite:///{tmp_path / 'foyer.db'}", **environ}
    app = create_app(Config, instance_path=tmp_path / "instance", environ=environ, **overrides)
    return app.test_cli_runner().invoke(args=["foyer", "deploy-check"])


@pytest.fixture
def good() -> dict[str, str]:
    return GOOD | {"ENCRYPTION_KEYS": generate_key()}


def test_a_production_configuration_passes_with_advice(tmp_path, good):
    result = _check(tmp_path, good)
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output and "Ready for production." in result.output
    # SQLite and the emulator are allowed, but said.
    assert result.output.count("WARN") == 2 and "Microsoft is emulated" in result.output


def test_postgresql_drops_the_database_warning(tmp_path, good):
    app = create_app(Config, instance_path=tmp_path / "instance", environ=good,
                     SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    result = app.test_cli_runner().invoke(args=["foyer", "deploy-check"])
    assert result.exit_code == 0, result.output
    assert result.output.count("WARN") == 1 and "SQLite" not in result.output


def test_per_process_rate_limits_are_warned_about(tmp_path, good):
    result = _check(tmp_path, good | {"RATELIMIT_STORAGE_URI": "memory://"})
    assert result.exit_code == 0, result.output
    assert "Rate limits are counted per process" in result.output


def test_microsoft_work_in_web_processes_is_warned_about(tmp_path, good):
    result = _check(tmp_path, good | {"OUTBOX_DRAIN_AFTER_REQUEST": "true"})
    assert result.exit_code == 0, result.output
    assert result.output.count("WARN") == 3 and "OUTBOX_DRAIN_AFTER_REQUEST" in result.output


@pytest.mark.parametrize(("change", "overrides", "expected"), [
    pytest.param({"FLASK_DEBUG": "1"}, {}, "Debug mode is on", id="debug"),
    pytest.param({"SECRET_KEY": ""}, {}, "SECRET_KEY is not set", id="secret-key-missing"),
    pytest.param({"SECRET_KEY": "changeme"}, {}, "SECRET_KEY is a default or too short", id="secret-key-default"),
    pytest.param({"SECRET_KEY": "short-key"}, {}, "SECRET_KEY is a default or too short", id="secret-key-short"),
    pytest.param({"ENCRYPTION_KEYS": ""}, {}, "ENCRYPTION_KEYS is not set", id="encryption-keys-missing"),
    pytest.param({"PUBLIC_BASE_URL": ""}, {}, "PUBLIC_BASE_URL is not set", id="base-url-missing"),
    pytest.param({"PUBLIC_BASE_URL": "http://events.example.org"}, {}, "is not https", id="base-url-http"),
    pytest.param({"SESSION_COOKIE_SECURE": "false"}, {}, "Cookies are not marked Secure", id="insecure-cookies"),
    pytest.param({"RATELIMIT_ENABLED": "false"}, {}, "Rate limits are turned off", id="no-rate-limits"),
])
def test_each_unsafe_setting_fails_the_check(tmp_path, monkeypatch, good, change, overrides, expected):
    change = dict(change)
    if "FLASK_DEBUG" in change:
        monkeypatch.setenv("FLASK_DEBUG", change.pop("FLASK_DEBUG"))  # Flask's CLI reads it from the process
    environ = {k: v for k, v in (good | change).items() if v != ""}
    result = _check(tmp_path, environ, **overrides)
    assert result.exit_code == 1, result.output
    failures = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 1 and expected in failures[0], result.output
    assert "problem(s) to fix before going live" in result.output


def test_the_check_never_prints_a_secret(tmp_path, good):
    result = _check(tmp_path, good | {"SECRET_KEY": "changeme"})
    assert good["ENCRYPTION_KEYS"] not in result.output and "changeme" not in result.output
