"""Organizer pages under /manage."""

from app.routes.organizer import (
    after_event,
    events,
    exports,
    insights,
    live,
    messages,
    questions,
    registrations,
    series,
    sessions,
    speakers,
    teams,
)


def blueprints():
    return [events.bp, sessions.bp, series.bp, questions.bp, speakers.bp, teams.bp, registrations.bp, exports.bp,
            insights.bp, messages.bp, live.bp, after_event.bp]
