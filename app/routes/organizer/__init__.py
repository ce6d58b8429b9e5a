"""Organizer pages under /manage."""

from app.routes.organizer import events


def blueprints():
    return [events.bp]
