"""Checksums of the read models: an md5 over the ordered rows of each projection table. Two
runs gave the same views (a rebuild in one process and in several, a live projector and a
clean rebuild) exactly when their checksums are equal.

A customer's working copy in ``record_state.state`` (a snapshot whose personal part is
encrypted with a fresh random nonce each time it is written) is never byte-identical by
design: its view (``doc``) and every other column are compared, and every other record's
working copy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

OPAQUE: dict[tuple[str, str], sql.Composable] = {("record_state", "state"): sql.SQL(
    "CASE WHEN record_type = 'customer' THEN NULL ELSE state END")}


def projection_tables(projections: Sequence[Any]) -> list[str]:
    """The tables the projections write (a records projection's own and its record tables'),
    and ``projection_tracking``."""
    tables = ["projection_tracking"]
    for p in projections:
        if p.name == "records":
            tables += ["record_state"] + [n for t in p.tables.values() for n in t.tables]
        else:
            tables.append(p.name)
    return sorted(tables)


def view_checksums(conninfo: str, tables: Sequence[str]) -> dict[str, str]:
    """Per table, ``md5:count`` of its rows in a stable order (``projection_tracking``: its
    names and positions, its ``updated_at`` being wall-clock time)."""
    out = {}
    with psycopg.connect(conninfo) as conn:
        for table in tables:
            query: sql.Composable
            if table == "projection_tracking":
                query = sql.SQL("SELECT md5(coalesce(string_agg(name || ':' || position,"
                                " ',' ORDER BY name), '')) FROM projection_tracking")
            else:
                columns = [OPAQUE.get((table, c), sql.Identifier(c)) for c, in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND table_schema = 'public' ORDER BY ordinal_position", (table,))]
                query = sql.SQL("SELECT md5(coalesce(string_agg(r::text, E'\\n'"
                                " ORDER BY r::text), '')) || ':' || count(*)"
                                " FROM (SELECT {} FROM {}) r").format(
                    sql.SQL(", ").join(columns), sql.Identifier(table))
            row = conn.execute(query).fetchone()
            if row is None:
                raise RuntimeError(f"no checksum for {table}")
            out[table] = str(row[0])
    return out
