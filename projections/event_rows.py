"""A projection that writes one row per event of its kinds to one insert-only table, keyed so
that writing an event again changes nothing (``ON CONFLICT (id) DO NOTHING``): a budget's
actuals, its warnings. A subclass names the table (``name``), its DDL (``sql``), its
``columns``, its ``event_types``, and says what an event's row is (``row``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from projections.bulk import insert_rows
from projections.engine import Envelope, Write


class EventRows:
    name: str  # the projection, and its table
    sql: str
    columns: tuple[str, ...]
    event_types: tuple[type, ...]

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.name,)

    def row(self, env: Envelope) -> tuple[Any, ...]:
        raise NotImplementedError

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(self.sql)

    def reset(self, conn: Connection[Any]) -> None:
        conn.execute(f"TRUNCATE {self.name}")

    def apply(self, conn: Connection[Any], batch: Sequence[Envelope]) -> None:
        self.prepare(conn, batch)(conn)

    def prepare(self, conn: Connection[Any], batch: Sequence[Envelope]) -> Write:
        rows = [self.row(env) for env in batch if isinstance(env.event, self.event_types)]

        def write(conn: Connection[Any]) -> None:
            with conn.cursor() as cur:
                insert_rows(cur, self.name, self.columns, rows, "ON CONFLICT (id) DO NOTHING")
        return write
