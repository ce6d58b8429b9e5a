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
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))
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
