"""The GraphQL reads' connection pool.

* **check**: a connection broken by a database restart is replaced, not handed out — but only
  one that has sat in the pool a while is checked (a round trip). Checking every checkout cost
  ~15 % of a read process's CPU at 1,000 commands/s (each waiting read checks out a connection
  for its first reading and another for its rows); a connection handed back within the last
  ``RECHECK_AFTER`` seconds was working then, and if the database went down since, the read
  on it fails like any read during an outage (503, Retry-After) and the connection is
  discarded.
* **timeout**: with the database down, answer 503 in 5 s (as commands do), not in 30.
* **autocommit**: every read is one statement (its own snapshot either way); without it each
  one cost two more round trips (BEGIN, and the pool's ROLLBACK on return).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

RECHECK_AFTER = 1.0  # seconds in the pool after which a connection is checked before use


class _RecentlyUsed:
    """The pool's ``reset`` (on return) and ``check`` (on checkout) callbacks."""

    def __init__(self) -> None:
        self.returned: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary())

    async def reset(self, conn: AsyncConnection[Any]) -> None:
        self.returned[conn] = time.monotonic()

    async def check(self, conn: AsyncConnection[Any]) -> None:
        returned = self.returned.get(conn)
        if returned is None or time.monotonic() - returned > RECHECK_AFTER:
            await AsyncConnectionPool.check_connection(conn)


def read_pool(conninfo: str, max_size: int) -> AsyncConnectionPool:
    """The pool (not yet open)."""
    recent = _RecentlyUsed()
    return AsyncConnectionPool(conninfo, min_size=1, max_size=max_size, open=False,
                               kwargs={"autocommit": True}, check=recent.check,
                               reset=recent.reset, timeout=5.0)
