"""Runs projections: reads events in global order in batches and updates read models.

Each projection's view rows and its tracking position commit in one transaction, so every
event is applied exactly once, whatever crashes. Only one runner per database projects at a
time: it holds a PostgreSQL advisory lock on its own connection (leader election); a standby
runner waits for the lock and takes over when the leader's connection dies.

A rebuild may run in several processes (``service.rebuild``), each applying the events of one
partition of the records (by record id: every projection's rows derive from one record's
events) with a tracking row of its own, ``<projection>#<part>/<parts>``. Whoever runs the
projection next (the rebuild itself, or a worker after a crash) first brings every partition
to the same position and replaces their rows by the projection's own (``finish_partitions``).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from opentelemetry import trace
from psycopg import Connection

log = logging.getLogger(__name__)
tracer = trace.get_tracer("opsledger.projections")

LEADER_LOCK_KEY = 724_002
PARTITION_LOCK_KEY = 724_003  # with the partition's number: held by who rebuilds it
# Notified by every batch's transaction: a read process waiting for a position hears of it at
# once (``service/graphql/positions.py``) instead of polling ``projection_tracking``.
PROJECTED_CHANNEL = "opsledger_projected"
REBUILD_BATCH = 2000  # events per transaction when catching up (measured best of 1k–4k)

TRACKING_SQL = """
CREATE TABLE IF NOT EXISTS projection_tracking (
    name       text PRIMARY KEY,
    position   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Envelope:
    """One stored event as projections see it: its global position and the domain event."""

    position: int
    event: Any

    @property
    def record_id(self) -> Any:
        return self.event.originator_id

    @property
    def meta(self) -> dict[str, Any]:
        return getattr(self.event, "meta", None) or {}


# Writes the rows of a batch a projection has prepared (see ``ProjectionRunner.catch_up``).
Write = Callable[[Connection[Any]], None]


class Projection(Protocol):
    """Applies batches of events to its tables. A projection may also offer
    ``prepare(conn, batch) -> Write``: all the work of ``apply`` but the writing (reading on
    ``conn`` what it needs), the rows taken so that the batch can be written in another thread
    while the next one is prepared; until the rows are written, the next batch's preparation
    must not depend on reading them back."""

    name: str

    def create_tables(self, conn: Connection[Any]) -> None: ...

    def reset(self, conn: Connection[Any]) -> None: ...

    def apply(self, conn: Connection[Any], batch: Sequence[Envelope]) -> None: ...


# Reads up to ``limit`` envelopes after a position.
Source = Callable[[int, int], Sequence[Envelope]]


def part_name(name: str, part: int, parts: int) -> str:
    """The tracking name of one of ``parts`` partitions of a projection (a parallel rebuild)."""
    return f"{name}#{part}/{parts}"


def part_of(name: str) -> tuple[str, int, int]:
    """A partition's tracking name: the projection's name, the part, how many parts."""
    base, _, fraction = name.partition("#")
    part, _, parts = fraction.partition("/")
    return base, int(part), int(parts)


@contextmanager
def _partitions_locked(conninfo: str, parts: Iterable[int]) -> Iterator[None]:
    """Holds the locks of partitions of a rebuild (waiting for them, in order); a killed
    holder's go with its connection."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for part in sorted(parts):
            conn.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (PARTITION_LOCK_KEY, part))
        yield


class _Part:
    """A projection as one partition of a parallel rebuild runs it: itself, tracked under its
    partition's name."""

    def __init__(self, projection: Projection, name: str):
        self.projection = projection
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.projection, attr)


def tracked_position(conn: Connection[Any], name: str) -> int:
    row = conn.execute("SELECT position FROM projection_tracking WHERE name = %s",
                       (name,)).fetchone()
    return int(row[0]) if row else 0


class ProjectionRunner:
    """Keeps a set of projections up to date with the event store."""

    def __init__(self, conninfo: str, source: Source, projections: Sequence[Projection], *,
                 batch_size: int = 1000, poll_interval: float = 0.5,
                 rebuild_batch_size: int = REBUILD_BATCH, gather_seconds: float = 0.0,
                 on_batch: Callable[[str, int, int], None] | None = None):
        self.conninfo = conninfo
        self.source = source
        self.projections = list(projections)
        self.batch_size = batch_size
        self.rebuild_batch_size = rebuild_batch_size
        self.poll_interval = poll_interval
        self.gather_seconds = gather_seconds
        self.on_batch = on_batch
        self.positions: dict[str, int] = {}
        self.is_leader = False
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- set-up -------------------------------------------------------------------------
    def create_tables(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(724001)")
            try:
                conn.execute(TRACKING_SQL)
                for p in self.projections:
                    p.create_tables(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(724001)")

    def reset(self, names: Sequence[str] | None = None, parts: int = 1) -> None:
        """Empties the named projections (all by default) so they rebuild from position 0;
        with ``parts`` > 1, as that many partitions (``catch_up_part``), each tracked from 0
        in the same transaction."""
        self._forget()
        with psycopg.connect(self.conninfo) as conn, conn.transaction():
            for p in self._named(names):
                p.reset(conn)
                conn.execute("DELETE FROM projection_tracking WHERE name = %s"
                             " OR (split_part(name, '#', 1) = %s AND name LIKE '%%#%%')",
                             (p.name, p.name))
                self.positions.pop(p.name, None)
                if parts > 1:
                    _track(conn, [(part_name(p.name, k, parts), 0, 0, 0) for k in range(parts)])

    def _named(self, names: Sequence[str] | None) -> list[Projection]:
        return [p for p in self.projections if not names or p.name in names]

    # -- a rebuild in partitions --------------------------------------------------------------
    def catch_up_part(self, part: int, parts: int, upto: int,
                      names: Sequence[str] | None = None,
                      progress: Callable[[int], None] | None = None) -> int:
        """Applies the events up to ``upto`` of one of ``parts`` partitions of the records
        (the source's ``partition``) to the named projections, tracked under their partition's
        names; then tracks those at ``upto``: every event of the partition up to there is
        applied (the tracking means that whether or not the last event was the partition's).
        Holds the partition's lock meanwhile: a process of a rebuild whose leader has died may
        still be running it (``finish_partitions`` waits for it)."""
        with _partitions_locked(self.conninfo, [part]):
            return self._catch_up_part(part, parts, upto, names, progress)

    def _catch_up_part(self, part: int, parts: int, upto: int, names: Sequence[str] | None,
                       progress: Callable[[int], None] | None = None) -> int:
        partition = getattr(self.source, "partition", None)
        if partition is None:
            raise TypeError("this runner's source cannot read a partition of the records")
        runner = ProjectionRunner(
            self.conninfo, partition(part, parts, upto),
            [_Part(p, part_name(p.name, part, parts)) for p in self._named(names)],
            rebuild_batch_size=self.rebuild_batch_size, on_batch=self.on_batch)
        applied = runner.catch_up(progress)
        with psycopg.connect(self.conninfo) as conn, conn.transaction():
            conn.execute("UPDATE projection_tracking SET position = %s, updated_at = now()"
                         " WHERE name = ANY(%s) AND position < %s",
                         (upto, [p.name for p in runner.projections], upto))
        if progress is not None:
            progress(upto)
        return applied

    def finish_partitions(self) -> bool:
        """If a rebuild in partitions has not been finished (it was interrupted, or its
        partitions are done), brings each partition of each projection to the furthest of
        their positions, then, in one transaction, replaces their tracking rows by the
        projection's own at that position. Views are not touched by the replacement: every
        event is still applied exactly once. True when there was something to finish."""
        rows = self.partition_rows()
        if not rows:
            return False
        # Once no process of the rebuild runs a partition any more (their positions are final).
        with _partitions_locked(self.conninfo, {part_of(name)[1] for name, _ in rows}):
            return self._finish_partitions(self.partition_rows())

    def partition_rows(self, names: Sequence[str] | None = None) -> list[tuple[str, int]]:
        """The tracking rows (name, position) of an unfinished rebuild in partitions of the
        named projections (all by default)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return [(name, int(position)) for name, position in conn.execute(
                "SELECT name, position FROM projection_tracking"
                " WHERE split_part(name, '#', 1) = ANY(%s) AND name LIKE '%%#%%'",
                ([p.name for p in self._named(names)],))]

    def _finish_partitions(self, rows: list[tuple[str, int]]) -> bool:
        if not rows:
            return False
        upto = max(int(position) for _, position in rows)
        behind: dict[tuple[int, int], list[str]] = {}
        for name, position in rows:
            base, part, parts = part_of(name)
            if position < upto:
                behind.setdefault((part, parts), []).append(base)
        for (part, parts), names in sorted(behind.items()):
            log.info("finishing a rebuild's partition", extra={
                "partition": f"{part}/{parts}", "projections": names, "position": upto})
            self._catch_up_part(part, parts, upto, names)
        bases = sorted({part_of(name)[0] for name, _ in rows})
        with psycopg.connect(self.conninfo) as conn, conn.transaction():
            conn.execute("DELETE FROM projection_tracking WHERE name = ANY(%s)",
                         ([name for name, _ in rows],))
            _track(conn, [(base, 0, upto, 0) for base in bases])
        self._forget()
        return True

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self, _position: int = 0) -> None:
        self._wake.set()

    @property
    def position(self) -> int:
        return min(self.positions.values()) if self.positions else 0

    def wait_for(self, position: int, timeout: float) -> bool:
        """Blocks until every projection has applied ``position`` (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self.position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    self._lead(conn)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("projector failed; retrying in 1 s")
                self.is_leader = False
                self._stop.wait(1.0)

    def _lead(self, conn: Connection[Any]) -> None:
        # Leader election: the lock lives as long as this connection (kill -9 releases it).
        # Server-side TCP keepalives bound how long a vanished host keeps holding it (~25 s).
        conn.execute("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5;"
                     " SET tcp_keepalives_count = 3")
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)
                               ).fetchone()[0]:  # type: ignore[index]
            self.is_leader = False
            self._refresh_positions(conn)
            if self._stop.wait(self.poll_interval):
                return
        self.is_leader = True
        _derived_commits(conn)
        self._forget()  # another leader may have written since
        self.finish_partitions()  # a rebuild in partitions interrupted
        self._refresh_positions(conn)
        # Where it starts: a leader killed right after a commit never logged that batch; the
        # positions tracked here say what it had applied.
        log.info("projector is the leader",
                 extra={f"position_{name}": pos for name, pos in self.positions.items()})
        read = self._reading_on(conn)
        while not self._stop.is_set():
            if not self.run_once(conn, read):
                self._wake.wait(self.poll_interval)
                self._wake.clear()
            elif self.gather_seconds:
                # Busy: let the next commits gather into one batch (a batch costs several
                # round trips and a transaction whatever its size). An idle projector waits
                # on the wake-up above and starts on a commit at once.
                self._stop.wait(self.gather_seconds)

    def _reading_on(self, conn: Connection[Any]) -> Callable[[int], Sequence[Envelope]] | None:
        """The batches read on the leader's own connection, when the source can (``on``)."""
        on = getattr(self.source, "on", None)
        if on is None:
            return None
        source: Source = on(conn)

        def read(after: int) -> Sequence[Envelope]:
            return source(after, self.batch_size)
        return read

    def _forget(self) -> None:
        for p in self.projections:
            forget = getattr(p, "forget", None)
            if forget is not None:
                forget()

    def _refresh_positions(self, conn: Connection[Any]) -> None:
        for p in self.projections:
            self.positions[p.name] = tracked_position(conn, p.name)
        with self._progress:
            self._progress.notify_all()

    def run_once(self, conn: Connection[Any],
                 read: Callable[[int], Sequence[Envelope]] | None = None) -> bool:
        """Applies at most one batch to every projection; False when nothing was new.
        (``read``: reads the batch after a position instead of ``source``.)"""
        if not self.positions:
            self._refresh_positions(conn)
        start = min(self.positions.values()) if self.positions else 0
        batch = read(start) if read is not None else self.source(start, self.batch_size)
        if not batch:
            return False
        work = [(p, todo) for p in self.projections
                if (todo := [e for e in batch if e.position > self.positions.get(p.name, 0)])]
        spans = _spans(work)
        timings: list[int] = []
        try:
            # One transaction for the batch: every projection's rows and its tracking position
            # commit together (exactly once), for one commit instead of one per projection;
            # sent as one pipeline (BEGIN, the rows, the tracking, COMMIT: one round trip
            # unless a projection must read something back first).
            with conn.pipeline(), conn.transaction():
                for p, todo in work:
                    t0 = time.monotonic()
                    if _concerns(p, todo):
                        with _span(p, todo):
                            p.apply(conn, todo)
                    timings.append(int((time.monotonic() - t0) * 1e6))
                _track(conn, spans)
        except BaseException:
            self._forget()  # whatever a projection kept in memory for this batch is void
            raise
        self._committed(spans, timings)
        return True

    def _committed(self, spans: Sequence[_Span], timings: Sequence[int]) -> None:
        for (name, first, last, events), micros in zip(spans, timings, strict=True):
            self.positions[name] = last
            # Which positions each batch applied: with DEBUG on, the logs prove exactly-once.
            log.debug("projected batch", extra={"projection": name, "first_position": first,
                                                "last_position": last, "events": events})
            if self.on_batch is not None:
                self.on_batch(name, events, micros)
        with self._progress:
            self._progress.notify_all()

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Runs to the end of the store in the calling thread (CLI rebuild, tests), in batches
        of ``rebuild_batch_size`` events (fewer, larger transactions).

        Pipelined: while a batch's rows are written and committed (by a thread of its own, on
        a connection of its own), the next batch is prepared (``Projection.prepare``: read,
        decoded, evolved, encoded). Still one transaction per batch with its tracking
        positions, committed in order; the next batch is handed over only once the one
        before it has committed, so what the preparation reads back is committed."""
        self.finish_partitions()
        with psycopg.connect(self.conninfo, autocommit=True) as conn, \
                psycopg.connect(self.conninfo, autocommit=True) as write_conn, \
                _few_collections(), _prompt_handover(), \
                _ReadAhead(self.source, self.rebuild_batch_size) as read, \
                _Writer(write_conn) as writer:
            _derived_commits(write_conn)
            _fast_compression(write_conn)
            self._forget()
            self._refresh_positions(conn)
            before = self.position
            prepared = dict(self.positions)  # up to where the batches handed over go
            try:
                while True:
                    batch = read(min(prepared.values()) if prepared else 0)
                    work = [(p, todo) for p in self.projections if (
                        todo := _after(batch, prepared.get(p.name, 0)))]
                    if not work:
                        break
                    writes: list[Write] = []
                    timings: list[int] = []
                    for p, todo in work:
                        t0 = time.monotonic()
                        if not _concerns(p, todo):
                            writes.append(write_nothing)
                        else:
                            with _span(p, todo):
                                writes.append(_prepare(p, conn, todo))
                        timings.append(int((time.monotonic() - t0) * 1e6))
                        prepared[p.name] = todo[-1].position
                    # A rebuild passes each record about once: keep only what the batch being
                    # written needs (measured: keeping more made a 300k rebuild 12 % slower).
                    self._forget_older()
                    done = writer.submit(_spans(work), writes, timings)
                    # The events are not needed any more: freed before the next are decoded.
                    del batch, work, writes, todo
                    self._caught_up(done, progress)
                self._caught_up(writer.wait(), progress)
            except BaseException:
                self._forget()  # whatever a projection kept in memory is void
                raise
        return self.position - before

    def _caught_up(self, done: tuple[list[_Span], list[int]] | None,
                   progress: Callable[[int], None] | None) -> None:
        if done is not None:
            self._committed(*done)
            if progress is not None:
                progress(self.position)

    def _forget_older(self) -> None:
        for p in self.projections:
            forget_older = getattr(p, "forget_older", None)
            if forget_older is not None:
                forget_older()


def _after(batch: Sequence[Envelope], position: int) -> Sequence[Envelope]:
    """The envelopes of ``batch`` past ``position``: the whole batch, as it is, when all are
    (every projection of a rebuild, but one resumed from its own position)."""
    if not batch or batch[0].position > position:
        return batch
    return [e for e in batch if e.position > position]


def _concerns(p: Projection, batch: Sequence[Envelope]) -> bool:
    """Whether ``batch`` holds an event ``p`` reads: a projection naming its ``event_types``
    (those over one kind of event) is passed over by batches without one (it is tracked past
    them all the same), sparing a span and a statement per batch."""
    types = getattr(p, "event_types", None)
    return types is None or any(isinstance(e.event, types) for e in batch)


def write_nothing(conn: Connection[Any]) -> None:
    """The ``Write`` of a batch that has nothing to write."""


def _prepare(p: Projection, conn: Connection[Any], batch: Sequence[Envelope]) -> Write:
    prepare = getattr(p, "prepare", None)
    if prepare is not None:
        return prepare(conn, batch)
    return lambda write_conn: p.apply(write_conn, batch)


# What a batch applied to a projection: its name, first and last positions, how many events.
_Span = tuple[str, int, int, int]


def _spans(work: Sequence[tuple[Projection, Sequence[Envelope]]]) -> list[_Span]:
    return [(p.name, todo[0].position, todo[-1].position, len(todo)) for p, todo in work]


def _track(conn: Connection[Any], spans: Sequence[_Span]) -> None:
    """Records each projection's position (in the transaction of its rows), and tells those
    listening on ``PROJECTED_CHANNEL`` when it commits (reads waiting for a position)."""
    with conn.cursor() as cur:
        cur.execute(  # one statement, one round trip: the upsert and the notification
            "WITH tracked AS (INSERT INTO projection_tracking (name, position, updated_at)"
            " SELECT *, now() FROM unnest(%s::text[], %s::bigint[])"
            " ON CONFLICT (name) DO UPDATE"
            " SET position = EXCLUDED.position, updated_at = now())"
            " SELECT pg_notify(%s, '')",
            ([name for name, *_ in spans], [last for _, _, last, _ in spans],
             PROJECTED_CHANNEL))


@contextmanager
def _span(p: Projection, batch: Sequence[Envelope]) -> Iterator[None]:
    with tracer.start_as_current_span(f"projection {p.name}", links=_links(batch)) as span:
        span.set_attribute("opsledger.projection", p.name)
        span.set_attribute("opsledger.events", len(batch))
        yield


class _Writer:
    """Writes and commits prepared batches in a thread of its own, in order, each in one
    transaction with the projections' tracking positions. At most one batch is in its hands:
    handing over the next waits for it to commit."""

    def __init__(self, conn: Connection[Any]):
        self.conn = conn
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="projection-writer")
        self._pending: tuple[list[_Span], list[int], Future[list[int]]] | None = None

    def submit(self, spans: list[_Span], writes: Sequence[Write], timings: list[int],
               ) -> tuple[list[_Span], list[int]] | None:
        """Hands over a batch; returns the one before it (its work and timings) once it has
        committed (raises what made it fail)."""
        done = self.wait()
        self._pending = (spans, timings, self._pool.submit(self._commit, spans, writes))
        return done

    def wait(self) -> tuple[list[_Span], list[int]] | None:
        """Waits for the batch handed over last to commit; its work and timings."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        spans, timings, future = pending
        return spans, [a + b for a, b in zip(timings, future.result(), strict=True)]

    def _commit(self, spans: list[_Span], writes: Sequence[Write]) -> list[int]:
        timings = []
        with self.conn.transaction():
            for write in writes:
                t0 = time.monotonic()
                write(self.conn)
                timings.append(int((time.monotonic() - t0) * 1e6))
            _track(self.conn, spans)
        return timings

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


class _ReadAhead:
    """Reads the next batch in a thread of its own while the current one is prepared. A
    source with ``fetch`` and ``decode`` (``service.projector.StoreSource``) has only its
    reading done ahead, and its decoding in the caller's thread: the decoding is Python work,
    which in another thread would only contend for the interpreter lock with the caller's
    (measured: a 100k rebuild 4.0–4.7 s with the decoding read ahead, 3.8 s without). The
    batch read ahead is used only if the next batch starts where it does; otherwise (and for
    the first) the batch is read in the caller's thread."""

    def __init__(self, source: Source, size: int):
        self.fetch: Callable[[int, int], Sequence[Any]] = getattr(source, "fetch", source)
        self.decode: Callable[[Sequence[Any]], Sequence[Envelope]] = (
            getattr(source, "decode", _as_read) if hasattr(source, "fetch") else _as_read)
        self.size = size
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="projection-read-ahead")
        self._ahead: tuple[int, Future[Sequence[Any]]] | None = None

    def __call__(self, start: int) -> Sequence[Envelope]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == start:
            rows = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].cancel()
            rows = self.fetch(start, self.size)
        batch = self.decode(rows)
        if len(batch) == self.size:  # a full batch: the store may hold more
            after = batch[-1].position
            self._ahead = (after, self._pool.submit(self.fetch, after, self.size))
        return batch

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
        self._pool.shutdown(wait=True)


def _as_read(batch: Sequence[Any]) -> Sequence[Envelope]:
    return batch


@contextmanager
def _few_collections() -> Iterator[None]:
    """A rebuild allocates (and frees) millions of short-lived objects: the cyclic garbage
    collector's default pace (every 700 allocations) costs it a fifth of its time. Refcounting
    frees nearly all of them anyway; collect rarely while it runs."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 50_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def _prompt_handover() -> Iterator[None]:
    """The writer (and read-ahead) thread mostly waits for PostgreSQL, but each time its
    answer comes, it needs the interpreter lock back from the thread preparing the next batch,
    which gives it up only every switch interval (5 ms by default): a dozen times per batch.
    At 1 ms while a rebuild runs, the writer keeps up (measured on a million events:
    51.9 s → 41.9 s)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, 0.001))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _derived_commits(conn: Connection[Any]) -> None:
    """Views are derived data: on the projector's own connection their commits do not wait for
    the disk flush. A crash of PostgreSQL may lose the last batches — rows and tracking
    position together (one transaction) — which are then applied again: still exactly once."""
    conn.execute("SET synchronous_commit = off")


def _fast_compression(conn: Connection[Any]) -> None:
    """A rebuild rewrites every record's state and view (large values, compressed by
    PostgreSQL's TOAST): lz4 instead of the default pglz, on this connection only (measured on
    a million events: PostgreSQL's CPU 36 s → 21 s). The values read back are the same; a
    server built without lz4 keeps its default."""
    try:
        conn.execute("SET default_toast_compression = 'lz4'")
    except psycopg.Error:
        log.debug("lz4 compression unavailable; the server's default is used", exc_info=True)


def _links(batch: Sequence[Envelope]) -> list[trace.Link]:
    """Links a projection batch's span to the requests that caused its events."""
    links = []
    seen: set[str] = set()
    for env in batch[:32]:
        trace_id, span_id = env.meta.get("trace_id"), env.meta.get("span_id")
        if not trace_id or not span_id or span_id in seen:
            continue
        seen.add(span_id)
        ctx = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        links.append(trace.Link(ctx))
    return links
