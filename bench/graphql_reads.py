"""GraphQL reads over a big store: a page of 50 projects with nested risks, cost and lead.

In one run, against one fresh database (embedded PostgreSQL unless DATABASE_URL is set):

1. seeds ``--events`` realistic events (``bench/seed.py``; 1M in the full run: ~20,000
   projects, 40,000 linked risks, 40 department budgets with 40,000 actuals);
2. starts the real service (uvicorn, 1 worker) and lets its own projector project the whole
   store (as a new deployment would), timing it; then ``VACUUM (ANALYZE)``
   (``bench.common.settle``), as an operator runs it after a load: the reads are measured in
   the steady state, not while autovacuum works through the tables just loaded;
3. asks, one request at a time, ``projects(first: 50, filter: {department: [<random>]})`` —
   every project's name, status, lead, its open risks (title, level, score) and its cost
   (budget, actual, remaining, utilisation) — and the next page by cursor, for ``--duration``
   seconds: latency percentiles; then the same with ``--concurrency`` clients;
4. checks the SQL statements per request (``extensions.sqlStatements``) for pages of 1, 10 and
   50: the same count whatever the page size;
5. reports the API process's RSS after projecting the store and after the reads.

    .venv/bin/python -m bench.graphql_reads                    # 100k events, ~1.5 min
    .venv/bin/python -m bench.graphql_reads --events 1M        # the full run (~4 min)
    # again over a database seeded before (by bench/seed.py), kept as it is:
    .venv/bin/python -m bench.graphql_reads --existing postgresql://…/gql1m --duration 8

It also prints the API process's CPU per request of the 1-client run (from /proc: the
server's own cost, whatever else the machine runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.command_path import token_for
from bench.common import (
    Server,
    fresh_database,
    machine_label,
    percentile,
    rss_mb,
    server_label,
    service_env,
    settle,
    summary_ms,
    verdict,
)
from bench.seed import Seeded, department_of, seed, seed_amount
from service.database import Database

QUERY = """query($first: Int, $after: String, $departments: [String!]) {
  projects(first: $first, after: $after, filter: {department: $departments}) {
    totalCount
    edges { node {
      id name status requestedBudget
      lead { userId name }
      risks { title level score status }
      cost { budget actual remaining utilisationPercent actualCount }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def reads(url: str, token: str, departments: list[str | None], duration: float,
                concurrency: int, first: int) -> tuple[list[float], int, set[int]]:
    latencies: list[float] = []
    errors = 0
    statements: set[int] = set()
    stop = time.perf_counter() + duration
    headers = {"Authorization": f"Bearer {token}"}

    async def client(seed_: int) -> None:
        nonlocal errors
        rnd = random.Random(seed_)
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            after: str | None = None
            department = rnd.choice(departments)
            while time.perf_counter() < stop:
                variables = {"first": first, "after": after,
                             "departments": [department] if department else None}
                t0 = time.perf_counter()
                r = await http.post("/graphql", json={"query": QUERY, "variables": variables},
                                    headers=headers)
                latencies.append(time.perf_counter() - t0)
                body = r.json()
                if r.status_code != 200 or body.get("errors"):
                    errors += 1
                    after = None
                    continue
                page = body["data"]["projects"]
                statements.add(body["extensions"]["sqlStatements"])
                # the next page of the same department, or a new department's first page
                if page["pageInfo"]["hasNextPage"] and rnd.random() < 0.5:
                    after = page["pageInfo"]["endCursor"]
                else:
                    after, department = None, rnd.choice(departments)

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    return latencies, errors, statements


def statement_counts(url: str, token: str) -> dict[int, int]:
    out = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for n in (1, 10, 50):
            r = http.post("/graphql", json={"query": QUERY, "variables": {
                "first": n, "after": None, "departments": None}},
                headers={"Authorization": f"Bearer {token}"})
            body = r.json()
            assert not body.get("errors"), body
            assert len(body["data"]["projects"]["edges"]) == n, "not enough projects"
            out[n] = body["extensions"]["sqlStatements"]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def seeded_database(args: argparse.Namespace) -> Iterator[tuple[Database, Seeded]]:
    """A fresh database seeded with ``--events``, or the ``--existing`` one as it is."""
    if args.existing:
        import psycopg

        database = Database(url=args.existing)
        with psycopg.connect(database.conninfo) as conn:
            events = conn.execute("SELECT max(notification_id) FROM stored_events").fetchone()
            units = conn.execute("SELECT count(*) FROM projects").fetchone()
        seeded = Seeded(events=int(events[0] if events and events[0] else 0))
        seeded.projects = [None] * int(units[0] if units else 0)  # type: ignore[list-item]
        yield database, seeded
        return
    with fresh_database(args.database_url) as database:
        from service.store import EventStore

        store = EventStore(database, pool_size=4)
        try:
            seeded = seed(store, args.events)
        finally:
            store.close()
        yield database, seeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=seed_amount, default=seed_amount("100k"))
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per read run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--database-url")
    parser.add_argument("--existing", help="a database seeded before (bench/seed.py): read "
                                           "it as it is, no seeding, not dropped")
    args = parser.parse_args()
    print(f"machine: {machine_label()}")
    with seeded_database(args) as (database, seeded):
        print(f"database: {server_label(database)}")
        units = len(seeded.projects)
        per_department = Counter(department_of(n) for n in range(units))
        # departments with a full page at least (none: every department, unfiltered)
        departments: list[str | None] = sorted(
            d for d, n in per_department.items() if n >= args.page) or [None]
        token = token_for("reader")  # any authenticated caller reads the portfolio
        with Server("service.main:create_app", factory=True,
                    env=service_env(database)) as server:
            server.wait_ready("/healthz", timeout=120)
            started = time.perf_counter()
            with httpx.Client(base_url=server.url, timeout=60) as http:
                while True:
                    r = http.get("/readyz").json()
                    if r.get("head_position") and r.get("lag") == 0:
                        break
                    time.sleep(0.5)
            projected = time.perf_counter() - started
            pid = server.worker_pids()[0]
            rss_projected = rss_mb(pid)
            print(f"the service projected {seeded.events:,} events in {projected:.1f} s "
                  f"({seeded.events / projected:,.0f} events/s) — API process RSS "
                  f"{rss_projected[0]:.0f} MB (peak {rss_projected[1]:.0f} MB)")
            settled = settle(database)
            print(f"VACUUM (ANALYZE) after the load, before measuring: {settled:.1f} s")
            counts = statement_counts(server.url, token)
            import uvloop

            cpu_before = cpu_seconds(pid)
            one = uvloop.run(reads(server.url, token, departments, args.duration, 1,
                                   args.page))
            cpu_one = (cpu_seconds(pid) - cpu_before) / max(len(one[0]), 1)
            many = uvloop.run(reads(server.url, token, departments, args.duration,
                                    args.concurrency, args.page))
            rss_after = rss_mb(pid)
    lat1, err1, st1 = one
    latn, errn, stn = many
    where = (f"one of {len(departments)} departments (~{units // len(departments):,} projects "
             "each)" if departments[0] else f"all {units:,} projects")
    print(f"\npage of {args.page} projects (lead, open risks, cost) of {where}, first or next "
          "page:")
    print(f"  1 client   {len(lat1) / args.duration:6.0f} req/s  {summary_ms(lat1)}"
          f"  errors {err1}  (API process CPU {cpu_one * 1000:.1f} ms per request)")
    print(f"  {args.concurrency} clients  {len(latn) / args.duration:6.0f} req/s  "
          f"{summary_ms(latn)}  errors {errn}")
    print(f"  SQL statements per request by page size: {counts} (seen in the runs: "
          f"{sorted(st1 | stn)})")
    print(f"  API process RSS after the reads: {rss_after[0]:.0f} MB (peak {rss_after[1]:.0f} MB)")
    p99 = percentile(lat1, 0.99) * 1000
    flat = len(set(counts.values())) == 1
    print("\ntargets (same run)                                 target       measured")
    print(f"  p99, 1 client, {seeded.events:,} events          ≤ 25 ms      {p99:7.1f} ms "
          f"{verdict(p99 <= 25)}")
    print(f"  SQL statements independent of page size        constant     "
          f"{'constant' if flat else counts}  {verdict(flat)}")
    print(f"  API RSS after projecting + reading             ≤ 250 MB     "
          f"{max(rss_after[0], rss_projected[0]):7.0f} MB {verdict(rss_after[0] <= 250)}")


if __name__ == "__main__":
    main()
