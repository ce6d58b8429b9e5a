"""All models, imported here so that Alembic and the app see the whole metadata."""

from app.models.after_event import EventRecording, FeedbackResponse, RecordingsState, RecordingStatus
from app.models.audit import AuditEntry
from app.models.base import db, utcnow
from app.models.event import (
    Event,
    EventOrganizer,
    EventStatus,
    EventTag,
    EventText,
    ProvisioningStatus,
    Question,
    QuestionKind,
    Speaker,
)
from app.models.integrations import ApiScope, ApiToken, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.models.live import (
    LiveQuestion,
    LiveQuestionStatus,
    LiveQuestionVote,
    LiveSettings,
    Poll,
    PollOption,
    PollStatus,
    PollVote,
    PollVoteChoice,
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
    EventSeat,
    Registration,
    RegistrationAnswer,
    RegistrationState,
    RegistrationTransition,
)
from app.models.series import EventSeries
from app.models.session import EventSession, SessionAttendance
from app.models.setting import Setting
from app.models.user import Role, User

__all__ = [
    "EventSeries",
    "EventSession",
    "SessionAttendance",
    "ApiScope",
    "ApiToken",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
    "EventRecording",
    "FeedbackResponse",
    "RecordingsState",
    "RecordingStatus",
    "AuditEntry",
    "ACTIVE_STATES",
    "EventSeat",
    "Registration",
    "RegistrationAnswer",
    "RegistrationState",
    "RegistrationTransition",
    "AuthFlow",
    "ConnectionStatus",
    "MicrosoftConnection",
    "LiveQuestion",
    "LiveQuestionStatus",
    "LiveQuestionVote",
    "LiveSettings",
    "Poll",
    "PollOption",
    "PollStatus",
    "PollVote",
    "PollVoteChoice",
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
    "EventText",
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
