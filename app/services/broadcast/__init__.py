"""Organizer messages to a segment of an event's registrations, and event-wide notices."""
