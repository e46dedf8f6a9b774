"""Rebuilding projections from the event store, in one process or several (``opsledger rebuild
--jobs N``).

A rebuild is CPU-bound in Python (decoding events, evolving the records, encoding their state
and views), one core's worth however many the machine has. With ``jobs`` > 1 the records are
split into that many partitions by record id (``service.projector.PartitionSource``): this
process rebuilds the first and a fresh process (``python -m service.rebuild``) each of the
others, all up to the head of the store when the rebuild started, each with tracking rows of
its own (``ProjectionRunner.catch_up_part``). Every projection's rows derive from the events of
one record, so each partition's rows are those a single process writes for its records, and
each process reads and decodes only its own partition's events (split by projection instead,
every process would decode every event: a quarter of the work, measured). Once all are done,
``catch_up`` replaces the partitions' tracking rows by the projections' own (in one
transaction) and applies whatever was committed meanwhile.

A partition that fails or is killed keeps its progress (its rows and tracking position commit
together): ``rebuild --resume`` (in as many processes as there were partitions) or a worker
(in its own thread, one partition after the other) finishes the rebuild from there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from projections.engine import part_of

if TYPE_CHECKING:  # a partition's process imports the projector alone (service.projector)
    from service.bootstrap import Container

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Partition:
    """A process that rebuilt one partition: its exit code, peak RSS (MB) and CPU (s)."""

    part: int
    returncode: int
    peak_mb: float
    cpu_seconds: float


@dataclass
class Rebuilt:
    position: int  # every projection is at this position now
    parts: int  # 1: in this process alone
    processes: list[Partition] = field(default_factory=list)  # the other processes


class PartitionFailed(RuntimeError):
    pass


def rebuild(container: Container, names: Sequence[str] | None = None, *, jobs: int = 1,
            resume: bool = False, progress: Callable[[int], None] | None = None) -> Rebuilt:
    """Empties the named projections (all by default) and rebuilds them, in ``jobs``
    processes; with ``resume``, continues an interrupted rebuild instead (in as many processes
    as it had partitions), or catches up. The caller holds the projector's leader lock."""
    runner = container.runner
    head = container.store.max_position()
    if resume:
        parts, names = _unfinished(container, names)
    else:
        parts = max(1, jobs)
        runner.reset(names, parts=parts)
    processes: list[Partition] = []
    if parts > 1:
        processes = _in_partitions(container, parts, head, names, progress)
    runner.catch_up(progress)  # merges the partitions; applies what was committed meanwhile
    return Rebuilt(runner.position, parts, processes)


def _unfinished(container: Container, names: Sequence[str] | None,
                ) -> tuple[int, list[str] | None]:
    """How many partitions the interrupted rebuild of the named projections had (1: none
    left), and the projections it was rebuilding."""
    rows = [part_of(name) for name, _ in container.runner.partition_rows(names)]
    parts = {parts for _, _, parts in rows}
    if len(parts) != 1:  # none left (or, not expected: reset starts each rebuild afresh)
        return 1, list(names) if names else None
    return parts.pop(), sorted({base for base, _, _ in rows})


def _in_partitions(container: Container, parts: int, upto: int, names: Sequence[str] | None,
                   progress: Callable[[int], None] | None) -> list[Partition]:
    # The partitions' processes see the same store, with the settings that shape the work.
    settings = container.settings
    env = {**os.environ, "DATABASE_URL": container.database.url,
           "OPSLEDGER_REBUILD_SETTINGS": json.dumps({
               "rebuild_batch_size": settings.rebuild_batch_size,
               "budget_categories": list(settings.budget_categories)})}
    children = [subprocess.Popen(
        [sys.executable, "-m", "service.rebuild", str(part), str(parts), str(upto),
         *(names or [])], env=env, cwd=ROOT) for part in range(1, parts)]
    try:
        container.runner.catch_up_part(0, parts, upto, names, progress)
    except BaseException:
        for child in children:
            child.terminate()  # their progress is kept: a resume goes on from it
        raise
    finally:
        done = [_wait(part, child) for part, child in enumerate(children, start=1)]
    failed = [p for p in done if p.returncode != 0]
    if failed:
        raise PartitionFailed(
            f"partition(s) {', '.join(f'{p.part}/{parts}' for p in failed)} failed (exit "
            f"{', '.join(str(p.returncode) for p in failed)}); what they applied is kept: "
            "`rebuild --resume` (or a worker) finishes the rebuild")
    return done


def _wait(part: int, child: subprocess.Popen[bytes]) -> Partition:
    """Waits for a child process; its exit code and resource usage (from the kernel: its peak
    RSS is known only once it has exited)."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return Partition(part, child.returncode, usage.ru_maxrss / 1024,
                     usage.ru_utime + usage.ru_stime)


def main(argv: Sequence[str]) -> int:
    """A partition's process: ``python -m service.rebuild PART PARTS UPTO [PROJECTION …]``."""
    from domain.budget import configure_categories
    from service import database as db
    from service.config import Settings
    from service.projector import make_runner
    from service.store import EventStore

    part, parts, upto = (int(a) for a in argv[:3])
    names = list(argv[3:]) or None
    settings = Settings(**json.loads(os.environ.get("OPSLEDGER_REBUILD_SETTINGS", "{}")))
    configure_categories(settings.budget_categories)
    database = db.resolve(settings.database_url, settings.data_dir)
    store = EventStore(database, pool_size=2, snapshot_interval=settings.snapshot_interval,
                       cache_size=settings.aggregate_cache_size, create_schema=False)
    try:
        make_runner(settings, database, store).catch_up_part(part, parts, upto, names)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
