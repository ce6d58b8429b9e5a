"""Public, attendee-facing pages."""

from app.routes.public import events


def blueprints():
    return [events.bp]
