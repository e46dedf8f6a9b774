"""The command lane: the common command answered ahead of Starlette's routing.

Measured under load, a third of the API process's event-loop time per command went to the
layers between our middleware and the endpoint: Starlette's exception middleware, FastAPI's
exit-stack middleware, route matching through the included routers, the request/response
wrapper and the send wrappers each of them adds. ``CommandLane`` is a pure ASGI middleware,
the innermost of ours (FastAPI's telemetry, the error middleware, the access log and the body
limit stay outside it, unchanged). For ``POST /{plural}/{uuid}/{command}`` of an update
command it reads the body, records the route as the router would (``scope["route"]``, the
span's name and ``http.route``), and asks the route to answer on the event loop
(``CommandRoute.lane``). Whenever that cannot answer — a body or header to be
judged, a token to refuse, a record not cached, a refusal, a conflict — nothing has been
written, and the request goes on to the application exactly as it came (its body replayed),
where FastAPI's route answers it. An exception once the command is under way is answered by
the application's exception handlers, as Starlette's exception middleware would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.telemetry._api import _route_selected
from starlette.exceptions import HTTPException

from service.rest.command_route import CommandRoute, Lane

Scope = dict[str, Any]
Message = dict[str, Any]


class CommandLane:
    def __init__(self, app: Any, routes: Iterable[Any]):
        self.app = app
        # (plural, command path name) → route, for the update commands that can answer on
        # the loop: their paths are /{plural}/{record_id}/{name}.
        self.routes: dict[tuple[str, str], tuple[CommandRoute, Lane]] = {}
        for route in routes:
            lane = route.lane() if isinstance(route, CommandRoute) else None
            parts = route.path.split("/")
            if lane is not None and len(parts) == 4 and parts[2] == "{record_id}":
                self.routes[(parts[1], parts[3])] = (route, lane)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        target = self._route(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []  # what was received, to replay when the app answers
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client went away
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if messages[-1]["type"] == "http.request":
            response = await self._answer(*target, scope, b"".join(chunks))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, _replay(messages, receive), send)

    def _route(self, scope: Scope) -> tuple[CommandRoute, Lane] | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        parts = scope["path"].split("/")
        if len(parts) != 4 or len(parts[2]) != 36:
            return None
        return self.routes.get((parts[1], parts[3]))

    async def _answer(self, route: CommandRoute, lane: Lane, scope: Scope, body: bytes) -> Any:
        """The route's answer on the loop, or None (nothing written): the app answers."""
        lane_scope = {**scope, "path_params": {"record_id": scope["path"].split("/")[2]}}
        request = Request(lane_scope)
        request._body = body  # noqa: SLF001 — Starlette's cache of the read body
        try:
            kwargs = await lane.arguments(request)
        except Exception:  # a token or header the app's route refuses, in its own words
            return None
        if kwargs is None:
            return None
        # From here on the request is the lane's: the route as the router records it.
        scope.update(path_params=lane_scope["path_params"], route=route,
                     endpoint=route.endpoint)
        _route_selected(scope=scope, path=route.path_format)
        try:
            return await lane.on_loop(**kwargs)
        except Exception as exc:
            handler = _handler(request.app.exception_handlers, exc)
            if handler is None:
                raise  # the error middleware outside answers it (500, logged)
            return await handler(request, exc)


def _handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    """The handler Starlette's exception middleware would call (``Exception``'s is the error
    middleware's, outside the lane)."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _replay(messages: list[Message], receive: Any) -> Any:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
