"""Projection rebuild: every projection rebuilt from the store vs the library's projection runner.

In one run, against one fresh database (embedded PostgreSQL unless DATABASE_URL is set):

1. seeds ``--events`` realistic events (``bench/seed.py``: customers, projects with plans and
   progress, linked risks, budget actuals) straight through the event store;
2. **rebuild**: in a fresh process, ``service.rebuild.rebuild(container, jobs=1)`` (what
   ``opsledger rebuild`` runs) over the service's own projections
   (``service.projector.build_projections``: record_state, projects, risks, customers, service
   requests, budgets, budget warnings), then the same with ``jobs=--jobs`` (2: what
   ``opsledger rebuild --jobs 2`` runs: reset, the records split by id between two processes,
   the partitions merged; the figure the targets are judged on) — events/s, the peak RSS of
   every process of the rebuild, and a checksum of the views, which must be the same;
3. **baseline**: in a fresh process, the library's ``eventsourcing.projection.ProjectionRunner``
   following the same ``stored_events`` table with a trivial projection that writes one row
   per event, one event per transaction (its default), over the first
   ``--baseline-events`` events — events/s;
4. **memory**: the rebuild's peak RSS (summed over its processes) for each of
   ``--memory-sizes`` (each in its own database): flat means it does not grow with the number
   of events.

    .venv/bin/python -m bench.rebuild                                   # ~1.5 min
    .venv/bin/python -m bench.rebuild --events 1M --memory-sizes 100k 1M --baseline-events 50k
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
from projections.checksums import projection_tables, view_checksums
from service.database import Database

# -- children ---------------------------------------------------------------------------------

def child_rebuild(url: str, jobs: int) -> dict[str, Any]:
    from service.bootstrap import bootstrap
    from service.config import Settings
    from service.rebuild import rebuild

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="opsledger-bench-")),
                        run_stream_workers=False, digest_interval_seconds=0)
    container = bootstrap(settings, Database(url=url), start_projector=False)
    try:
        head = container.store.max_position()
        before = rss_mb()[0]
        started = time.perf_counter()
        cpu = time.process_time()
        done = rebuild(container, jobs=jobs)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rss, peak = rss_mb()
        events = container.store.execute("SELECT count(*) AS n FROM stored_events")[0]["n"]
        return {"events": events, "head": head, "position": done.position, "seconds": seconds,
                "jobs": jobs, "cpu": cpu, "rss_before": before, "rss": rss,
                # every rebuild process: this one, then the partitions' own
                "peaks": [peak] + [p.peak_mb for p in done.processes],
                "cpus": [cpu] + [p.cpu_seconds for p in done.processes],
                "projections": [p.name for p in container.runner.projections],
                "checksum": views_checksum(url, container.runner.projections)}
    finally:
        container.close()


def views_checksum(url: str, projections: list[Any]) -> str:
    """One md5 over the checksums of every projection table (``projections.checksums``)."""
    import hashlib

    sums = view_checksums(Database(url=url).conninfo, projection_tables(projections))
    return hashlib.md5("".join(f"{t}={c};" for t, c in sums.items()).encode()).hexdigest()


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
    parser.add_argument("--jobs", type=int, default=3,
                        help="processes of the rebuild measured (the single-process rebuild "
                             "is measured too, on the same events)")
    parser.add_argument("--database-url")
    parser.add_argument("--child", choices=["rebuild", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "rebuild":
        print(json.dumps(child_rebuild(args.url, args.jobs)))
        return
    if args.child == "baseline":
        print(json.dumps(child_baseline(args.url, args.baseline_events)))
        return

    print(f"machine: {machine_label()}")
    memory: dict[int, dict[str, Any]] = {}
    with seeded_database(args.database_url, args.events) as database:
        print(f"database: {server_label(database)}")
        single = run_child("rebuild", database.url, "--jobs", "1")
        main_run = run_child("rebuild", database.url, "--jobs", str(args.jobs))
        memory[main_run["events"]] = main_run
        base = run_child("baseline", database.url, "--baseline-events",
                         str(args.baseline_events))
    for size in args.memory_sizes:
        if size == args.events:
            continue
        with seeded_database(args.database_url, size) as database:
            memory[size] = run_child("rebuild", database.url, "--jobs", str(args.jobs))

    rate = main_run["events"] / main_run["seconds"]
    single_rate = single["events"] / single["seconds"]
    base_rate = base["events"] / base["seconds"]
    same = main_run["checksum"] == single["checksum"]
    print(f"\nrebuild of {', '.join(main_run['projections'])}:")
    print(f"  {args.jobs} processes: {main_run['events']:,} events in "
          f"{main_run['seconds']:.1f} s = {rate:,.0f} events/s (CPU of each process "
          f"{' + '.join(f'{c:.1f}' for c in main_run['cpus'])} s), peak RSS "
          f"{' + '.join(f'{p:.0f}' for p in main_run['peaks'])} = "
          f"{sum(main_run['peaks']):.0f} MB")
    print(f"  1 process:   {single['events']:,} events in {single['seconds']:.1f} s = "
          f"{single_rate:,.0f} events/s (CPU {single['cpus'][0]:.1f} s), peak RSS "
          f"{single['peaks'][0]:.0f} MB; {args.jobs} processes: {rate / single_rate:.2f}×")
    print(f"  views (checksum over the ordered rows of every projection table): "
          f"{'identical' if same else 'DIFFERENT'} ({main_run['checksum'][:12]} / "
          f"{single['checksum'][:12]})")
    print("library ProjectionRunner, one event per transaction, trivial one-row view:")
    print(f"  {base['events']:,} events in {base['seconds']:.1f} s = {base_rate:,.0f} events/s")
    print(f"\npeak RSS of the rebuild's {args.jobs} processes (sum) by store size")
    for _size, m in sorted(memory.items()):
        print(f"  {m['events']:>10,} events: peak {sum(m['peaks']):6.0f} MB "
              f"({' + '.join(f'{p:.0f}' for p in m['peaks'])}; RSS of the first before the "
              f"rebuild {m['rss_before']:.0f} MB, after {m['rss']:.0f} MB), "
              f"{m['events'] / m['seconds']:,.0f} events/s")
    sizes = sorted(memory)
    growth = (sum(memory[sizes[-1]]["peaks"]) / sum(memory[sizes[0]]["peaks"])
              if len(sizes) > 1 else 1.0)
    print("\ntargets (same run)                            target     measured")
    print(f"  rebuild rate                                ≥ 25,000/s {rate:9,.0f}   "
          f"{verdict(rate >= 25_000)}")
    print(f"  rebuild / library runner                    ≥ 10×      {rate / base_rate:8.1f}×  "
          f"{verdict(rate / base_rate >= 10)}")
    if len(sizes) > 1:
        print(f"  peak RSS {sizes[-1]:,} / {sizes[0]:,} events  flat (≤ 1.2×)  "
              f"{growth:8.2f}×  {verdict(growth <= 1.2)}")
    print(f"  views of {args.jobs} processes = of 1                identical  "
          f"{'yes' if same else 'no':>8}   {verdict(same)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
