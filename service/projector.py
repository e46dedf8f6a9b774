"""The projector's wiring: the projections, the source of their events (the whole store, or
one partition of it for a rebuild in several processes) and the runner. Apart from
``service.bootstrap`` so that a rebuild's partition process (``python -m service.rebuild``)
imports only this, not the API, streams and auth (~0.6 s less per process)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import Notification

from projections.budgets import BudgetActualsProjection, BudgetsTable, BudgetWarningsProjection
from projections.customers import CustomersTable, ServiceRequestsTable
from projections.engine import Envelope, ProjectionRunner, Source
from projections.projects import ProjectsTable
from projections.records import RecordsProjection
from projections.risks import RisksTable
from service import database as db
from service import telemetry
from service.config import Settings
from service.store import EventStore


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
