"""Admin pages under /admin: staff users, branding, the Microsoft 365 connection, privacy, the audit log and health."""

from app.routes.admin import audit, branding, health, messages, microsoft, privacy, users


def blueprints():
    return [users.bp, branding.bp, microsoft.bp, microsoft.callback_bp, health.bp, audit.bp, privacy.bp, messages.bp]
