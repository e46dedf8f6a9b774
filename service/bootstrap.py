"""The composition root: settings → database → event store → ledger → projections."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from projections.engine import Envelope, ProjectionRunner
from projections.projects import ProjectsTable
from projections.records import RecordsProjection
from service import database as db
from service.application import Ledger
from service.auth import Authenticator
from service.config import Settings, get_settings
from service.store import EventStore

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    database: db.Database
    store: EventStore
    ledger: Ledger
    runner: ProjectionRunner
    auth: Authenticator

    def close(self) -> None:
        self.runner.stop()
        self.store.close()


def build_projections(store: EventStore) -> list[Any]:
    return [RecordsProjection(store.mapper, [ProjectsTable()])]


def make_source(store: EventStore) -> Any:
    def source(after: int, limit: int) -> Sequence[Envelope]:
        return [Envelope(n.id, store.to_event(n)) for n in store.notifications(after, limit)]
    return source


def bootstrap(settings: Settings | None = None, database: db.Database | None = None, *,
              start_projector: bool | None = None) -> Container:
    settings = settings or get_settings()
    database = database or db.resolve(settings.database_url, settings.data_dir)
    store = EventStore(database, pool_size=settings.pool_size,
                       snapshot_interval=settings.snapshot_interval,
                       cache_size=settings.aggregate_cache_size)
    runner = ProjectionRunner(database.conninfo, make_source(store), build_projections(store),
                              batch_size=settings.projection_batch_size)
    runner.create_tables()
    store.committed_listeners.append(runner.wake)
    ledger = Ledger(store, retries=settings.command_retries)
    container = Container(settings, database, store, ledger, runner, Authenticator(settings))
    if settings.run_projector if start_projector is None else start_projector:
        runner.start()
    return container
