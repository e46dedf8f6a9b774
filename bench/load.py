"""A closed-loop HTTP load driver: N connections, each sending its next request when the last
one is answered, for a fixed time (httpx AsyncClient, one client and one TCP connection per
connection so the connections are distinct, as N real clients would be)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# A connection's next request: (path, headers, json body); called with nothing.
NextRequest = Callable[[], tuple[str, dict[str, str], dict[str, Any]]]
# Called with the answer of a request that succeeded (an httpx.Response or a RawResponse).
OnAnswer = Callable[[Any], None]


@dataclass
class LoadResult:
    seconds: float
    ok: int
    latencies: list[float]
    statuses: Counter[int] = field(default_factory=Counter)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    database_cpu: float = 0.0  # the PostgreSQL backends serving the benchmark's database
    samples: dict[int, str] = field(default_factory=dict)  # a body per unexpected status

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by the given processes."""
    ticks = 0
    import os
    hz = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / hz


async def _drive(base_url: str, connections: Sequence[tuple[NextRequest, OnAnswer]],
                 warmup: float, duration: float, ok_status: frozenset[int],
                 server_pids: Sequence[int],
                 database_pids: Callable[[], Sequence[int]] | None,
                 client_kind: str) -> LoadResult:
    start = time.perf_counter()
    t0, t1 = start + warmup, start + warmup + duration
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    samples: dict[int, str] = {}
    ok = 0
    marks: dict[str, float] = {}

    async def one(next_request: NextRequest, on_answer: OnAnswer) -> None:
        nonlocal ok
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        connection = (RawClient(base_url) if client_kind == "raw" else
                      httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0))
        async with connection as client:
            while True:
                now = time.perf_counter()
                if now >= t1:
                    return
                path, headers, body = next_request()
                sent = time.perf_counter()
                r = await client.post(path, json=body, headers=headers)
                done = time.perf_counter()
                if r.status_code in ok_status:
                    on_answer(r)
                elif r.status_code not in samples:
                    samples[r.status_code] = r.text[:500]
                if sent >= t0 and done <= t1:
                    statuses[r.status_code] += 1
                    if r.status_code in ok_status:
                        ok += 1
                        latencies.append(done - sent)

    async def mark() -> None:
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        db_pids = await asyncio.to_thread(database_pids) if database_pids else []
        marks["cpu0"], marks["scpu0"] = time.process_time(), process_cpu(server_pids)
        marks["dcpu0"] = process_cpu(db_pids)
        await asyncio.sleep(max(0.0, t1 - time.perf_counter()))
        marks["cpu1"], marks["scpu1"] = time.process_time(), process_cpu(server_pids)
        marks["dcpu1"] = process_cpu(db_pids)

    await asyncio.gather(mark(), *(one(n, a) for n, a in connections))
    return LoadResult(duration, ok, latencies, statuses,
                      client_cpu=marks["cpu1"] - marks["cpu0"],
                      server_cpu=marks["scpu1"] - marks["scpu0"],
                      database_cpu=marks["dcpu1"] - marks["dcpu0"], samples=samples)


def drive(base_url: str, connections: Sequence[tuple[NextRequest, OnAnswer]], *,
          warmup: float, duration: float, ok_status: Sequence[int] = (200, 201),
          server_pids: Sequence[int] = (),
          database_pids: Callable[[], Sequence[int]] | None = None,
          client: str = "httpx") -> LoadResult:
    """``database_pids`` is asked after the warm-up (the pools are open by then); ``client``
    is ``httpx`` or ``raw`` (RawClient below)."""
    import uvloop

    return uvloop.run(_drive(base_url, connections, warmup, duration, frozenset(ok_status),
                             server_pids, database_pids, client))


# -- a minimal HTTP/1.1 client --------------------------------------------------------------------
# httpx costs ~0.6–0.8 ms of CPU per request, on the same 2 cores as the server and PostgreSQL.
# This client writes each request with one call and parses only the status line and
# Content-Length of the answer (~0.05 ms): ``--client raw`` shows the service with less of the
# machine spent on the client. It assumes what our servers send: HTTP/1.1, keep-alive,
# Content-Length bodies (no chunked encoding).

class RawResponse:
    def __init__(self, status: int, body: bytes):
        self.status_code = status
        self.content = body

    def json(self) -> Any:
        import json
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class RawClient:
    def __init__(self, base_url: str):
        from urllib.parse import urlsplit
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post(self, path: str, json: dict[str, Any], headers: dict[str, str]
                   ) -> RawResponse:
        import json as _json
        assert self.reader is not None and self.writer is not None
        body = _json.dumps(json, separators=(",", ":")).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
                          .encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        return RawResponse(status, await self.reader.readexactly(length))
