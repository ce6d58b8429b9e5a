"""Domain exceptions that routes turn into form or page errors."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain refused the operation; `field` names the form field at fault, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotAllowed(DomainError):
    """The actor may not do this."""


class Conflict(DomainError):
    """The operation clashes with the current state (duplicate slug, already cancelled, ...)."""
