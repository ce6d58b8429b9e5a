"""Attending an event: personal join links, ACS sessions, join records and attendance import."""
