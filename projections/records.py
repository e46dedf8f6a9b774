"""The records projection: the current state of every record, and per-type query tables.

Events are applied to the records' aggregates (the domain's own code, so the view can never
disagree with the rules); the aggregates touched by a batch are loaded from ``record_state`` in
one query, evolved in memory, and written back once per batch. Typed tables for filtering and
sorting (``projects`` …) are filled from the same evolved aggregates by ``RecordTable``s.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from psycopg import Connection
from psycopg.types.json import Jsonb

from domain.shared import Record
from projections.codec import SNAPSHOT_TOPIC, freeze, record_view, thaw
from projections.engine import Envelope

STATE_SQL = """
CREATE TABLE IF NOT EXISTS record_state (
    id          uuid PRIMARY KEY,
    record_type text NOT NULL,
    version     bigint NOT NULL,
    position    bigint NOT NULL,
    status      text,
    department  text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    state       bytea NOT NULL,
    doc         jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS record_state_type_idx ON record_state (record_type, updated_at);
"""


class RecordTable(Protocol):
    """A typed query table for one record type, written from evolved aggregates."""

    @property
    def record_type(self) -> str: ...

    @property
    def tables(self) -> Sequence[str]: ...

    def create_tables(self, conn: Connection[Any]) -> None: ...

    def upsert(self, conn: Connection[Any], rows: Sequence[tuple[Record, int, dict[str, Any]]],
               ) -> None: ...


# Records evolved by the last batches, kept in memory for the next ones: a record touched
# again (a budget, a project in execution) is then neither read back nor decoded. Only the
# projector that holds the leader lock writes record_state; the runner calls ``forget`` when it
# becomes the leader, on reset, and when a batch fails, so the copies never disagree with it.
CACHED_RECORDS = 1000


class RecordsProjection:
    name = "records"

    def __init__(self, mapper: Mapper[UUID], tables: Sequence[RecordTable] = ()):
        self.mapper = mapper
        self.tables = {t.record_type: t for t in tables}
        self._cache: OrderedDict[UUID, Any] = OrderedDict()

    def forget(self) -> None:
        self._cache.clear()

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(STATE_SQL)
        for t in self.tables.values():
            t.create_tables(conn)

    def reset(self, conn: Connection[Any]) -> None:
        self.forget()
        names = ["record_state"] + [n for t in self.tables.values() for n in t.tables]
        conn.execute("TRUNCATE " + ", ".join(names))

    def apply(self, conn: Connection[Any], batch: Sequence[Envelope]) -> None:
        records: dict[UUID, Any] = {}
        missing = []
        for rid in {env.record_id for env in batch}:
            cached = self._cache.get(rid)
            if cached is None:
                missing.append(rid)
            else:
                records[rid] = cached
        rows = conn.execute("SELECT id, version, state FROM record_state WHERE id = ANY(%s)",
                            (missing,)).fetchall() if missing else []
        prefetch = getattr(self.mapper, "prefetch", None)  # personal-data keys, one statement
        if prefetch is not None and rows:
            prefetch([StoredEvent(rid, version, SNAPSHOT_TOPIC, bytes(state))
                      for rid, version, state in rows])
        for rid, version, state in rows:
            records[rid] = thaw(self.mapper, rid, version, bytes(state))
        last_position: dict[UUID, int] = {}
        for env in batch:
            current = records.get(env.record_id)
            if current is not None and env.event.originator_version <= current.version:
                continue  # already applied (a rebuilt table caught up past it)
            records[env.record_id] = env.event.mutate(current)
            last_position[env.record_id] = env.position
        touched = [(records[rid], pos) for rid, pos in last_position.items()
                   if isinstance(records[rid], Record)]
        if not touched:
            return
        out = []
        by_type: dict[str, list[tuple[Record, int, dict[str, Any]]]] = {}
        for rec, pos in touched:
            doc = record_view(rec)
            out.append((rec.id, rec.RECORD_TYPE, rec.version, pos, getattr(rec, "status", None),
                        getattr(rec, "department", None), rec.created_on, rec.modified_on,
                        freeze(self.mapper, rec), Jsonb(doc)))
            by_type.setdefault(rec.RECORD_TYPE, []).append((rec, pos, doc))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO record_state (id, record_type, version, position, status,"
                " department, created_at, updated_at, state, doc)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET"
                " version = EXCLUDED.version, position = EXCLUDED.position,"
                " status = EXCLUDED.status, department = EXCLUDED.department,"
                " updated_at = EXCLUDED.updated_at, state = EXCLUDED.state, doc = EXCLUDED.doc",
                out)
        for record_type, typed_rows in by_type.items():
            table = self.tables.get(record_type)
            if table is not None:
                table.upsert(conn, typed_rows)
        for rec, _pos in touched:
            self._cache[rec.id] = rec
            self._cache.move_to_end(rec.id)
        while len(self._cache) > CACHED_RECORDS:
            self._cache.popitem(last=False)
