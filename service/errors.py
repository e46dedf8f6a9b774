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
RETRY_AFTER_SECONDS = "2"


class Unavailable(Exception):
    """The database cannot be reached: the request did not run; retry after a moment (503)."""


# Raised when PostgreSQL is down or restarting (connection refused or lost, pool timeout,
# shutdown); handled here, so they answer 503 instead of reaching the catch-all 500 handler.
def _unavailable_types() -> tuple[type[Exception], ...]:
    import psycopg
    from eventsourcing.persistence import InterfaceError, OperationalError
    return (Unavailable, psycopg.OperationalError, psycopg.InterfaceError, OperationalError,
            InterfaceError, TimeoutError)


def unavailable(request: Request | None = None) -> JSONResponse:
    """503 + Retry-After: problem+json, or a GraphQL-shaped body on /graphql."""
    detail = "the database is not reachable right now; retry shortly"
    headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if request is not None and request.url.path.startswith("/graphql"):
        return JSONResponse({"data": None, "errors": [
            {"message": detail, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]},
            status_code=503, headers=headers)
    return problem(503, "Service unavailable", detail, rule="unavailable", headers=headers)


def problem(status: int, title: str, detail: str, *, rule: str,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + rule.replace("_", "-"), "title": title, "status": status,
            "detail": detail, "rule": rule}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem", "type": "object", "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "rule"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"},
                   "rule": {"type": "string"},
                   "field": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
# Answers any operation may give, whatever its handler: the middleware and handlers above.
COMMON_PROBLEMS = {
    "400": "Malformed request: the body is not valid JSON",
    "401": "Missing or invalid token",
    "413": "Request body too large",
    "422": "Invalid input or rule violated",
    "503": "Database unavailable: retry after the Retry-After seconds",
}
PUBLIC_PATHS = ("/healthz", "/readyz")


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Makes the OpenAPI document say what the service answers: every 4xx/5xx of every
    operation is ``application/problem+json`` with the ``Problem`` schema (FastAPI would
    document ``application/json`` and its own validation-error shape), and each operation
    lists the problems the shared machinery can produce: 401 (authentication), 422
    (validation), 503 with ``Retry-After`` (database down), and for operations with a body
    400 (not JSON) and 413 (too large). Changes ``document`` in place and returns it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in document.get("paths", {}).items():
        if path in PUBLIC_PATHS:
            continue
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            codes = ["401", "422", "503"]
            if "requestBody" in operation:
                codes += ["400", "413"]
            for code in codes:
                responses.setdefault(code, {"description": COMMON_PROBLEMS[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = dict(content)
                    if code == "422" and response.get("description") == "Validation Error":
                        response["description"] = COMMON_PROBLEMS["422"]
                if code == "503":
                    response["headers"] = {"Retry-After": {
                        "description": "Seconds to wait before retrying",
                        "schema": {"type": "integer"}}}
            operation["responses"] = dict(sorted(responses.items()))
    return document


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
        rule = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                412: "precondition_failed",
                428: "precondition_required", 413: "too_large"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, str(exc.detail), str(exc.detail), rule=rule,
                       headers=getattr(exc, "headers", None))

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s: %s", type(exc).__name__, str(exc)[:200])
        return unavailable(request)

    for exc_type in _unavailable_types():
        app.add_exception_handler(exc_type, database_unavailable)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_unavailable(exc) or is_unavailable(exc.__cause__ or exc):
            return unavailable(request)
        log.exception("unexpected error")
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged",
                       rule="internal")
