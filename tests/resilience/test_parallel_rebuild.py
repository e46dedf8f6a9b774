"""A rebuild in two processes (`opsledger rebuild --jobs 2`, the records split between them by
id): the views are exactly those of a rebuild in one process; and with one of its processes
killed with SIGKILL part-way, the rebuild goes on from what each partition had applied
(`rebuild --resume`, or a worker) to the same views again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.common import children_of
from tests.resilience.support import ServiceProcess, report
from tests.resilience.test_projector_kill import ENV, checksums, positions

pytestmark = pytest.mark.slow

PROJECTIONS = ("budget_warnings", "records")


def tracking(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        return {name: int(position) for name, position in conn.execute(
            "SELECT name, position FROM projection_tracking")}


def run(database: Any, procs: list[ServiceProcess], *command: str,
        env: dict[str, str] | None = None) -> ServiceProcess:
    proc = ServiceProcess(database.url, command=list(command), env=env or {
        "OPSLEDGER_RUN_STREAM_WORKERS": "false", "OPSLEDGER_DIGEST_INTERVAL_SECONDS": "0",
        "OPSLEDGER_LOG_LEVEL": "WARNING"}, http=False)
    procs.append(proc)
    proc.start()
    return proc


def rebuilt_in_one(database: Any, procs: list[ServiceProcess], tables: list[str],
                   ) -> dict[str, str]:
    """The views' checksums after a rebuild in one process (what every other must give)."""
    single = run(database, procs, "rebuild")
    assert single.wait(120) == 0, single.log()
    return checksums(database.conninfo, tables)


def test_a_rebuild_in_two_processes_gives_the_views_of_one(
        history: tuple[Any, list[str]]) -> None:
    database, tables = history
    conninfo = database.conninfo
    head = positions(conninfo)[0]
    procs: list[ServiceProcess] = []
    try:
        in_one = rebuilt_in_one(database, procs, tables)
        parallel = run(database, procs, "rebuild", "--jobs", "2")
        assert parallel.wait(120) == 0, parallel.log()
        assert "in 2 processes" in parallel.log()
        in_two = checksums(conninfo, tables)
    finally:
        for proc in procs:
            proc.cleanup()
    # …and the partitions' tracking rows were replaced by the projections' own, at the head.
    assert tracking(conninfo) == dict.fromkeys(PROJECTIONS, head)
    assert [t for t in tables if in_one[t] != in_two[t]] == []


def partition_process(parent: ServiceProcess) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pid in children_of(parent.proc.pid):  # type: ignore[union-attr]
            if b"service.rebuild" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        time.sleep(0.01)
    raise AssertionError(f"no partition process:\n{parent.log()}")


@pytest.mark.parametrize("resumed_by", ["rebuild --resume", "worker"])
def test_a_partition_killed_mid_rebuild_is_resumed_to_the_same_views(
        history: tuple[Any, list[str]], resumed_by: str) -> None:
    import os
    import signal

    database, tables = history
    conninfo = database.conninfo
    head = positions(conninfo)[0]
    procs: list[ServiceProcess] = []
    try:
        in_one = rebuilt_in_one(database, procs, tables)

        # Small batches: many commits, so the kill lands mid-partition.
        parent = run(database, procs, "rebuild", "--jobs", "2", env=ENV)
        child = partition_process(parent)
        deadline = time.monotonic() + 120
        while tracking(conninfo).get("records#1/2", 0) < head // 4:
            assert time.monotonic() < deadline, parent.log()
            time.sleep(0.005)
        os.kill(child, signal.SIGKILL)
        assert parent.wait(120) == 1, parent.log()  # its own partition done: it says so
        assert "rebuild --resume" in parent.log()
        at_kill = tracking(conninfo)
        assert 0 < at_kill["records#1/2"] < head, "the kill was not mid-partition"
        assert at_kill["records#0/2"] == head  # the other partition finished

        resume = run(database, procs, *resumed_by.split(), env=ENV)
        lowest, deadline = at_kill["records#1/2"], time.monotonic() + 120
        while (now := tracking(conninfo)) != dict.fromkeys(PROJECTIONS, head):
            if "records#1/2" in now:
                lowest = min(lowest, now["records#1/2"])
            assert time.monotonic() < deadline, resume.log()
            time.sleep(0.005)
        if resumed_by == "worker":
            resume.stop()
        else:
            assert resume.wait(120) == 0, resume.log()
        assert lowest >= at_kill["records#1/2"], "the partition started over"
        resumed = checksums(conninfo, tables)
    finally:
        for proc in procs:
            proc.cleanup()
    differing = [t for t in tables if in_one[t] != resumed[t]]
    report(f"rebuild partition kill -9, resumed by {resumed_by}", events=head,
           killed_at=at_kill["records#1/2"], differing_tables=len(differing))
    assert differing == []


@pytest.mark.parametrize("parts", [2, 3])
def test_a_partition_reads_exactly_its_records_events_in_order(
        history: tuple[Any, list[str]], parts: int) -> None:
    """Read batch by batch (window by window of positions underneath, some holding none of
    the partition's events), each partition gives its records' events up to the bound, in
    order, each once; together, every event."""
    from service.bootstrap import PartitionSource
    from service.store import EventStore

    database, _ = history
    store = EventStore(database, pool_size=2)
    try:
        every = store.notifications(0, 1_000_000)
        upto = every[-1].id - 5
        assert len(every) > 100
        seen = []
        for part in range(parts):
            source, read, after = PartitionSource(store, part, parts, upto), [], 0
            while batch := source.fetch(after, 7):
                assert len(batch) <= 7
                read += batch
                after = batch[-1].id
            assert [n.id for n in read] == [n.id for n in every if n.id <= upto
                                            and n.originator_id.bytes[15] % parts == part]
            seen += [n.id for n in read]
        assert sorted(seen) == [n.id for n in every if n.id <= upto]
    finally:
        store.close()
