"""Admin pages under /admin: staff users, branding, the Microsoft 365 connection and health."""

from app.routes.admin import branding, health, messages, microsoft, users


def blueprints():
    return [users.bp, branding.bp, microsoft.bp, microsoft.callback_bp, health.bp, messages.bp]
