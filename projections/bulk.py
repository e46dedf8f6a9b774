"""Many rows in one statement: ``INSERT … SELECT * FROM unnest(…)``, a binary array per column.

One statement and one round trip per table however many rows, where psycopg's
``executemany`` sends a statement per row: less work for PostgreSQL, and in a rebuild fewer
waits of the writing thread for the interpreter lock (the next batch is prepared meanwhile).
The rows end up the same: each array is cast to its column's type, as a single row's
parameters were assigned to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import Cursor
from psycopg.types.json import Jsonb

from projections.codec import StateDoc

CHUNK_BYTES = 512 * 1024

# Per table: its columns' types (format_type, without modifiers), read once from the catalog.
_COLUMN_TYPES: dict[str, dict[str, str]] = {}


def insert_rows(cur: Cursor[Any], table: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], conflict: str = "") -> None:
    """``INSERT INTO table (columns) <rows> conflict`` (``conflict``: an ON CONFLICT clause;
    with DO UPDATE, a key may occur only once in ``rows``)."""
    if not rows:
        return
    big = [i for i, v in enumerate(rows[0]) if type(v) is bytes or type(v) is Jsonb]
    for chunk in _chunks(rows, big):
        arrays = [list(values) for values in zip(*chunk, strict=True)]
        if not all(_one_kind(values) for values in arrays):
            # An array is dumped by its first value's type: a column with values of several
            # types (a str and a UUID …) goes as the single rows always did.
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                            f" {conflict}", chunk)
            continue
        types = _column_types(cur, table)
        names = ", ".join(columns)
        if columns[0] == "id" and columns[-1] == "doc" and all(
                type(doc) is StateDoc for doc in arrays[-1]):
            # A typed table's row: its doc as its record's ``record_state`` row holds it
            # (written before, in this transaction), not sent, nor parsed again. A row whose
            # record has none gets no doc, which the column refuses (NOT NULL): never a row
            # silently left out.
            unnest = ", ".join(f"%b::{types[c]}[]" for c in columns[:-1])
            cur.execute(f"INSERT INTO {table} ({names}) SELECT u.*, s.doc"
                        f" FROM unnest({unnest}) AS u ({', '.join(columns[:-1])})"
                        f" LEFT JOIN record_state s ON s.id = u.id {conflict}", arrays[:-1])
            continue
        unnest = ", ".join(f"%b::{types[c]}[]" for c in columns)
        cur.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({unnest}) {conflict}",
                    arrays)


def _chunks(rows: Sequence[Sequence[Any]], big: Sequence[int],
            ) -> Iterator[Sequence[Sequence[Any]]]:
    """``rows`` in runs of at most about CHUNK_BYTES of large values (bytes, JSON): a
    statement is held whole in memory, several times over, and libpq's buffer keeps the size
    of the largest (a year's budget grows with the store: memory would too)."""
    if not big:
        yield rows
        return
    start, size = 0, 0
    for i, row in enumerate(rows):
        n = sum(len(row[j].obj if type(row[j]) is Jsonb else row[j]) for j in big
                if row[j] is not None)
        if size + n > CHUNK_BYTES and i > start:
            yield rows[start:i]
            start, size = i, 0
        size += n
    yield rows[start:]


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
