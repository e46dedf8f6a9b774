"""Fixtures of the resilience tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import _fresh, make_settings
from tests.resilience.scenarios import World, populate

DEPARTMENTS = 16


@pytest.fixture
def history(fresh_database: Any, server: Any) -> Iterator[tuple[Any, list[str]]]:
    """The database with a varied history and no projection run yet; the projection tables."""
    from fastapi.testclient import TestClient

    from projections.engine import ProjectionRunner
    from service.bootstrap import bootstrap
    from service.main import create_app
    from service.projector import build_projections

    container = bootstrap(make_settings(), fresh_database, start_projector=False)
    try:
        with TestClient(create_app(container=container)) as client:
            populate(World(client, container.settings), DEPARTMENTS)
        # The projection tables: those the projections create in an empty database.
        with contextlib.contextmanager(_fresh)(server) as scratch:
            ProjectionRunner(scratch.conninfo, lambda a, n: [],
                             build_projections(container.store)).create_tables()
            with psycopg.connect(scratch.conninfo) as conn:
                tables = [r[0] for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    " ORDER BY tablename")]
    finally:
        container.close()
    yield fresh_database, tables
