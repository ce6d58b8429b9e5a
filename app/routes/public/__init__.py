"""Public, attendee-facing pages."""

from app.routes.public import events, manage, registration


def blueprints():
    return [events.bp, registration.bp, manage.bp]
