"""Absolute links on PUBLIC_BASE_URL, for emails, invitations, feeds and webhooks: built from the app's
own URL map, never from the request's Host, so they work in the worker too.
"""

from __future__ import annotations

from flask import current_app

from app.models import Event


def public_url(endpoint: str, **values) -> str:
    """An absolute URL on PUBLIC_BASE_URL, never the request's Host (works without a request, too)."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["PUBLIC_BASE_URL"] + path


def event_url(event: Event) -> str:
    """The absolute public URL of an event page."""
    return public_url("public.event_GET", slug=event.slug)


def upload_url(filename: str | None) -> str | None:
    """The absolute URL of an uploaded image (a banner, the logo); None without one."""
    return public_url("public.upload_GET", filename=filename) if filename else None
