"""Every error as RFC 9457 problem+json, mapped from its type in exactly one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.shared import DomainError, InvalidTransition
from service.application import Busy, IdempotencyMismatch, NotFound, StaleVersion
from service.auth import Unauthorized
from service.store import is_unavailable

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://opsledger.dev/problems/"


def problem(status: int, title: str, detail: str, *, rule: str,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + rule.replace("_", "-"), "title": title, "status": status,
            "detail": detail, "rule": rule}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        extra: dict[str, Any] = {"field": exc.field}
        title = {403: "Not permitted", 409: "Conflict", 422: "Rule violated"}.get(
            exc.status, "Refused")
        if isinstance(exc, InvalidTransition):
            title = "Invalid transition"
            extra.update(current_state=exc.current_state, command=exc.command,
                         allowed_in=exc.allowed)
        return problem(exc.status, title, exc.message, rule=exc.rule, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _loc(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid"),
                   "type": e.get("type")} for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return problem(422, "Invalid request", f"{first['field']}: {first['message']}",
                       rule="validation", field=first["field"], errors=errors)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(exc), rule="not_found",
                       record_type=exc.record_type)

    @app.exception_handler(StaleVersion)
    async def stale(_: Request, exc: StaleVersion) -> JSONResponse:
        return problem(412, "Precondition failed", str(exc), rule="stale_version",
                       headers={"ETag": f'"{exc.current}"'}, current_version=exc.current)

    @app.exception_handler(IdempotencyMismatch)
    async def idem(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return problem(422, "Idempotency-Key reused", str(exc), rule="idempotency_key_reused",
                       field="Idempotency-Key")

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return problem(401, "Unauthorized", str(exc), rule="unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        return problem(409, "Concurrent update", str(exc), rule="concurrent_update")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        rule = {404: "not_found", 405: "method_not_allowed", 412: "precondition_failed",
                428: "precondition_required", 413: "too_large"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, str(exc.detail), str(exc.detail), rule=rule,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc) or is_unavailable(exc.__cause__ or exc):
            return problem(503, "Service unavailable",
                           "the database is not reachable right now; retry shortly",
                           rule="unavailable", headers={"Retry-After": "2"})
        log.exception("unexpected error")
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged",
                       rule="internal")
