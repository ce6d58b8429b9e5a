"""Admin pages under /admin."""

from app.routes.admin import users


def blueprints():
    return [users.bp]
