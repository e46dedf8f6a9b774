"""The command lane answers the common command ahead of routing, as the route would.

Well-formed updates of cached records never reach Starlette's router; everything else does,
with its body intact. Whichever answers, the server span is named after the route template,
the access log names the template, and an error once the command is under way gets the
application's problem+json answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import psycopg
import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.main import create_app
from tests.e2e.test_project_lifecycle import PROJECT

ROUTE = "/projects/{record_id}/edit-application"


@pytest.fixture(scope="module")
def client(container: Any) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as client:
        yield client


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the router handed to a route."""
    paths: list[str] = []
    original = fastapi.routing.APIRoute.handle

    async def counting(self: Any, scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(fastapi.routing.APIRoute, "handle", counting)
    return paths


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider: Any = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def _server_span(spans: InMemorySpanExporter, path: str) -> Any:
    [span] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER
              and (s.attributes or {}).get("url.path") == path]
    return span


def test_a_cached_update_is_answered_by_the_lane_and_traced_and_logged_as_its_route(
        client: TestClient, token: Any, routed: list[str], spans: InMemorySpanExporter,
        caplog: pytest.LogCaptureFixture) -> None:
    ann = token("ann", "member")
    rid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    path = f"/projects/{rid}/edit-application"
    routed.clear()
    with caplog.at_level(logging.INFO, logger="opsledger.access"):
        r = client.post(path, json={"name": "Lane", "comment": "c"},
                        headers={**ann, "If-Match": '"1"', "X-Correlation-ID": "lane-1"})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert r.headers["etag"] == '"2"' and r.headers["x-correlation-id"] == "lane-1"
    assert routed == []  # answered before routing
    span = _server_span(spans, path)
    assert span.name == f"POST {ROUTE}"
    assert span.attributes["http.route"] == ROUTE
    assert span.attributes["http.response.status_code"] == 200
    command = next(s for s in spans.get_finished_spans()
                   if s.name == "command project.edit_application")
    assert command.parent is not None and command.parent.span_id == span.context.span_id
    [line] = [rec for rec in caplog.records if rec.name == "opsledger.access"
              and getattr(rec, "route", None) == ROUTE]
    assert line.status == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", ["stale", "refused", "not_json", "bad_token"])
def test_what_the_lane_cannot_answer_goes_on_to_the_route_with_its_body(
        client: TestClient, token: Any, routed: list[str], spans: InMemorySpanExporter,
        case: str) -> None:
    ann, bob = token("ann", "member"), token("bob", "member")
    rid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    path = f"/projects/{rid}/edit-application"
    routed.clear()
    headers, content = {**ann}, b'{"name": "Routed"}'
    expected = 200
    if case == "stale":
        headers["If-Match"], expected = '"5"', 412
    elif case == "refused":
        headers, expected = {**bob}, 403
    elif case == "not_json":
        content, expected = b'{"name": ', 422
    elif case == "bad_token":
        headers, expected = {"Authorization": "Bearer forged"}, 401
    r = client.post(path, content=content,
                    headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == expected, r.text
    assert routed == [path]
    span = _server_span(spans, path)
    assert span.name == f"POST {ROUTE}" and span.attributes["http.response.status_code"] == expected
    if case == "stale":  # the body reached the route: the same request with the right version
        r = client.post(path, content=content, headers={**ann, "If-Match": '"1"',
                                                        "Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["version"] == 2


def test_an_error_once_the_command_is_under_way_gets_the_apps_answer(
        client: TestClient, token: Any, container: Any, routed: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ann = token("ann", "member")
    rid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    routed.clear()

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("the server closed the connection")

    monkeypatch.setattr(container.store, "append", unavailable)
    r = client.post(f"/projects/{rid}/edit-application", json={"name": "Down"}, headers=ann)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "retry-after" in r.headers
    assert routed == []
    monkeypatch.undo()
    versions = container.store.execute(
        "SELECT originator_version FROM stored_events WHERE originator_id = %s",
        (uuid.UUID(rid),))
    assert [v["originator_version"] for v in versions] == [1]  # nothing written
