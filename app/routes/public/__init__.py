"""Public, attendee-facing pages."""

from app.routes.public import events, join, manage, registration


def blueprints():
    return [events.bp, registration.bp, manage.bp, join.bp]
