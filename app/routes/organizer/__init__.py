"""Organizer pages under /manage."""

from app.routes.organizer import events, questions, speakers


def blueprints():
    return [events.bp, questions.bp, speakers.bp]
