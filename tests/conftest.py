"""Test fixtures: a real PostgreSQL (embedded, or DATABASE_URL), a fresh database per module."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.database import Database, start_embedded

# Telemetry as in production (tracer provider, psycopg instrumentation) plus an in-memory metric
# reader the telemetry tests read: a process has one meter provider, so it is installed first.
METRICS_READER: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global METRICS_READER
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from service.telemetry import configure_telemetry

    METRICS_READER = InMemoryMetricReader()
    configure_telemetry(metric_readers=[METRICS_READER])


@pytest.fixture(scope="session")
def server() -> Iterator[Database]:
    """The PostgreSQL server the suite runs against (never a mock)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield Database(url=url)
        return
    tmp = Path(tempfile.mkdtemp(prefix="opsledger-test-pg-"))
    db = start_embedded(tmp, persistent=False)
    yield db
    db.embedded.cleanup()


def _fresh(server: Database) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server.conninfo)
    params["dbname"] = name
    yield Database(url=make_conninfo(**params))
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_database(server: Database) -> Iterator[Database]:
    """An empty database for one test."""
    yield from _fresh(server)


@pytest.fixture(scope="module")
def module_database(server: Database) -> Iterator[Database]:
    """An empty database shared by one test module."""
    yield from _fresh(server)


def make_settings(**overrides: Any) -> Any:
    from service.config import Settings

    values: dict[str, Any] = {"data_dir": Path(tempfile.mkdtemp(prefix="opsledger-test-")),
                              "snapshot_interval": 50}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def container(module_database: Database) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), module_database, start_projector=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def client(container: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from service.main import create_app

    with TestClient(create_app(container=container)) as c:
        yield c


@pytest.fixture(scope="module")
def token(container: Any) -> Callable[..., dict[str, str]]:
    """token("ann", "member", departments=["ops"]) → Authorization headers."""
    from service.auth import issue_token

    def make(user: str, *roles: str, departments: tuple[str, ...] = ("ops",),
             **extra: str) -> dict[str, str]:
        jwt = issue_token(container.settings, user, name=user.title(), roles=list(roles),
                          departments=list(departments))
        return {"Authorization": f"Bearer {jwt}", **extra}

    return make
