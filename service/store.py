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
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, LiteralString
from uuid import UUID

import orjson
import psycopg
from eventsourcing.application import Repository
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import EventStore as LibraryEventStore
from eventsourcing.persistence import IntegrityError, Notification, ProgrammingError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.utils import resolve_topic
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Json

from domain.shared import copy_record
from projections.codec import make_mapper
from service import append_only, personal_data, telemetry
from service.database import Database
from service.personal_data import PersonalDataMapper, PersonalKeys
from service.tamper import leaf_hash

log = logging.getLogger(__name__)
tracer = trace.get_tracer("opsledger.store")

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
MAX_BATCH = 500  # … or this many commands

# A group commit's event_log rows (and its Idempotency-Key answers, appended as a second
# data-modifying statement of the same command): one statement however many events, its rows
# one JSON parameter written by orjson (measured: psycopg's binary array dumpers spent ~120 µs
# of Python on a batch of 10 commands' fifteen arrays; orjson ~8 µs).
APPEND_ROWS_SQL = (
    "INSERT INTO event_log (position, record_id, version, record_type, event_type,"
    " occurred_at, actor_id, department, correlation_id, leaf_hash)"
    " SELECT r.position, r.record_id, r.version, r.record_type, r.event_type, r.occurred_at,"
    " r.actor_id, r.department, r.correlation_id, decode(r.leaf_hash, 'hex')"
    " FROM json_to_recordset(%(rows)s::json -> 'log') AS r(position bigint, record_id uuid,"
    " version bigint, record_type text, event_type text, occurred_at timestamptz,"
    " actor_id text, department text, correlation_id text, leaf_hash text)")
APPEND_ROWS_AND_KEYS_SQL = (
    f"WITH log AS ({APPEND_ROWS_SQL})"
    " INSERT INTO idempotency_keys (actor_id, key, request_hash, status, body)"
    " SELECT k.actor_id, k.key, k.request_hash, k.status, k.body"
    " FROM json_to_recordset(%(rows)s::json -> 'keys') AS k(actor_id text, key text,"
    " request_hash text, status int, body jsonb)")


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
    span: trace.SpanContext | None = None  # the caller's span: the group commit links to it


class FailFastReads:
    """Reads try once. The library retries them up to 10 times, 0.2 s apart, on connection
    errors, and each attempt may wait the pool timeout (5 s) for a connection: a request would
    learn that PostgreSQL is down only after ~50 s. Pooled connections are checked before use
    (``pre_ping``), so one attempt suffices: the caller answers 503 + Retry-After within the
    pool timeout and the client retries."""

    select_events = inspect.unwrap(PostgresAggregateRecorder.select_events)
    select_notifications = inspect.unwrap(PostgresApplicationRecorder.select_notifications)
    max_notification_id = inspect.unwrap(PostgresApplicationRecorder.max_notification_id)


class SnapshotRecorder(FailFastReads, PostgresAggregateRecorder):
    """The library's recorder for snapshots, failing fast when the database is down."""

    insert_events = inspect.unwrap(PostgresAggregateRecorder.insert_events)


class OpsRecorder(FailFastReads, PostgresApplicationRecorder):
    """The library's recorder, plus our per-batch rows written in the same transaction.

    ``insert_events`` runs the library's own steps (lock, notify, insert, fetch ids) and ours
    (the event_log rows and Idempotency-Key answers, which need the ids) in one plain
    transaction. Not in psycopg's pipeline mode: over a unix socket a pipelined statement of a
    megabyte or more can stall forever (psycopg #685), and measured on small batches it cost
    more CPU than the round trips it saved. The writer holds the table lock from the lock to
    the commit, so the transaction makes few round trips: the lock timeout, the lock and
    ``NOTIFY`` in one message (statements without parameters), the events, our rows, the
    commit. ``connection``: the writer's own (else one from the pool).
    """

    commit_sent = False  # whether the last insert_events got as far as sending COMMIT

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any,
                      ) -> Sequence[int] | None:
        if not stored_events:
            return []
        self.commit_sent = False
        own = kwargs.pop("connection", None)
        with (self.datastore.get_connection() if own is None else _translated(own)) as conn, \
                conn.cursor() as curs:
            try:
                self._lock_table(curs)
                self._insert_stored_events(curs, stored_events)
                ids = [row["notification_id"] for row in curs.fetchall()]
                if len(ids) != len(stored_events):
                    raise ProgrammingError(f"got {len(ids)} notification ids for "
                                           f"{len(stored_events)} events")
                after = kwargs.get("after_insert")
                if after is not None:
                    after(curs, ids)
                self.commit_sent = True
                curs.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.execute("ROLLBACK")
                raise
            return ids

    def _lock_table(self, curs: Any) -> None:
        curs.execute(self.begin_statement())

    def begin_statement(self) -> sql.Composed:
        """``BEGIN``, the lock timeout, the table lock and ``NOTIFY``: one message (statements
        without parameters), one round trip. The same EXCLUSIVE lock as the library's, taken
        through an owner-defined function so the service role needs no UPDATE/DELETE/TRUNCATE
        privilege (see append_only.py); ``COMMIT`` ends the transaction."""
        if self._begin_lock_notify is None:
            self._begin_lock_notify = sql.SQL("; ").join(self.begin_statements())
        return self._begin_lock_notify

    _begin_lock_notify: sql.Composed | None = None

    def begin_statements(self) -> list[sql.SQL | sql.Composed]:
        """``begin_statement``'s statements one by one (pipeline mode sends each as its own
        extended-protocol query, all in one round trip)."""
        if self._begin_each is None:
            lock_timeout = self.lock_table_statements[0]  # SET LOCAL lock_timeout
            assert isinstance(lock_timeout, sql.Composed)
            self._begin_each = [
                sql.SQL("BEGIN"), lock_timeout,
                append_only.lock_events_statement(self.datastore.schema),
                sql.SQL("NOTIFY {0}").format(sql.Identifier(self.channel_name))]
        return self._begin_each

    _begin_each: list[sql.SQL | sql.Composed] | None = None

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        curs.execute(self.insert_statement(), self.insert_params(stored_events))

    @staticmethod
    def insert_params(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
        """``insert_statement``'s parameters: four binary arrays rather than one array of a
        composite type, which psycopg can only send as text, escaping every field."""
        return ([e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events], [e.state for e in stored_events])

    _insert_arrays: sql.Composed | None = None

    def insert_statement(self) -> sql.Composed:
        """The library's INSERT … RETURNING notification_id (in input order) of the events,
        sent as four arrays (``insert_params``)."""
        if self._insert_arrays is None:
            id_type = sql.SQL(self.datastore.originator_id_type)
            self._insert_arrays = sql.SQL(
                "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
                " SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
                " RETURNING notification_id").format(
                schema=sql.Identifier(self.datastore.schema),
                table=sql.Identifier(self.events_table_name), id_type=id_type)
        return self._insert_arrays


@contextlib.contextmanager
def _translated(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A connection of our own, its integrity errors the library's (as ``get_connection``
    gives them: the writer tells conflicts by them)."""
    try:
        yield conn
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc


@contextlib.contextmanager
def commit_span(batch: Sequence[PendingWrite]) -> Iterator[None]:
    """One span per group commit, linked to the commands it carries (they are in other
    traces). Its statements get no spans of their own: on the hot path, the transaction's
    span says what they would (how long, how many events)."""
    with tracer.start_as_current_span(
            "event_store.commit",
            links=telemetry.links_to_spans(item.span for item in batch)) as span, \
            suppress_instrumentation():
        span.set_attribute("opsledger.commands", len(batch))
        span.set_attribute("opsledger.events", sum(len(item.stored) for item in batch))
        yield


def written_again(exc: BaseException, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
                  commit_sent: bool) -> bool:
    """Whether a failed group commit is to be written once more, on a new connection (the
    writer thread's and the loop writer's rule): its connection was lost (the server restarted
    since the last batch) before ``COMMIT`` was sent, so nothing was written. Lost after it,
    the outcome is unknown: every caller hears the error (and a retry with its
    Idempotency-Key answers it)."""
    return (isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
            and conn.broken and not commit_sent)


def batch_cut(sizes: Sequence[int]) -> int:
    """How many of the waiting writes (their event bytes, in order) one group commit takes:
    at most ``MAX_BATCH``, and no more once ``MAX_BATCH_BYTES`` is reached."""
    total = 0
    for n, size in enumerate(sizes[:MAX_BATCH], 1):
        total += size
        if total >= MAX_BATCH_BYTES:
            return n
    return min(len(sizes), MAX_BATCH)


class EventStore:
    """Appends and reads events; owns the library's datastore, recorders and repository."""

    def __init__(self, database: Database, *, pool_size: int = 10, snapshot_interval: int = 100,
                 cache_size: int = 5000, create_schema: bool = True):
        self.database = database
        self.datastore = PostgresDatastore(**database.library_kwargs(), pool_size=pool_size,
                                           max_overflow=pool_size, pre_ping=True)
        self.recorder = OpsRecorder(self.datastore, events_table_name="stored_events")
        self._selects: dict[str, sql.Composed] = {}  # notifications' statements, by condition
        self.snapshot_recorder = SnapshotRecorder(self.datastore,
                                                  events_table_name="snapshots")
        # Personal data is sealed per customer (service/personal_data.py); the projections
        # and audit readers decrypt through this same mapper.
        self.personal = PersonalKeys(self.datastore.get_connection,
                                     snapshots_table=self.snapshot_recorder.events_table_name)
        self.mapper = PersonalDataMapper(make_mapper().transcoder, self.personal)
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
                conn.execute(personal_data.SCHEMA_SQL)
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
        self._release_writer_connection()
        self.datastore.close()

    _writer_conn: psycopg.Connection[Any] | None = None

    def _writer_connection(self) -> psycopg.Connection[Any]:
        """The writer's own connection, kept between batches (taken from the pool, whose
        check runs once, not before every batch); a broken one is replaced."""
        conn = self._writer_conn
        if conn is not None and (conn.closed or conn.broken):
            self._release_writer_connection()
            conn = None
        if conn is None:
            pool = self.datastore.pool
            pool.open(wait=True, timeout=self.datastore.pool_open_timeout or 30.0)
            conn = self._writer_conn = pool.getconn()
        return conn

    def _release_writer_connection(self) -> None:
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                self.datastore.pool.putconn(conn)  # a broken one is discarded by the pool

    # -- writing ------------------------------------------------------------------------
    def append(self, events: Sequence[Any], idempotency: IdempotencyRecord | None = None,
               ) -> Future[list[int]]:
        """Queues events for the next group commit; the future gives their positions."""
        item = self.pending(events, idempotency)
        self._queue.put(item)
        return item.future

    def pending(self, events: Sequence[Any], idempotency: IdempotencyRecord | None = None,
                ) -> PendingWrite:
        """Events to append, stored as they will be, with the caller's span (the group
        commit's span links to it)."""
        item = PendingWrite(events=events, idempotency=idempotency,
                            span=trace.get_current_span().get_span_context())
        item.stored = [self.mapper.to_stored_event(e) for e in events]
        return item

    def append_and_wait(self, events: Sequence[Any], timeout: float = 30.0) -> list[int]:
        return self.append(events).result(timeout)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = sum(len(s.state) for s in first.stored)
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += sum(len(s.state) for s in nxt.stored)
            # From here on a caller can no longer cancel its write (an awaiting request that
            # is cancelled); one cancelled before is dropped, never answered, never written.
            batch = [item for item in batch if item.future.set_running_or_notify_cancel()]
            if batch:
                self._write_batch(batch)

    def _write_batch(self, batch: list[PendingWrite]) -> None:
        with commit_span(batch):
            self._write_batch_in_span(batch)

    def _write_batch_in_span(self, batch: list[PendingWrite]) -> None:
        started = time.perf_counter()
        try:
            results = self._insert(batch)
        except IntegrityError:
            if len(batch) == 1:
                self._fail(batch[0], self._classify_conflict())
                return
            # A retried command whose Idempotency-Key is already stored fails the batch: answer
            # those at once and write the others together again.
            taken = self._keys_taken(batch)
            if taken:
                for item in taken:
                    self._fail(item, IdempotencyKeyTaken("Idempotency-Key already used"))
                gone = {id(item) for item in taken}
                rest = [item for item in batch if id(item) not in gone]
                if rest:
                    self._write_batch(rest)
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
        self.after_commit(batch, results, time.perf_counter() - started)

    def after_commit(self, batch: Sequence[PendingWrite], results: Sequence[list[int]],
                     seconds: float) -> None:
        """A group commit's metrics, and the committed listeners told its last position."""
        self._count(batch, seconds)
        if results:
            top = max(p[-1] for p in results if p)
            for listener in self.committed_listeners:
                try:
                    listener(top)
                except Exception:  # a listener must never break the writer
                    log.exception("committed listener failed")

    @staticmethod
    def _count(batch: Sequence[PendingWrite], seconds: float) -> None:
        by_type: dict[str, int] = {}
        for item in batch:
            for st in item.stored:
                record_type = describe_topic(st.topic)[0]
                by_type[record_type] = by_type.get(record_type, 0) + 1
        for record_type, n in by_type.items():
            telemetry.EVENTS_APPENDED.add(n, {"record_type": record_type})
        telemetry.COMMIT_SIZE.record(sum(by_type.values()))
        telemetry.COMMIT_DURATION.record(seconds)

    _last_conflict: Exception | None = None

    def _classify_conflict(self) -> Exception:
        exc = self._last_conflict
        cause = getattr(exc, "__cause__", None)
        constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
        if constraint and constraint.startswith("idempotency_keys"):
            return IdempotencyKeyTaken(str(exc))
        return RecordConflict(str(exc), constraint)

    def _keys_taken(self, batch: list[PendingWrite]) -> list[PendingWrite]:
        """The items of a batch whose Idempotency-Key is stored already (none on error)."""
        keyed = [item for item in batch if item.idempotency is not None]
        if not keyed:
            return []
        try:
            rows = self.execute(
                "SELECT actor_id, key FROM idempotency_keys WHERE (actor_id, key) IN"
                " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([i.idempotency.actor_id for i in keyed],  # type: ignore[union-attr]
                 [i.idempotency.key for i in keyed]))  # type: ignore[union-attr]
        except Exception:  # the one-by-one retry will tell
            log.debug("could not look up idempotency keys", exc_info=True)
            return []
        found = {(r["actor_id"], r["key"]) for r in rows}
        return [i for i in keyed
                if (i.idempotency.actor_id, i.idempotency.key) in found]  # type: ignore[union-attr]

    @staticmethod
    def _fail(item: PendingWrite, exc: Exception) -> None:
        if not item.future.done():
            item.future.set_exception(exc)

    def _insert(self, batch: list[PendingWrite]) -> list[list[int]]:
        stored = [s for item in batch for s in item.stored]
        events = [e for item in batch for e in item.events]
        per_item: list[list[int]] = []

        def after_insert(curs: Any, ids: list[int]) -> None:
            # New personal-data keys, the erased-customer guard and erasures: same transaction.
            self.personal.in_transaction(curs, events, ids)
            # The event_log rows and the Idempotency-Key answers: one statement.
            statement, params, positions = self.append_rows(batch, events, stored, ids)
            per_item[:] = positions
            curs.execute(statement, params)

        conn = self._writer_connection()
        try:
            try:
                self.recorder.insert_events(stored, after_insert=after_insert, connection=conn)
            except Exception as exc:
                if not written_again(exc, conn, self.recorder.commit_sent):
                    raise
                per_item.clear()
                self.recorder.insert_events(stored, after_insert=after_insert,
                                            connection=self._writer_connection())
        except IntegrityError as exc:
            self._last_conflict = exc
            raise
        self.personal.committed(events)
        return per_item

    def append_rows(self, batch: Sequence[PendingWrite], events: Sequence[Any],
                    stored: Sequence[StoredEvent], ids: Sequence[int],
                    ) -> tuple[LiteralString, dict[str, Any], list[list[int]]]:
        """A group commit's event_log rows (with their leaf hashes) and Idempotency-Key
        answers, once the events have their positions: (statement, parameters, each item's
        positions)."""
        log = []
        for position, event, st in zip(ids, events, stored, strict=True):
            record_type, event_type = describe_topic(st.topic)
            meta = getattr(event, "meta", None) or {}
            record_id = st.originator_id
            if not isinstance(record_id, UUID):
                record_id = UUID(str(record_id))
            log.append({
                "position": position, "record_id": record_id,
                "version": st.originator_version, "record_type": record_type,
                "event_type": event_type, "occurred_at": event.timestamp,
                "actor_id": (meta.get("actor") or {}).get("user_id"),
                "department": meta.get("department"),
                "correlation_id": meta.get("correlation_id"),
                "leaf_hash": leaf_hash(position, record_id, st.originator_version, st.topic,
                                       st.state).hex()})
        offset = 0
        per_item: list[list[int]] = []
        keys = []
        for item in batch:
            positions = list(ids[offset: offset + len(item.stored)])
            offset += len(item.stored)
            per_item.append(positions)
            if item.idempotency is not None:
                status, body = item.idempotency.respond(positions)
                keys.append({"actor_id": item.idempotency.actor_id,
                             "key": item.idempotency.key,
                             "request_hash": item.idempotency.request_hash,
                             "status": status, "body": body})
        rows = Json({"log": log, "keys": keys}, dumps=orjson.dumps)
        return (APPEND_ROWS_AND_KEYS_SQL if keys else APPEND_ROWS_SQL), {"rows": rows}, per_item

    # -- reading ------------------------------------------------------------------------
    def get(self, record_id: UUID, version: int | None = None) -> Aggregate:
        aggregate: Aggregate = self._load(record_id, version)
        if (version is None and getattr(aggregate, "personal_data_erased", None) is False
                and self.personal.is_erased(record_id)):
            # Erased by another process: never serve the personal data cached here.
            self.cache_evict(record_id)
            aggregate = self._load(record_id, None)
        return aggregate

    def _load(self, record_id: UUID, version: int | None) -> Aggregate:
        if version is not None:
            return self.repository.get(record_id, version=version)
        # The cached aggregate is shared: the caller gets its own copy to change, made by
        # copy_record (several times cheaper than the library's deepcopy).
        return copy_record(self.repository.get(record_id, deepcopy_from_cache=False))

    def cached_copy(self, record_id: UUID) -> Aggregate | None:
        """A copy of the record as this process has it cached, without any I/O (None when it
        is not cached). It may lag behind other processes: a command on it then conflicts."""
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            aggregate = cache.get(record_id)
        except KeyError:
            return None
        return copy_record(aggregate)

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
        if self.snapshot_due(aggregate, new_events):
            self.take_snapshot(aggregate)

    def snapshot_due(self, aggregate: Aggregate, new_events: int) -> bool:
        interval = self.snapshot_interval
        return interval > 0 and (
            aggregate.version // interval > (aggregate.version - new_events) // interval)

    def take_snapshot(self, aggregate: Aggregate) -> None:
        snapshot = Snapshot.take(aggregate)
        with contextlib.suppress(IntegrityError):  # another process took it already
            self.snapshots.put([snapshot])

    def notifications(self, after: int, limit: int, conn: psycopg.Connection[Any] | None = None,
                      ) -> Sequence[Notification]:
        """The stored events after a position, in order: the library's
        ``select_notifications(after, limit, inclusive_of_start=False)``, read as binary
        tuples (a rebuild reads every event: the library's text rows as dicts cost more than
        the query). Tried once, as ``FailFastReads``. On ``conn`` when given (the projector's
        own connection), else on one of the pool's."""
        return self._notifications("", (after, limit), conn)

    def partition_notifications(self, after: int, until: int, part: int, parts: int,
                                limit: int, conn: psycopg.Connection[Any] | None = None,
                                ) -> Sequence[Notification]:
        """``notifications`` up to ``until``, of the records whose id's last byte modulo
        ``parts`` is ``part`` (one process of a rebuild in several). Keep ``until - after``
        near ``limit × parts``: PostgreSQL cannot estimate the partition's filter, and asked
        for the first rows of a long range it sorts all of it."""
        return self._notifications(
            " AND notification_id <= %s AND get_byte(uuid_send(originator_id), 15) %% %s = %s",
            (after, until, parts, part, limit), conn)

    def _notifications(self, condition: str, params: tuple[int, ...],
                       conn: psycopg.Connection[Any] | None = None) -> list[Notification]:
        statement = self._selects.get(condition)
        if statement is None:
            statement = self._selects[condition] = sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                " FROM {schema}.{table} WHERE notification_id > %s" + condition +
                " ORDER BY notification_id LIMIT %s").format(
                schema=sql.Identifier(self.datastore.schema),
                table=sql.Identifier(self.recorder.events_table_name))
        with (contextlib.nullcontext(conn) if conn is not None
              else self.datastore.get_connection()) as conn, \
                conn.cursor(row_factory=tuple_row, binary=True) as curs:
            curs.execute(statement, params, prepare=True)
            return [_notification(*row) for row in curs.fetchall()]

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def to_event(self, notification: StoredEvent, *, with_personal: bool = True) -> Any:
        """The domain event; ``with_personal=False`` leaves personal data sealed (``None``)
        for readers that never show it."""
        return self.mapper.to_domain_event(notification, with_personal=with_personal)

    def to_events(self, notifications: Sequence[StoredEvent]) -> list[Any]:
        """Domain events of a batch, the personal-data keys they need loaded at once."""
        self.mapper.prefetch(notifications)
        return [self.mapper.to_domain_event(n) for n in notifications]

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


_new = object.__new__


def _notification(position: int, record_id: UUID, version: int, topic: str, state: bytes,
                  ) -> Notification:
    """``Notification(id=position, …)`` without the frozen dataclass's ``__init__`` (which
    sets each field through ``object.__setattr__``): 0.36 µs a row instead of 0.9, for every
    event a projection or a rebuild reads. The same object: equal, same fields."""
    n = _new(Notification)
    d = n.__dict__
    d["id"] = position
    d["originator_id"] = record_id
    d["originator_version"] = version
    d["topic"] = topic
    d["state"] = bytes(state)
    return n
