"""What the stream workers share: a tracked position in PostgreSQL, leader election, lag.

A worker (NATS publisher, webhook dispatcher) follows the event log from its own position in
``stream_tracking`` — not ``projection_tracking``, whose minimum is the projections' readiness.
Like the projector, one process per database does the work: the leader holds a PostgreSQL
advisory lock (its own key) on its connection; standbys retry and take over when the leader's
connection dies (a killed process releases it at once).

Lag (head position minus the worker's position) is an OpenTelemetry gauge,
``opsledger.stream.lag`` by ``consumer``, and is shown by ``GET /events/consumers``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import psycopg
from opentelemetry import metrics
from psycopg import Connection

from service.streams.reader import EventFeed, HeadSignal

log = logging.getLogger(__name__)

TRACKING_SQL = """
CREATE TABLE IF NOT EXISTS stream_tracking (
    name       text PRIMARY KEY,
    position   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""

_workers: weakref.WeakSet[StreamWorker] = weakref.WeakSet()


def _observe_lag(_options: Any) -> Iterable[metrics.Observation]:
    for worker in list(_workers):
        if worker.is_leader:
            yield metrics.Observation(worker.lag, {"consumer": worker.name})


def _observe_position(_options: Any) -> Iterable[metrics.Observation]:
    for worker in list(_workers):
        if worker.is_leader:
            yield metrics.Observation(worker.position, {"consumer": worker.name})


_meter = metrics.get_meter("opsledger.streams")
_meter.create_observable_gauge(
    "opsledger.stream.lag", callbacks=[_observe_lag], unit="{event}",
    description="Events committed but not yet handled by a stream consumer (NATS publisher, "
                "webhook dispatcher)")
_meter.create_observable_gauge(
    "opsledger.stream.position", callbacks=[_observe_position], unit="{position}",
    description="The global position a stream consumer has handled")


def tracked_position(conn: Connection[Any], name: str) -> int:
    row = conn.execute("SELECT position FROM stream_tracking WHERE name = %s",
                       (name,)).fetchone()
    return int(row[0]) if row else 0


def save_position(conn: Connection[Any], name: str, position: int) -> None:
    conn.execute("INSERT INTO stream_tracking (name, position, updated_at)"
                 " VALUES (%s, %s, now()) ON CONFLICT (name) DO UPDATE"
                 " SET position = EXCLUDED.position, updated_at = now()", (name, position))


class StreamWorker:
    """A leader-elected follower of the event log; subclasses implement ``lead``."""

    name = "worker"
    lock_key = 0

    def __init__(self, conninfo: str, feed: EventFeed, signal: HeadSignal, *,
                 poll_interval: float = 1.0):
        self.conninfo = conninfo
        self.feed = feed
        self.signal = signal
        self.poll_interval = poll_interval
        self.position = 0
        self.head = 0
        self.is_leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _workers.add(self)

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.signal.wake_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    if self._elect(conn):
                        self.position = tracked_position(conn, self.name)
                        log.info("%s is the leader from position %d", self.name, self.position)
                        self.lead(conn)
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("%s failed; retrying in 1 s", self.name)
                self._stop.wait(1.0)
            finally:
                self.is_leader = False

    def _elect(self, conn: Connection[Any]) -> bool:
        # The lock lives as long as this connection (kill -9 releases it).
        while not self._stop.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key,)).fetchone()
            if row and row[0]:
                self.is_leader = True
                return True
            self._stop.wait(self.poll_interval)
        return False

    def lead(self, conn: Connection[Any]) -> None:
        """Does the work while leader, until stopped; ``conn`` holds the lock (autocommit)."""
        raise NotImplementedError
