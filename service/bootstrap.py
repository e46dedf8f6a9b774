"""The composition root: settings → database → event store → ledger → projections."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import Notification

from domain.budget import configure_categories
from projections.budgets import BudgetActualsProjection, BudgetsTable, BudgetWarningsProjection
from projections.customers import CustomersTable, ServiceRequestsTable
from projections.engine import Envelope, ProjectionRunner, Source
from projections.projects import ProjectsTable
from projections.records import RecordsProjection
from projections.risks import RisksTable
from service import database as db
from service import telemetry
from service.application import Ledger
from service.audit import Auditor
from service.auth import Authenticator
from service.commit_listener import CommitListener
from service.config import Settings, get_settings
from service.digests import KeyRing
from service.integrity import Integrity
from service.store import EventStore
from service.streams.hub import Streams

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    database: db.Database
    store: EventStore
    ledger: Ledger
    runner: ProjectionRunner
    auth: Authenticator
    streams: Streams
    integrity: Integrity | None = None
    audit: Auditor | None = None
    listener: CommitListener | None = None

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        if self.audit is not None:
            self.audit.close()
        if self.integrity is not None:
            self.integrity.stop()
        self.streams.stop()
        self.runner.stop()
        self.store.close()


def tune_garbage_collector() -> None:
    """For the long-running processes (``serve``, ``worker``), once started: what exists now
    (modules, schema, settings …) is frozen out of the collector's scans, the youngest
    generation is collected every 50,000 allocations rather than 700, and the older ones at
    50 and 1,000 of the younger's collections rather than 10 and 10. Requests and projection
    batches allocate many short-lived objects that reference counting frees; the default pace
    cost the command path a fifth of its CPU and most of its p99 latency, and a page of 50
    projects through GraphQL (1M-event store) its p99: 25.1–25.8 ms → 22.9 ms, CPU per request
    12–14 → 10.5 ms, RSS unchanged at 161 MB (measured with ``bench.graphql_reads``)."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def build_projections(store: EventStore) -> list[Any]:
    return [RecordsProjection(store.mapper, [ProjectsTable(), RisksTable(),
                                                CustomersTable(), ServiceRequestsTable(),
                                                BudgetsTable()]),
            BudgetActualsProjection(), BudgetWarningsProjection()]


class StoreSource:
    """The runner's source: reads the stored events after a position (``fetch``, what a
    rebuild does ahead in a thread) and decodes them (``decode``, in the runner's thread)."""

    def __init__(self, store: EventStore):
        self.store = store

    def __call__(self, after: int, limit: int) -> Sequence[Envelope]:
        return self.decode(self.fetch(after, limit))

    def fetch(self, after: int, limit: int, conn: psycopg.Connection[Any] | None = None,
              ) -> Sequence[Notification]:
        return self.store.notifications(after, limit, conn)

    def on(self, conn: psycopg.Connection[Any]) -> Source:
        """This source reading on ``conn`` (the projector's own connection: no checkout of a
        pool's connection, and its check, per batch)."""
        return lambda after, limit: self.decode(self.fetch(after, limit, conn))

    def decode(self, notifications: Sequence[Notification]) -> list[Envelope]:
        return [Envelope(n.id, event) for n, event in
                zip(notifications, self.store.to_events(notifications), strict=True)]

    def partition(self, part: int, parts: int, upto: int) -> PartitionSource:
        return PartitionSource(self.store, part, parts, upto)


class PartitionSource(StoreSource):
    """The stored events up to ``upto`` of one of ``parts`` partitions of the records, for a
    rebuild in several processes (``ProjectionRunner.catch_up_part``): a record's partition is
    the last byte of its id (random in a uuid4 or uuid5) modulo ``parts``, so all its events go
    to one process, in order. PostgreSQL skips the other partitions' rows: only this one's
    are sent and decoded."""

    def __init__(self, store: EventStore, part: int, parts: int, upto: int):
        super().__init__(store)
        self.part, self.parts, self.upto = part, parts, upto

    def fetch(self, after: int, limit: int, conn: psycopg.Connection[Any] | None = None,
              ) -> Sequence[Notification]:
        # Window by window of positions, each about ``limit`` of this partition's events wide
        # (asked for the first rows of a range reaching the head, PostgreSQL sorted the whole
        # rest of the range for every batch: ~0.75 s each at a million events).
        rows: list[Notification] = []
        while len(rows) < limit and after < self.upto:
            until = min(self.upto, after + limit * self.parts)
            rows += self.store.partition_notifications(after, until, self.part, self.parts,
                                                       limit - len(rows), conn)
            after = until
        return rows


def make_source(store: EventStore) -> StoreSource:
    return StoreSource(store)


def make_runner(settings: Settings, database: db.Database, store: EventStore,
                ) -> ProjectionRunner:
    return ProjectionRunner(database.conninfo, make_source(store), build_projections(store),
                            batch_size=settings.projection_batch_size,
                            rebuild_batch_size=settings.rebuild_batch_size,
                            gather_seconds=settings.projection_gather_ms / 1000,
                            on_batch=telemetry.record_projection_batch)


def bootstrap(settings: Settings | None = None, database: db.Database | None = None, *,
              start_projector: bool | None = None) -> Container:
    settings = settings or get_settings()
    telemetry.configure_telemetry()  # before the first connection: psycopg is instrumented
    configure_categories(settings.budget_categories)
    database = database or db.resolve(settings.database_url, settings.data_dir)
    store = EventStore(database, pool_size=settings.pool_size,
                       snapshot_interval=settings.snapshot_interval,
                       cache_size=settings.aggregate_cache_size,
                       create_schema=settings.create_schema)
    runner = make_runner(settings, database, store)
    if settings.create_schema:
        runner.create_tables()
    store.committed_listeners.append(runner.wake)
    ledger = Ledger(store, retries=settings.command_retries)
    streams = Streams(settings, database.conninfo, store)
    streams.create_tables()
    container = Container(settings, database, store, ledger, runner, Authenticator(settings),
                          streams)
    container.audit = Auditor(store, create_schema=settings.create_schema)
    if settings.create_schema and settings.service_role:
        store.grant_service_role(settings.service_role)
    container.integrity = Integrity(database.conninfo, KeyRing.from_settings(settings),
                                    events_table=store.recorder.events_table_name)
    projecting = settings.run_projector if start_projector is None else start_projector
    if projecting:
        runner.start()
        # Commits of other processes (API processes when this is a worker, and the reverse)
        # wake the projector and the stream readers at once rather than at their next poll.
        container.listener = CommitListener(database.conninfo, store.recorder.channel_name,
                                            [runner.wake, streams.watcher.check],
                                            active=lambda: runner.is_leader)
        container.listener.start()
        telemetry.observe_projection_lag(runner, store)
        # The projector's leader also signs the periodic digests.
        container.integrity.start_periodic(settings.digest_interval_seconds,
                                           lambda: runner.is_leader)
    streams.start(workers=projecting and settings.run_stream_workers)
    return container
