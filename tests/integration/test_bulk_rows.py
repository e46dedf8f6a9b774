"""Many rows in one statement (``projections.bulk.insert_rows``), on PostgreSQL."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from projections.bulk import insert_rows
from projections.codec import StateDoc, encoded_jsonb
from projections.records import STATE_COLUMNS, STATE_SQL


def test_a_typed_tables_doc_is_its_records_state_doc_not_sent_again(fresh_database: Any,
                                                                     ) -> None:
    ids = [uuid4(), uuid4()]
    with psycopg.connect(fresh_database.conninfo) as conn, conn.cursor() as cur:
        cur.execute(STATE_SQL)
        cur.execute("CREATE TABLE typed (id uuid PRIMARY KEY, name text, doc jsonb NOT NULL)")
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        insert_rows(cur, "record_state", STATE_COLUMNS, [
            (rid, "thing", 1, n, None, None, now, now, b"{}", encoded_jsonb(b'{"n": %d}' % n))
            for n, rid in enumerate(ids)])
        # What record_state holds is what the typed table gets, whatever was passed along.
        insert_rows(cur, "typed", ("id", "name", "doc"),
                    [(rid, f"thing {n}", StateDoc(b'{"not": "sent"}'))
                     for n, rid in enumerate(ids)],
                    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, doc = EXCLUDED.doc")
        rows = cur.execute("SELECT t.name, t.doc, t.doc = s.doc FROM typed t"
                           " JOIN record_state s USING (id) ORDER BY t.name").fetchall()
        assert rows == [("thing 0", {"n": 0}, True), ("thing 1", {"n": 1}, True)]
        # A doc of its own (an as-of query's temporary tables) is written as given.
        insert_rows(cur, "typed", ("id", "name", "doc"), [(ids[0], "again", Jsonb({"own": 1}))],
                    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, doc = EXCLUDED.doc")
        assert cur.execute("SELECT doc FROM typed WHERE id = %s", (ids[0],)).fetchone() == (
            {"own": 1},)


def test_a_typed_row_whose_record_has_no_state_row_is_refused_not_dropped(fresh_database: Any,
                                                                         ) -> None:
    with psycopg.connect(fresh_database.conninfo) as conn, conn.cursor() as cur:
        cur.execute(STATE_SQL)
        cur.execute("CREATE TABLE typed (id uuid PRIMARY KEY, name text, doc jsonb NOT NULL)")
        with pytest.raises(psycopg.errors.NotNullViolation):
            insert_rows(cur, "typed", ("id", "name", "doc"),
                        [(uuid4(), "orphan", StateDoc(b'{"n": 1}'))])
