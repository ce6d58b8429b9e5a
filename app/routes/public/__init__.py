"""Public, attendee-facing pages."""

from app.routes.public import events, registration


def blueprints():
    return [events.bp, registration.bp]
