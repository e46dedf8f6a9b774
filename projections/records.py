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

from domain.shared import Record
from projections.bulk import insert_rows
from projections.codec import (
    SNAPSHOT_TOPIC,
    Doc,
    StateDoc,
    encoded_jsonb,
    freeze,
    thaw,
    view_bytes,
)
from projections.engine import Envelope, Write, write_nothing

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

STATE_COLUMNS = ("id", "record_type", "version", "position", "status", "department",
                 "created_at", "updated_at", "state", "doc")
STATE_UPSERT = (
    "ON CONFLICT (id) DO UPDATE SET"
    " version = EXCLUDED.version, position = EXCLUDED.position,"
    " status = EXCLUDED.status, department = EXCLUDED.department,"
    " updated_at = EXCLUDED.updated_at, state = EXCLUDED.state, doc = EXCLUDED.doc")


class RecordTable(Protocol):
    """A typed query table for one record type, written from evolved aggregates."""

    @property
    def record_type(self) -> str: ...

    @property
    def tables(self) -> Sequence[str]: ...

    def create_tables(self, conn: Connection[Any]) -> None: ...

    def writes(self, rows: Sequence[tuple[Record, int, Doc]]) -> Write:
        """The table's rows for ``rows``, taken now (the aggregates may change once this
        returns), and how to write them."""
        ...


# Records evolved by the last batches, kept in memory for the next ones: a record touched
# again (a budget, a project in execution) is then neither read back nor decoded. Only the
# projector that holds the leader lock writes record_state; the runner calls ``forget`` when it
# becomes the leader, on reset, and when a batch fails, so the copies never disagree with it.
# The records of the last batch are always kept, however many: a rebuild prepares the next
# batch while that one is still being written (see ``ProjectionRunner.catch_up``).
CACHED_RECORDS = 1000


class RecordsProjection:
    name = "records"

    def __init__(self, mapper: Mapper[UUID], tables: Sequence[RecordTable] = ()):
        self.mapper = mapper
        self.tables = {t.record_type: t for t in tables}
        # Records are keyed by ``UUID.int`` here: an int hashes in C, a UUID through
        # ``UUID.__hash__``, a Python function (3–4 times per event: ~2 % of a rebuild).
        self._cache: OrderedDict[int, Any] = OrderedDict()  # evolved records, by id
        self._last: list[int] = []  # the records of the last batch prepared
        self._only_touched = False  # see forget_older

    def forget(self) -> None:
        self._cache.clear()
        self._last = []
        self._only_touched = False

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(STATE_SQL)
        for t in self.tables.values():
            t.create_tables(conn)

    def reset(self, conn: Connection[Any]) -> None:
        self.forget()
        names = ["record_state"] + [n for t in self.tables.values() for n in t.tables]
        conn.execute("TRUNCATE " + ", ".join(names))

    def apply(self, conn: Connection[Any], batch: Sequence[Envelope]) -> None:
        self.prepare(conn, batch)(conn)

    def prepare(self, conn: Connection[Any], batch: Sequence[Envelope]) -> Write:
        """Evolves and encodes the records of ``batch`` (reading on ``conn`` those not in
        memory) and returns how to write their rows. Between the two, the records of the
        batch are the ones in memory: the next batch may be prepared before these rows are
        written, and must then not read them back."""
        records: dict[int, Any] = {}
        missing = []
        ids = {(rid := env.event.originator_id).int: rid for env in batch}
        if self._only_touched:
            self._only_touched = False
            self._cache = OrderedDict((key, v) for key, v in self._cache.items() if key in ids)
        for key, rid in ids.items():
            cached = self._cache.get(key)
            if cached is None:
                missing.append(rid)
            else:
                records[key] = cached
        rows = conn.execute(self._select_state, (missing,)).fetchall() if missing else []
        prefetch = getattr(self.mapper, "prefetch", None)  # personal-data keys, one statement
        if prefetch is not None and rows:
            prefetch([StoredEvent(rid, version, SNAPSHOT_TOPIC, bytes(state))
                      for rid, version, state in rows])
        while rows:  # each row let go once read
            rid, version, state = rows.pop()
            records[rid.int] = thaw(self.mapper, rid, version, bytes(state))
            del state
        last_position: dict[int, int] = {}
        for env in batch:
            event = env.event
            key = event.originator_id.int
            current = records.get(key)
            if current is not None and event.originator_version <= current.version:
                continue  # already applied (a rebuilt table caught up past it)
            records[key] = event.mutate(current)
            last_position[key] = env.position
        touched = [(records[key], pos) for key, pos in last_position.items()
                   if isinstance(records[key], Record)]
        self._last = [rec.id.int for rec, _ in touched]
        if not touched:
            return write_nothing
        out = []
        by_type: dict[str, list[tuple[Record, int, Doc]]] = {}
        for rec, pos in touched:
            state, view = freeze(self.mapper, rec), view_bytes(rec)
            out.append((rec.id, rec.RECORD_TYPE, rec.version, pos, getattr(rec, "status", None),
                        getattr(rec, "department", None), rec.created_on, rec.modified_on,
                        state, encoded_jsonb(view)))
            # The typed tables copy the view from the record_state row (written first).
            by_type.setdefault(rec.RECORD_TYPE, []).append((rec, pos, StateDoc(view)))
            key = rec.id.int
            self._cache[key] = rec
            self._cache.move_to_end(key)
        while len(self._cache) > max(CACHED_RECORDS, len(touched)):
            self._cache.popitem(last=False)
        writes = [table.writes(typed_rows) for record_type, typed_rows in by_type.items()
                  if (table := self.tables.get(record_type)) is not None]

        def write(conn: Connection[Any]) -> None:
            # Once only; each table's rows are let go as soon as they are sent, so a batch's
            # large values are not all held until its commit.
            with conn.cursor() as cur:
                insert_rows(cur, "record_state", STATE_COLUMNS, out, STATE_UPSERT)
            out.clear()
            while writes:
                writes.pop(0)(conn)
        return write

    def forget_older(self) -> None:
        """Forgets every record but those of the last batch prepared, and, when the next
        batch is prepared, those of them it does not touch (a rebuild passes each record about
        once; their copies are needed only while their batch is being written, by a next batch
        that touches them again), and keeping them while the next batch reads others only
        raises the peak memory."""
        self._cache = OrderedDict((key, self._cache[key]) for key in self._last)
        self._only_touched = True

    _select_state = "SELECT id, version, state FROM record_state WHERE id = ANY(%s)"
