"""Site settings are kept per process for SETTINGS_CACHE_SECONDS: a page view does not read them again,
a save shows at once in the process that made it, and another process's save within those seconds."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, update

from app.extensions import db
from app.models import Setting
from app.services.core import settings
from tests.clocks import stand_in_clock
from tests.routes.admin.test_admin_branding import _save as save_branding


@contextmanager
def settings_reads(app):
    """Count the statements that read the settings table while the block runs."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM settings" in statement:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def short_cache(app):
    cache = settings.settings_cache(app)
    kept = cache.max_age
    yield cache
    cache.max_age = kept


def test_views_within_the_window_read_no_settings(app, client):
    assert client.get("/privacy").status_code == 200  # reads the branding and the privacy notice once
    with settings_reads(app) as reads:
        for _ in range(3):
            assert client.get("/privacy").status_code == 200
            assert client.get("/").status_code == 200
    assert reads == []


def test_staff_pages_within_the_window_read_no_settings(app, client, auth, make_event):
    """An organizer's event page shows the email quota's drain time and the retention default too."""
    admin = auth.login_as_admin()
    event = make_event(admin)
    pages = ["/manage/events/", f"/manage/events/{event.id}", "/admin/messages", "/admin/privacy/"]
    for page in pages:
        assert client.get(page).status_code == 200, page
    with settings_reads(app) as reads:
        for page in pages:
            assert client.get(page).status_code == 200, page
    assert reads == []


def test_with_the_cache_off_every_view_reads_them(app, client, short_cache):
    short_cache.max_age = 0
    with settings_reads(app) as reads:
        client.get("/privacy")
        client.get("/privacy")
    assert len(reads) >= 4  # branding and privacy notice, each view


def test_a_save_shows_at_once_in_the_process_that_made_it(app, client, auth):
    assert "Acme Events" not in _text(client.get("/"))
    auth.login_as_admin()
    assert save_branding(client, site_name="Acme Events").status_code == 303
    assert "<span>Acme Events</span>" in _text(client.get("/"))
    assert save_branding(client, site_name="Acme Meetups").status_code == 303
    assert "<span>Acme Meetups</span>" in _text(client.get("/"))


def test_a_change_made_elsewhere_shows_once_the_window_has_passed(app, client, auth, short_cache):
    auth.login_as_admin()
    assert save_branding(client, site_name="Acme Events").status_code == 303
    short_cache.max_age = 0.5
    # The cache's clock moves only when the test says, so a slow machine's own delays cannot age the copy.
    with stand_in_clock(short_cache) as wait:
        assert "<span>Acme Events</span>" in _text(client.get("/"))
        # Another process saves: the row changes without this process's session seeing a Setting object.
        with app.app_context():
            value = dict(db.session.get(Setting, "branding").value, site_name="Other Name")
            db.session.remove()
            with db.engine.begin() as conn:
                conn.execute(update(Setting).where(Setting.key == "branding").values(value=value))
        assert "<span>Acme Events</span>" in _text(client.get("/"))  # still this process's copy
        wait(0.6)
        assert "<span>Other Name</span>" in _text(client.get("/"))


def test_a_rolled_back_change_is_not_kept(app, short_cache):
    with app.test_request_context():
        settings.save_branding(settings.Branding(site_name="Never saved"))
        db.session.flush()
        assert settings.get_branding().site_name == "Never saved"  # the transaction sees its own change
        db.session.rollback()
    with app.test_request_context():
        assert settings.get_branding().site_name != "Never saved"


def test_a_request_reads_each_setting_once_and_sees_its_own_change(app, short_cache):
    """A page asks for the languages a dozen times (each translated event title does): one read per
    request even with the process's copy off, and a change the request makes is what it reads next."""
    short_cache.max_age = 0
    with app.test_request_context():
        with settings_reads(app) as reads:
            for _ in range(5):
                settings.get_languages()
                settings.get_branding()
                settings.text_language()
        assert len(reads) == 2
        settings.store(settings.LANGUAGES_SETTING, {"offered": ["en", "de"], "default": "de"})
        assert settings.get_languages() == settings.Languages(("en", "de"), "de")
        assert settings.get_languages().default == "de"  # not the request's copy from before the change
        db.session.rollback()
        assert settings.get_languages().default == "en"  # nor one from inside the rolled-back change
