"""The command routes' fast path answers exactly as FastAPI's own handling does.

Two apps over one container: one with ``CommandRoute`` (the fast path), one built with
FastAPI's plain route handler. The same requests — well-formed, and each kind of malformed —
get the same status and body from both; well-formed ones never reach FastAPI's dependency
resolution on the fast app, malformed ones always do (their refusal is FastAPI's).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.rest.command_route import CommandRoute
from service.rest.commands import build_router
from tests.e2e.test_project_lifecycle import PROJECT

VOLATILE = {"id", "position", "version", "events"}


@pytest.fixture(scope="module")
def apps(container: Any) -> Iterator[tuple[TestClient, TestClient]]:
    import service.main

    def plain_router() -> Any:  # the same routes, their endpoints without a fast path
        router = build_router()
        for route in router.routes:
            if isinstance(route, CommandRoute):
                del route.endpoint.fast_path  # type: ignore[attr-defined]
        return router

    fast = TestClient(create_app(container=container))
    patch = pytest.MonkeyPatch()
    patch.setattr(service.main, "build_router", plain_router)
    plain = TestClient(create_app(container=container))
    patch.undo()
    with fast, plain:
        yield fast, plain


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts FastAPI's dependency resolutions."""
    calls: list[int] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


def _shape(r: Any) -> tuple[int, Any]:
    body = r.json()
    if isinstance(body, dict):
        body = {k: ("…" if k in VOLATILE else v) for k, v in body.items()}
    return r.status_code, body


def _draft(client: TestClient, who: dict[str, str]) -> str:
    r = client.post("/projects", json=PROJECT, headers=who)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_well_formed_commands_take_the_fast_path_and_answer_as_fastapi_does(
        apps: tuple[TestClient, TestClient], token: Any, solved: list[int]) -> None:
    fast, plain = apps
    ann = token("ann", "member")
    created = [fast.post("/projects", json=PROJECT, headers=ann),
               plain.post("/projects", json=PROJECT, headers=ann)]
    assert _shape(created[0]) == _shape(created[1])
    assert created[0].headers["location"].startswith("/projects/")
    assert len(solved) == 1  # the plain app's only
    solved.clear()
    for client, r in zip((fast, plain), created, strict=True):
        rid = r.json()["id"]
        edited = client.post(f"/projects/{rid}/edit-application",
                             json={"name": "Renamed", "comment": "typo"},
                             headers={**ann, "If-Match": '"1"', "Idempotency-Key": "k-" + rid,
                                      "X-Correlation-ID": "corr-1"})
        assert edited.status_code == 200, edited.text
        assert edited.headers["etag"] == '"2"' and edited.headers["x-correlation-id"] == "corr-1"
        again = client.post(f"/projects/{rid}/edit-application",
                            json={"name": "Renamed", "comment": "typo"},
                            headers={**ann, "If-Match": '"1"', "Idempotency-Key": "k-" + rid})
        assert again.json() == edited.json() and again.headers["idempotent-replayed"] == "true"
    assert len(solved) == 2  # the plain app's two; the fast app's none


@pytest.mark.parametrize("case", [
    "no_token", "bad_token", "stale_if_match", "bad_if_match", "wrong_type", "unknown_field",
    "not_json", "deeply_nested", "text_plain", "array_body", "long_header", "bad_uuid",
    "short_uuid", "unknown_record", "not_proposer",
])
def test_every_refusal_is_the_same_on_both_paths(apps: tuple[TestClient, TestClient],
                                                 token: Any, case: str) -> None:
    fast, plain = apps
    ann, bob = token("ann", "member"), token("bob", "member")
    answers = []
    for client in (fast, plain):
        rid = _draft(client, ann)
        path = f"/projects/{rid}/edit-application"
        headers: dict[str, str] = {**ann}
        content: Any = None
        body: Any = {"name": "New name"}
        unknown = uuid.UUID(int=7)
        match case:
            case "no_token":
                headers = {}
            case "bad_token":
                headers = {"Authorization": "Bearer nope"}
            case "stale_if_match":
                headers["If-Match"] = '"7"'
            case "bad_if_match":
                headers["If-Match"] = "yesterday"
            case "wrong_type":
                body = {"requested_budget": "lots"}
            case "unknown_field":
                body = {"name": "x", "colour": "red"}
            case "not_json":
                content, body = b"{name: nope", None
                headers["Content-Type"] = "application/json"
            case "deeply_nested":
                content, body = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None
                headers["Content-Type"] = "application/json"
            case "text_plain":
                content, body = b'{"name": "x"}', None
                headers["Content-Type"] = "text/plain"
            case "array_body":
                body = [{"name": "x"}]
            case "long_header":
                headers["Idempotency-Key"] = "k" * 201
            case "bad_uuid":
                path = "/projects/not-a-uuid/edit-application"
            case "short_uuid":
                path = f"/projects/{rid.replace('-', '')}/edit-application"
            case "unknown_record":
                path = f"/projects/{unknown}/edit-application"
            case "not_proposer":
                headers = {**bob}
        if content is not None:
            r = client.post(path, content=content, headers=headers)
        else:
            r = client.post(path, json=body, headers=headers)
        answers.append(r)
    fast_answer, plain_answer = answers
    assert fast_answer.status_code >= 400 or case == "short_uuid", fast_answer.text
    assert _shape(fast_answer) == _shape(plain_answer)
    assert fast_answer.headers.get("content-type") == plain_answer.headers.get("content-type")


class _CountingPool:
    """Stands in for the command threads: counts the commands handed to a thread."""

    def __init__(self, pool: Any):
        self.pool, self.submitted = pool, 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return self.pool.submit(*args, **kwargs)


def test_an_update_of_a_cached_record_runs_on_the_event_loop_and_the_rest_in_a_thread(
        apps: tuple[TestClient, TestClient], token: Any, container: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import service.rest.command_route as command_route

    fast, _ = apps
    ann, bob = token("ann", "member"), token("bob", "member")
    pool = _CountingPool(command_route.COMMAND_THREADS)
    monkeypatch.setattr(command_route, "COMMAND_THREADS", pool)
    rid = _draft(fast, ann)  # a create: in a thread
    assert pool.submitted == 1
    path = f"/projects/{rid}/edit-application"
    r = fast.post(path, json={"name": "On the loop"}, headers={**ann, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert pool.submitted == 1  # answered on the event loop
    # A refusal is answered (and logged) by the thread path, as before.
    refused = fast.post(path, json={"name": "Not mine"}, headers={**bob, "X-Request-ID": rid})
    assert refused.status_code == 403, refused.text
    assert pool.submitted == 2
    rows = container.store.execute("SELECT rule FROM refused_commands WHERE request_id = %s",
                                   (rid,))
    assert len(rows) == 1
    # A record this process has not cached (evicted here): read in a thread, then cached.
    container.store.cache_evict(uuid.UUID(rid))
    r = fast.post(path, json={"name": "Read first"}, headers=ann)
    assert r.status_code == 200 and r.json()["version"] == 3, r.text
    assert pool.submitted == 3
    r = fast.post(path, json={"name": "Cached again"},
                  headers={**ann, "Idempotency-Key": "loop-" + rid})
    assert r.status_code == 200 and r.json()["version"] == 4 and pool.submitted == 3
    # Its retry is replayed (the key is taken: given up on the loop, answered in a thread).
    again = fast.post(path, json={"name": "Cached again"},
                      headers={**ann, "Idempotency-Key": "loop-" + rid})
    assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"
    assert pool.submitted == 4
    versions = container.store.execute(
        "SELECT originator_version FROM stored_events WHERE originator_id = %s"
        " ORDER BY originator_version", (uuid.UUID(rid),))
    assert [v["originator_version"] for v in versions] == [1, 2, 3, 4]  # nothing twice
