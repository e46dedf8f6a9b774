"""Random (version 4) UUIDs for request and correlation ids, drawn from the operating system's
random source 4 KiB at a time rather than 16 bytes per id.

``uuid.uuid4`` makes one ``getrandom`` system call per id, which releases the GIL; on the event
loop a command made three, and each time the loop thread could wait for the writer thread to
hand the GIL back (measured: ~5 % of the API process's samples were in ``uuid4``). The bytes are
the same kind (``os.urandom``); a child process after ``fork`` starts with an empty pool, so no
two processes ever hand out the same ids.
"""

from __future__ import annotations

import os
from uuid import UUID

_BLOCK = 16 * 256
_pool: list[bytes] = []


def uuid4() -> UUID:
    try:
        raw = _pool.pop()
    except IndexError:
        block = os.urandom(_BLOCK)
        _pool.extend(block[i:i + 16] for i in range(16, _BLOCK, 16))
        raw = block[:16]
    return UUID(bytes=raw, version=4)


os.register_at_fork(after_in_child=_pool.clear)
