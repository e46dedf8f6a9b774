"""Baselines measured in the same run as the figure they are compared with.

* ``raw_insert``: single-row INSERT transactions (autocommit) from N threads — the commit flush.
* ``library_save``: the bare ``eventsourcing`` library — ``Application`` with POSTGRES
  persistence (its default insert: ``LOCK TABLE … IN EXCLUSIVE MODE``, pipeline, commit), N
  threads each saving one event at a time on its own aggregate.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from service.database import Database


class Thing(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name

    @event("Renamed")
    def rename(self, name: str) -> None:
        self.name = name


class LibraryBaseline(Application[uuid.UUID]):
    """Its events go to the table ``librarybaseline_events``."""


@dataclass
class Rate:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def _run_threads(threads: int, duration: float, warmup: float, make_worker: Any) -> Rate:
    """Runs ``make_worker(i)()`` repeatedly in ``threads`` threads; counts the calls that
    finished inside the measured window (after the warm-up)."""
    start = time.perf_counter()
    t0, t1 = start + warmup, start + warmup + duration
    lock = threading.Lock()
    latencies: list[float] = []

    def loop(i: int) -> None:
        work = make_worker(i)
        mine: list[float] = []
        while True:
            a = time.perf_counter()
            if a >= t1:
                break
            work()
            b = time.perf_counter()
            if a >= t0 and b <= t1:
                mine.append(b - a)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return Rate(len(latencies), duration, latencies)


def raw_insert(database: Database, threads: int, duration: float = 3.0,
               warmup: float = 0.5) -> Rate:
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY,"
                     " v text NOT NULL)")
    conns = [psycopg.connect(database.conninfo, autocommit=True) for _ in range(threads)]

    def make(i: int) -> Any:
        conn = conns[i]
        return lambda: conn.execute("INSERT INTO bench_raw (v) VALUES (%s)", ("x" * 100,))

    try:
        return _run_threads(threads, duration, warmup, make)
    finally:
        for c in conns:
            c.close()


def library_save(database: Database, threads: int, duration: float = 5.0,
                 warmup: float = 1.0) -> Rate:
    """The bare library: ``Application.save`` of one event per call, ``threads`` threads."""
    p = database.library_kwargs()
    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": p["dbname"],
           "POSTGRES_HOST": p["host"], "POSTGRES_PORT": str(p["port"]),
           "POSTGRES_USER": p["user"], "POSTGRES_PASSWORD": p["password"] or "",
           "POSTGRES_POOL_SIZE": str(threads), "POSTGRES_MAX_OVERFLOW": "4",
           "CREATE_TABLE": "y"}

    app = LibraryBaseline(env=env)
    try:
        things = []
        for i in range(threads):
            thing = Thing(name=f"thing {i}")
            app.save(thing)
            things.append(thing)

        def make(i: int) -> Any:
            thing = things[i]
            counter = iter(range(10**9))

            def work() -> None:
                thing.rename(f"name {next(counter)}")
                app.save(thing)
            return work

        return _run_threads(threads, duration, warmup, make)
    finally:
        app.close()
