"""The /graphql HTTP endpoint: Strawberry's FastAPI router, hardened.

* A body that is not a JSON object (a scalar, nested too deeply to decode, invalid UTF-8) is a
  400, never a 500.
* When the database cannot be reached, the answer is **HTTP 503 with Retry-After** (and a
  GraphQL body whose error has ``extensions.code = "SERVICE_UNAVAILABLE"``), as the REST API
  answers, rather than a 200 carrying the error: the operation did not run, retrying it later
  is right, and load balancers and client retry policies act on the status.
* graphql-core's bare "Validation aborted." (its complexity budget) is reworded for people.
"""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from service.errors import Unavailable
from service.store import is_unavailable

TOO_COMPLEX = ("the query is too complex to validate (too many fields, overlapping selections or "
               "fragment spreads); simplify it")


def _caused_by_unavailable(error: GraphQLError) -> bool:
    exc: BaseException | None = error.original_error
    seen = 0
    while exc is not None and seen < 10:
        if is_unavailable(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class OpsGraphQLRouter(GraphQLRouter[Any, None]):
    def encode_json(self, data: object) -> str | bytes:
        """The answer written by orjson (a page of 50 projects is ~1,200 fields; the standard
        library's encoder took ~3 % of a read's CPU); what orjson cannot write (an integer
        past 64 bits, a key that is not a string) by Strawberry's own encoder. Text, not bytes:
        Strawberry sends bytes over a WebSocket as binary frames, which graphql-transport-ws
        clients do not read."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # orjson.JSONEncodeError is one
            return super().encode_json(data)

    def decode_json(self, data: str | bytes) -> object:
        try:
            value = super().decode_json(data)
        except (RecursionError, UnicodeDecodeError, ValueError) as exc:
            # ValueError includes json.JSONDecodeError; RecursionError: nested too deeply.
            raise HTTPException(400, "Unable to parse request body as JSON") from exc
        if not isinstance(value, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return value

    async def process_result(self, request: Request, result: ExecutionResult,
                             ) -> GraphQLHTTPResponse:
        for error in result.errors or ():
            if _caused_by_unavailable(error):
                raise Unavailable("the database is not reachable right now; retry shortly")
            if error.message == "Validation aborted.":
                error.message = TOO_COMPLEX
        return await super().process_result(request, result)
