"""OpenTelemetry: one request's trace runs from HTTP through the command and the event store to
the projection batch (a link), the publisher's page links back to it too, and the metrics count
commands, events, latency and lag. In-memory exporters, the real service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests import conftest
from tests.conftest import make_settings
from tests.integration.test_nats_publisher import names, nats_url  # noqa: F401 (fixtures)

PROJECT = {"department": "ops", "name": "Traced", "background": "b", "objectives": "o",
           "scope": "s", "requested_budget": "10.00", "expected_revenue": "0.00",
           "start_date": "2026-01-05", "end_date": "2026-12-20"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span finished during the test (the exporter stops keeping them afterwards)."""
    exporter = InMemorySpanExporter()
    provider: Any = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def metric_points(name: str) -> list[Any]:
    data = conftest.METRICS_READER.get_metrics_data()
    return [point for rm in data.resource_metrics for sm in rm.scope_metrics
            for metric in sm.metrics if metric.name == name for point in metric.data.data_points]


def counted(name: str, **wanted: str) -> float:
    return sum(p.value for p in metric_points(name)
               if all(attrs(p).get(k) == v for k, v in wanted.items()))


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def hex_trace(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def wait_for_span(exporter: InMemorySpanExporter, predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [s for s in exporter.get_finished_spans() if predicate(s)]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("no such span")


def test_one_post_is_traced_from_http_through_command_append_and_projection_batch(
        client: Any, container: Any, token: Any, spans: InMemorySpanExporter) -> None:
    r = client.post("/projects", json=PROJECT, headers=token("ann", "member"))
    assert r.status_code == 201, r.text
    position = r.json()["position"]
    assert container.runner.wait_for(position, 10)

    finished = spans.get_finished_spans()
    http = next(s for s in finished if s.kind == SpanKind.SERVER
                and attrs(s).get("http.route") == "/projects")
    command = next(s for s in finished if s.name == "command project.propose")
    append = next(s for s in finished if s.name == "events.append")
    trace_id = hex_trace(http)
    # One trace: HTTP → command → append, with the record type, id and outcome on the command.
    assert command.parent is not None and command.parent.span_id == http.context.span_id
    assert hex_trace(command) == trace_id
    assert append.parent is not None and append.parent.span_id == command.context.span_id
    assert attrs(command)["opsledger.record_type"] == "project"
    assert attrs(command)["opsledger.record_id"] == r.json()["id"]
    assert attrs(command)["opsledger.outcome"] == "ok"
    # The trace context is in the event's metadata (what projections and publishers link by).
    [envelope] = container.runner.source(position - 1, 1)
    assert envelope.meta["trace_id"] == trace_id
    assert envelope.meta["span_id"] == format(command.context.span_id, "016x")
    # The group commit runs on the writer thread, in its own trace, linked to the append.
    commit = next(s for s in finished if s.name == "event_store.commit"
                  and any(link.context.span_id == append.context.span_id for link in s.links))
    assert attrs(commit)["opsledger.events"] >= 1
    # The projection batch that applied the event links to the command's span.
    batches = wait_for_span(spans, lambda s: s.name.startswith("projection ") and any(
        format(link.context.trace_id, "032x") == trace_id for link in s.links))
    assert {attrs(s)["opsledger.projection"] for s in batches} >= {"records"}
    link = next(lk for lk in batches[0].links if format(lk.context.trace_id, "032x") == trace_id)
    assert link.context.span_id == command.context.span_id
    # psycopg is instrumented: the batch's SQL statements are its children (text, never the
    # parameters).
    sql = wait_for_span(spans, lambda s: s.parent is not None
                        and s.parent.span_id == batches[0].context.span_id)
    assert all(s.kind == SpanKind.CLIENT and "postgres" in str(
        attrs(s).get("db.system", attrs(s).get("db.system.name"))) for s in sql)
    assert any("record_state" in str(attrs(s).get("db.statement", "")) for s in sql)
    assert not any("Traced" in str(s.attributes) for s in sql)


def test_refused_commands_are_an_outcome_not_an_error(
        client: Any, token: Any, spans: InMemorySpanExporter) -> None:
    r = client.post("/projects", json={**PROJECT, "department": "finance"},
                    headers=token("ann", "member"))
    assert r.status_code == 403
    command = next(s for s in spans.get_finished_spans()
                   if s.name == "command project.propose")
    assert attrs(command)["opsledger.outcome"].startswith("refused:")
    assert command.status.status_code != StatusCode.ERROR


def test_metrics_count_commands_events_latency_and_projection_lag(
        client: Any, container: Any, token: Any) -> None:
    ok_before = counted("opsledger.commands", command="project.propose", outcome="ok")
    refused_before = counted("opsledger.commands", command="project.propose", outcome="refused")
    events_before = counted("opsledger.events.appended", record_type="project")
    r = client.post("/projects", json=PROJECT, headers=token("ann", "member"))
    assert r.status_code == 201
    client.post("/projects", json={**PROJECT, "department": "finance"},
                headers=token("ann", "member"))
    assert counted("opsledger.commands", command="project.propose", outcome="ok") \
        == ok_before + 1
    assert counted("opsledger.commands", command="project.propose", outcome="refused") \
        == refused_before + 1
    assert counted("opsledger.events.appended", record_type="project") == events_before + 1
    latency = [p for p in metric_points("opsledger.command.duration")
               if attrs(p).get("command") == "project.propose"]
    assert latency and sum(p.count for p in latency) >= 2
    assert container.runner.wait_for(r.json()["position"], 10)
    time.sleep(1.1)  # the lag reading is cached for a second
    lag = {attrs(p)["projection"]: p.value for p in metric_points("opsledger.projection.lag")}
    assert lag.get("records") == 0 and lag.get("budget_warnings") == 0
    seconds = [p for p in metric_points("opsledger.projection.lag.seconds")
               if attrs(p).get("projection") == "records"]
    assert seconds and seconds[0].value == 0
    assert metric_points("opsledger.projection.events")
    assert any(metric_points(name) for name in ("http.server.request.duration",
                                                "http.server.duration"))


def test_the_publishers_page_links_to_the_request_that_caused_its_events(
        client: Any, container: Any, token: Any, spans: InMemorySpanExporter,
        nats_url: str, names: dict[str, str]) -> None:  # noqa: F811 (the fixtures above)
    from service.streams.hub import Streams

    r = client.post("/projects", json=PROJECT, headers=token("ann", "member"))
    command = next(s for s in spans.get_finished_spans()
                   if s.name == "command project.propose")
    settings = make_settings(nats_url=nats_url, nats_stream=names["stream"],
                             nats_subject_prefix=names["prefix"], stream_poll_interval=0.1)
    streams = Streams(settings, container.database.conninfo, container.store)
    publisher = streams.nats
    assert publisher is not None
    publisher.start()
    try:
        pages = wait_for_span(spans, lambda s: s.name == "publish nats" and any(
            lk.context.span_id == command.context.span_id for lk in s.links))
    finally:
        publisher.stop()
    assert pages[0].kind == SpanKind.PRODUCER
    assert attrs(pages[0])["messaging.system"] == "nats"
    assert r.status_code == 201


@pytest.mark.slow
def test_only_the_standard_otel_variables_turn_on_otlp_export(fresh_database: Any) -> None:
    """`serve` with OTEL_EXPORTER_OTLP_ENDPOINT set sends traces and metrics over OTLP/HTTP
    (here to a stand-in collector); the command's span and the command counter arrive."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    import httpx
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from service.auth import issue_token
    from tests.e2e.test_crash_recovery import free_port

    received: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.setdefault(self.path, []).append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": fresh_database.url, "OPSLEDGER_LOG_LEVEL": "WARNING",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
           "OTEL_SERVICE_NAME": "opsledger-test", "OTEL_METRIC_EXPORT_INTERVAL": "300",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                            cwd=Path(__file__).resolve().parents[2], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < wait_until_up, "serve did not start"
            time.sleep(0.1)
        jwt = issue_token(make_settings(), "ann", roles=["member"], departments=["ops"])
        r = httpx.post(base + "/projects", json=PROJECT,
                       headers={"Authorization": f"Bearer {jwt}"}, timeout=10)
        assert r.status_code == 201

        def span_names() -> set[str]:
            names = set()
            for body in list(received["/v1/traces"]):
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        names |= {s.name for s in ss.spans}
            return names

        def metric_names() -> set[str]:
            names = set()
            for body in list(received["/v1/metrics"]):
                request = ExportMetricsServiceRequest.FromString(body)
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        names |= {m.name for m in sm.metrics}
            return names

        deadline = time.monotonic() + 20
        while not ({"command project.propose", "events.append", "event_store.commit",
                    "projection records"} <= span_names()
                   and {"opsledger.commands", "opsledger.projection.lag"} <= metric_names()):
            assert time.monotonic() < deadline, (span_names(), metric_names())
            time.sleep(0.1)
        request = ExportTraceServiceRequest.FromString(received["/v1/traces"][0])
        service_name = {a.value.string_value for rs in request.resource_spans
                        for a in rs.resource.attributes if a.key == "service.name"}
        assert service_name == {"opsledger-test"}
    finally:
        proc.terminate()
        proc.wait(15)
        collector.shutdown()
