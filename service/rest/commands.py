"""REST: one POST endpoint per command, one GET per record, generated from the catalogue.

Routes only translate HTTP to a use case: headers → CommandContext, body → the command's
validated model, the result → JSON with ETag. Rules live in the domain, errors in errors.py.
"""

# No `from __future__ import annotations` here: FastAPI reads the generated signatures.

import hashlib
import json
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from domain.shared import Actor
from projections.codec import record_view
from service.application import CommandContext, CommandResult, Ledger
from service.catalogue import PLURALS, RECORD_TYPES, CommandBody, CommandSpec, commands_of
from service.ids import uuid4
from service.logs import correlation_id
from service.rest.command_route import CommandRoute, id_headers, path_id


class EventRef(BaseModel):
    type: str
    version: int
    position: int


class CommandAccepted(BaseModel):
    """What every accepted command answers: the record's new version and global position."""

    id: UUID
    record_type: str
    command: str
    version: int = Field(description="The record's version after the command (its new ETag).")
    position: int = Field(description="Global position of the command's last event: pass it "
                                      "as waitForPosition to GraphQL to read your own write.")
    status: str | None = None
    events: list[EventRef]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    rule: str
    field: str | None = None


PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": desc, "content": {"application/problem+json": {}}}
    for code, desc in {401: "Missing or invalid token", 403: "Not permitted",
                       404: "Unknown record", 409: "Invalid transition or conflict",
                       412: "Stale If-Match", 422: "Invalid input or rule violated",
                       503: "Database unavailable"}.items()
}


# The dependencies are ``async``: FastAPI runs a plain ``def`` dependency in the threadpool,
# a thread hop per dependency per request; these never block (a JWKS key fetch does, so a token
# the authenticator has not seen yet is checked in the threadpool in that mode).
async def get_ledger(request: Request) -> Ledger:
    return request.app.state.container.ledger


async def get_actor(request: Request,
                    authorization: Annotated[str | None, Header()] = None) -> Actor:
    auth = request.app.state.container.auth
    actor = auth.cached_actor(authorization)
    if actor is not None:
        return actor
    if auth.may_block:
        return await run_in_threadpool(auth.actor, authorization)
    return auth.actor(authorization)


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ActorDep = Annotated[Actor, Depends(get_actor)]


async def command_context(
    request: Request,
    actor: ActorDep,
    x_correlation_id: Annotated[str | None, Header(max_length=200)] = None,
    x_causation_id: Annotated[str | None, Header(max_length=200)] = None,
    x_request_id: Annotated[str | None, Header(max_length=200)] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200, description=(
        "Makes the command safe to retry: a retry returns the first answer and appends "
        "nothing; the same key with a different body is refused (422)."))] = None,
) -> CommandContext:
    # The access log's id (the header, or one it made up) so logs and events agree. (Every
    # field given: the dataclass would otherwise make ids only to have them replaced.)
    return CommandContext(actor=actor, causation_id=x_causation_id,
                          idempotency_key=idempotency_key or None,
                          correlation_id=x_correlation_id or correlation_id.get()
                          or str(uuid4()),
                          request_id=x_request_id or str(uuid4()))


ContextDep = Annotated[CommandContext, Depends(command_context)]


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise HTTPException(412, "If-Match must be the record's version as given in its ETag")
    return int(text)


def request_hash(method: str, path: str, body: CommandBody) -> str:
    """The request's fingerprint for its Idempotency-Key: method, path and the body as
    canonical JSON (sorted keys, no spaces, ASCII with ``\\u`` escapes: the standard library's
    ``json.dumps``). orjson writes the same bytes when they are plain ASCII (no DEL, which
    ``json`` escapes), ~5 × faster; anything else (or what orjson cannot write, such as an
    integer past 64 bits) is written by ``json``."""
    data = body.model_dump(mode="json")
    try:
        canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        plain = canonical.isascii() and b"\x7f" not in canonical
    except TypeError:  # e.g. an integer past 64 bits
        plain = False
    if not plain:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()


ACCEPTED_FIELDS = tuple(CommandAccepted.model_fields)


class AcceptedResponse(JSONResponse):
    """The same compact UTF-8 JSON as ``JSONResponse``, rendered by orjson (measured: the
    standard library's encoder was ~2 % of the API process's CPU per command)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _respond(result: CommandResult, ctx: CommandContext,
             location: str | None = None) -> JSONResponse:
    """The answer as a ready response: FastAPI documents it as ``CommandAccepted`` but does not
    validate and re-encode it (the body is built by the Ledger in exactly that shape; a
    replayed body comes back from jsonb, so its keys are put back in the model's order)."""
    body = {k: result.body[k] for k in ACCEPTED_FIELDS if k in result.body}
    headers = {"ETag": f'"{body["version"]}"', "X-Correlation-ID": ctx.correlation_id}
    if location is not None:
        headers["Location"] = location
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return AcceptedResponse(body, status_code=result.status_code, headers=headers)


async def _fast_arguments(request: Request, body: BaseModel) -> dict[str, Any] | None:
    """What FastAPI's dependencies would give a create endpoint (``CommandRoute``'s fast path),
    or None when a header needs FastAPI's judgement."""
    ids = id_headers(request)
    if ids is None:
        return None
    actor = await get_actor(request, request.headers.get("authorization"))
    ctx = await command_context(request, actor, ids["x-correlation-id"], ids["x-causation-id"],
                                ids["x-request-id"], ids["idempotency-key"])
    return {"body": body, "request": request, "ctx": ctx,
            "ledger": request.app.state.container.ledger}


async def _fast_update_arguments(request: Request, body: BaseModel) -> dict[str, Any] | None:
    record_id = path_id(request)
    if record_id is None:
        return None
    kwargs = await _fast_arguments(request, body)
    if kwargs is not None:
        kwargs.update(record_id=record_id, if_match=request.headers.get("if-match"))
    return kwargs


def _create_endpoint(spec: CommandSpec, plural: str) -> Any:
    Body = spec.body_model  # noqa: N806

    def endpoint(body: Body, request: Request, ctx: ContextDep,  # type: ignore[valid-type]
                 ledger: LedgerDep) -> JSONResponse:
        ctx.comment = body.comment  # type: ignore[attr-defined]
        ctx.request_hash = request_hash("POST", request.scope["path"], body)
        result = ledger.execute(spec, ctx, body)
        return _respond(result, ctx, location=f"/{plural}/{result.body['id']}")

    endpoint.fast_path = (Body, _fast_arguments)  # type: ignore[attr-defined]
    return endpoint


def _update_endpoint(spec: CommandSpec) -> Any:
    Body = spec.body_model  # noqa: N806

    def endpoint(record_id: UUID, body: Body, request: Request,  # type: ignore[valid-type]
                 ctx: ContextDep, ledger: LedgerDep,
                 if_match: Annotated[str | None, Header(description=(
                     "The version from the record's ETag; a stale one gets 412."))] = None,
                 ) -> JSONResponse:
        ctx.comment = body.comment  # type: ignore[attr-defined]
        ctx.request_hash = request_hash("POST", request.scope["path"], body)
        result = ledger.execute(spec, ctx, body, record_id, parse_if_match(if_match))
        return _respond(result, ctx)

    async def on_loop(record_id: UUID, body: CommandBody, request: Request,
                      ctx: CommandContext, ledger: Ledger, if_match: str | None = None,
                      ) -> JSONResponse | None:
        """The endpoint on the event loop when the Ledger can (None: it cannot, nothing was
        done; ``endpoint`` then runs in a thread)."""
        try:
            expected = parse_if_match(if_match)
        except HTTPException:
            return None
        ctx.comment = body.comment
        ctx.request_hash = request_hash("POST", request.scope["path"], body)
        result = await ledger.execute_on_loop(spec, ctx, body, record_id, expected)
        return None if result is None else _respond(result, ctx)

    endpoint.fast_path = (Body, _fast_update_arguments)  # type: ignore[attr-defined]
    endpoint.on_loop = on_loop  # type: ignore[attr-defined]
    return endpoint


def _read_endpoint(record_cls: Any) -> Any:
    def endpoint(record_id: UUID, response: Response, ledger: LedgerDep,
                 _actor: ActorDep) -> dict[str, Any]:
        record = ledger.load_current(record_cls, record_id)
        response.headers["ETag"] = f'"{record.version}"'
        return record_view(record)

    return endpoint


def build_router() -> APIRouter:
    router = APIRouter()
    for record_cls in RECORD_TYPES:
        rtype = record_cls.RECORD_TYPE
        plural = PLURALS[rtype]
        tag = plural
        creates = [s for s in commands_of(record_cls) if s.creates]
        for spec in commands_of(record_cls):
            if spec.creates:
                path = f"/{plural}" if len(creates) == 1 else f"/{plural}/{spec.path_name}"
                endpoint = _create_endpoint(spec, plural)
                status = 201
            else:
                path = f"/{plural}/{{record_id}}/{spec.path_name}"
                endpoint = _update_endpoint(spec)
                status = 200
            router.add_api_route(
                path, endpoint, methods=["POST"], tags=[tag], status_code=status,
                response_model=CommandAccepted, responses=PROBLEMS,
                route_class_override=CommandRoute,
                operation_id=f"{tag}-{spec.path_name}", summary=spec.doc.splitlines()[0],
                description=spec.doc)
        router.add_api_route(
            f"/{plural}/{{record_id}}", _read_endpoint(record_cls), methods=["GET"], tags=[tag],
            operation_id=f"{tag}-get", summary=f"Current state of a {rtype.replace('_', ' ')}",
            description="The record as of its latest event; the ETag is its version.",
            responses={k: v for k, v in PROBLEMS.items() if k in (401, 404, 503)},
            response_model=dict[str, Any])
    return router
