"""The composition root: settings → database → event store → ledger → projections."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.budget import configure_categories
from projections.budgets import BudgetsTable, BudgetWarningsProjection
from projections.customers import CustomersTable, ServiceRequestsTable
from projections.engine import Envelope, ProjectionRunner
from projections.projects import ProjectsTable
from projections.records import RecordsProjection
from projections.risks import RisksTable
from service import database as db
from service.application import Ledger
from service.audit import Auditor
from service.auth import Authenticator
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

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()
        if self.integrity is not None:
            self.integrity.stop()
        self.streams.stop()
        self.runner.stop()
        self.store.close()


def build_projections(store: EventStore) -> list[Any]:
    return [RecordsProjection(store.mapper, [ProjectsTable(), RisksTable(),
                                                CustomersTable(), ServiceRequestsTable(),
                                                BudgetsTable()]),
            BudgetWarningsProjection()]


def make_source(store: EventStore) -> Any:
    def source(after: int, limit: int) -> Sequence[Envelope]:
        return [Envelope(n.id, store.to_event(n)) for n in store.notifications(after, limit)]
    return source


def bootstrap(settings: Settings | None = None, database: db.Database | None = None, *,
              start_projector: bool | None = None) -> Container:
    settings = settings or get_settings()
    configure_categories(settings.budget_categories)
    database = database or db.resolve(settings.database_url, settings.data_dir)
    store = EventStore(database, pool_size=settings.pool_size,
                       snapshot_interval=settings.snapshot_interval,
                       cache_size=settings.aggregate_cache_size,
                       create_schema=settings.create_schema)
    runner = ProjectionRunner(database.conninfo, make_source(store), build_projections(store),
                              batch_size=settings.projection_batch_size)
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
        # The projector's leader also signs the periodic digests.
        container.integrity.start_periodic(settings.digest_interval_seconds,
                                           lambda: runner.is_leader)
    streams.start(workers=projecting and settings.run_stream_workers)
    return container
