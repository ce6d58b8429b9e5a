"""Admin pages under /admin: staff users and branding."""

from app.routes.admin import branding, users


def blueprints():
    return [users.bp, branding.bp]
