"""A rebuild in two processes (`opsledger rebuild --jobs 2`, the records split between them by
id): the views are exactly those of a rebuild in one process; and with one of its processes
killed with SIGKILL part-way, the rebuild goes on from what each partition had applied
(`rebuild --resume`, or a worker) to the same views again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.common import children_of
from projections.checksums import view_checksums
from tests.resilience.support import ServiceProcess, report
from tests.resilience.test_projector_kill import ENV, positions

pytestmark = pytest.mark.slow

PROJECTIONS = ("budget_actuals", "budget_warnings", "records")


def tracking(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        return {name: int(position) for name, position in conn.execute(
            "SELECT name, position FROM projection_tracking")}


@dataclass
class Rebuilt:
    """The history rebuilt once in one process: its views' checksums are what every other
    rebuild must give. ``run`` starts a service command (cleaned up after the test)."""

    database: Any
    tables: list[str]
    head: int
    checksums: dict[str, str] = field(default_factory=dict)
    procs: list[ServiceProcess] = field(default_factory=list)

    def run(self, *command: str, env: dict[str, str] | None = None) -> ServiceProcess:
        proc = ServiceProcess(self.database.url, command=list(command), env=env or {
            "OPSLEDGER_RUN_STREAM_WORKERS": "false", "OPSLEDGER_DIGEST_INTERVAL_SECONDS": "0",
            "OPSLEDGER_LOG_LEVEL": "WARNING"}, http=False)
        self.procs.append(proc)
        proc.start()
        return proc

    def differing(self) -> list[str]:
        """The tables whose rows now differ from the one-process rebuild's."""
        now = view_checksums(self.database.conninfo, self.tables)
        return [t for t in self.tables if now[t] != self.checksums[t]]


@pytest.fixture
def rebuilt(history: tuple[Any, list[str]]) -> Iterator[Rebuilt]:
    database, tables = history
    once = Rebuilt(database, tables, positions(database.conninfo)[0])
    try:
        single = once.run("rebuild")
        assert single.wait(120) == 0, single.log()
        once.checksums = view_checksums(database.conninfo, tables)
        yield once
    finally:
        for proc in once.procs:
            proc.cleanup()


def test_a_rebuild_in_two_processes_gives_the_views_of_one(rebuilt: Rebuilt) -> None:
    parallel = rebuilt.run("rebuild", "--jobs", "2")
    assert parallel.wait(120) == 0, parallel.log()
    assert "in 2 processes" in parallel.log()
    # …and the partitions' tracking rows were replaced by the projections' own, at the head.
    assert tracking(rebuilt.database.conninfo) == dict.fromkeys(PROJECTIONS, rebuilt.head)
    assert rebuilt.differing() == []


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
        rebuilt: Rebuilt, resumed_by: str) -> None:
    import os
    import signal

    conninfo, head = rebuilt.database.conninfo, rebuilt.head
    # Small batches: many commits, so the kill lands mid-partition.
    parent = rebuilt.run("rebuild", "--jobs", "2", env=ENV)
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

    resume = rebuilt.run(*resumed_by.split(), env=ENV)
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
    differing = rebuilt.differing()
    report(f"rebuild partition kill -9, resumed by {resumed_by}", events=head,
           killed_at=at_kill["records#1/2"], differing_tables=len(differing))
    assert differing == []


@pytest.mark.parametrize("parts", [2, 3])
def test_a_partition_reads_exactly_its_records_events_in_order(
        history: tuple[Any, list[str]], parts: int) -> None:
    """Read batch by batch (window by window of positions underneath, some holding none of
    the partition's events), each partition gives its records' events up to the bound, in
    order, each once; together, every event."""
    from service.projector import PartitionSource
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
