"""Relay-style cursor connections with keyset pagination over a projection table."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry

from service.graphql.context import ReadError

T = TypeVar("T")
MAX_PAGE = 100


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int


@strawberry.enum
class SortDirection(Enum):
    ASC = "asc"
    DESC = "desc"


def encode_cursor(value: Any, row_id: Any) -> str:
    raw = json.dumps([None if value is None else str(value), str(row_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[str | None, str]:
    try:
        value, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return value, str(row_id)
    except Exception:
        raise ReadError("'after' is not a cursor returned by this API", "BAD_CURSOR") from None


@dataclass(frozen=True)
class Keyset:
    """ORDER BY column (with its SQL type for the cursor), id — both in one direction."""

    column: str
    sql_type: str
    descending: bool

    def order_sql(self) -> str:
        d = "DESC" if self.descending else "ASC"
        return f"{self.column} {d} NULLS LAST, id {d}"

    def after_sql(self, cursor: str | None) -> tuple[str, list[Any]]:
        if not cursor:
            return "", []
        value, row_id = decode_cursor(cursor)
        op = "<" if self.descending else ">"
        if value is None:  # NULLS LAST: after a null only more nulls
            return f" AND {self.column} IS NULL AND id {op} %s::uuid", [row_id]
        return (f" AND (({self.column}, id) {op} (%s::{self.sql_type}, %s::uuid)"
                f" OR {self.column} IS NULL)", [value, row_id])


def page_size(first: int | None) -> int:
    n = 20 if first is None else first
    if n < 0 or n > MAX_PAGE:
        raise ReadError(f"'first' must be between 0 and {MAX_PAGE}", "BAD_PAGE_SIZE")
    return n


def connection(rows: list[dict[str, Any]], size: int, keyset: Keyset, total: int,
               make_node: Any, had_cursor: bool) -> Connection[Any]:
    more = len(rows) > size
    rows = rows[:size]
    edges = [Edge(cursor=encode_cursor(r[keyset.column.split(".")[-1]], r["id"]),
                  node=make_node(r)) for r in rows]
    return Connection(
        edges=edges, total_count=total,
        page_info=PageInfo(has_next_page=more, has_previous_page=had_cursor,
                           start_cursor=edges[0].cursor if edges else None,
                           end_cursor=edges[-1].cursor if edges else None))
