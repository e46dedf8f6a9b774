"""Projection lag: command acknowledged → visible in GraphQL, under a sustained command rate.

Starts the real service (uvicorn, ``--workers`` API processes; the projector in the API process
as ``serve`` runs it, or with ``--projector process`` in a ``worker`` of its own that hears of
commits through LISTEN/NOTIFY) against a fresh database, creates ``--records`` projects,
then sends commands open-loop at ``--rate`` per second for ``--duration`` seconds (with the
minimal HTTP/1.1 client of ``bench/load.py`` unless ``--client httpx``): each is
``POST /projects/{id}/edit-application`` (Bearer token, If-Match, Idempotency-Key) on a record with
no command in flight, scheduled at a fixed rate whatever the answers do and sent on the next
free one of ``--connections`` connections (a command's latency counts from its scheduled
time, so a service that falls behind shows it).

Visibility is measured two ways, both from the moment the command's answer arrived:

* **every command** — a monitor reads the projections' committed positions
  (``projection_tracking``, committed with the view rows GraphQL reads) on a connection of its
  own whenever a projection batch commits (it listens for the ``NOTIFY`` each batch's
  transaction sends, as the service's own waiting reads do; and every ``--poll-ms`` ms
  regardless): a command is visible once every projection reached its ``position`` (the
  service is not asked). Polling every 2 ms instead took ~15 % of the client's CPU from the
  2 cores the service shares;
* **sampled, through GraphQL** — for one command in ``--sample-every``, the client at once asks
  GraphQL ``project(id, waitForPosition: <position>) { version }`` (read your own write) and
  the answer must show the command's version: the time to that answer. These reads go over
  the same minimal client as the commands (``--client``; httpx spent as much CPU on 1 read in
  20 as the minimal client on all the commands).

    .venv/bin/python -m bench.projection_lag                  # 1,000 commands/s for 20 s
    .venv/bin/python -m bench.projection_lag --rate 500 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter, deque
from typing import Any

import httpx
from psycopg import sql

from bench.command_path import PROJECT, token_for
from bench.common import (
    Server,
    fresh_database,
    machine_label,
    percentile,
    projection_worker,
    server_label,
    service_env,
    summary_ms,
    verdict,
)
from bench.load import RawClient
from projections.engine import PROJECTED_CHANNEL

# Connections for the sampled GraphQL reads: enough that a read never waits in the client for
# one (a burst of slow reads would otherwise queue here, and count as the service's time).
READ_CONNECTIONS = 32
GQL = "query($id: ID!, $pos: Int) { project(id: $id, waitForPosition: $pos) { version } }"


async def run(url: str, read_url: str, conninfo: str, args: argparse.Namespace,
              ) -> dict[str, Any]:
    import psycopg

    users = [f"lag{i:02d}" for i in range(16)]
    auth = {u: {"Authorization": f"Bearer {token_for(u)}"} for u in users}
    limits = httpx.Limits(max_connections=args.connections,
                          max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client, \
            httpx.AsyncClient(base_url=url, timeout=60) as monitor_client, \
            httpx.AsyncClient(base_url=read_url, timeout=60,
                              limits=httpx.Limits(max_connections=READ_CONNECTIONS)) as gql_httpx, \
            contextlib.AsyncExitStack() as stack:
        # records, each owned by one user (the proposer edits its draft)
        free: deque[tuple[str, str]] = deque()
        versions: dict[str, int] = {}
        owner: dict[str, str] = {}

        async def create(k: int) -> None:
            user = users[k % len(users)]
            r = await client.post("/projects", json={**PROJECT, "name": f"Lag {k}"},
                                  headers=auth[user])
            r.raise_for_status()
            rid = r.json()["id"]
            versions[rid] = r.json()["version"]
            owner[rid] = user
            free.append((rid, user))

        for chunk in range(0, args.records, 50):
            await asyncio.gather(*(create(k) for k in
                                   range(chunk, min(args.records, chunk + 50))))
        r = await monitor_client.get("/readyz")
        while r.json().get("lag", 1) > 0:
            await asyncio.sleep(0.05)
            r = await monitor_client.get("/readyz")
        tracking = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        await tracking.execute(sql.SQL("LISTEN {}").format(sql.Identifier(PROJECTED_CHANNEL)))

        acked: dict[int, float] = {}  # position → time of the answer
        visible: dict[int, float] = {}
        pending: list[int] = []
        gql_lag: list[float] = []
        gql_bad = 0
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        skipped = 0
        done = asyncio.Event()
        counter = itertools.count()

        async def monitor() -> None:
            interval = args.poll_ms / 1000
            while not done.is_set() or pending:
                # Until a projection batch commits (a burst of them is one wake-up), or the
                # poll interval has passed.
                heard = False
                async for _ in tracking.notifies(timeout=interval, stop_after=1):
                    heard = True
                if heard:
                    async for _ in tracking.notifies(timeout=0):
                        pass
                cur = await tracking.execute("SELECT min(position) FROM projection_tracking")
                row = await cur.fetchone()
                projected = int(row[0]) if row and row[0] is not None else 0
                now = time.perf_counter()
                still = []
                for pos in pending:
                    if pos <= projected:
                        visible[pos] = now
                    else:
                        still.append(pos)
                pending[:] = still

        async def read_own_write(rid: str, user: str, position: int, version: int,
                                 acked_at: float) -> None:
            nonlocal gql_bad
            gql = await gql_clients.get()
            try:
                r = await gql.post("/graphql", json={"query": GQL, "variables": {
                    "id": rid, "pos": position}}, headers=auth[user])
            finally:
                gql_clients.put_nowait(gql)
            now = time.perf_counter()
            body = r.json()
            got = ((body.get("data") or {}).get("project") or {}).get("version")
            if r.status_code != 200 or body.get("errors") or got is None or got < version:
                gql_bad += 1
                return
            gql_lag.append(now - acked_at)

        queue: asyncio.Queue[tuple[float, bool] | None] = asyncio.Queue()

        async def sender() -> None:
            """One connection: takes the next scheduled command, sends it, waits."""
            nonlocal skipped
            one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with (RawClient(url) if args.client == "raw" else
                        httpx.AsyncClient(base_url=url, limits=one, timeout=60)) as conn:
                while (item := await queue.get()) is not None:
                    scheduled, sample = item
                    if not free:
                        skipped += 1
                        continue
                    rid, user = free.popleft()
                    headers = {**auth[user], "If-Match": f'"{versions[rid]}"',
                               "Idempotency-Key": uuid.uuid4().hex}
                    try:
                        r = await conn.post(f"/projects/{rid}/edit-application",
                                            headers=headers,
                                            json={"name": f"Lag edit {next(counter)}"})
                        if r.status_code == 200:
                            versions[rid] = r.json()["version"]
                    finally:
                        free.append((rid, user))
                    now = time.perf_counter()
                    statuses[r.status_code] += 1
                    if r.status_code != 200:
                        continue
                    body = r.json()
                    latencies.append(now - scheduled)  # open loop: queueing included
                    position = int(body["position"])
                    acked[position] = now
                    pending.append(position)
                    if sample:
                        task = asyncio.create_task(read_own_write(
                            rid, user, position, body["version"], now))
                        samples.add(task)
                        task.add_done_callback(samples.discard)

        # The sampled GraphQL reads' connections, opened now (the server closes a connection
        # idle for 5 s).
        gql_clients: asyncio.Queue[Any] = asyncio.Queue()
        for _ in range(READ_CONNECTIONS):
            gql_clients.put_nowait(gql_httpx if args.client == "httpx" else
                                   await stack.enter_async_context(RawClient(read_url)))
        samples: set[asyncio.Task[None]] = set()
        mon = asyncio.create_task(monitor())
        senders = [asyncio.create_task(sender()) for _ in range(args.connections)]
        start = time.perf_counter()
        total = int(args.rate * args.duration)
        for i in range(total):
            at = start + i / args.rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((at, i % args.sample_every == 0))
        sending = time.perf_counter() - start
        for _ in senders:
            queue.put_nowait(None)
        await asyncio.gather(*senders)
        await asyncio.gather(*samples)
        elapsed = time.perf_counter() - start
        done.set()
        await mon
        await tracking.close()
        lag = [visible[p] - acked[p] for p in acked if p in visible]
        return {"sent": total, "sending": sending, "elapsed": elapsed, "statuses": statuses,
                "latencies": latencies, "lag": lag, "gql_lag": gql_lag, "gql_bad": gql_bad,
                "skipped": skipped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="commands per second")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--poll-ms", type=float, default=50.0,
                        help="the monitor reads the projections' position at each batch's "
                             "commit and at least this often")
    parser.add_argument("--sample-every", type=int, default=20)
    parser.add_argument("--projector", choices=["in-process", "process"], default="in-process",
                        help="in the API process (serve's default) or a separate `worker`")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn API worker processes")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="the commands' HTTP client: bench/load.py's minimal one (~0.05 ms "
                             "of CPU per request) or httpx (~0.65 ms, on the same 2 cores)")
    parser.add_argument("--read-server", action="store_true",
                        help="GraphQL reads served by an API process of their own (the query "
                             "side deployed apart from the command side), not by the one "
                             "taking the commands")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    print(f"machine: {machine_label()}")
    with fresh_database(args.database_url) as database:
        print(f"database: {server_label(database)}")
        env = service_env(database)
        with projection_worker(env, args.projector == "process"), \
                Server("service.main:create_app", factory=True, env=env,
                       workers=args.workers) as s, contextlib.ExitStack() as stack:
            s.wait_ready("/readyz", timeout=120)
            read = s
            if args.read_server:  # no projector, no stream workers: it only answers reads
                read = stack.enter_context(Server(
                    "service.main:create_app", factory=True, env={
                        **env, "OPSLEDGER_RUN_PROJECTOR": "false",
                        "OPSLEDGER_RUN_STREAM_WORKERS": "false"}))
                read.wait_ready("/readyz", timeout=120)
            import uvloop

            result = uvloop.run(run(s.url, read.url, database.conninfo, args))
    ok = result["statuses"].get(200, 0)
    rate = ok / result["elapsed"]
    print(f"\nopen loop: {result['sent']:,} commands scheduled at {args.rate:,.0f}/s over "
          f"{args.duration:g} s; {ok:,} acknowledged in {result['elapsed']:.1f} s = {rate:,.0f}"
          f"/s (sending kept up for {result['sending']:.1f} s; statuses "
          f"{dict(result['statuses'])}; not sent, every record busy: {result['skipped']})")
    print(f"  command latency (from its scheduled time) {summary_ms(result['latencies'])}")
    print(f"  ack → projected (all)     {summary_ms(result['lag'])}   "
          f"(n={len(result['lag']):,}, positions read at each projection commit)")
    print(f"  ack → GraphQL read-your-write (1 in {args.sample_every}"
          f"{', read server of its own' if args.read_server else ''})  "
          f"{summary_ms(result['gql_lag'])}   (n={len(result['gql_lag'])}, "
          f"wrong or failed {result['gql_bad']})")
    p99 = percentile(result["lag"], 0.99) * 1000 if result["lag"] else float("inf")
    gp99 = percentile(result["gql_lag"], 0.99) * 1000 if result["gql_lag"] else float("inf")
    sustained = rate >= 0.95 * args.rate
    print("\ntargets (same run)                          target        measured")
    print(f"  sustained command rate                   {args.rate:,.0f}/s      {rate:8,.0f}/s  "
          f"{verdict(sustained)}")
    print(f"  p99 ack → visible (all commands)         ≤ 50 ms       {p99:8.1f} ms "
          f"{verdict(p99 <= 50)}")
    print(f"  p99 ack → visible in GraphQL (sampled)   ≤ 50 ms       {gp99:8.1f} ms "
          f"{verdict(gp99 <= 50)}")


if __name__ == "__main__":
    main()
