"""Read your own writes when another process projects: wait for the projections' position,
woken by their commits.

Every projection batch's transaction sends ``NOTIFY`` on ``PROJECTED_CHANNEL``
(``projections.engine``). While reads wait, one task of the process listens on its own
connection; on a notification it reads the projections' position once, for every waiting
read, and wakes them. A read no longer polls ``projection_tracking`` on a back-off of its own
(up to 10 ms late, and one statement per poll per read): it is answered within a round trip
of the batch's commit. Each read still starts with a reading of its own, so a position that
went back (a projection reset to rebuild) is never taken from before; and a waiting read
reads again every ``FALLBACK_SECONDS`` in case a notification was missed (the listening
connection lost and made again). Once no read has waited for ``IDLE_SECONDS``, the listener
closes its connection, so an idle process is not woken by every batch the projector commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from projections.engine import PROJECTED_CHANNEL

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 0.05
IDLE_SECONDS = 60.0  # the listener stops when no read has waited this long
POSITION_SQL = "SELECT coalesce(min(position), 0) FROM projection_tracking"


class ProjectedPositions:
    """The reads of one process (one event loop) waiting for the projections' position."""

    def __init__(self, conninfo: str, pool: AsyncConnectionPool):
        self.conninfo = conninfo
        self.pool = pool  # the reads' pool, for the readings of the position
        self.position = 0  # as read after the last notification heard while reads waited
        self._waiting = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._waited_at = 0.0  # when a read last had to wait (and listen)

    async def read(self) -> int:
        """The position every projection has committed, now (one statement)."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(POSITION_SQL)).fetchone()
        return int(row[0]) if row else 0

    async def wait_for(self, position: int, timeout: float) -> bool:
        """True once every projection has applied ``position`` (read at once, then woken by
        their commits); False after ``timeout`` seconds."""
        # Counted as waiting, with the wake-up to wait on taken, *before* the first reading:
        # a batch that commits while that reading is on its way then still wakes this read
        # (counted after it, the notification found no one waiting and the read slept until
        # the next batch or the fallback).
        self._waiting += 1
        changed = self._changed
        try:
            if await self.read() >= position:
                return True
            self._listen()
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(changed.wait(), min(remaining, FALLBACK_SECONDS))
                except TimeoutError:
                    if await self.read() >= position:
                        return True
                    continue
                if self.position >= position:
                    return True
                changed = self._changed
            return False
        finally:
            self._waiting -= 1

    def _listen(self) -> None:
        self._waited_at = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="projected-positions")

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(
                        sql.Identifier(PROJECTED_CHANNEL)))
                    await self._hear(conn)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("projected-position listener lost its connection; reconnecting in"
                            " 1 s (waiting reads poll meanwhile)", exc_info=True)
                await asyncio.sleep(1.0)
            # No read has waited for IDLE_SECONDS: the task ends (a read waiting from now on
            # starts another). Checked with no await before the task ends, so a read that
            # began to wait while the connection closed is not left unheard.
            if self._idle():
                return

    def _idle(self) -> bool:
        return not self._waiting and time.monotonic() - self._waited_at > IDLE_SECONDS

    async def _hear(self, conn: psycopg.AsyncConnection[object]) -> None:
        """Wakes the waiting reads at each burst of notifications; returns once no read has
        waited for ``IDLE_SECONDS``."""
        while True:
            heard = False
            async for _ in conn.notifies(timeout=1.0, stop_after=1):
                heard = True
            if self._idle():
                return
            if not heard:
                continue
            async for _ in conn.notifies(timeout=0):  # a burst is one wake-up
                pass
            if self._waiting:
                self.position = await self.read()
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
