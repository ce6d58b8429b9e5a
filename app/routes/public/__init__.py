"""Public, attendee-facing pages."""

from app.routes.public import after_event, embed, events, join, manage, registration


def blueprints():
    return [events.bp, registration.bp, embed.bp, manage.bp, join.bp, after_event.bp]
