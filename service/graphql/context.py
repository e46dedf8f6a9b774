"""Per-request GraphQL context: the caller, a counted SQL helper, and DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from strawberry.fastapi import BaseContext

from domain.shared import Actor
from service.bootstrap import Container
from service.graphql.positions import ProjectedPositions


class ReadError(Exception):
    """A GraphQL error with a machine-readable code in its extensions."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.extensions = {"code": code}


class GraphQLContext(BaseContext):
    def __init__(self, container: Container, pool: AsyncConnectionPool, actor: Actor | None,
                 authorization: str | None = None, *, positions: ProjectedPositions):
        super().__init__()
        self.container = container
        self.pool = pool
        self.positions = positions
        self.actor = actor
        self.authorization = authorization  # the header ``actor`` was read from
        self.sql_statements = 0
        self._loaders: dict[str, Any] = {}

    def require_actor(self) -> Actor:
        if self.actor is None:
            raise ReadError("send 'Authorization: Bearer <token>' to read", "UNAUTHENTICATED")
        return self.actor

    async def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.sql_statements += 1
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def fetch_many(self, statements: Sequence[tuple[str, Any]],
                         ) -> list[list[dict[str, Any]]]:
        """Several statements known together, sent at once (pipeline mode) on one connection:
        one checkout and one round trip instead of one each."""
        if len(statements) == 1:
            return [await self.fetch(*statements[0])]
        self.sql_statements += len(statements)
        async with self.pool.connection() as conn, conn.pipeline():
            cursors = [conn.cursor(row_factory=dict_row) for _ in statements]
            for cur, (sql, params) in zip(cursors, statements, strict=True):
                await cur.execute(sql, params)
            return [await cur.fetchall() for cur in cursors]

    def loader(self, name: str, factory: Any) -> Any:
        """One DataLoader per name per request (never shared across requests)."""
        if name not in self._loaders:
            self._loaders[name] = factory(self)
        return self._loaders[name]

    async def wait_for_position(self, position: int | None) -> None:
        """Read-your-writes: wait (bounded) until every projection has applied ``position``."""
        if not position:
            return
        timeout = self.container.settings.read_your_writes_timeout
        runner = self.container.runner
        if runner.is_leader:  # the projector runs in this process: wait on it, no SQL
            if runner.position >= position or await asyncio.to_thread(
                    runner.wait_for, position, timeout):
                return
        else:  # another process projects: woken by its commits (positions.py)
            self.sql_statements += 1  # its first reading (the later ones are shared)
            if await self.positions.wait_for(position, timeout):
                return
        raise ReadError(f"projections have not reached position {position} within "
                        f"{timeout:g} s; retry, or read without waitForPosition",
                        "PROJECTION_LAG")
