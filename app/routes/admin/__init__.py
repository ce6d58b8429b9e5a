"""Admin pages under /admin: staff users, branding, languages, the Microsoft 365 connection, privacy, the audit log
and health.
"""

from app.routes.admin import (
    api_tokens,
    audit,
    branding,
    health,
    languages,
    messages,
    microsoft,
    privacy,
    users,
    webhooks,
)


def blueprints():
    return [users.bp, branding.bp, languages.bp, microsoft.bp, microsoft.callback_bp, health.bp, audit.bp, privacy.bp,
            messages.bp, api_tokens.bp, webhooks.bp]
