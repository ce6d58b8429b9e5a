"""Numbered pages of a query's rows: the catalogue, an event's registrations, the audit log."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from app.models import db

_Row = TypeVar("_Row")


@dataclass(frozen=True)
class Page(Generic[_Row]):
    """One page of rows, and where it stands among the others (pages ≥ 1, even with no rows)."""

    rows: list[_Row]
    page: int
    pages: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def page_of(query: Select, *, page: int, per_page: int, order_by: Sequence[Any], options: Sequence[Any] = (),
            counted: Select | None = None, past_end: str = "last") -> Page | None:
    """Page `page` of `query`'s rows in `order_by` order: two cheap queries (the count, then one page
    read with LIMIT/OFFSET) rather than a window count over every row.

    `counted` is what to count when that is cheaper than the query itself (only its ids, say). A page
    past the end gives the last page (`past_end="last"`) or None (`past_end="none"`, for a 404).
    """
    total = db.session.scalar(select(func.count()).select_from((counted if counted is not None else query)
                                                                 .subquery())) or 0
    pages = max(math.ceil(total / per_page), 1)
    page = max(page, 1)
    if page > pages:
        if past_end == "none":
            return None
        page = pages
    rows = db.session.scalars(query.options(*options).order_by(*order_by)
                              .limit(per_page).offset((page - 1) * per_page)).all()
    return Page(rows=list(rows), page=page, pages=pages, total=total)
