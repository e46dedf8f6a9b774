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
    encoded_jsonb,
    freeze,
    freeze_parts,
    jsonable,
    record_view,
    thaw,
    view_json,
    view_parts,
)
from projections.engine import Envelope, Write

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

# Record types with a list attribute that only ever grows: the domain appends to it and never
# changes or removes an element (a budget's actuals). A budget holds every actual of its year
# (~1,000 at a million events): re-encoding all of them whenever it changes made a rebuild's
# cost per event grow with the store. When such a record is read back from ``record_state``,
# the encoded list is taken from the stored state and view as it is, and only the elements
# appended since are encoded; the bytes are the same as encoding the whole record.
APPEND_ONLY = {"budget": "actuals"}


class RecordsProjection:
    name = "records"

    def __init__(self, mapper: Mapper[UUID], tables: Sequence[RecordTable] = ()):
        self.mapper = mapper
        self.tables = {t.record_type: t for t in tables}
        # Each record with its append-only list as last encoded (see _Grown), if it has one.
        self._cache: OrderedDict[UUID, tuple[Any, _Grown | None]] = OrderedDict()
        self._last: list[UUID] = []  # the records of the last batch prepared
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
        records: dict[UUID, Any] = {}
        grown: dict[UUID, _Grown] = {}
        missing = []
        ids = {env.event.originator_id for env in batch}
        if self._only_touched:
            self._only_touched = False
            self._cache = OrderedDict((rid, v) for rid, v in self._cache.items() if rid in ids)
        for rid in ids:
            cached = self._cache.get(rid)
            if cached is None:
                missing.append(rid)
            else:
                records[rid], g = cached
                if g is not None:
                    grown[rid] = g
        rows = conn.execute(self._select_state, (missing,)).fetchall() if missing else []
        prefetch = getattr(self.mapper, "prefetch", None)  # personal-data keys, one statement
        if prefetch is not None and rows:
            prefetch([StoredEvent(rid, version, SNAPSHOT_TOPIC, bytes(state))
                      for rid, version, state, _, _ in rows])
        while rows:  # each row let go once read: a year's budget is megabytes
            rid, version, state, view_items, count = rows.pop()
            record = records[rid] = thaw(self.mapper, rid, version, bytes(state))
            if view_items is not None:
                g = _Grown.of(self.mapper, record, bytes(state), view_items, count)
                if g is not None:
                    grown[rid] = g
            del state, view_items
        last_position: dict[UUID, int] = {}
        for env in batch:
            event = env.event
            rid = event.originator_id
            current = records.get(rid)
            if current is not None and event.originator_version <= current.version:
                continue  # already applied (a rebuilt table caught up past it)
            records[rid] = event.mutate(current)
            last_position[rid] = env.position
        touched = [(records[rid], pos) for rid, pos in last_position.items()
                   if isinstance(records[rid], Record)]
        self._last = [rec.id for rec, _ in touched]
        if not touched:
            return _nothing
        out = []
        by_type: dict[str, list[tuple[Record, int, Doc]]] = {}
        for rec, pos in touched:
            g = grown.get(rec.id) or _Grown.none_yet(rec)
            encoded = g.encode(self.mapper, rec) if g is not None else None
            if encoded is None:
                state, doc = freeze(self.mapper, rec), encoded_jsonb(view_json(record_view(rec)))
            else:
                state, doc, g = encoded
            out.append((rec.id, rec.RECORD_TYPE, rec.version, pos, getattr(rec, "status", None),
                        getattr(rec, "department", None), rec.created_on, rec.modified_on,
                        state, doc))
            by_type.setdefault(rec.RECORD_TYPE, []).append((rec, pos, doc))
            self._cache[rec.id] = (rec, g if encoded is not None else None)
            self._cache.move_to_end(rec.id)
        while len(self._cache) > max(CACHED_RECORDS, len(touched)):
            self._cache.popitem(last=False)
        writes = [table.writes(typed_rows) for record_type, typed_rows in by_type.items()
                  if (table := self.tables.get(record_type)) is not None]

        def write(conn: Connection[Any]) -> None:
            # Once only; each table's rows are let go as soon as they are sent, so a batch's
            # large values (a year's budget) are not all held until its commit.
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
        that touches them again). A year's budget grows with the store: one kept needlessly
        while the next batch reads others made the peak memory grow with it."""
        self._cache = OrderedDict((rid, self._cache[rid]) for rid in self._last)
        self._only_touched = True

    # The state of the records to evolve; for the record types of APPEND_ONLY, also the JSON
    # view of their append-only list as stored (PostgreSQL's text of it) and its length.
    _select_state = (
        "SELECT id, version, state, CASE record_type {whens} END, CASE record_type {counts} END"
        " FROM record_state WHERE id = ANY(%s)").format(
        whens=" ".join(f"WHEN '{t}' THEN (doc -> '{a}')::text" for t, a in APPEND_ONLY.items()),
        counts=" ".join(f"WHEN '{t}' THEN jsonb_array_length(doc -> '{a}')"
                        for t, a in APPEND_ONLY.items()))



def _nothing(conn: Connection[Any]) -> None:
    pass


class _Grown:
    """A record's append-only list as already encoded (read back from ``record_state``, or
    as this projection last encoded it)."""

    __slots__ = ("name", "items", "state_items", "view_items")

    def __init__(self, name: str, items: list[Any], state_items: bytes, view_items: bytes):
        self.name = name
        self.items = items  # the list as encoded (the domain replaces it, never changes it)
        self.state_items = state_items  # its elements' JSON in the stored state, comma-joined
        self.view_items = view_items  # …and in the stored view

    @classmethod
    def of(cls, mapper: Mapper[UUID], record: Any, state: bytes, view_list: str,
           count: int | None) -> _Grown | None:
        name = APPEND_ONLY.get(getattr(record, "RECORD_TYPE", ""))
        items = getattr(record, name, None) if name else None
        if name is None or type(items) is not list or count != len(items):
            return None
        parts = freeze_parts(mapper, record, name)
        if parts is None:
            return None
        head, tail = parts
        start, end = len(head) + 1, len(state) - len(tail) - 1
        if not (state.startswith(head) and state.endswith(tail) and start <= end
                and state[start - 1:start] == b"[" and state[end:end + 1] == b"]"):
            return None  # not the bytes this encoding makes: encode the record whole
        view = view_list.strip()
        if not (view.startswith("[") and view.endswith("]")):
            return None
        return cls(name, items, state[start:end], view[1:-1].strip().encode())

    @classmethod
    def none_yet(cls, record: Any) -> _Grown | None:
        """For a record of APPEND_ONLY whose list has no encoding yet: all of it is new."""
        name = APPEND_ONLY.get(getattr(record, "RECORD_TYPE", ""))
        if name is None or type(getattr(record, name, None)) is not list:
            return None
        return cls(name, [], b"", b"")

    def encode(self, mapper: Mapper[UUID], record: Any) -> tuple[bytes, Any, _Grown] | None:
        """The record's state and view (a ready jsonb), encoding only the new elements; and
        the list as now encoded."""
        items = getattr(record, self.name, None)
        n = len(self.items)
        if type(items) is not list or len(items) < n or items[:n] != self.items:
            return None
        parts = freeze_parts(mapper, record, self.name)
        view = view_parts(record_view(record, splice=self.name))
        if parts is None or view is None:
            return None
        new = items[n:]
        state_items, view_items = self.state_items, self.view_items
        if new:
            state_new = mapper.transcoder.encode(new)[1:-1]
            view_new = view_json([jsonable(v) for v in new])[1:-1]
            state_items = b",".join((state_items, state_new)) if state_items else state_new
            view_items = b",".join((view_items, view_new)) if view_items else view_new
        return (b"".join((parts[0], b"[", state_items, b"]", parts[1])),
                encoded_jsonb(b"".join((view[0], b"[", view_items, b"]", view[1]))),
                _Grown(self.name, items, state_items, view_items))
