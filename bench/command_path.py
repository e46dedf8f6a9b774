"""Command path: end-to-end HTTP commands vs the bare library and vs FastAPI + one INSERT.

In one run, against one fresh database (embedded PostgreSQL unless DATABASE_URL is set):

1. raw single-row INSERT transactions at 1 and 16 threads (the machine's commit flush);
2. the bare library: ``eventsourcing`` ``Application.save`` of one event, 16 threads;
3. the ceiling: a FastAPI POST doing one async INSERT (``bench/ceiling_app.py``), uvicorn
   with 1 worker, driven by the same client as the service;
4. the service (``service.main:create_app``, uvicorn, 1 worker then 2): every request is a
   real command on an existing record — ``POST /projects/{id}/edit-application`` with a
   Bearer token, ``If-Match`` (each connection owns its records and tracks their versions, so
   no request is stale), a fresh ``Idempotency-Key``, a comment; tracing on (the service's
   tracer provider; no exporter configured). One event per command.

Before each measured run (the library, the ceiling, each service configuration),
``VACUUM (ANALYZE)`` (``bench.common.settle``): otherwise PostgreSQL's autovacuum of the rows
the previous run wrote starts within a minute, in the middle of the next.

Each HTTP run: 16 connections (httpx, one TCP connection each), closed loop, a warm-up, then a
fixed measured window. Prints rates, latency percentiles, CPU per request and the ratios the
issue targets (≥ 1.5× the library, ≥ 50 % of the ceiling).

    .venv/bin/python -m bench.command_path                      # ~2 min
    .venv/bin/python -m bench.command_path --duration 30 --clients httpx --workers 1
"""

from __future__ import annotations

import argparse
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from bench.baselines import library_save, raw_insert
from bench.common import (
    Server,
    backend_pids,
    fresh_database,
    machine_label,
    percentile,
    projection_worker,
    server_label,
    service_env,
    settle,
    summary_ms,
    verdict,
)
from bench.load import LoadResult, drive
from service.database import Database

PROJECT = {"department": "ops", "name": "Bench", "background": "b", "objectives": "o",
           "scope": "s", "requested_budget": "1000.00", "expected_revenue": "0.00",
           "start_date": "2026-01-05", "end_date": "2026-12-20"}


def token_for(user: str) -> str:
    from service.auth import issue_token
    from service.config import Settings

    return issue_token(Settings(), user, name=user.title(), roles=["member"],
                       departments=["ops"])


def run_service(database: Database, *, workers: int, connections: int, per_connection: int,
                warmup: float, duration: float, client: str,
                projector: str = "in-process") -> tuple[LoadResult, int]:
    env = service_env(database)
    if projector == "deferred":
        env["OPSLEDGER_RUN_PROJECTOR"] = "false"
    with projection_worker(env, projector == "process") as worker, \
            Server("service.main:create_app", factory=True, workers=workers, env=env) as server:
        server.wait_ready("/readyz", timeout=120)
        # Each connection acts as its own user on records of its own.
        owners: list[dict[str, Any]] = []
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(connections):
                user = f"user{i:02d}"
                auth = {"Authorization": f"Bearer {token_for(user)}"}
                versions: dict[str, int] = {}
                for k in range(per_connection):
                    r = http.post("/projects", json={**PROJECT, "name": f"Bench {i}-{k}"},
                                    headers=auth)
                    r.raise_for_status()
                    versions[r.json()["id"]] = r.json()["version"]
                owners.append({"auth": auth, "versions": versions})

        def connection(owner: dict[str, Any]) -> tuple[Any, Any]:
            ids = itertools.cycle(list(owner["versions"]))
            counter = itertools.count()
            current: dict[str, str] = {}

            def next_request() -> tuple[str, dict[str, str], dict[str, Any]]:
                rid = next(ids)
                current["id"] = rid
                n = next(counter)
                headers = {**owner["auth"], "If-Match": f'"{owner["versions"][rid]}"',
                           "Idempotency-Key": uuid.uuid4().hex}
                return (f"/projects/{rid}/edit-application", headers,
                        {"name": f"Bench edit {n}", "comment": "benchmark"})

            def on_answer(r: httpx.Response) -> None:
                owner["versions"][current["id"]] = r.json()["version"]

            return next_request, on_answer

        # The server's CPU: the API processes and, when separate, the projection worker.
        pids = [server.proc.pid, *server.worker_pids(), *([worker.pid] if worker else [])]
        result = drive(server.url, [connection(o) for o in owners], warmup=warmup,
                       duration=duration, server_pids=sorted(set(pids)),
                       database_pids=lambda: backend_pids(database), client=client)
        result_pid = result, server.proc.pid
    if projector == "deferred":
        print(catch_up(env))
    return result_pid


def catch_up(env: dict[str, str]) -> str:
    """The commands of a ``deferred`` run, projected afterwards by a ``worker`` (as one on
    another host would keep up): how long it takes, and that every event is projected."""
    import psycopg

    started = time.perf_counter()
    with projection_worker(dict(env)), \
            psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        head = conn.execute("SELECT max(notification_id) FROM stored_events").fetchone()
        while True:
            row = conn.execute("SELECT min(position) FROM projection_tracking").fetchone()
            if row and row[0] is not None and head and row[0] >= head[0]:
                break
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"projections still at {row} of {head} after 300 s")
            time.sleep(0.05)
    return (f"   deferred projections: a worker started afterwards projected every event "
            f"(up to position {head[0] if head else 0:,}) in {time.perf_counter() - started:.1f} s")


def run_ceiling(database: Database, *, connections: int, warmup: float,
                duration: float, client: str) -> LoadResult:
    env = {"DATABASE_URL": database.url, "CEILING_POOL_SIZE": str(connections)}
    with Server("bench.ceiling_app:app", env=env) as server:
        server.wait_ready()
        auth = {"Authorization": f"Bearer {token_for('ceiling')}"}  # sent, not checked

        def connection(i: int) -> tuple[Any, Any]:
            rid = str(uuid.uuid4())
            counter = itertools.count()

            def next_request() -> tuple[str, dict[str, str], dict[str, Any]]:
                headers = {**auth, "If-Match": '"1"', "Idempotency-Key": uuid.uuid4().hex}
                return (f"/records/{rid}/edit", headers,
                        {"name": f"Bench edit {next(counter)}", "comment": "benchmark"})

            return next_request, lambda r: None

        pids = [server.proc.pid]
        return drive(server.url, [connection(i) for i in range(connections)], warmup=warmup,
                     duration=duration, server_pids=pids,
                     database_pids=lambda: backend_pids(database), client=client)


def cpu_note(res: LoadResult) -> str:
    n = max(1, res.ok)
    return (f"   CPU per request: server {res.server_cpu / n * 1e6:.0f} µs, database "
            f"{res.database_cpu / n * 1e6:.0f} µs, client {res.client_cpu / n * 1e6:.0f} µs")


def line(label: str, rate: float, latencies: Sequence[float], extra: str = "") -> None:
    print(f"  {label:<52} {rate:8,.0f}/s   {summary_ms(latencies)}{extra}")


def label(workers: int, projector: str) -> str:
    api = f"{workers} API worker{'s' if workers > 1 else ' '}"
    return api + {"process": " + projection worker",
                  "deferred": ", projections deferred"}.get(projector, "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--records-per-connection", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", nargs="+", choices=["httpx", "raw"],
                        default=["httpx", "raw"],
                        help="httpx (the issue's client) and/or a minimal HTTP/1.1 client that "
                             "leaves more of the 2 cores to the server")
    parser.add_argument("--projector", nargs="+",
                        choices=["in-process", "process", "deferred"],
                        default=["in-process", "process", "deferred"],
                        help="projections in the API process (`serve`), in a separate `worker` "
                             "process on the same 2 cores (`serve --no-projector` + `worker`), "
                             "or `deferred`: the command path alone, as with the worker on "
                             "another host (`serve --no-projector`), the worker started after "
                             "the run to project every event")
    parser.add_argument("--database-url", help="server to create the fresh database on "
                        "(default: DATABASE_URL, else an embedded PostgreSQL)")
    args = parser.parse_args()
    n = args.connections
    print(f"machine: {machine_label()}")
    with fresh_database(args.database_url) as database:
        print(f"database: {server_label(database)}")
        print(f"{n} connections/threads, {args.warmup:g} s warm-up + {args.duration:g} s "
              "measured per run\n")
        print("baselines")
        for threads in (1, n):
            raw = raw_insert(database, threads)
            line(f"raw single-row INSERT, {threads} thr", raw.rate, raw.latencies)
        settle(database)
        lib = library_save(database, n, duration=args.duration, warmup=args.warmup)
        line(f"library Application.save, {n} thr", lib.rate, lib.latencies)
        ceilings = {}
        for client in args.clients:
            settle(database)
            ceilings[client] = run_ceiling(database, connections=n, warmup=args.warmup,
                                           duration=args.duration, client=client)
            line(f"FastAPI + 1 async INSERT ({client})", ceilings[client].rate,
                 ceilings[client].latencies, cpu_note(ceilings[client]))
        print("\nservice: POST /projects/{id}/edit-application (auth, If-Match, "
              "Idempotency-Key, metadata, tracing; one event)")
        results = {}
        for client in args.clients:
            for projector in args.projector:
                for workers in args.workers:
                    settle(database)
                    res, _pid = run_service(database, workers=workers, connections=n,
                                            per_connection=args.records_per_connection,
                                            warmup=args.warmup, duration=args.duration,
                                            client=client, projector=projector)
                    results[(client, projector, workers)] = res
                    bad = {s: c for s, c in res.statuses.items() if s not in (200, 201)}
                    line(f"service, {label(workers, projector)} ({client})",
                         res.rate, res.latencies,
                         cpu_note(res) + (f"   errors {bad}" if bad else ""))
        print("\nratios (same run)                                   target   measured")
        for (client, projector, workers), res in results.items():
            r_lib = res.rate / lib.rate if lib.rate else float("nan")
            r_ceil = (res.rate / ceilings[client].rate if ceilings[client].rate
                      else float("nan"))
            who = f"{label(workers, projector)}, {client:<5}"
            print(f"  {who}: service / library save       ≥ 1.50   {r_lib:6.2f}   "
                  f"{verdict(r_lib >= 1.5)}")
            print(f"  {who}: service / FastAPI+INSERT     ≥ 0.50   {r_ceil:6.2f}   "
                  f"{verdict(r_ceil >= 0.5)}   (p99 {percentile(res.latencies, 0.99) * 1000:.1f}"
                  " ms)")


if __name__ == "__main__":
    main()
