"""The declarative base, the metadata naming convention and shared column types."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

#: Stable constraint names so Alembic migrations do not depend on the database's own naming.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


#: Execution option that makes SQLite start the transaction with BEGIN IMMEDIATE.
IMMEDIATE_OPTION = "foyer_begin_immediate"


def begin_write() -> None:
    """Start the session's transaction as a writer.

    On SQLite this is `BEGIN IMMEDIATE`, so read-then-write units of work queue for the write lock
    (busy_timeout) instead of failing; PostgreSQL needs nothing. Call it before the unit's first query.
    """
    if not db.session().in_transaction():
        db.session.connection(execution_options={IMMEDIATE_OPTION: True})


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """An aware-UTC datetime on every database.

    PostgreSQL keeps `timestamptz`; SQLite keeps naive UTC text. Either way Python always sees an
    aware datetime in UTC, and naive values are refused so that a local time never sneaks in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
