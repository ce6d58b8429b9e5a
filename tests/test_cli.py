"""`flask foyer …`, `flask worker` and `flask db` commands, run through Flask's CLI runner or as a process."""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.models import Role, User


def test_create_admin_from_the_shell(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["foyer", "create-admin", "Root@Example.org", "--name", "Root",
                                 "--password", "a long admin secret"])
    assert result.exit_code == 0, result.output
    assert "Admin root@example.org created." in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "root@example.org"))
        assert user.role == Role.admin and user.password_hash.startswith("$argon2id$")


def test_create_admin_refuses_a_duplicate_and_a_short_password(app, make_user):
    make_user("taken@example.org")
    runner = app.test_cli_runner()
    dup = runner.invoke(args=["foyer", "create-admin", "taken@example.org", "--password", "a long admin secret"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    short = runner.invoke(args=["foyer", "create-admin", "new@example.org", "--password", "short"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output


def test_worker_once_runs_every_job_and_leaves_a_heartbeat(app, client, auth):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    auth.login_as_admin()
    page = client.get("/admin/health/").get_data(as_text=True)
    assert "Running" in page  # the heartbeat is fresh


def test_help_lists_foyer_commands(app):
    result = app.test_cli_runner().invoke(args=["--help"])
    assert "foyer" in result.output and "worker" in result.output and "db" in result.output
    sub = app.test_cli_runner().invoke(args=["foyer", "--help"])
    assert "create-admin" in sub.output and "rotate-key" in sub.output


def test_worker_cancels_unconfirmed_holds_once_their_link_lapses(app, client, make_user, make_event):
    from datetime import UTC, datetime, timedelta

    from app.models import EventStatus, Registration, RegistrationState

    owner = make_user("owner@example.org")
    event = make_event(owner, status=EventStatus.published, published_at=datetime.now(UTC),
                       require_email_verification=True)
    for email in ("stale@example.org", "fresh@example.org"):
        response = client.submit(f"/events/{event.slug}/register", {
            "first_name": "Ada", "last_name": "Lovelace", "email": email, "timezone": "Europe/Berlin",
            "consent": "y"})
        assert response.status_code == 303
    with app.app_context():
        stale = db.session.scalar(select(Registration).where(Registration.email == "stale@example.org"))
        assert stale.state == RegistrationState.unverified
        stale.verify_expires_at = datetime.now(UTC) - timedelta(minutes=1)  # the link lapsed a minute ago
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        states = dict(db.session.execute(select(Registration.email, Registration.state)).all())
        assert states == {"stale@example.org": RegistrationState.cancelled,
                          "fresh@example.org": RegistrationState.unverified}
        stale = db.session.scalar(select(Registration).where(Registration.email == "stale@example.org"))
        assert stale.verify_token_hash is None
        assert stale.transitions[-1].note == "Email address not confirmed in time"


def test_a_web_process_leaves_the_migrations_unloaded_and_flask_db_still_migrates(tmp_path):
    """Alembic (with Mako and Pygments, ~8 MB) is loaded by `flask db` alone, never by a web worker; nor are
    APScheduler and the ACS email and SMS SDKs, which only `flask worker` uses (~3.6 MB), nor the ACS identity
    SDK before a call is opened (~70 ms of every start)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": "C.UTF-8", "DATABASE_URL": f"sqlite:///{tmp_path / 'foyer.db'}", "SECRET_KEY": "x" * 32}
    root = Path(__file__).resolve().parents[1]

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True,  # noqa: S603
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    loaded = run("-c", "import sys, wsgi; print(sorted({'alembic', 'mako', 'pygments', 'flask_migrate', 'apscheduler', "
                       "'azure.communication.email', 'azure.communication.sms', 'azure.communication.identity'} "
                       "& set(sys.modules)))")
    assert loaded.strip() == "[]"
    run("-m", "flask", "--app", "wsgi", "db", "upgrade")
    assert "(head)" in run("-m", "flask", "--app", "wsgi", "db", "current")
    assert "Migration script directory" in run("-m", "flask", "--app", "wsgi", "db", "--help")
