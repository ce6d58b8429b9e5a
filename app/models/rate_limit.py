"""Rate-limit counters kept in Foyer's own database, so every web process shares them."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import db


class RateLimitCounter(db.Model):
    """One fixed-window counter: how many hits `key` has had in the window that ends at `expires_at`."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    #: Unix time (seconds) when the current window ends.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
