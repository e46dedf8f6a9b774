"""Projection rebuild: every projection rebuilt from the store vs the library's projection runner.

In one run, against one fresh database (embedded PostgreSQL unless DATABASE_URL is set):

1. seeds ``--events`` realistic events (``bench/seed.py``: customers, projects with plans and
   progress, linked risks, budget actuals) straight through the event store;
2. **rebuild**: in a fresh process, ``runner.reset(); runner.catch_up()`` over the service's
   own projections (``service.bootstrap.build_projections``: record_state, projects, risks,
   customers, service requests, budgets, budget warnings) — events/s and the process's peak
   RSS;
3. **baseline**: in a fresh process, the library's ``eventsourcing.projection.ProjectionRunner``
   following the same ``stored_events`` table with a trivial projection that writes one row
   per event, one event per transaction (its default), over the first
   ``--baseline-events`` events — events/s;
4. **memory**: the rebuild's peak RSS for each of ``--memory-sizes`` (each in its own
   database and process): flat means it does not grow with the number of events.

    .venv/bin/python -m bench.rebuild                                   # ~1.5 min
    .venv/bin/python -m bench.rebuild --events 1M --memory-sizes 100k 1M  # the full run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.common import ROOT, fresh_database, machine_label, rss_mb, server_label, verdict
from bench.seed import seed, seed_amount
from service.database import Database

# -- children ---------------------------------------------------------------------------------

def child_rebuild(url: str) -> dict[str, Any]:
    from service.bootstrap import bootstrap
    from service.config import Settings

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="opsledger-bench-")),
                        run_stream_workers=False, digest_interval_seconds=0)
    container = bootstrap(settings, Database(url=url), start_projector=False)
    try:
        head = container.store.max_position()
        before = rss_mb()[0]
        started = time.perf_counter()
        cpu = time.process_time()
        container.runner.reset()
        applied = container.runner.catch_up()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rss, peak = rss_mb()
        events = container.store.execute("SELECT count(*) AS n FROM stored_events")[0]["n"]
        return {"events": events, "head": head, "applied": applied, "seconds": seconds,
                "cpu": cpu, "rss_before": before, "rss": rss, "peak": peak,
                "projections": [p.name for p in container.runner.projections]}
    finally:
        container.close()


def child_baseline(url: str, events: int) -> dict[str, Any]:
    from eventsourcing.application import Application
    from eventsourcing.persistence import JSONTranscoder, Tracking
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.projection import Projection, ProjectionRunner
    from psycopg.sql import SQL

    from projections.codec import DateAsISO

    class Stored(Application[UUID]):
        """Reads the service's own table: the factory names it ``stored_events``."""

        def register_transcodings(self, transcoder: JSONTranscoder) -> None:
            super().register_transcodings(transcoder)
            transcoder.register(DateAsISO())

    class OneRowPerEvent(PostgresTrackingRecorder):
        def __init__(self, datastore: Any, **kwargs: Any):
            super().__init__(datastore, **kwargs)
            self.sql_create_statements.append(SQL(
                "CREATE TABLE IF NOT EXISTS bench_library_view"
                " (position bigint PRIMARY KEY, event_type text NOT NULL)"))

        def record(self, event_type: str, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute("INSERT INTO bench_library_view (position, event_type)"
                             " VALUES (%s, %s)", (tracking.notification_id, event_type))
                self._insert_tracking(curs, tracking)

    class LibraryView(Projection[OneRowPerEvent]):
        name = "libraryview"

        def process_event(self, domain_event: Any, tracking: Tracking) -> None:
            self.view.record(type(domain_event).__qualname__, tracking)

    db = Database(url=url)
    p = db.library_kwargs()
    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": p["dbname"],
           "POSTGRES_HOST": p["host"], "POSTGRES_PORT": str(p["port"]),
           "POSTGRES_USER": p["user"], "POSTGRES_PASSWORD": p["password"] or "",
           "CREATE_TABLE": "n", "LIBRARYVIEW_CREATE_TABLE": "y"}
    import psycopg

    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute("SELECT max(notification_id) FROM (SELECT notification_id FROM"
                           " stored_events ORDER BY notification_id LIMIT %s) s",
                           (events,)).fetchone()
    target = int(row[0]) if row and row[0] else 0
    started = time.perf_counter()
    with ProjectionRunner(application_class=Stored, projection_class=LibraryView,
                          view_class=OneRowPerEvent, env=env) as runner:
        runner.wait(target, timeout=3600)
        seconds = time.perf_counter() - started
    with psycopg.connect(db.conninfo) as conn:
        done = conn.execute("SELECT count(*) FROM bench_library_view WHERE position <= %s",
                            (target,)).fetchone()[0]  # type: ignore[index]
    return {"events": done, "seconds": seconds}


def run_child(kind: str, url: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.rebuild", "--child", kind, "--url", url,
                          *extra], cwd=ROOT, capture_output=True, text=True, check=False)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"{kind} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


# -- main -------------------------------------------------------------------------------------

def seeded_database(url: str | None, events: int) -> Any:
    """A context manager: a fresh database seeded with about ``events`` events."""
    import contextlib

    from service.store import EventStore

    @contextlib.contextmanager
    def cm() -> Any:
        with fresh_database(url) as database:
            store = EventStore(database, pool_size=4)
            try:
                seed(store, events)
            finally:
                store.close()
            yield database
    return cm()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=seed_amount, default=seed_amount("100k"),
                        help="events to seed and rebuild (100k, 1M …)")
    parser.add_argument("--baseline-events", type=seed_amount, default=seed_amount("20k"),
                        help="events the library's runner projects (its rate is compared)")
    parser.add_argument("--memory-sizes", type=seed_amount, nargs="*",
                        default=[seed_amount("25k")],
                        help="further store sizes whose rebuild peak RSS is compared with the "
                             "main run's (each seeded in its own database)")
    parser.add_argument("--database-url")
    parser.add_argument("--child", choices=["rebuild", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "rebuild":
        print(json.dumps(child_rebuild(args.url)))
        return
    if args.child == "baseline":
        print(json.dumps(child_baseline(args.url, args.baseline_events)))
        return

    print(f"machine: {machine_label()}")
    memory: dict[int, dict[str, Any]] = {}
    with seeded_database(args.database_url, args.events) as database:
        print(f"database: {server_label(database)}")
        main_run = run_child("rebuild", database.url)
        memory[main_run["events"]] = main_run
        base = run_child("baseline", database.url, "--baseline-events",
                         str(args.baseline_events))
    for size in args.memory_sizes:
        if size == args.events:
            continue
        with seeded_database(args.database_url, size) as database:
            memory[size] = run_child("rebuild", database.url)

    rate = main_run["events"] / main_run["seconds"]
    base_rate = base["events"] / base["seconds"]
    print(f"\nrebuild of {', '.join(main_run['projections'])}:")
    print(f"  {main_run['events']:,} events in {main_run['seconds']:.1f} s = {rate:,.0f} "
          f"events/s (process CPU {main_run['cpu']:.1f} s), peak RSS {main_run['peak']:.0f} MB")
    print("library ProjectionRunner, one event per transaction, trivial one-row view:")
    print(f"  {base['events']:,} events in {base['seconds']:.1f} s = {base_rate:,.0f} events/s")
    print("\npeak RSS of the rebuild process by store size")
    for _size, m in sorted(memory.items()):
        print(f"  {m['events']:>10,} events: peak {m['peak']:6.0f} MB (RSS before the rebuild "
              f"{m['rss_before']:.0f} MB, after {m['rss']:.0f} MB), "
              f"{m['events'] / m['seconds']:,.0f} events/s")
    sizes = sorted(memory)
    growth = memory[sizes[-1]]["peak"] / memory[sizes[0]]["peak"] if len(sizes) > 1 else 1.0
    print("\ntargets (same run)                            target     measured")
    print(f"  rebuild rate                                ≥ 25,000/s {rate:9,.0f}   "
          f"{verdict(rate >= 25_000)}")
    print(f"  rebuild / library runner                    ≥ 10×      {rate / base_rate:8.1f}×  "
          f"{verdict(rate / base_rate >= 10)}")
    if len(sizes) > 1:
        print(f"  peak RSS {sizes[-1]:,} / {sizes[0]:,} events  flat (≤ 1.2×)  "
              f"{growth:8.2f}×  {verdict(growth <= 1.2)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
