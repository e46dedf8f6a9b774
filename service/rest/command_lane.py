"""The common command answered ahead of the middleware stack.

A well-formed update command (``POST /{records}/{id}/{command}`` with a JSON body within the
size limit) is the API's hottest request. Measured in process over one container, interleaved:
of the ~700 µs of CPU such a command cost, FastAPI's telemetry wrapper took ~70 µs, and the
middleware stack between it and the endpoint (error middleware, exception telemetry, FastAPI's
body limit, the access log, our body limit, exception middleware, exit stack, route matching,
the request/response wrapper) another ~100 µs — each layer a few µs, wrapping ``send`` and
``receive`` once more.

``CommandLane`` answers that request itself, doing what those layers do for it and no more: one
server span (the same name and attributes as FastAPI's telemetry, in the same instrument
scope, child of the caller's ``traceparent``), the same request-duration and active-request
metrics, the access-log line and correlation id, and every exception mapped by the app's own
exception handlers. Anything else — another method, path, content type, a body over the limit or
without ``Content-Length``, a body FastAPI would have to judge, a header the fast path does not
accept, an invalid token — goes to the app untouched (its body replayed), so every refusal is
still FastAPI's. ``tests/e2e/test_command_route.py`` checks both ways answer alike.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.telemetry._asgi import _server_attributes
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette._exception_handler import _lookup_exception_handler

from service.logs import correlation_id, log_access, request_correlation_id
from service.rest.command_route import CommandRoute, FastCommand

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


class CommandLane:
    def __init__(self, app: FastAPI, max_body: int):
        self.app = app
        self.max_body = max_body
        # (records, command) → the route, for paths /{records}/{record_id}/{command}
        self.routes: dict[tuple[str, str], tuple[CommandRoute, FastCommand]] = {}
        for route in _routes(app.router.routes):
            if not isinstance(route, CommandRoute) or not hasattr(route.endpoint, "fast_path"):
                continue
            fast = FastCommand(route.endpoint)
            parts = route.path.split("/")
            if (fast.on_loop is not None and route.methods == {"POST"} and len(parts) == 4
                    and parts[2] == "{record_id}"):
                self.routes[(parts[1], parts[3])] = (route, fast)
        telemetry = getattr(app, "_native_telemetry", None)
        self._telemetry = telemetry if _usable(telemetry) else None

    @classmethod
    def build(cls, app: FastAPI, max_body: int) -> CommandLane | None:
        lane = cls(app, max_body)
        # FastAPI's telemetry instruments are reused: without them (another FastAPI) the
        # lane stands aside rather than answer untraced.
        return lane if lane.routes and lane._telemetry is not None else None

    def match(self, scope: dict[str, Any]) -> tuple[CommandRoute, FastCommand, str] | None:
        """The route of an update command's request, and its path's record id (as sent)."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[0]:
            return None
        found = self.routes.get((parts[1], parts[3]))
        return None if found is None else (*found, parts[2])

    async def serve(self, found: tuple[CommandRoute, FastCommand, str], scope: dict[str, Any],
                    receive: Any, send: Any, fallback: ASGIApp) -> None:
        try:
            raw = await self._body(scope, receive)
        except _Gone:  # the client left before its body arrived: nothing to answer
            return
        if raw is None:  # not read: the app gets the request as it came
            await fallback(scope, receive, send)
            return
        route, fast, record_id = found
        started = time.perf_counter()
        cid = request_correlation_id(scope)
        scope["app"] = self.app
        scope["path_params"] = {"record_id": record_id}
        request = Request(scope, _replay(raw, receive))
        token = correlation_id.set(cid)
        try:
            try:
                kwargs = await fast.arguments(request)
            except Exception:  # e.g. a token refused: the app answers (and words) it
                kwargs = None
            if kwargs is not None:
                scope["route"] = route
                await self._answer(route, fast, kwargs, request, scope, send, cid, started)
        finally:
            correlation_id.reset(token)
        if kwargs is None:
            del scope["path_params"]
            await fallback(scope, _replay(raw, receive), send)

    async def _answer(self, route: CommandRoute, fast: FastCommand, kwargs: dict[str, Any],
                      request: Request, scope: dict[str, Any], send: Any, cid: str,
                      started: float) -> None:
        telemetry: Any = self._telemetry
        config = telemetry.config
        enabled = telemetry.enabled()
        parent = _parent_context(scope)
        span: Any = trace.INVALID_SPAN
        if enabled and config["tracing"]:
            provider = config["tracer_provider"] or trace.get_tracer_provider()
            span = telemetry._get_tracer(provider=provider).start_span(
                f"POST {route.path}", context=parent, kind=SpanKind.SERVER)
        metered = enabled and config["metrics"]
        scheme = scope.get("scheme", "http")
        if metered:
            duration, active = telemetry._instruments()
            active.add(1, {"url.scheme": scheme, "http.request.method": "POST"})
        context_token = otel_context.attach(trace.set_span_in_context(span, parent))
        response: Any = None
        error: Exception | None = None
        try:
            try:
                response = await fast.answer(kwargs)
            except Exception as exc:
                error = exc
                response = await self._handled(request, exc)
            if b"x-correlation-id" not in dict(response.raw_headers):
                response.headers["X-Correlation-ID"] = cid
            await response(scope, request.receive, send)
        finally:
            status = response.status_code if response is not None else 500
            attributes = {"url.scheme": scheme, "http.request.method": "POST",
                          "network.protocol.version": scope.get("http_version"),
                          "http.route": route.path, "http.response.status_code": status}
            if status >= 500:
                attributes["error.type"] = (type(error).__qualname__ if error is not None
                                            else str(status))
            if span.is_recording():
                span.set_attributes({**attributes, **_server_attributes(scope),
                                     "url.path": scope["path"]})
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            if metered:
                duration.record(max(0.0, time.perf_counter() - started), attributes)
                active.add(-1, {"url.scheme": scheme, "http.request.method": "POST"})
            log_access("POST", route.path, status, started)
            otel_context.detach(context_token)
            span.end()

    async def _handled(self, request: Request, exc: Exception) -> Any:
        """The app's own answer to ``exc`` (its exception handlers; ``Exception``'s last)."""
        handlers: Any = self.app.exception_handlers
        handler: Any = _lookup_exception_handler(handlers, exc)
        if handler is None:
            raise exc
        answer = handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    async def _body(self, scope: dict[str, Any], receive: Any) -> bytes | None:
        """The body when the headers promise a JSON one within the limit, else None (and
        nothing read)."""
        length = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                return None
        if length is None or content_type is None or not length.isdigit():
            return None
        if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return None
        declared = int(length)
        if declared > self.max_body:
            return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > declared:  # more than declared (the HTTP server does not let it happen)
                raise _Gone
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks) if len(chunks) != 1 else chunks[0]


class _Gone(Exception):
    pass


def _routes(routes: Any) -> Any:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from _routes(included.routes)
        else:
            yield route


def _usable(telemetry: Any) -> bool:
    return all(hasattr(telemetry, name) for name in ("config", "_get_tracer", "_instruments"))


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then whatever comes: a disconnect

    return replay


def _parent_context(scope: dict[str, Any]) -> Any:
    carrier = {name.decode("latin-1"): value.decode("latin-1")
               for name, value in scope["headers"] if name in _PROPAGATED}
    return propagate.extract(carrier) if carrier else otel_context.Context()


