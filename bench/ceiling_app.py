"""The ceiling of the command path: a FastAPI POST that validates a small JSON body and does one
async INSERT (its own transaction, autocommit) on a psycopg AsyncConnectionPool.

No authentication, no event sourcing: the least any HTTP command on this stack can cost.
``bench/command_path.py`` serves it with the same uvicorn settings as the service and drives it
with the same client. The database comes from ``DATABASE_URL``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from fastapi import FastAPI, Request
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS ceiling_rows (
    id        bigserial PRIMARY KEY,
    record_id uuid NOT NULL,
    body      jsonb NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
)
"""


class Body(BaseModel):
    name: str | None = None
    background: str | None = None
    comment: str | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("CEILING_POOL_SIZE", "16"))
    pool = AsyncConnectionPool(os.environ["DATABASE_URL"], min_size=size, max_size=size,
                               kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    async with pool.connection() as conn:
        await conn.execute(TABLE_SQL)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/records/{record_id}/edit")
async def edit(record_id: UUID, body: Body, request: Request) -> dict[str, Any]:
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO ceiling_rows (record_id, body) VALUES (%s, %s) RETURNING id",
            (record_id, Jsonb(body.model_dump())))
        row = await cur.fetchone()
    return {"id": str(record_id), "position": row[0]}
