"""Emptying the test database between tests (shared by the HTTP and the browser fixtures)."""

from __future__ import annotations

import json

from flask import Flask
from sqlalchemy import select, text

from app.extensions import db, limiter


def empty_database(app: Flask) -> None:
    """Delete every row of every table and forget rate-limit counters. Tests commit for real."""
    db.session.remove()
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    # DELETE, children first, on both databases: on tables of a few rows it takes a few milliseconds,
    # where PostgreSQL's TRUNCATE replaces every table's and index's files (tenths of a second).
    with db.engine.begin() as conn:
        for table in tables:
            conn.execute(text(f'DELETE FROM "{table}"'))
        if conn.dialect.name == "postgresql":
            # Ids start at 1 again, as TRUNCATE … RESTART IDENTITY did.
            conn.execute(text("SELECT setval(c.oid, 1, false) FROM pg_class c "
                              "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"))
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
