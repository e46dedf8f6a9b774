"""32 concurrent conflicting commands on one record: exactly one wins per version.

Two service instances (two containers on one database: separate caches, record locks and
group-commit writers, as two processes would have) take 16 concurrent requests each. With the
same If-Match, exactly one command per version succeeds and every other one gets 412 (or 409);
nothing is lost: the record's history holds exactly the winners, in order.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.resilience.support import PROJECT, report, token

CLIENTS = 32
ROUNDS = 5


@pytest.fixture(scope="module")
def two_services(module_database: Any) -> Iterator[list[Any]]:
    from fastapi.testclient import TestClient

    from service.bootstrap import bootstrap
    from service.main import create_app

    containers = [bootstrap(make_settings(), module_database, start_projector=i == 0)
                  for i in range(2)]
    clients = [TestClient(create_app(container=c), raise_server_exceptions=False)
               for c in containers]
    for client in clients:
        client.__enter__()
    yield clients
    for client in clients:
        client.__exit__(None, None, None)
    for c in containers:
        c.close()


def auth(user: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, *roles)}"}


def race(clients: list[Any], calls: list[tuple[str, dict[str, Any], dict[str, str]]],
         ) -> list[Any]:
    """Sends the calls at once (a barrier), alternating between the two services."""
    barrier = threading.Barrier(len(calls))

    def one(i: int) -> Any:
        path, body, headers = calls[i]
        barrier.wait()
        return clients[i % len(clients)].post(path, json=body, headers=headers)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, range(len(calls))))


@pytest.mark.slow
def test_same_if_match_exactly_one_wins_per_version(two_services: list[Any]) -> None:
    ann = auth("ann", "member")
    created = two_services[0].post("/projects", json=PROJECT, headers=ann)
    assert created.status_code == 201, created.text
    pid, version = created.json()["id"], created.json()["version"]
    winners: list[str] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    for rnd in range(ROUNDS):
        calls = [(f"/projects/{pid}/edit-application", {"name": f"r{rnd}-c{i}"},
                  {**ann, "If-Match": f'"{version}"'}) for i in range(CLIENTS)]
        responses = race(two_services, calls)
        statuses.update(r.status_code for r in responses)
        ok = [r for r in responses if r.status_code == 200]
        assert len(ok) == 1, [(r.status_code, r.text[:120]) for r in responses]
        assert all(r.status_code in (409, 412) for r in responses if r.status_code != 200)
        for r in responses:
            if r.status_code == 412:
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.json()["current_version"] == version + 1
        assert ok[0].json()["version"] == version + 1
        winners.append(calls[responses.index(ok[0])][1]["name"])
        version += 1
    elapsed = time.monotonic() - started
    # No lost update: the history is exactly the winners, one event per version, in order.
    auditor = auth("audrey", "auditor")
    history = two_services[1].get(f"/audit/records/project/{pid}/history",
                                  headers=auditor).json()
    names = [e for e in (_changed_name(x) for x in history["entries"]) if e is not None]
    assert names == winners
    state = two_services[1].get(f"/projects/{pid}", headers=ann).json()
    assert state["version"] == 1 + ROUNDS and state["name"] == winners[-1]
    report("conflicts, same If-Match", clients=CLIENTS, rounds=ROUNDS,
           statuses=dict(sorted(statuses.items())), winners_per_version=1,
           lost_updates=0, seconds=round(elapsed, 2))


def _changed_name(entry: dict[str, Any]) -> str | None:
    for change in entry.get("changes", []):
        if change.get("path") == "name" and entry["event_type"] == "ApplicationEdited":
            return str(change.get("new"))
    return None


@pytest.mark.slow
def test_without_if_match_every_accepted_command_is_kept(two_services: list[Any]) -> None:
    """No If-Match: commands re-decide on the fresh state; each one accepted is in the history
    with its own version (409 only if a command kept losing for all its retries)."""
    ann = auth("ann", "member")
    pid = two_services[0].post("/projects", json=PROJECT, headers=ann).json()["id"]
    calls = [(f"/projects/{pid}/edit-application", {"name": f"free-{i}"}, ann)
             for i in range(CLIENTS)]
    responses = race(two_services, calls)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}, [(r.status_code, r.text[:200]) for r in responses]
    accepted = [r.json() for r in responses if r.status_code == 200]
    versions = sorted(a["version"] for a in accepted)
    assert versions == list(range(2, 2 + len(accepted)))  # distinct, gapless
    state = two_services[1].get(f"/projects/{pid}", headers=ann).json()
    assert state["version"] == 1 + len(accepted)
    report("conflicts, no If-Match", clients=CLIENTS, statuses=dict(sorted(statuses.items())),
           accepted=len(accepted), lost_updates=0)
