"""Foyer: a self-hosted event portal for organizations that run their events on Microsoft Teams."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask
from flask_babel import gettext
from sqlalchemy import event as sa_event
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app import logs
from app.config import Config
from app.forms import html_params
from app.models.base import IMMEDIATE_OPTION


def create_app(config_class: type[Config] = Config, *, instance_path: str | Path | None = None,
               environ: dict[str, str] | None = None, **overrides) -> Flask:
    """Build and wire the Foyer application. Importing this module does nothing else.

    `environ` replaces the process environment as the source of configuration (tests use it).
    """
    root = Path(__file__).resolve().parent.parent
    instance = Path(instance_path) if instance_path else root / "instance"
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    app.config.from_object(config_class(instance, environ))
    app.config.update(overrides)
    instance.mkdir(parents=True, exist_ok=True)

    logs.install(app.config["LOG_LEVEL"])
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]

    _init_extensions(app)
    html_params.install()  # WTForms renders attributes without a string.Formatter pass each
    _install_microsoft(app)
    connect_signal_receivers(app)
    # Ids in URLs fit a database integer: /users/99999999999999999999 is a 404, not an overflow.
    app.url_map.converters["int"] = DatabaseIdConverter
    _register_blueprints(app)
    logs.learn_token_routes(app.url_map)

    from app import cli, errors, i18n, scheduler, schema, web

    i18n.register(app)
    errors.register(app)
    web.register(app)
    cli.register(app)
    schema.register(app)
    scheduler.register(app)
    return app


def connect_signal_receivers(app: Flask) -> None:
    """Connect each package's reactions to what lower packages announce (see app/services/core/signals.py).

    Connecting twice is harmless (blinker keeps one connection per receiver), so every app built in one
    process shares them.
    """
    from app.services.after_event import followups
    from app.services.attendance import join_links
    from app.services.broadcast import fanout
    from app.services.core import signals
    from app.services.integrations import webhooks
    from app.services.messaging import staff
    from app.services.registration import registrations

    signals.event_capacity_changed.connect(registrations.on_event_capacity_changed)
    signals.event_updated.connect(fanout.on_event_updated)
    signals.event_unpublished.connect(join_links.on_event_unpublished)
    signals.event_cancelled.connect(join_links.on_event_cancelled)
    signals.event_cancelled.connect(fanout.on_event_cancelled)
    signals.microsoft_connection_broken.connect(staff.on_microsoft_connection_broken)
    signals.attendance_imported.connect(followups.on_attendance_imported)
    webhooks.connect_receivers(signals)


def _install_microsoft(app: Flask) -> None:
    """Microsoft clients and the outbox handlers that use them."""
    from app.services.attendance import attendance  # noqa: F401  (register their outbox handlers)
    from app.services.broadcast import fanout  # noqa: F401  (register their outbox handlers)
    from app.services.events import teams  # noqa: F401  (register their outbox handlers)
    from app.services.integrations import webhooks  # noqa: F401  (register their outbox handlers)
    from app.services.messaging import sending  # noqa: F401  (register their outbox handlers)
    from app.services.microsoft import wiring
    from app.services.registration import emails  # noqa: F401  (registers the invitation builder)

    wiring.install(app)


def _init_extensions(app: Flask) -> None:
    from app import (
        models,  # noqa: F401  (registers every model on the metadata)
        ratelimit,  # noqa: F401  (registers the database:// rate-limit storage)
        web,
    )
    from app.extensions import compress, csrf, db, htmx, limiter, login_manager
    from app.services.messaging.kinds import N_

    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    compress.init_app(app)
    app.view_functions["static"] = web.compressed_static(app.view_functions["static"])
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login_GET"
    login_manager.login_message = N_("Please sign in to continue.")
    login_manager.localize_callback = gettext  # the message is flashed in the visitor's language
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    from flask_sqlalchemy.session import Session

    from app.services.core import page_cache, settings

    page_cache.install(app, Session)
    settings.install(app, Session)

    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            _tune_sqlite(engine)

    login_manager.user_loader(_load_user)


def _load_user(session_id: str):
    """Flask-Login's loader: the session's user while its version is current and the session is younger
    than SESSION_LIFETIME_HOURS (counted from sign-in, so activity never stretches it).
    """
    from flask import current_app, session

    from app.routes.auth import SIGNED_IN_AT
    from app.services.accounts.accounts import load_user_from_session_id

    signed_in_at = session.get(SIGNED_IN_AT)
    lifetime = current_app.config["SESSION_LIFETIME_HOURS"] * 3600
    if not isinstance(signed_in_at, int | float) or not 0 <= time.time() - signed_in_at <= lifetime:
        return None
    return load_user_from_session_id(session_id)


def _tune_sqlite(engine) -> None:
    """WAL, a busy timeout, enforced foreign keys, secure delete, and transactions that SQLAlchemy controls.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; taking it over is the
    recipe from SQLAlchemy's SQLite dialect docs, and lets writers use BEGIN IMMEDIATE.
    """

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows are overwritten with zeros, so erased personal data does not linger in free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A writer takes the lock up front (see models.base.begin_write): a deferred transaction that
        # reads and then writes fails at once with "database is locked" when another writer is active.
        immediate = conn.get_execution_options().get(IMMEDIATE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class DatabaseIdConverter(IntegerConverter):
    """`<int:…>` limited to what an integer id column holds (PostgreSQL `integer`)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 (werkzeug's signature)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def _register_blueprints(app: Flask) -> None:
    from app.routes import admin, api, auth, organizer, public, webhooks

    for module in (auth, public, organizer, admin, api):
        for bp in module.blueprints():
            app.register_blueprint(bp)
    app.register_blueprint(webhooks.bp)
