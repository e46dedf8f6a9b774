"""The ASGI application: REST commands, GraphQL, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service import errors
from service.bootstrap import Container, bootstrap, tune_garbage_collector
from service.config import Settings, get_settings
from service.graphql.schema import graphql_router
from service.limits import BodySizeLimit
from service.logs import AccessLogMiddleware
from service.loop_writer import LoopWriter
from service.rest.audit import build_router as build_audit_router
from service.rest.command_lane import CommandLane
from service.rest.commands import build_router
from service.rest.integrity import build_integrity_router
from service.streams import feed, webhook_api
from service.telemetry import fastapi_telemetry

API_VERSION = "0.1.0"
DESCRIPTION = """
Event-sourced operations backend: projects, customers and service requests, risks and budgets.

* **Commands** are REST `POST`s, one per business command. Send `Authorization: Bearer <JWT>`,
  optionally `If-Match: "<version>"` (optimistic concurrency, 412 when stale) and
  `Idempotency-Key` (safe retries). Every answer carries the record's new `version` and the
  event's global `position`.
* **Queries** are GraphQL at `/graphql` (GraphiQL in the browser). Pass `waitForPosition` to read
  your own writes.
* **Errors** are RFC 9457 `application/problem+json` naming the field or rule.
"""


class OpsledgerAPI(FastAPI):
    """FastAPI, with the common command answered ahead of the middleware stack
    (``service.rest.command_lane``)."""

    command_lane: CommandLane | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        lane = self.command_lane
        if lane is not None:
            found = lane.match(scope)
            if found is not None:
                await lane.serve(found, scope, receive, send, super().__call__)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.container = container or await run_in_threadpool(bootstrap, settings)
        if owned:  # a served process (not an app built around a test's container)
            tune_garbage_collector()
        ledger = app.state.container.ledger
        if ledger.loop_writer is None:  # this loop commits what is decided on it
            writer = ledger.loop_writer = LoopWriter(app.state.container.store)
            writer.start()
        else:
            writer = None
        try:
            yield
        finally:
            if writer is not None:
                ledger.loop_writer = None
                await writer.close()
            positions = getattr(app.state, "projected_positions", None)
            if positions is not None:
                await positions.close()
            pool = getattr(app.state, "graphql_pool", None)
            if pool is not None:
                await pool.close()
            if owned:
                await run_in_threadpool(app.state.container.close)

    app = OpsledgerAPI(title="opsledger", version=API_VERSION, description=DESCRIPTION,
                       lifespan=lifespan, telemetry=fastapi_telemetry())
    if container is not None:
        app.state.container = container
    errors.install(app)
    limits = container.settings if container is not None else settings or get_settings()
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)  # 413, never a 500
    app.add_middleware(AccessLogMiddleware)  # inside FastAPI's telemetry: trace ids
    # GraphQL first: routes are matched in order, and its requests are the most frequent.
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)
    app.include_router(build_router())
    app.include_router(build_audit_router())  # /audit/… and the /console page
    app.include_router(feed.build_router())  # /events, /events/stream (SSE), /events/consumers
    app.include_router(webhook_api.build_router())  # /webhooks/{id}/deliveries, …/secret
    app.include_router(build_integrity_router())  # /integrity/… digests, proofs, verify
    app.command_lane = CommandLane.build(app, limits.max_body_bytes)
    generate_openapi = app.openapi  # FastAPI's: builds the document once and caches it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            errors.document_problems(generate_openapi())  # the answers errors.py gives
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"], operation_id="health-live",
             summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], operation_id="health-ready",
             summary="The database answers and projections are not lagging",
             responses={503: {"description": "Not ready"}})
    def readyz(request: Request) -> Any:
        c: Container = request.app.state.container
        try:
            head = c.store.max_position()
            rows = c.store.execute("SELECT coalesce(min(position), 0) AS p"
                                   " FROM projection_tracking")
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]},
                                status_code=503, headers={"Retry-After": "2"})
        projected = int(rows[0]["p"]) if rows else 0
        lag = max(0, head - projected)
        body = {"status": "ready" if lag <= c.settings.ready_max_lag else "lagging",
                "head_position": head, "projected_position": projected, "lag": lag}
        if body["status"] == "ready":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})

    return app
