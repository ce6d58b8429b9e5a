"""Friendly error pages: every error renders the site's own page, never a stack trace."""

import pytest
from flask import abort
from werkzeug.exceptions import InternalServerError

from app import create_app
from app.config import TestConfig

pytestmark = pytest.mark.db_agnostic  # see tests/conftest.py


@pytest.fixture
def broken_app(database_url, tmp_path):
    """An app with routes that fail on purpose (added before its first request)."""
    application = create_app(TestConfig, instance_path=tmp_path, SQLALCHEMY_DATABASE_URI=database_url)
    application.config["PROPAGATE_EXCEPTIONS"] = False

    @application.get("/boom")
    def boom():
        raise RuntimeError("a bug")

    @application.get("/forbidden")
    def forbidden():
        abort(403)

    yield application
    from app.extensions import db

    with application.app_context():
        db.engine.dispose()


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "We could not find that page" in response.get_data(as_text=True)


def test_wrong_method_is_405_with_allow_header(client):
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "That action is not available here." in response.get_data(as_text=True)


def test_too_large_upload_is_413(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    response = client.post("/login", data={"email": "x" * 4096})
    assert response.status_code == 413
    body = response.get_data(as_text=True)
    assert "That upload is larger than 1 KB." in body
    assert "Go back: the form still holds what you typed." in body


def test_unexpected_error_is_a_friendly_500_without_details(broken_app, caplog):
    response = broken_app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "An unexpected error happened on our side" in body
    assert "a bug" not in body and "Traceback" not in body
    assert any("Unhandled error on GET /boom" in r.getMessage() for r in caplog.records)


def test_forbidden_is_a_friendly_403(broken_app):
    response = broken_app.test_client().get("/forbidden")
    assert response.status_code == 403
    assert "You do not have permission to do that." in response.get_data(as_text=True)


def test_internal_server_error_instances_render_the_500_page(broken_app):
    with broken_app.test_request_context("/"):
        handler = broken_app.error_handler_spec[None][500][InternalServerError]
        body, code = handler(InternalServerError())
    assert code == 500 and "Something went wrong" in body


def test_security_headers_on_every_page(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_staff_pages_are_not_cached(client, auth):
    auth.login_as_organizer()
    response = client.get("/manage/events/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
