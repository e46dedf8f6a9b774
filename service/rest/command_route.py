"""The generated command routes' request handling, without FastAPI's per-request dependency
resolution in the common case.

FastAPI documents each command route from its endpoint's signature (body model, path
parameter, headers, dependencies) and, per request, resolves that signature generically:
measured, ~14 % of the API process's CPU per command went to ``solve_dependencies`` alone.
``CommandRoute`` keeps FastAPI's route (the same OpenAPI document, the same endpoint function)
and answers a well-formed request directly: JSON body validated by the body model, the path
id, the headers, then the same endpoint in the threadpool. Anything unusual (another content
type, a body or header the fast path would have to judge, a malformed id) goes to FastAPI's
own handler, so every refusal is the one FastAPI gives. Exceptions raised on either path
(401, domain rules …) reach the same exception handlers.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

MAX_HEADER = 200  # the max_length of the id headers (commands.command_context)
ID_HEADERS = ("x-correlation-id", "x-causation-id", "x-request-id", "idempotency-key")

# As many as anyio's default threadpool (which FastAPI would use): commands in flight at once.
COMMAND_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="command")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# (request, validated body) → the endpoint's keyword arguments, or None to fall back
Prepare = Callable[[Request, BaseModel], Coroutine[Any, Any, dict[str, Any] | None]]


class FastCommand:
    """A command route's well-formed request answered without FastAPI's per-request machinery:
    ``arguments`` reads what FastAPI's dependencies would give the endpoint (None: FastAPI must
    judge the request), ``answer`` runs the command with them. Used by ``CommandRoute`` and,
    ahead of the middleware stack, by ``service.rest.command_lane``."""

    def __init__(self, endpoint: Callable[..., Any]):
        self.body_model: type[BaseModel]
        self.prepare: Prepare
        self.body_model, self.prepare = endpoint.fast_path  # type: ignore[attr-defined]
        self.endpoint = endpoint
        # An endpoint may also have a coroutine that answers without a thread when it can.
        self.on_loop: Callable[..., Coroutine[Any, Any, Response | None]] | None = getattr(
            endpoint, "on_loop", None)

    async def arguments(self, request: Request) -> dict[str, Any] | None:
        body = await _json_body(request, self.body_model)
        return await self.prepare(request, body) if body is not None else None

    async def answer(self, kwargs: dict[str, Any]) -> Response:
        if self.on_loop is not None:
            answer = await self.on_loop(**kwargs)
            if answer is not None:
                return answer
        # The endpoint blocks (the group commit): run it in a thread, with this context
        # (the request's span, the correlation id). asyncio's executor hop costs a third
        # of anyio's ``to_thread`` (its capacity limiter and cancel scopes).
        call = functools.partial(contextvars.copy_context().run, self.endpoint, **kwargs)
        response: Response = await asyncio.get_running_loop().run_in_executor(
            COMMAND_THREADS, call)
        return response


class CommandRoute(APIRoute):
    """A command route whose endpoint carries ``fast_path = (body_model, prepare)``."""

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        if getattr(self.endpoint, "fast_path", None) is None:
            return standard
        fast = FastCommand(self.endpoint)

        async def handler(request: Request) -> Response:
            kwargs = await fast.arguments(request)
            if kwargs is None:
                return await standard(request)  # FastAPI's handling, FastAPI's refusals
            return await fast.answer(kwargs)

        return handler


async def _json_body(request: Request, model: type[BaseModel]) -> BaseModel | None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    raw = await request.body()  # cached on the request: the fallback reads it again
    try:
        data = orjson.loads(raw)  # what it cannot read (not UTF-8, huge ints): FastAPI reads
        if not isinstance(data, dict):
            return None
        return model.model_validate(data)
    except (ValueError, ValidationError, RecursionError):  # FastAPI words the refusal
        return None


def path_id(request: Request, name: str = "record_id") -> UUID | None:
    """The path's id when it is a canonical UUID (anything else: FastAPI judges it)."""
    text = request.path_params.get(name)
    if not isinstance(text, str) or len(text) != 36:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


def id_headers(request: Request) -> dict[str, str | None] | None:
    """The optional id headers, or None when one is longer than FastAPI would accept."""
    headers = request.headers
    values = {name: headers.get(name) for name in ID_HEADERS}
    if any(v is not None and len(v) > MAX_HEADER for v in values.values()):
        return None
    return values
