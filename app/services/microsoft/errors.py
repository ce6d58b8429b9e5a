"""One domain error type per remote service."""

from __future__ import annotations


class MicrosoftError(Exception):
    """A call to Microsoft failed. `transient` errors are worth retrying after `retry_after` seconds."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", transient: bool = False,
                 retry_after: float | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.transient = transient
        self.retry_after = retry_after
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        if self.request_id:
            parts.append(f"request-id {self.request_id}")
        return " · ".join(parts)


class GraphError(MicrosoftError):
    """Microsoft Graph answered with an error or could not be reached."""


class AuthError(MicrosoftError):
    """Entra ID could not give an access token."""


class ReconnectRequired(AuthError):
    """The service account's refresh token was refused (revoked, expired, MFA): sign in again."""


class ConsentRequired(AuthError):
    """The service account never consented to (or an admin revoked) scopes asked for beyond the basic ones,
    such as the recording permissions: that feature waits for a reconnect, the rest of the connection works.
    """


class NotConnected(AuthError):
    """No service account has been connected yet."""


class AcsError(MicrosoftError):
    """Azure Communication Services answered with an error or could not be reached."""
