"""OpenTelemetry: traces and metrics, configured only by the standard ``OTEL_*`` variables.

A tracer provider is always installed, so every request and command has a trace id (stored in
event metadata, which is how a projection batch or a publisher page links back to the requests
that caused it). Nothing leaves the process unless the environment says so:

* traces go over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) is set,
  or ``OTEL_TRACES_EXPORTER`` names ``otlp``; ``console`` prints them; ``none`` turns them off;
* metrics likewise (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, ``OTEL_METRICS_EXPORTER``), read
  every ``OTEL_METRIC_EXPORT_INTERVAL`` ms; without an exporter no meter provider is installed
  and every instrument below is a no-op;
* ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` name the process, ``OTEL_TRACES_SAMPLER``
  (``…_ARG``) samples, ``OTEL_SDK_DISABLED=true`` turns everything off.

psycopg is instrumented with the official instrumentation, HTTP by FastAPI's own
(``FastAPI(telemetry=…)``). Database spans that
have no parent (the workers' polling) are not sampled: they would each be a one-span trace.
Instrumentation is kept cheap on the hot path: without an exporter spans are not recorded
(their ids still are), instruments are created once, attributes are small fixed sets, links are
capped, and ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` thins a busy service's traces.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.metrics.export import MetricReader

    from projections.engine import ProjectionRunner
    from service.store import EventStore

log = logging.getLogger(__name__)

MAX_LINKS = 32  # links per batch span: enough to find the causes, bounded in cost

_lock = threading.Lock()
_configured = False


# -- configuration --------------------------------------------------------------------------

def _exporters(signal: str) -> list[str]:
    """The exporters the environment asks for a signal (``traces`` or ``metrics``)."""
    named = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"))
    if not named:  # the OTel default is otlp; we export only when an endpoint is given
        return ["otlp"] if endpoint else []
    return [n.strip() for n in named.split(",") if n.strip() and n.strip() != "none"]


def _disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _resource() -> Resource:
    resource = Resource.create({"service.instance.id": f"{socket.gethostname()}-{os.getpid()}"})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "opsledger"}))
    return resource


class _Sampler(Sampler):
    """The environment's sampler, except: nothing is recorded while no span processor would
    receive it (no exporter configured: a span then costs a few µs instead of ~20, and still
    has the ids that go into event metadata), and client spans without a parent (background
    polling of the database) are dropped."""

    def __init__(self, delegate: Sampler):
        self.delegate = delegate
        self.exporting = False

    def should_sample(self, parent_context: Any, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Any = None,
                      links: Sequence[Link] | None = None, trace_state: Any = None,
                      ) -> SamplingResult:
        if not self.exporting or (kind == SpanKind.CLIENT and not links and not
                                  trace.get_current_span(parent_context)
                                  .get_span_context().is_valid):
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes,
                                           links, trace_state)

    def get_description(self) -> str:
        return f"OpsledgerSampler{{{self.delegate.get_description()}}}"


class _TracerProvider(TracerProvider):
    """Tells the sampler once some processor (an exporter, a test's) receives spans."""

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        if isinstance(self.sampler, _Sampler):
            self.sampler.exporting = True


def _protocol_warning(signal: str) -> None:
    proto = (os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
             or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if proto != "http/protobuf":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; %s use http/protobuf "
                    "(port 4318)", proto, signal)


def configure_telemetry(*, metric_readers: Sequence[MetricReader] = (),
                        span_processors: Sequence[SpanProcessor] = ()) -> None:
    """Installs the tracer and meter providers and the psycopg instrumentation, once per
    process (later calls do nothing). ``metric_readers`` / ``span_processors`` add readers and
    processors besides the ones the environment asks for (tests pass in-memory ones)."""
    global _configured
    with _lock:
        if _configured or _disabled():
            return
        _configured = True
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        resource = _resource()
        provider = _TracerProvider(resource=resource,
                                   sampler=_Sampler(_get_from_env_or_default()))
        for name in _exporters("traces"):
            provider.add_span_processor(_span_processor(name))
        for processor in span_processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)

        readers = [_metric_reader(name) for name in _exporters("metrics")]
        readers += list(metric_readers)
        if readers:
            from opentelemetry.sdk.metrics import MeterProvider

            metrics.set_meter_provider(MeterProvider(metric_readers=readers, resource=resource))

        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        # SQL text only: parameters (which may hold personal data) are never captured.
        PsycopgInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)


def _span_processor(name: str) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if name == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported; using otlp", name)
    _protocol_warning("traces")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter())


def _metric_reader(name: str) -> MetricReader:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if name != "otlp":
        log.warning("OTEL_METRICS_EXPORTER=%s is not supported; using otlp", name)
    _protocol_warning("metrics")
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter())


NOT_TRACED_PATHS = frozenset({"/healthz", "/readyz"})


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry instrumentation (``FastAPI(telemetry=…)``, FastAPI ≥ 0.160):
    a server span per request named ``METHOD /route``, ``http.server.request.duration`` and
    active requests, on the global providers configured here. It replaced
    ``opentelemetry-instrumentation-fastapi``, which found each request's route by matching the
    path against every route again and wrapped every ASGI message (~8 % of the API process's
    CPU per command, measured). No spans for health probes, none per endpoint or dependency
    (the command's own spans say more), no log records (our JSON logs carry the trace ids)."""
    configure_telemetry()
    # The providers named, so FastAPI need not look up and classify the global ones on
    # every request.
    return {"exclude": lambda scope: scope.get("path") in NOT_TRACED_PATHS,
            "operation_spans": False, "logs": False,
            "tracer_provider": trace.get_tracer_provider(),
            "meter_provider": metrics.get_meter_provider()}


def flush(timeout_millis: int = 5000) -> None:
    """Exports what is buffered (before a worker process exits)."""
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)


# -- links ----------------------------------------------------------------------------------

def link(trace_id: str | None, span_id: str | None) -> Link | None:
    """A link to a span named by hex ids (from event metadata), or None."""
    if not trace_id or not span_id:
        return None
    try:
        ctx = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    except ValueError:
        return None
    return Link(ctx) if ctx.is_valid else None


def links_from_traceparents(traceparents: Iterable[str | None]) -> list[Link]:
    """Links to the commands behind published events (their ``traceparent`` extension)."""
    out: list[Link] = []
    seen: set[str] = set()
    for tp in traceparents:
        if not tp or tp in seen:
            continue
        seen.add(tp)
        parts = tp.split("-")
        found = link(parts[1], parts[2]) if len(parts) == 4 else None
        if found is not None:
            out.append(found)
            if len(out) >= MAX_LINKS:
                break
    return out


def links_to_spans(contexts: Iterable[trace.SpanContext | None]) -> list[Link]:
    out = []
    for ctx in contexts:
        if ctx is not None and ctx.is_valid:
            out.append(Link(ctx))
            if len(out) >= MAX_LINKS:
                break
    return out


# -- metrics --------------------------------------------------------------------------------

_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            10.0]
_meter = metrics.get_meter("opsledger")

COMMANDS = _meter.create_counter(
    "opsledger.commands", unit="{command}",
    description="Commands handled, by command (record_type.name), record type and outcome "
                "(ok, replayed, refused, stale, not_found, conflict, error)")
COMMAND_DURATION = _meter.create_histogram(
    "opsledger.command.duration", unit="s",
    description="Time to handle a command, from validation to the committed append",
    explicit_bucket_boundaries_advisory=_SECONDS)
EVENTS_APPENDED = _meter.create_counter(
    "opsledger.events.appended", unit="{event}",
    description="Events committed to the event store, by record type")
COMMIT_SIZE = _meter.create_histogram(
    "opsledger.store.commit.events", unit="{event}",
    description="Events per group commit (one transaction)",
    explicit_bucket_boundaries_advisory=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000])
COMMIT_DURATION = _meter.create_histogram(
    "opsledger.store.commit.duration", unit="s",
    description="Duration of one group-commit transaction",
    explicit_bucket_boundaries_advisory=_SECONDS)
PROJECTED = _meter.create_counter(
    "opsledger.projection.events", unit="{event}",
    description="Events applied by a projection (leader only)")
PROJECTION_BATCH_DURATION = _meter.create_histogram(
    "opsledger.projection.batch.duration", unit="s",
    description="Duration of one projection batch transaction",
    explicit_bucket_boundaries_advisory=_SECONDS)


def command_outcome(exc: BaseException | None, replayed: bool = False) -> str:
    """A small, fixed set of outcome names for the commands metric."""
    if exc is None:
        return "replayed" if replayed else "ok"
    from domain.shared import DomainError
    from service.application import Busy, IdempotencyMismatch, NotFound, StaleVersion
    from service.store import RecordConflict

    if isinstance(exc, DomainError):
        return "refused"
    return {StaleVersion: "stale", NotFound: "not_found", IdempotencyMismatch: "refused",
            Busy: "conflict", RecordConflict: "conflict"}.get(type(exc), "error")


def record_projection_batch(name: str, events: int, micros: int) -> None:
    """The ProjectionRunner's ``on_batch`` hook."""
    attrs = {"projection": name}
    PROJECTED.add(events, attrs)
    PROJECTION_BATCH_DURATION.record(micros / 1e6, attrs)


class _LagSource:
    """A runner and the store to ask for the head; lag is read at collection time only."""

    def __init__(self, runner: ProjectionRunner, store: EventStore):
        self.runner = weakref.ref(runner)
        self.store = weakref.ref(store)
        self._cached: tuple[float, dict[str, tuple[int, float]]] = (0.0, {})

    def lag(self) -> dict[str, tuple[int, float]]:
        """{projection: (events behind the head, seconds since the oldest unapplied event)}."""
        now = time.monotonic()
        if now - self._cached[0] < 1.0:  # both gauges are read in one collection
            return self._cached[1]
        runner, store = self.runner(), self.store()
        if runner is None or store is None or not runner.positions:
            return {}
        head = store.max_position()
        out: dict[str, tuple[int, float]] = {}
        oldest: dict[int, float] = {}
        for name, position in list(runner.positions.items()):
            behind = max(0, head - position)
            seconds = 0.0
            if behind:
                if position not in oldest:
                    rows = store.execute(
                        "SELECT extract(epoch FROM clock_timestamp() - occurred_at) AS s"
                        " FROM event_log WHERE position > %s ORDER BY position LIMIT 1",
                        (position,))
                    oldest[position] = max(0.0, float(rows[0]["s"])) if rows else 0.0
                seconds = oldest[position]
            out[name] = (behind, seconds)
        self._cached = (now, out)
        return out


_lag_sources: list[_LagSource] = []


def observe_projection_lag(runner: ProjectionRunner, store: EventStore) -> None:
    """Reports this process's view of the projections' lag (leader or standby alike: the
    standby reads the leader's tracked positions)."""
    _lag_sources.append(_LagSource(runner, store))


def _lag_observations(index: int) -> Callable[[Any], Iterator[metrics.Observation]]:
    def observe(_options: Any) -> Iterator[metrics.Observation]:
        for source in list(_lag_sources):
            if source.runner() is None:
                _lag_sources.remove(source)
                continue
            try:
                lag = source.lag()
            except Exception:  # the database is away: no observation rather than a failure
                log.debug("projection lag unavailable", exc_info=True)
                continue
            for name, values in lag.items():
                yield metrics.Observation(values[index], {"projection": name})
    return observe


_meter.create_observable_gauge(
    "opsledger.projection.lag", callbacks=[_lag_observations(0)], unit="{event}",
    description="Events committed but not yet applied by a projection")
_meter.create_observable_gauge(
    "opsledger.projection.lag.seconds", callbacks=[_lag_observations(1)], unit="s",
    description="Age of the oldest event a projection has not applied yet (0 when caught up)")
