"""Records as they stood: at a version, at a moment, and every record of a type at a moment.

A past state is rebuilt from the nearest snapshot at or below the wanted version plus the events
after it (the library's snapshot store; a snapshot every ``snapshot_interval`` events). Records
written before snapshots were on, or with a larger interval, are healed on first read: the
rebuild stores the snapshots it passes, so the next read of that stretch is fast.

A moment is turned into a version with the ``event_log (record_id, occurred_at)`` index: the
record's last event at or before the moment. The state is the same ``record_view`` the current
state query answers, so "as of" and "now" can be compared field by field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import get_topic
from psycopg_pool import ConnectionPool

from domain.shared import Record
from projections.codec import record_view
from projections.engine import Envelope
from projections.records import RecordTable
from service.application import NotFound
from service.catalogue import PLURALS, RECORD_TYPES, record_class
from service.store import EventStore

LATEST = 2**62  # "no upper bound" for a version
Statement = tuple[str, Sequence[Any]]  # SQL and its parameters


class NotFoundAt(NotFound):
    """The record has no such version, or did not exist yet at the moment asked."""

    def __init__(self, record_type: str, record_id: UUID, detail: str):
        super().__init__(record_type, record_id)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class UnknownRecordType(NotFound):
    def __init__(self, name: str):
        super().__init__(name, name)
        self.name = name

    def __str__(self) -> str:
        known = ", ".join(cls.RECORD_TYPE for cls in RECORD_TYPES)
        return f"no record type '{self.name}' (known: {known})"


def resolve_record_type(name: str) -> type[Record]:
    """A record class by its type (``service_request``) or plural (``service-requests``)."""
    name = next((rtype for rtype, plural in PLURALS.items() if name == plural), name)
    try:
        return record_class(name.replace("-", "_"))
    except KeyError:
        raise UnknownRecordType(name) from None


@dataclass(frozen=True)
class VersionAt:
    """A record's last event at or before a moment."""

    record_id: UUID
    version: int
    position: int
    department: str | None


@dataclass(frozen=True)
class RecordAt(VersionAt):
    """A record's view (``record_view``) as it stood at a moment, and the aggregate itself
    (what a projection's ``RecordTable`` writes its rows from)."""

    doc: dict[str, Any]
    record: Any = field(default=None, compare=False, repr=False)


class AsOfReader:
    """Rebuilds past states of records from snapshots and events.

    One read takes one pooled connection and two statements: where the record stands (its
    latest version and department, and the version at the moment asked) from ``event_log``,
    then the nearest snapshot with the events after it in one round trip."""

    def __init__(self, store: EventStore, pool: ConnectionPool[Any], *, workers: int = 4):
        self.store = store
        self.pool = pool
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="as-of")
        events = store.recorder.events_table_name
        snapshots = store.snapshot_recorder.events_table_name
        self._rebuild_sql = (
            f"WITH snap AS (SELECT originator_version, topic, state FROM {snapshots}"
            "   WHERE originator_id = %(id)s AND originator_version <= %(v)s"
            "   ORDER BY originator_version DESC LIMIT 1)"
            " SELECT true AS snapshot, originator_version, topic, state FROM snap"
            " UNION ALL"
            f" SELECT false, originator_version, topic, state FROM {events}"
            "   WHERE originator_id = %(id)s AND originator_version <= %(v)s"
            "   AND originator_version > coalesce((SELECT originator_version FROM snap), 0)"
            " ORDER BY snapshot DESC, originator_version")

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def erased(self, record: Any) -> bool:
        """True when ``record`` holds personal data that has been erased since: its past
        versions then read with the personal fields ``None`` (the keys are destroyed)."""
        return (hasattr(type(record), "split_personal_state")
                and self.store.personal.is_erased(record.id))

    def view(self, record: Any) -> dict[str, Any]:
        """``record_view``, marked ``personal_data_erased`` at every version once the record's
        personal data is erased (its personal fields read as ``None`` then)."""
        doc = record_view(record)
        if self.erased(record):
            doc["personal_data_erased"] = True
        return doc

    @contextlib.contextmanager
    def connection(self, conn: Any = None) -> Iterator[Any]:
        """A pooled connection for several statements (or the one given)."""
        if conn is not None:
            yield conn
        else:
            with self.pool.connection() as fresh:
                yield fresh

    @staticmethod
    def _query(conn: Any, sql: str, params: Any) -> list[dict[str, Any]]:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    # -- one record ------------------------------------------------------------------------
    def head(self, record_cls: type[Record], record_id: UUID, *, at: datetime | None = None,
             conn: Any = None) -> tuple[VersionAt, int | None]:
        """The record's latest version and department, from the event log index (no rebuild),
        and its version at the moment ``at`` (``None``: not yet created, or no moment asked);
        404 unless it is a record of ``record_cls``."""
        with self.connection(conn) as c:
            rows = self._query(
                c, "SELECT h.version, h.position, h.department, h.record_type,"
                   " (SELECT e.version FROM event_log e WHERE e.record_id = h.record_id"
                   "   AND e.occurred_at <= %(at)s::timestamptz"
                   "   ORDER BY e.occurred_at DESC, e.version DESC LIMIT 1) AS at_version"
                   " FROM event_log h WHERE h.record_id = %(id)s"
                   " ORDER BY h.version DESC LIMIT 1", {"id": record_id, "at": at})
        if not rows or rows[0]["record_type"] != record_cls.RECORD_TYPE:
            raise NotFound(record_cls.RECORD_TYPE, record_id)
        row = rows[0]
        head = VersionAt(record_id, int(row["version"]), int(row["position"]), row["department"])
        return head, (None if row["at_version"] is None else int(row["at_version"]))

    def at_version(self, record_cls: type[Record], record_id: UUID, version: int | None, *,
                   conn: Any = None) -> Record:
        if version is not None and version < 1:
            raise NotFoundAt(record_cls.RECORD_TYPE, record_id,
                             f"versions start at 1; {version} asked")
        record = self.rebuild(record_id, version, conn=conn)
        if record is None or not isinstance(record, record_cls):
            raise NotFound(record_cls.RECORD_TYPE, record_id)
        if version is not None and record.version < version:
            raise NotFoundAt(record_cls.RECORD_TYPE, record_id,
                             f"{record_cls.RECORD_TYPE} {record_id} has no version {version} "
                             f"(its latest is {record.version})")
        return record

    def rebuild(self, record_id: UUID, version: int | None = None, *, conn: Any = None) -> Any:
        """The aggregate at ``version`` (``None``: latest): nearest snapshot, then events.

        Snapshots missing on the way (every ``snapshot_interval`` versions) are stored."""
        store = self.store
        with self.connection(conn) as c:
            rows = self._query(c, self._rebuild_sql,
                               {"id": record_id, "v": LATEST if version is None else version})
        record = None
        interval = store.snapshot_interval
        missing = []
        for row in rows:
            stored = StoredEvent(record_id, row["originator_version"], row["topic"],
                                 bytes(row["state"]))
            event: Any = store.mapper.to_domain_event(stored)
            if row["snapshot"]:
                record = event.mutate(None)
                continue
            record = event.mutate(record)
            if interval > 0 and record.version % interval == 0:
                # Serialise now: the next event may change nested state in place.
                missing.append(store.mapper.to_stored_event(Snapshot.take(record)))
        if missing:
            with contextlib.suppress(IntegrityError):  # another reader stored them first
                store.snapshot_recorder.insert_events(missing)
        return record

    # -- every record of a type ------------------------------------------------------------
    def versions_at(self, record_type: str, at: datetime,
                    departments: Collection[str] | None = None) -> list[VersionAt]:
        """Each record of ``record_type`` that existed at ``at``, with its version then (and the
        department it belonged to then, which ``departments`` filters on)."""
        sql = ("SELECT c.record_id, v.version, v.position, v.department FROM event_log c"
               " CROSS JOIN LATERAL (SELECT e.version, e.position, e.department FROM event_log e"
               "   WHERE e.record_id = c.record_id AND e.occurred_at <= %(at)s"
               "   ORDER BY e.occurred_at DESC, e.version DESC LIMIT 1) v"
               " WHERE c.record_type = %(type)s AND c.version = 1 AND c.occurred_at <= %(at)s")
        params: dict[str, Any] = {"at": at, "type": record_type}
        if departments is not None:
            sql += " AND v.department = ANY(%(deps)s)"
            params["deps"] = list(departments)
        rows = self.store.execute(sql + " ORDER BY c.record_id", params)
        return [VersionAt(r["record_id"], int(r["version"]), int(r["position"]), r["department"])
                for r in rows]

    def views_at(self, record_type: str, at: datetime,
                 departments: Collection[str] | None = None) -> list[RecordAt]:
        """Every record of ``record_type`` as it stood at ``at``: its ``record_view`` then,
        rebuilt in parallel from snapshots and events."""
        refs = self.versions_at(record_type, at, departments)

        def view(ref: VersionAt) -> RecordAt:
            record = self.rebuild(ref.record_id, ref.version)
            return RecordAt(ref.record_id, ref.version, ref.position, ref.department,
                            self.view(record), record)

        return list(self._threads.map(view, refs))

    def query_tables_at(self, tables: Sequence[tuple[RecordTable, Sequence[RecordAt]]],
                        statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        """A view's own SQL over its projection tables as they would have stood at a moment.

        In one transaction on one connection, each ``RecordTable`` gets temporary tables of the
        same names and columns (``LIKE``, indexes included), which shadow the live ones
        (``pg_temp`` comes first in the search path); the table's own ``writes`` fills them
        from the records rebuilt as of then. So do the event projections a table names in
        ``as_of_events`` (a budget's actuals): each ``prepare``s its temporary tables from
        those records' events up to their versions then. The statements run as written. Once
        the tables exist the transaction turns read-only (PostgreSQL still lets it write
        temporary tables), so nothing here can touch a live table; the temporary ones go with
        the transaction (``ON COMMIT DROP``), so nothing outlives the read."""
        from_events = [(p, records) for table, records in tables
                       for p in getattr(table, "as_of_events", ())]
        with self.pool.connection() as conn, conn.transaction():
            for name in [*(n for t, _ in tables for n in t.tables),
                         *(n for p, _ in from_events for n in p.tables)]:
                conn.execute(f"CREATE TEMP TABLE {name} (LIKE {name} INCLUDING ALL)"
                             " ON COMMIT DROP")
            conn.execute("SET TRANSACTION READ ONLY")
            for table, records in tables:
                if records:
                    table.writes([(r.record, r.position, r.doc) for r in records])(conn)
            for projection, records in from_events:
                if records:
                    events = self.events_up_to(conn, records, projection.event_types)
                    projection.prepare(conn, events)(conn)
            return [self._query(conn, sql, params) for sql, params in statements]

    def events_up_to(self, conn: Any, records: Sequence[VersionAt],
                     types: Sequence[type]) -> list[Envelope]:
        """The events of ``types`` of each record up to its version, in the log's order."""
        table = self.store.recorder.events_table_name
        rows = self._query(
            conn, "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic,"
                  " e.state FROM unnest(%s::uuid[], %s::bigint[]) AS r(id, version)"
                  f" JOIN {table} e ON e.originator_id = r.id"
                  "  AND e.originator_version <= r.version"
                  " WHERE e.topic = ANY(%s) ORDER BY e.notification_id",
            ([r.record_id for r in records], [r.version for r in records],
             [get_topic(t) for t in types]))
        mapper = self.store.mapper
        return [Envelope(r["notification_id"], mapper.to_domain_event(StoredEvent(
            r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))))
            for r in rows]
