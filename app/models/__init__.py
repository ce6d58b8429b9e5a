"""All models, imported here so that Alembic and the app see the whole metadata."""

from app.models.audit import AuditEntry
from app.models.base import db, utcnow
from app.models.event import (
    Event,
    EventOrganizer,
    EventStatus,
    EventTag,
    ProvisioningStatus,
    Question,
    QuestionKind,
    Speaker,
)
from app.models.message import (
    DELIVERED_STATUSES,
    Message,
    MessageChannel,
    MessageDeliveryReport,
    MessageOverride,
    MessageStatus,
)
from app.models.microsoft import AuthFlow, ConnectionStatus, MicrosoftConnection
from app.models.outbox import OutboxItem, OutboxStatus
from app.models.rate_limit import RateLimitCounter
from app.models.registration import (
    ACTIVE_STATES,
    Registration,
    RegistrationAnswer,
    RegistrationState,
    RegistrationTransition,
)
from app.models.setting import Setting
from app.models.user import Role, User

__all__ = [
    "AuditEntry",
    "ACTIVE_STATES",
    "Registration",
    "RegistrationAnswer",
    "RegistrationState",
    "RegistrationTransition",
    "AuthFlow",
    "ConnectionStatus",
    "MicrosoftConnection",
    "Message",
    "MessageChannel",
    "MessageOverride",
    "MessageStatus",
    "MessageDeliveryReport",
    "DELIVERED_STATUSES",
    "OutboxItem",
    "OutboxStatus",
    "RateLimitCounter",
    "Event",
    "EventOrganizer",
    "EventStatus",
    "EventTag",
    "ProvisioningStatus",
    "Question",
    "QuestionKind",
    "Role",
    "Setting",
    "Speaker",
    "User",
    "db",
    "utcnow",
]
