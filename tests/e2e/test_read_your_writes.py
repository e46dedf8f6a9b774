"""Read your own writes when another process projects: a GraphQL read with `waitForPosition`
is woken by the projection's commit (LISTEN/NOTIFY), and answers PROJECTION_LAG when nothing
projects within the bound."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from service.graphql import positions
from tests.conftest import make_settings
from tests.e2e.test_project_lifecycle import PROJECT

QUERY = "query($id: ID!, $pos: Int) { project(id: $id, waitForPosition: $pos) { version } }"


@pytest.fixture
def app(fresh_database: Any) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    """The API without a projector of its own (as beside a `worker`), its client, a token."""
    from fastapi.testclient import TestClient

    from service.auth import issue_token
    from service.bootstrap import bootstrap
    from service.main import create_app

    container = bootstrap(make_settings(read_your_writes_timeout=3.0), fresh_database,
                          start_projector=False)
    jwt = issue_token(container.settings, "ann", name="Ann", roles=["member"],
                      departments=["ops"])
    try:
        with TestClient(create_app(container=container)) as client:
            yield container, client, {"Authorization": f"Bearer {jwt}"}
    finally:
        container.close()


def _read(client: Any, who: dict[str, str], rid: str, position: int) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": QUERY, "variables": {"id": rid, "pos": position}},
                    headers=who)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_waiting_read_is_woken_by_the_projection_commit(
        app: tuple[Any, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    container, client, who = app
    assert not container.runner.is_leader
    # Only a notification can wake the read in time: its fallback reading is made too rare.
    monkeypatch.setattr(positions, "FALLBACK_SECONDS", 60.0)
    r = client.post("/projects", json=PROJECT, headers=who)
    assert r.status_code == 201, r.text
    rid, position = r.json()["id"], r.json()["position"]

    def project_later() -> None:
        time.sleep(0.5)  # the read is waiting by then
        container.runner.catch_up()

    projector = threading.Thread(target=project_later)
    started = time.monotonic()
    projector.start()
    answer = _read(client, who, rid, position)
    waited = time.monotonic() - started
    projector.join()

    assert answer.get("errors") is None, answer
    assert answer["data"]["project"]["version"] == 1
    assert 0.5 <= waited < 2.5, waited  # after the commit, well before the 3 s bound


def test_a_read_waiting_for_a_position_never_reached_answers_projection_lag(
        app: tuple[Any, Any, dict[str, str]]) -> None:
    container, client, who = app
    r = client.post("/projects", json=PROJECT, headers=who)
    rid, position = r.json()["id"], r.json()["position"]
    container.runner.catch_up()

    assert _read(client, who, rid, position)["data"]["project"]["version"] == 1
    started = time.monotonic()
    answer = _read(client, who, rid, position + 1000)
    assert time.monotonic() - started >= 3.0
    assert answer["errors"][0]["extensions"]["code"] == "PROJECTION_LAG"


def test_a_batch_committed_during_the_reads_first_reading_still_wakes_it(
        app: tuple[Any, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    container, client, who = app
    monkeypatch.setattr(positions, "FALLBACK_SECONDS", 60.0)
    # A first read that has to wait starts the process's listener.
    r = client.post("/projects", json=PROJECT, headers=who)
    projector = threading.Timer(0.3, container.runner.catch_up)
    projector.start()
    assert _read(client, who, r.json()["id"], r.json()["position"])["data"]["project"]
    projector.join()  # done before the next batch is projected below
    r = client.post("/projects", json=PROJECT, headers=who)
    rid, position = r.json()["id"], r.json()["position"]

    read = positions.ProjectedPositions.read
    readings = 0

    async def commit_during_the_first_reading(self: positions.ProjectedPositions) -> int:
        nonlocal readings
        readings += 1
        seen = await read(self)  # not there yet ...
        if readings == 1:  # ... and the batch commits before the read has heard so
            await asyncio.to_thread(container.runner.catch_up)
            await asyncio.sleep(0.3)  # its notification reaches the listener meanwhile
        return seen

    monkeypatch.setattr(positions.ProjectedPositions, "read", commit_during_the_first_reading)
    started = time.monotonic()
    answer = _read(client, who, rid, position)
    waited = time.monotonic() - started

    assert answer.get("errors") is None, answer
    assert answer["data"]["project"]["version"] == 1
    assert readings >= 2  # the listener's reading after the notification woke it
    assert waited < 2.5, waited  # woken by that batch, not by the 3 s bound


def test_the_listener_stops_when_no_read_waits_and_starts_again_for_the_next(
        app: tuple[Any, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    container, client, who = app
    monkeypatch.setattr(positions, "FALLBACK_SECONDS", 60.0)  # only a notification wakes
    monkeypatch.setattr(positions, "IDLE_SECONDS", 0.2)

    def read_woken_by_the_projector() -> float:
        r = client.post("/projects", json=PROJECT, headers=who)
        projector = threading.Timer(0.3, container.runner.catch_up)
        started = time.monotonic()
        projector.start()
        answer = _read(client, who, r.json()["id"], r.json()["position"])
        projector.join()
        assert answer.get("errors") is None, answer
        return time.monotonic() - started

    assert read_woken_by_the_projector() < 2.5
    listener = client.app.state.projected_positions._task
    assert listener is not None and not listener.done()
    deadline = time.monotonic() + 5
    while not listener.done() and time.monotonic() < deadline:  # it checks once a second
        time.sleep(0.1)
    assert listener.done() and listener.exception() is None
    # The next read that waits starts a listener again, and is woken by the commit.
    assert read_woken_by_the_projector() < 2.5
    assert client.app.state.projected_positions._task is not listener
