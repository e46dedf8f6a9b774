"""kill -9 of the projection worker mid-rebuild: it resumes, and the views are identical to a
clean rebuild.

A varied history (every record type, warnings, complaints, adjustments) is written; then
`opsledger rebuild` (small batches) is killed with SIGKILL part-way, `opsledger worker` takes
over from the tracked positions and is killed again, a second worker finishes. The checksum over
the ordered rows of every projection table must equal the checksum after a clean, uninterrupted
`opsledger rebuild`.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from projections.checksums import view_checksums
from service.projector import build_projections
from tests.resilience.support import ServiceProcess, report

pytestmark = pytest.mark.slow

BATCH = 3  # small batches: many commits, so the kills land mid-rebuild
ENV = {"OPSLEDGER_PROJECTION_BATCH_SIZE": str(BATCH),
       "OPSLEDGER_REBUILD_BATCH_SIZE": str(BATCH), "OPSLEDGER_RUN_STREAM_WORKERS": "false",
       "OPSLEDGER_DIGEST_INTERVAL_SECONDS": "0", "OPSLEDGER_LOG_LEVEL": "WARNING"}


def positions(conninfo: str) -> tuple[int, int, int]:
    """(head, lowest projection position, number of projections tracked)."""
    with psycopg.connect(conninfo) as conn:
        head = conn.execute("SELECT coalesce(max(position), 0) FROM event_log").fetchone()
        low = conn.execute("SELECT coalesce(min(position), 0), count(*)"
                           " FROM projection_tracking").fetchone()
    assert head is not None and low is not None
    return int(head[0]), int(low[0]), int(low[1])


def kill_when(proc: ServiceProcess, conninfo: str, fraction: float, projections: int,
              ) -> tuple[int, int]:
    """SIGKILL once every projection passed ``fraction`` of the head; returns (the position at
    the kill, the lowest position seen meanwhile: where the process started from)."""
    lowest = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        head, low, tracked = positions(conninfo)
        if tracked == projections:
            lowest = low if lowest is None else min(lowest, low)
            if low >= head * fraction:
                proc.kill9()
                return positions(conninfo)[1], lowest
        assert proc.proc is not None and proc.proc.poll() is None, proc.log()
        time.sleep(0.005)
    raise AssertionError(f"no progress:\n{proc.log()}")


def test_a_killed_rebuild_resumes_and_matches_a_clean_rebuild(
        history: tuple[Any, list[str]]) -> None:
    database, tables = history
    conninfo = database.conninfo
    projections = len(build_projections(SimpleNamespace(mapper=None)))  # type: ignore[arg-type]
    head = positions(conninfo)[0]
    started = time.monotonic()

    procs: list[ServiceProcess] = []

    def run(command: str) -> ServiceProcess:
        proc = ServiceProcess(database.url, command=[command], env=ENV, http=False)
        procs.append(proc)
        proc.start()
        return proc

    try:
        at_first_kill, _ = kill_when(run("rebuild"), conninfo, 0.25, projections)
        at_second_kill, lowest = kill_when(run("worker"), conninfo, 0.6, projections)
        assert 0 < at_first_kill < at_second_kill < head, "the kills were not mid-rebuild"
        assert lowest >= at_first_kill, "the worker started over instead of resuming"
        worker = run("worker")
        deadline = time.monotonic() + 120
        lowest = at_second_kill
        while positions(conninfo)[1] < head:
            lowest = min(lowest, positions(conninfo)[1])
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.02)
        worker.stop()
        assert lowest >= at_second_kill
        resumed = view_checksums(conninfo, tables)
        resumed_rows = {t: rows_of(conninfo, t) for t in tables}
        recovery = time.monotonic() - started

        clean = run("rebuild")
        assert clean.wait(120) == 0, clean.log()
        assert positions(conninfo)[1] == head
        rebuilt = view_checksums(conninfo, tables)
    finally:
        for proc in procs:
            proc.cleanup()

    differing = [t for t in tables if resumed[t] != rebuilt[t]]
    rows = sum(int(v.rsplit(":", 1)[1]) for t, v in rebuilt.items() if ":" in v
               and t != "projection_tracking")
    report("projector kill -9 mid-rebuild", events=head, batch=BATCH, tables=len(tables),
           rows=rows, first_kill_at=at_first_kill, second_kill_at=at_second_kill,
           differing_tables=len(differing), seconds_to_recover=round(recovery, 1))
    assert differing == [], {t: first_difference(resumed_rows[t], rows_of(conninfo, t))
                             for t in differing}


def rows_of(conninfo: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return sorted(conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))
                                   ).fetchall(), key=repr)


def first_difference(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> str:
    for x, y in zip(a, b, strict=False):
        if x != y:
            cols = [i for i, (u, v) in enumerate(zip(x, y, strict=True)) if u != v]
            return f"row {x[0]}: columns {cols}: {[x[i] for i in cols]} != {[y[i] for i in cols]}"
    return f"{len(a)} rows != {len(b)} rows"
