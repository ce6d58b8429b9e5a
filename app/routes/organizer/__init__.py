"""Organizer pages under /manage."""

from app.routes.organizer import events, exports, insights, messages, questions, registrations, speakers, teams


def blueprints():
    return [events.bp, questions.bp, speakers.bp, teams.bp, registrations.bp, exports.bp, insights.bp, messages.bp]
