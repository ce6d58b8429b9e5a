"""The declarative base, the metadata naming convention and shared column types."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, DateTime, Dialect, MetaData, Table, TypeDecorator, bindparam, inspect, text
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached

if TYPE_CHECKING:
    from sqlalchemy.sql.selectable import TextualSelect

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


_Row = TypeVar("_Row")


@cache
def _insert_unless_exists_statement(table: Table, columns: tuple[str, ...], unique: str, primary_key: str,
                                    dialect: Dialect) -> TextualSelect:
    """Built once per table and set of columns, as text with typed parameters.

    SQLAlchemy's `insert(...).on_conflict_do_nothing()` (either dialect's) has no cache key, so it was
    compiled afresh on every execution, which cost more than the insert; text is compiled once, and the
    column types still convert each value (JSON, enums, times) as an ORM insert would.
    """
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(table.c[c].name) for c in columns)
    params = ", ".join(f":p{i}" for i in range(len(columns)))
    # Only the model's own table and column names (quoted) go into the text; every value is a parameter.
    sql = (f"INSERT INTO {quote(table.name)} ({names}) VALUES ({params}) "  # noqa: S608
           f"ON CONFLICT ({quote(table.c[unique].name)}) DO NOTHING RETURNING {quote(table.c[primary_key].name)}")
    typed = [bindparam(f"p{i}", type_=table.c[c].type) for i, c in enumerate(columns)]
    return text(sql).bindparams(*typed).columns(table.c[primary_key])


def insert_unless_exists(row: _Row, unique: str) -> _Row | None:
    """INSERT a new object's row unless a row with the same value in the unique column `unique` exists.

    One `INSERT … ON CONFLICT (unique) DO NOTHING RETURNING id`: no look-up first and no SAVEPOINT, and
    a concurrent transaction that inserts the same value first makes this one a no-op (PostgreSQL waits
    for it), while any other constraint still fails loudly. Returns the object, now persistent in the
    session (columns left to their defaults load on first use), or None when the row already existed.
    """
    state = inspect(row)
    mapper = state.mapper
    values = {prop.columns[0].key: state.dict[prop.key] for prop in mapper.column_attrs if prop.key in state.dict}
    (primary_key,) = mapper.primary_key
    db.session.flush()  # the rows it refers to first, as an ORM insert would
    for column, value in _defaults_left_out(mapper.local_table, values):
        values[column.key] = value
    columns = tuple(values)
    statement = _insert_unless_exists_statement(mapper.local_table, columns, unique, primary_key.key,
                                                db.session.get_bind().dialect)
    new_id = db.session.execute(statement, {f"p{i}": values[c] for i, c in enumerate(columns)}).scalar_one_or_none()
    if new_id is None:
        return None
    setattr(row, mapper.get_property_by_column(primary_key).key, new_id)
    make_transient_to_detached(row)
    db.session.add(row)
    return row


def unsaved(model: type[_Row], **values: Any) -> _Row:
    """An object of `model` as its INSERT would store it, for a page to show a row that does not exist yet:
    each column left out of `values` takes its Python-side default. Never add it to a session.
    """
    mapper = inspect(model)
    given = {mapper.get_property(name).columns[0].key for name in values}
    for column, value in _defaults_left_out(mapper.local_table, given):
        values.setdefault(mapper.get_property_by_column(column).key, value)
    return model(**values)


def _defaults_left_out(table: Table, given: Collection[str]) -> Iterator[tuple[Column, Any]]:
    """(column, value) for each column of `table` not in `given` (column keys) whose Python-side default
    an ORM insert would fill in.
    """
    for column in table.columns:
        default = column.default
        if default is None or column.key in given:
            continue
        if default.is_scalar:
            yield column, default.arg
        elif default.is_callable:
            yield column, default.arg(None)  # type: ignore[operator]  (wrapped: takes a context)
        else:
            raise TypeError(f"{column} has a default that cannot be applied outside an INSERT")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class LocalTimes:
    """Rows with a start and an end stored in UTC (`starts_at`, `ends_at`) and an IANA `timezone` to show
    them in: an event, and each session of a course (in its event's zone).
    """

    if TYPE_CHECKING:  # the mapped columns (or, on a session, properties) of the class it is mixed into
        starts_at: datetime
        ends_at: datetime
        timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def local_starts_at(self) -> datetime:
        return self.starts_at.astimezone(self.zone)

    @property
    def local_ends_at(self) -> datetime:
        return self.ends_at.astimezone(self.zone)


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
