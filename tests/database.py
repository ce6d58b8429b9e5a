"""Emptying the test database between tests (shared by the HTTP and the browser fixtures)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import TextClause, select, text
from sqlalchemy import event as sa_event

from app.extensions import db, limiter


def empty_database(app: Flask) -> None:
    """Delete every row of every table and forget rate-limit counters. Tests commit for real."""
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    # DELETE, children first, on both databases: on tables of a few rows it takes a few milliseconds,
    # where PostgreSQL's TRUNCATE replaces every table's and index's files (tenths of a second).
    deletes = [f'DELETE FROM "{table}"' for table in tables]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One round trip (psycopg sends a parameterless script as one query); ids start at 1 again, as
            # TRUNCATE … RESTART IDENTITY did.
            conn.exec_driver_sql("; ".join([*deletes, "SELECT setval(c.oid, 1, false) FROM pg_class c "
                                            "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"]))
        else:
            for delete in deletes:  # sqlite3 runs one statement per call; in process, each costs microseconds
                conn.exec_driver_sql(delete)
    limiter.reset()


def every_row_as_text(*, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Every row of every table (bar `exclude`), one line each, the way a dump shows it. Needs an app context."""
    lines = []
    for table in db.metadata.sorted_tables:
        if table.name in exclude:
            continue
        for row in db.session.execute(select(table)).all():
            lines.append(f"{table.name}: {json.dumps([str(v) for v in row], ensure_ascii=False)}")
    return lines


def fingerprint(*, exclude: frozenset[str] = frozenset()) -> str:
    """A digest of every row of every table (bar `exclude`): equal digests mean no row changed. Needs an app
    context.

    One statement reads every row as text (a query per table costs dozens of round trips on PostgreSQL);
    PostgreSQL digests it on the server.
    """
    dialect = db.session.get_bind().dialect.name
    query = _fingerprint_query(dialect, frozenset(exclude))
    if dialect == "postgresql":
        return db.session.execute(query).scalar_one()
    return hashlib.sha256("\n".join(db.session.execute(query).scalars()).encode()).hexdigest()


@functools.cache
def _fingerprint_query(dialect: str, exclude: frozenset[str]) -> TextClause:
    """The one statement behind `fingerprint`: built once per database kind (tests fingerprint thousands of times)."""
    tables = [table for table in db.metadata.sorted_tables if table.name not in exclude]
    if dialect == "postgresql":
        rows = " UNION ALL ".join(f"""SELECT '{t.name}: ' || r::text AS line FROM "{t.name}" r""" for t in tables)
        digest = "md5(coalesce(string_agg(line, E'\\n' ORDER BY line COLLATE \"C\"), ''))"
        return text(f"SELECT {digest} FROM ({rows}) AS s")
    columns = {t.name: ", ".join(f'"{c.name}"' for c in t.columns) for t in tables}
    rows = " UNION ALL ".join(
        f"SELECT '{name}: ' || json_array({names}) AS line FROM \"{name}\"" for name, names in columns.items())
    return text(f"SELECT line FROM ({rows}) ORDER BY line")


@contextmanager
def statements(app: Flask, *, commits: bool = False) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs, each on one line (runs of
    whitespace made one space); with `commits`, also "COMMIT" where a transaction commits."""
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        sent.append(" ".join(statement.split()))

    def commit(conn) -> None:
        sent.append("COMMIT")

    listeners = [("before_cursor_execute", record), *([("commit", commit)] if commits else [])]
    for name, listener in listeners:
        sa_event.listen(engine, name, listener)
    try:
        yield sent
    finally:
        for name, listener in listeners:
            sa_event.remove(engine, name, listener)
