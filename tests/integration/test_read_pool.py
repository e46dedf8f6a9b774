"""The GraphQL reads' pool checks a connection before handing it out only when it has sat
unused a while; a connection that died meanwhile is then replaced, not handed out."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from service.graphql import read_pool as read_pool_module
from service.graphql.read_pool import read_pool


def test_only_connections_idle_a_while_are_checked_and_a_dead_one_is_replaced(
        fresh_database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[int] = []
    original = AsyncConnectionPool.check_connection

    async def counting(conn: psycopg.AsyncConnection[Any]) -> None:
        checked.append(conn.info.backend_pid)
        await original(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting))
    monkeypatch.setattr(read_pool_module, "RECHECK_AFTER", 0.3)

    async def scenario() -> tuple[int, int, int]:
        pool = read_pool(fresh_database.conninfo, 1)
        await pool.open(wait=True)
        try:
            async with pool.connection() as conn:  # never used: checked
                first = conn.info.backend_pid
            async with pool.connection() as conn:  # handed back just now: not checked
                assert conn.info.backend_pid == first
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
            assert checked == [first]
            with psycopg.connect(fresh_database.conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            await asyncio.sleep(0.5)  # idle longer than RECHECK_AFTER: checked, found dead
            async with pool.connection() as conn:
                replacement = conn.info.backend_pid
                row = await (await conn.execute("SELECT 2")).fetchone()
            return first, replacement, row[0] if row else 0
        finally:
            await pool.close()

    first, replacement, answer = asyncio.run(scenario())
    assert replacement != first and answer == 2
    assert checked[:2] == [first, first]  # the dead connection's check failed
