"""The event store: `eventsourcing` on PostgreSQL, with group commit and an event log index.

Writers keep the library's guarantee that commit order equals position order (it takes
``LOCK TABLE … IN EXCLUSIVE MODE`` in every insert transaction), so a reader that follows
``notification_id`` never skips an event that committed out of order. To keep that guarantee
without serialising every command behind its own lock-and-fsync, one writer thread gathers the
commands that arrive together and appends them in a single transaction (group commit). In the
same transaction it writes, per event, a row of ``event_log`` (record type, event type, actor,
time and the Merkle leaf hash: the index auditors, feeds and verification read) and the
Idempotency-Key answers of the commands in the batch.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Repository
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import EventStore as LibraryEventStore
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.utils import resolve_topic
from psycopg.types.json import Jsonb

from projections.codec import make_mapper
from service import append_only
from service.database import Database
from service.tamper import leaf_hash

log = logging.getLogger(__name__)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS event_log (
    position     bigint PRIMARY KEY,
    record_id    uuid NOT NULL,
    version      bigint NOT NULL,
    record_type  text NOT NULL,
    event_type   text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor_id     text,
    department   text,
    correlation_id text,
    leaf_hash    bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS event_log_record_idx ON event_log (record_id, version);
CREATE INDEX IF NOT EXISTS event_log_record_time_idx ON event_log (record_id, occurred_at);
CREATE INDEX IF NOT EXISTS event_log_type_idx ON event_log (record_type, position);
CREATE INDEX IF NOT EXISTS event_log_actor_idx ON event_log (actor_id, position);
CREATE INDEX IF NOT EXISTS event_log_time_idx ON event_log (occurred_at);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    actor_id     text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status       int NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, key)
);
CREATE TABLE IF NOT EXISTS refused_commands (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     text NOT NULL,
    actor_roles  text[] NOT NULL,
    departments  text[] NOT NULL,
    command      text NOT NULL,
    record_type  text NOT NULL,
    record_id    uuid,
    status       int NOT NULL,
    rule         text NOT NULL,
    detail       text NOT NULL,
    correlation_id text,
    request_id   text
);
CREATE INDEX IF NOT EXISTS refused_commands_actor_idx ON refused_commands (actor_id, at);
CREATE INDEX IF NOT EXISTS refused_commands_at_idx ON refused_commands (at);
"""


@lru_cache(maxsize=4096)
def describe_topic(topic: str) -> tuple[str, str]:
    """(record type, event type) of a stored event topic, e.g. ('project', 'Approved')."""
    cls = resolve_topic(topic)
    owner = resolve_topic(topic.rsplit(".", 1)[0]) if "." in topic.split(":", 1)[1] else None
    record_type = getattr(owner, "RECORD_TYPE", None) or "unknown"
    return record_type, cls.__name__


MAX_BATCH_BYTES = 4 * 1024 * 1024  # one group commit stops growing past this much event data


class RecordConflict(Exception):
    """Another command appended to one of the records first (or a key is already claimed)."""

    def __init__(self, message: str, constraint: str | None):
        super().__init__(message)
        self.constraint = constraint


class IdempotencyKeyTaken(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


@dataclass
class IdempotencyRecord:
    actor_id: str
    key: str
    request_hash: str
    # Builds (status, body) once the positions are known, inside the transaction.
    respond: Callable[[list[int]], tuple[int, dict[str, Any]]]


@dataclass
class PendingWrite:
    events: Sequence[Any]
    idempotency: IdempotencyRecord | None = None
    future: Future[list[int]] = field(default_factory=Future)
    stored: list[StoredEvent] = field(default_factory=list)


class OpsRecorder(PostgresApplicationRecorder):
    """The library's recorder, plus our per-batch rows written in the same transaction.

    ``insert_events`` runs the library's own steps (lock, notify, insert, fetch ids) in one
    plain transaction rather than in psycopg's pipeline mode: over a unix socket a pipelined
    statement of a megabyte or more can stall forever (psycopg #685), and the round trips saved
    are negligible next to the commit's flush.
    """

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any,
                      ) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        after = kwargs.get("after_insert")
        if after is not None and ids is not None:
            after(curs, list(ids))
        return ids

    def _lock_table(self, curs: Any) -> None:
        # The same EXCLUSIVE lock as the library's, taken through an owner-defined function so
        # the service role needs no UPDATE/DELETE/TRUNCATE privilege (see append_only.py).
        curs.execute(self.lock_table_statements[0], prepare=True)  # SET LOCAL lock_timeout
        curs.execute(append_only.lock_events_statement(self.datastore.schema), prepare=True)


class EventStore:
    """Appends and reads events; owns the library's datastore, recorders and repository."""

    def __init__(self, database: Database, *, pool_size: int = 10, snapshot_interval: int = 100,
                 cache_size: int = 5000, create_schema: bool = True):
        self.database = database
        self.datastore = PostgresDatastore(**database.library_kwargs(), pool_size=pool_size,
                                           max_overflow=pool_size, pre_ping=True)
        self.recorder = OpsRecorder(self.datastore, events_table_name="stored_events")
        self.snapshot_recorder = PostgresAggregateRecorder(self.datastore,
                                                           events_table_name="snapshots")
        self.mapper = make_mapper()
        self.events = LibraryEventStore(self.mapper, self.recorder)
        self.snapshots = LibraryEventStore(self.mapper, self.snapshot_recorder)
        self.repository: Repository[UUID] = Repository(
            self.events, snapshot_store=self.snapshots, cache_maxsize=cache_size,
            fastforward=False)
        self.snapshot_interval = snapshot_interval
        self.committed_listeners: list[Callable[[int], None]] = []
        if create_schema:
            self.create_schema()
        self._queue: queue.Queue[PendingWrite | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="event-writer",
                                        daemon=True)
        self._writer.start()

    # -- schema -------------------------------------------------------------------------
    def create_schema(self) -> None:
        # One advisory lock so several processes starting at once do not race on DDL.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(724001)")
            try:
                self.recorder.create_table()
                self.snapshot_recorder.create_table()
                conn.execute(SCHEMA_SQL)
                append_only.install(conn, self.datastore.schema)
            finally:
                conn.execute("SELECT pg_advisory_unlock(724001)")

    def grant_service_role(self, role: str) -> None:
        """Lets ``role`` read and append events but never change them (run as the owner)."""
        with self.datastore.get_connection() as conn:
            append_only.grant_service_role(conn, role, self.datastore.schema)

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=5)
        self.datastore.close()

    # -- writing ------------------------------------------------------------------------
    def append(self, events: Sequence[Any], idempotency: IdempotencyRecord | None = None,
               ) -> Future[list[int]]:
        """Queues events for the next group commit; the future gives their positions."""
        item = PendingWrite(events=events, idempotency=idempotency)
        item.stored = [self.mapper.to_stored_event(e) for e in events]
        self._queue.put(item)
        return item.future

    def append_and_wait(self, events: Sequence[Any], timeout: float = 30.0) -> list[int]:
        return self.append(events).result(timeout)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = sum(len(s.state) for s in first.stored)
            while len(batch) < 500 and size < MAX_BATCH_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += sum(len(s.state) for s in nxt.stored)
            self._write_batch(batch)

    def _write_batch(self, batch: list[PendingWrite]) -> None:
        try:
            results = self._insert(batch)
        except IntegrityError:
            if len(batch) == 1:
                self._fail(batch[0], self._classify_conflict())
                return
            # Someone in the batch conflicts: find out who by writing each one alone.
            for item in batch:
                self._write_batch([item])
            return
        except Exception as exc:  # connection lost, server down …: every caller hears it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, positions in zip(batch, results, strict=True):
            item.future.set_result(positions)
        if results:
            top = max(p[-1] for p in results if p)
            for listener in self.committed_listeners:
                try:
                    listener(top)
                except Exception:  # a listener must never break the writer
                    log.exception("committed listener failed")

    _last_conflict: Exception | None = None

    def _classify_conflict(self) -> Exception:
        exc = self._last_conflict
        cause = getattr(exc, "__cause__", None)
        constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
        if constraint and constraint.startswith("idempotency_keys"):
            return IdempotencyKeyTaken(str(exc))
        return RecordConflict(str(exc), constraint)

    @staticmethod
    def _fail(item: PendingWrite, exc: Exception) -> None:
        if not item.future.done():
            item.future.set_exception(exc)

    def _insert(self, batch: list[PendingWrite]) -> list[list[int]]:
        stored = [s for item in batch for s in item.stored]
        events = [e for item in batch for e in item.events]
        per_item: list[list[int]] = []

        def after_insert(curs: Any, ids: list[int]) -> None:
            log_rows = []
            for position, event, st in zip(ids, events, stored, strict=True):
                record_type, event_type = describe_topic(st.topic)
                meta = getattr(event, "meta", None) or {}
                log_rows.append((
                    position, st.originator_id, st.originator_version, record_type,
                    event_type, event.timestamp, (meta.get("actor") or {}).get("user_id"),
                    meta.get("department"), meta.get("correlation_id"),
                    leaf_hash(position, UUID(str(st.originator_id)), st.originator_version,
                              st.topic, st.state),
                ))
            curs.executemany(
                "INSERT INTO event_log (position, record_id, version, record_type, event_type,"
                " occurred_at, actor_id, department, correlation_id, leaf_hash)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", log_rows)
            offset = 0
            idem_rows = []
            for item in batch:
                positions = ids[offset: offset + len(item.stored)]
                offset += len(item.stored)
                per_item.append(positions)
                if item.idempotency is not None:
                    status, body = item.idempotency.respond(positions)
                    idem_rows.append((item.idempotency.actor_id, item.idempotency.key,
                                      item.idempotency.request_hash, status, Jsonb(body)))
            if idem_rows:
                curs.executemany(
                    "INSERT INTO idempotency_keys (actor_id, key, request_hash, status, body)"
                    " VALUES (%s,%s,%s,%s,%s)", idem_rows)

        try:
            self.recorder.insert_events(stored, after_insert=after_insert)
        except IntegrityError as exc:
            self._last_conflict = exc
            raise
        return per_item

    # -- reading ------------------------------------------------------------------------
    def get(self, record_id: UUID, version: int | None = None) -> Aggregate:
        return self.repository.get(record_id, version=version)

    def cache_put(self, aggregate: Aggregate) -> None:
        if self.repository.cache is not None:
            self.repository.cache.put(aggregate.id, aggregate)

    def cache_evict(self, record_id: UUID) -> None:
        cache = self.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(record_id, evict=True)

    def maybe_snapshot(self, aggregate: Aggregate, new_events: int) -> None:
        """Takes a snapshot each time the version passes a multiple of the interval."""
        interval = self.snapshot_interval
        if interval <= 0:
            return
        if aggregate.version // interval > (aggregate.version - new_events) // interval:
            snapshot = Snapshot.take(aggregate)
            with contextlib.suppress(IntegrityError):  # another process took it already
                self.snapshots.put([snapshot])

    def notifications(self, after: int, limit: int) -> Sequence[Notification]:
        return self.recorder.select_notifications(after, limit, inclusive_of_start=False)

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def to_event(self, notification: StoredEvent) -> Any:
        return self.mapper.to_domain_event(notification)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None,
                ) -> list[dict[str, Any]]:
        """Runs one statement on the shared pool; returns rows as dicts."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, params, prepare=False)
            if curs.description is None:
                return []
            return list(curs.fetchall())

    def connection(self) -> Any:
        return self.datastore.get_connection()


def is_unavailable(exc: BaseException) -> bool:
    """True when PostgreSQL cannot be reached (the caller should answer 503)."""
    from eventsourcing.persistence import InterfaceError, OperationalError
    return isinstance(exc, (InterfaceError, OperationalError, psycopg.OperationalError,
                            psycopg.InterfaceError, TimeoutError))
