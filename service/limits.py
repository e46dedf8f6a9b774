"""Request body size limit: a body over ``max_body_bytes`` gets 413 problem+json, never a 500.

A pure ASGI middleware, so nothing downstream (FastAPI's body parsing, GraphQL) ever holds an
oversized body. A declared ``Content-Length`` over the limit is refused before the body is
read; a chunked body is read up to the limit (bounded memory) and refused as soon as it passes
it, otherwise replayed to the application unchanged.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._refuse(send, 400, "Invalid Content-Length",
                                   "the Content-Length header is not a number", "bad_request")
                return
            if declared > self.max_bytes:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        # Chunked: read up to the limit before the application sees anything.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # then http.disconnect, when it comes

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        await self._refuse(send, 413, "Request body too large",
                           f"the request body exceeds {self.max_bytes} bytes", "too_large")

    @staticmethod
    async def _refuse(send: Any, status: int, title: str, detail: str, rule: str) -> None:
        body = json.dumps({"type": "https://opsledger.dev/problems/" + rule.replace("_", "-"),
                           "title": title, "status": status, "detail": detail,
                           "rule": rule}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
