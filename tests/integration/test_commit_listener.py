"""A projector in another process hears of a commit at once (LISTEN/NOTIFY), not at its poll."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from service.auth import issue_token
from tests.conftest import make_settings
from tests.e2e.test_project_lifecycle import PROJECT


@pytest.fixture
def worker_and_api(fresh_database: Any) -> Iterator[tuple[Any, Any]]:
    from fastapi.testclient import TestClient

    from service.bootstrap import bootstrap
    from service.main import create_app

    worker = bootstrap(make_settings(run_stream_workers=False), fresh_database,
                       start_projector=True)
    # The API's commits reach the worker only through PostgreSQL (no in-process wake-up).
    api = bootstrap(make_settings(create_schema=False, run_stream_workers=False),
                    fresh_database, start_projector=False)
    assert worker.listener is not None and worker.listener.connected.wait(5)
    worker.runner.poll_interval = 60.0  # polling cannot explain what follows
    time.sleep(0.6)  # the projector's current wait (0.5 s) ends; from now on it waits 60 s
    with TestClient(create_app(container=api)) as client:
        yield worker, client
    api.close()
    worker.close()


def _create(client: Any, settings: Any) -> int:
    token = issue_token(settings, "ann", roles=["member"], departments=["ops"])
    r = client.post("/projects", json=PROJECT, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return int(r.json()["position"])


def test_another_process_commit_wakes_the_projector_within_a_second(
        worker_and_api: tuple[Any, Any]) -> None:
    worker, client = worker_and_api
    seen = []
    for _ in range(5):
        position = _create(client, worker.settings)
        started = time.monotonic()
        assert worker.runner.wait_for(position, timeout=5.0)
        seen.append(time.monotonic() - started)
    assert max(seen) < 1.0, seen


def test_without_the_listener_the_projector_waits_for_its_poll(
        worker_and_api: tuple[Any, Any]) -> None:
    worker, client = worker_and_api
    worker.listener.stop()
    position = _create(client, worker.settings)
    assert not worker.runner.wait_for(position, timeout=1.5)
