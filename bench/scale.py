"""Scale: append latency with an empty store vs with ``--events`` events in it.

In one run, on one PostgreSQL server (embedded unless DATABASE_URL is set):

1. a fresh database, the *store*: ``--samples`` commands, one at a time, through the Ledger
   (load from the cache, decide, metadata, group-commit append with its event_log row and
   Idempotency-Key) on a few records — the latency of each — and as many bare
   ``EventStore.append`` calls of one event: the empty store's figures *before seeding*;
2. seeds ``--events`` realistic events into it (``bench/seed.py``, batched appends), then
   ``VACUUM (ANALYZE)`` and ``CHECKPOINT`` (``bench.common.settle``): no autovacuum or
   checkpoint of the load under way;
3. the same measurements on the full store and on a second, empty database of the same
   server, *interleaved* in blocks of ``--block`` samples (the order alternating): both see
   the same machine and server at the same moments, so their ratio is the store size's
   effect alone. An empty store's append p50 drifts by tens of percent within minutes here
   (an empty database right after seeding 5M events on the same server: 1.05–1.09 ms;
   another, minutes later: 0.79–0.96 ms);
   the step-1 figures, minutes earlier, are printed for reference only;
4. the ratio of the medians (target ≤ 1.2×), and the sizes of the event tables and indexes.

``--existing URL`` measures an already filled database instead of seeding one (step 3 only;
it gets the measured records and events and a ``VACUUM (ANALYZE)``, and is not dropped).

    .venv/bin/python -m bench.scale                    # 500k events, ~1.5 min
    .venv/bin/python -m bench.scale --events 5M --pause 30   # the full run (~17 min)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    fresh_database,
    machine_label,
    server_label,
    settle,
    sibling_database,
    summary_ms,
    verdict,
)
from bench.seed import seed, seed_amount
from domain.project import Project
from domain.shared import Actor
from service.application import CommandContext
from service.catalogue import commands_of
from service.database import Database

ACTOR = Actor("scale", "Scale", frozenset({"member"}), frozenset({"ops"}))
PROJECT = {"department": "ops", "name": "Scale", "background": "b", "objectives": "o",
           "scope": "s", "requested_budget": "1000.00", "expected_revenue": "0.00",
           "start_date": "2026-01-05", "end_date": "2026-12-20"}


class Probe:
    """One store's latencies, one call at a time: commands through the Ledger on ``records``
    records, and bare one-event appends to a record of its own."""

    def __init__(self, container: Any, records: int = 20) -> None:
        specs = {s.name: s for s in commands_of(Project)}
        self.container = container
        self.propose, self.edit = specs["propose"], specs["edit_application"]
        self.ids = [container.ledger.execute(self.propose, CommandContext(ACTOR),
                                             self.propose.body_model(**PROJECT)).body["id"]
                    for _ in range(records)]
        self.record = self.propose.call(Project, ACTOR, self.propose.body_model(**PROJECT))
        container.store.append_and_wait(self.record.collect_events())
        self.sent = 0

    def commands(self, n: int) -> list[float]:
        latencies = []
        for _ in range(n):
            k = self.sent = self.sent + 1
            ctx = CommandContext(ACTOR, idempotency_key=uuid.uuid4().hex, request_hash=str(k))
            body = self.edit.body_model(name=f"edit {k}")
            t0 = time.perf_counter()
            self.container.ledger.execute(self.edit, ctx, body, self.ids[k % len(self.ids)])
            latencies.append(time.perf_counter() - t0)
        return latencies

    def appends(self, n: int) -> list[float]:
        latencies = []
        for _ in range(n):
            k = self.sent = self.sent + 1
            self.edit.call(self.record, ACTOR, self.edit.body_model(name=f"bare {k}"))
            events = self.record.collect_events()
            t0 = time.perf_counter()
            self.container.store.append_and_wait(events)
            latencies.append(time.perf_counter() - t0)
        return latencies


def measure(probe: Probe, samples: int) -> tuple[list[float], list[float]]:
    """(command latencies, bare append latencies) of one store alone."""
    return probe.commands(samples), probe.appends(samples)


def interleaved(probes: list[Probe], samples: int, block: int,
                ) -> list[tuple[list[float], list[float]]]:
    """``measure`` of several stores, taken in turns of ``block`` samples, the order of the
    turns alternating, so that every store meets the same drift of the machine."""
    results: list[tuple[list[float], list[float]]] = [([], []) for _ in probes]
    for turn in range(-(-samples // block)):
        order = list(enumerate(probes))
        if turn % 2:
            order.reverse()
        n = min(block, samples - turn * block)
        for i, probe in order:
            results[i][0].extend(probe.commands(n))
        for i, probe in order:
            results[i][1].extend(probe.appends(n))
    return results


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


@contextlib.contextmanager
def opened(database: Database) -> Iterator[Any]:
    """A service container on ``database`` (schema migrated), without background workers."""
    from service.bootstrap import bootstrap
    from service.config import Settings

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="opsledger-bench-")),
                        run_stream_workers=False, digest_interval_seconds=0)
    container = bootstrap(settings, database, start_projector=False)
    try:
        yield container
    finally:
        container.close()


def report(label: str, container: Any, cmd: list[float], app: list[float]) -> None:
    print(f"{label} ({sizes(container)})")
    print(f"  command (Ledger, one at a time)  {summary_ms(cmd)}")
    print(f"  bare append of one event         {summary_ms(app)}")


def ratio(full: list[float], empty: list[float]) -> float:
    return statistics.median(full) / statistics.median(empty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=seed_amount, default=seed_amount("500k"))
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--block", type=int, default=50,
                        help="samples per turn when the stores are measured interleaved")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of rest after each 500,000 seeded events (a shared "
                             "machine: seeding 5M keeps both cores busy for ~6 minutes)")
    parser.add_argument("--database-url")
    parser.add_argument("--existing", metavar="URL",
                        help="measure this already filled database instead of seeding one")
    args = parser.parse_args()

    print(f"machine: {machine_label()}")
    with contextlib.ExitStack() as stack:
        if args.existing:
            store_db = Database(url=args.existing)
        else:
            store_db = stack.enter_context(fresh_database(args.database_url))
        print(f"database: {server_label(store_db)}")
        store = stack.enter_context(opened(store_db))
        before: tuple[list[float], list[float]] | None = None
        if not args.existing:
            settle(store_db, checkpoint=True)
            before = measure(Probe(store), args.samples)
            report("empty store, before seeding", store, *before)
            seed(store.store, args.events, pause=args.pause)
        empty = stack.enter_context(opened(stack.enter_context(sibling_database(store_db))))
        # No autovacuum or checkpoint of the load's pages under way (on 5M events they took
        # minutes after the seeding); the VACUUM also fills the free space map, so appends
        # go into the last gaps of old pages as they would after any autovacuum.
        settled = settle(store_db, checkpoint=True)
        print(f"VACUUM (ANALYZE) and CHECKPOINT: {settled:.0f} s")
        probes = [Probe(store), Probe(empty)]
        (full_cmd, full_app), (empty_cmd, empty_app) = interleaved(
            probes, args.samples, args.block)
        report("full store", store, full_cmd, full_app)
        report("empty store, measured in turns with the full one", empty, empty_cmd, empty_app)
    if before is not None:
        print(f"\nfor reference, against the same store before seeding (minutes earlier): "
              f"command {ratio(full_cmd, before[0]):.2f}×, "
              f"bare append {ratio(full_app, before[1]):.2f}×")
    r_cmd, r_app = ratio(full_cmd, empty_cmd), ratio(full_app, empty_app)
    print("\ntargets (same run, interleaved)                      target    measured")
    print(f"  p50 command latency, full / empty store            ≤ 1.2×    {r_cmd:6.2f}×  "
          f"{verdict(r_cmd <= 1.2)}")
    print(f"  p50 bare append latency, full / empty store        ≤ 1.2×    {r_app:6.2f}×  "
          f"{verdict(r_app <= 1.2)}")


if __name__ == "__main__":
    main()
