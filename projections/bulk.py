"""Many rows in one statement: ``INSERT … SELECT * FROM unnest(…)``, a binary array per column.

One statement and one round trip per table however many rows, where psycopg's
``executemany`` sends a statement per row: less work for PostgreSQL, and in a rebuild fewer
waits of the writing thread for the interpreter lock (the next batch is prepared meanwhile).
The rows end up the same: each array is cast to its column's type, as a single row's
parameters were assigned to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

# Per table: its columns' types (format_type, without modifiers), read once from the catalog.
_COLUMN_TYPES: dict[str, dict[str, str]] = {}


def insert_rows(cur: Cursor[Any], table: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], conflict: str = "") -> None:
    """``INSERT INTO table (columns) <rows> conflict`` (``conflict``: an ON CONFLICT clause;
    with DO UPDATE, a key may occur only once in ``rows``)."""
    if not rows:
        return
    arrays = [list(values) for values in zip(*rows, strict=True)]
    if not all(_one_kind(values) for values in arrays):
        # An array is dumped by its first value's type: a column with values of several
        # types (a str and a UUID …) goes as the single rows always did.
        marks = ", ".join(["%s"] * len(columns))
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                        f" {conflict}", rows)
        return
    types = _column_types(cur, table)
    unnest = ", ".join(f"%b::{types[c]}[]" for c in columns)
    cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({unnest})"
                f" {conflict}", arrays)


def _one_kind(values: list[Any]) -> bool:
    kinds = set(map(type, values))
    kinds.discard(type(None))
    return len(kinds) <= 1 or all(issubclass(k, str) for k in kinds)


def _column_types(cur: Cursor[Any], table: str) -> dict[str, str]:
    types = _COLUMN_TYPES.get(table)
    if types is None:
        types = _COLUMN_TYPES[table] = dict(cur.execute(
            "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table,)).fetchall())
    return types
