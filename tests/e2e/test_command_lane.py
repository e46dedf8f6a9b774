"""The command lane: a well-formed update command is answered ahead of the middleware stack, and
still gets everything the stack would give it — the server span (child of the caller's trace),
the request metrics, the access-log line and correlation id, and the app's own answers to
refusals. (That both ways answer alike is ``test_command_route.py``'s.)"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.e2e.test_project_lifecycle import PROJECT
from tests.integration.test_logging import log_lines, parsed  # noqa: F401 (fixture)
from tests.integration.test_telemetry import attrs, metric_points, spans  # noqa: F401

ROUTE = "/projects/{record_id}/edit-application"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def stack_calls(client: Any) -> Iterator[list[str]]:
    """The paths of the requests that entered the app's middleware stack."""
    app = client.app
    client.get("/healthz")  # the stack is built on the first request
    stack = app.middleware_stack
    calls: list[str] = []

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await stack(scope, receive, send)

    app.middleware_stack = counting
    yield calls
    app.middleware_stack = stack


def _requests(route: str, status: int) -> int:
    return sum(p.count for p in metric_points("http.server.request.duration")
               if attrs(p).get("http.route") == route
               and attrs(p).get("http.response.status_code") == status)


def test_an_update_command_is_answered_by_the_lane_with_span_metrics_and_log_line(
        client: Any, token: Any, spans: InMemorySpanExporter,  # noqa: F811
        log_lines: io.StringIO, stack_calls: list[str]) -> None:  # noqa: F811
    ann = token("ann", "member")
    rid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    assert stack_calls == ["/projects"]  # a create: the app's usual way
    before = _requests(ROUTE, 200)
    r = client.post(f"/projects/{rid}/edit-application", json={"name": "Lane"},
                    headers={**ann, "If-Match": '"1"', "traceparent": TRACEPARENT})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert stack_calls == ["/projects"]  # answered by the lane
    cid = r.headers["x-correlation-id"]
    assert len(cid) == 36 and r.headers["etag"] == '"2"'
    assert r.headers["content-type"] == "application/json"

    finished = spans.get_finished_spans()
    [server] = [s for s in finished if s.kind == SpanKind.SERVER
                and attrs(s).get("url.path") == f"/projects/{rid}/edit-application"]
    assert server.name == f"POST {ROUTE}"
    assert format(server.context.trace_id, "032x") == TRACE_ID  # the caller's trace
    assert server.parent is not None and format(server.parent.span_id, "016x") == \
        "00f067aa0ba902b7"
    assert {k: attrs(server)[k] for k in ("http.route", "http.request.method",
                                          "http.response.status_code", "url.scheme")} == \
        {"http.route": ROUTE, "http.request.method": "POST",
         "http.response.status_code": 200, "url.scheme": "http"}
    assert attrs(server)["server.address"] == "testserver"
    command = next(s for s in finished if s.name == "command project.edit_application")
    assert command.parent is not None and command.parent.span_id == server.context.span_id
    assert _requests(ROUTE, 200) == before + 1

    [line] = [x for x in parsed(log_lines) if x.get("logger") == "opsledger.access"
              and x.get("route") == ROUTE]
    assert line["method"] == "POST" and line["status"] == 200
    assert line["correlation_id"] == cid and line["trace_id"] == TRACE_ID
    assert isinstance(line["duration_ms"], float)


def test_a_refusal_in_the_lane_is_the_apps_answer_with_the_lanes_span_and_log(
        client: Any, token: Any, spans: InMemorySpanExporter,  # noqa: F811
        log_lines: io.StringIO, stack_calls: list[str]) -> None:  # noqa: F811
    ann = token("ann", "member")
    rid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    r = client.post(f"/projects/{rid}/edit-application", json={"name": "Stale"},
                    headers={**ann, "If-Match": '"5"', "X-Correlation-ID": "corr-lane"})
    assert r.status_code == 412, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["rule"] == "stale_version" and r.headers["etag"] == '"1"'
    assert r.headers["x-correlation-id"] == "corr-lane"
    assert stack_calls == ["/projects"]
    [server] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER
                and attrs(s).get("url.path") == f"/projects/{rid}/edit-application"]
    assert attrs(server)["http.response.status_code"] == 412
    [line] = [x for x in parsed(log_lines) if x.get("route") == ROUTE]
    assert line["status"] == 412 and line["correlation_id"] == "corr-lane"


@pytest.mark.parametrize("case", ["bad_token", "invalid_body", "text_plain", "too_large",
                                  "unknown_command", "create"])
def test_what_the_lane_does_not_answer_reaches_the_app_with_its_body(
        client: Any, token: Any, stack_calls: list[str], case: str) -> None:
    ann = token("ann", "member")
    rid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    stack_calls.clear()
    path, headers, body = f"/projects/{rid}/edit-application", dict(ann), {"name": "x"}
    match case:
        case "bad_token":
            headers = {"Authorization": "Bearer nope"}
        case "invalid_body":
            body = {"name": "x", "colour": "red"}
        case "text_plain":
            headers["Content-Type"] = "text/plain"
        case "too_large":
            body = {"name": "x" * 1_100_000}
        case "unknown_command":
            path = f"/projects/{rid}/paint"
        case "create":
            path, body = "/projects", PROJECT
    if case == "text_plain":
        r = client.post(path, content=b'{"name": "x"}', headers=headers)
    else:
        r = client.post(path, json=body, headers=headers)
    assert stack_calls == [path]  # the app answered
    expected = {"bad_token": 401, "invalid_body": 422, "text_plain": 422, "too_large": 413,
                "unknown_command": 404, "create": 201}[case]
    assert r.status_code == expected, r.text
    if case == "invalid_body":  # the replayed body reached FastAPI's validation
        assert r.json()["field"] == "colour"
