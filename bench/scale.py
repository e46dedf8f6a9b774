"""Scale: append latency with an empty store vs with ``--events`` events in it.

In one run, against one fresh database (embedded PostgreSQL unless DATABASE_URL is set):

1. empty store: ``--samples`` commands, one at a time, through the Ledger (load from the cache,
   decide, metadata, group-commit append with its event_log row and Idempotency-Key) on a few
   records — the latency of each — and as many bare ``EventStore.append`` calls of one event;
2. seeds ``--events`` realistic events (``bench/seed.py``, batched appends), then
   ``VACUUM (ANALYZE)`` and ``CHECKPOINT`` (``bench.common.settle``, also run before the empty
   store's measurement): both measured with no autovacuum or checkpoint of the load under way;
3. the same measurements again, on new records;
4. the ratio of the medians (target ≤ 1.2×), and the sizes of the event tables and indexes.

    .venv/bin/python -m bench.scale                    # 500k events, ~1.5 min
    .venv/bin/python -m bench.scale --events 5M --pause 30   # the full run (~12 min)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import (
    fresh_database,
    machine_label,
    server_label,
    settle,
    summary_ms,
    verdict,
)
from bench.seed import seed, seed_amount
from domain.project import Project
from domain.shared import Actor
from service.application import CommandContext
from service.catalogue import commands_of

ACTOR = Actor("scale", "Scale", frozenset({"member"}), frozenset({"ops"}))
PROJECT = {"department": "ops", "name": "Scale", "background": "b", "objectives": "o",
           "scope": "s", "requested_budget": "1000.00", "expected_revenue": "0.00",
           "start_date": "2026-01-05", "end_date": "2026-12-20"}


def measure(container: Any, samples: int, records: int = 20) -> tuple[list[float], list[float]]:
    """(command latencies, bare append latencies), one at a time."""
    specs = {s.name: s for s in commands_of(Project)}
    propose, edit = specs["propose"], specs["edit_application"]
    ids = [container.ledger.execute(propose, CommandContext(ACTOR),
                                    propose.body_model(**PROJECT)).body["id"]
           for _ in range(records)]
    commands: list[float] = []
    for k in range(samples):
        ctx = CommandContext(ACTOR, idempotency_key=uuid.uuid4().hex, request_hash=str(k))
        body = edit.body_model(name=f"edit {k}")
        t0 = time.perf_counter()
        container.ledger.execute(edit, ctx, body, ids[k % records])
        commands.append(time.perf_counter() - t0)
    appends: list[float] = []
    record = propose.call(Project, ACTOR, propose.body_model(**PROJECT))
    container.store.append_and_wait(record.collect_events())
    for k in range(samples):
        edit.call(record, ACTOR, edit.body_model(name=f"bare {k}"))
        events = record.collect_events()
        t0 = time.perf_counter()
        container.store.append_and_wait(events)
        appends.append(time.perf_counter() - t0)
    return commands, appends


def sizes(container: Any) -> str:
    rows = container.store.execute(
        "SELECT pg_size_pretty(pg_database_size(current_database())) AS db,"
        " pg_size_pretty(pg_total_relation_size('stored_events')) AS events,"
        " pg_size_pretty(pg_indexes_size('stored_events')) AS events_idx,"
        " pg_size_pretty(pg_total_relation_size('event_log')) AS log,"
        " pg_size_pretty(pg_indexes_size('event_log')) AS log_idx,"
        " (SELECT count(*) FROM stored_events) AS n")
    r = rows[0]
    return (f"{r['n']:,} events; database {r['db']}; stored_events {r['events']} (indexes "
            f"{r['events_idx']}); event_log {r['log']} (indexes {r['log_idx']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=seed_amount, default=seed_amount("500k"))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of rest after each 500,000 seeded events (a shared "
                             "machine: seeding 5M keeps both cores busy for ~6 minutes)")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    from service.bootstrap import bootstrap
    from service.config import Settings

    print(f"machine: {machine_label()}")
    with fresh_database(args.database_url) as database:
        print(f"database: {server_label(database)}")
        settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="opsledger-bench-")),
                            run_stream_workers=False, digest_interval_seconds=0)
        container = bootstrap(settings, database, start_projector=False)
        try:
            settle(database, checkpoint=True)
            empty_cmd, empty_app = measure(container, args.samples)
            print(f"empty store ({sizes(container)})")
            print(f"  command (Ledger, one at a time)  {summary_ms(empty_cmd)}")
            print(f"  bare append of one event         {summary_ms(empty_app)}")
            seed(container.store, args.events, pause=args.pause)
            # The same state as the empty store's measurement: no autovacuum or checkpoint
            # of the load's pages under way (on 5M events they took minutes after the seeding)
            settled = settle(database, checkpoint=True)
            print(f"VACUUM (ANALYZE) and CHECKPOINT after seeding: {settled:.0f} s")
            full_cmd, full_app = measure(container, args.samples)
            print(f"full store ({sizes(container)})")
            print(f"  command (Ledger, one at a time)  {summary_ms(full_cmd)}")
            print(f"  bare append of one event         {summary_ms(full_app)}")
        finally:
            container.close()
    r_cmd = statistics.median(full_cmd) / statistics.median(empty_cmd)
    r_app = statistics.median(full_app) / statistics.median(empty_app)
    print("\ntargets (same run)                                   target    measured")
    print(f"  p50 command latency, full / empty store            ≤ 1.2×    {r_cmd:6.2f}×  "
          f"{verdict(r_cmd <= 1.2)}")
    print(f"  p50 bare append latency, full / empty store        ≤ 1.2×    {r_app:6.2f}×  "
          f"{verdict(r_app <= 1.2)}")


if __name__ == "__main__":
    main()
