"""Runs the demo storylines through the Ledger: real commands, real actors, reproducible.

Reproducible by seed: every storyline (one record's life) draws its choices and the ids the
domain makes (records, tasks, reviews …) from its own random stream seeded by ``seed`` and the
storyline's name, so the same seed and year give the same records, ids and event payloads on
any database and whatever the thread interleaving. Only clock readings differ between runs
(each event's timestamp and the ``at`` times some events record): the events really happen at
seeding time; business dates (project periods, actual dates, meeting dates …) come from the
seeded calendar of ``year``.

Storylines run in a thread pool, in phases (customers; then projects and service requests; then
risks, budgets and targets), so commands from many storylines share group commits.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid5

from domain.shared import Actor, Record
from service.application import CommandContext, Ledger
from service.catalogue import CommandSpec, commands_of

DEMO_NAMESPACE = UUID("5d6c1d2e-8f0b-4c7a-9e51-0b7f3a2c9d44")


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    roles: tuple[str, ...]
    departments: tuple[str, ...] = ("ops",)

    @property
    def actor(self) -> Actor:
        return Actor(self.user_id, self.name, frozenset(self.roles), frozenset(self.departments))


def _people() -> dict[str, Person]:
    people = [
        Person("wang.min", "王敏", ("dept_manager",)),  # 部門經理
        Person("li.qiang", "李強", ("deputy_manager",)),  # 副經理
        Person("zhang.wei", "張偉", ("member",)),
        Person("chen.jing", "陳靜", ("member",)),
        Person("liu.yang", "劉洋", ("member",)),
        Person("zhao.lei", "趙磊", ("member",)),
        Person("huang.tao", "黃濤", ("member",)),
        Person("zhou.li", "周麗", ("member",)),
        Person("sun.fang", "孫芳", ("customer_service",)),  # 客戶服務組
        Person("wu.xia", "吳霞", ("customer_service",)),
        Person("ma.jun", "馬駿", ("leadership",), ()),  # 公司領導
        Person("hu.bin", "胡斌", ("leadership",), ()),
        Person("guo.ting", "郭婷", ("finance",), ()),  # 財務部門
        Person("he.ming", "何明", ("finance",), ()),
        Person("lin.na", "林娜", ("analyst",), ()),  # 數據分析員
        Person("xu.hao", "徐浩", ("dept_manager",), ("tech",)),  # 技術部
        Person("song.yu", "宋宇", ("member",), ("tech",)),
        Person("tang.hui", "唐慧", ("member",), ("tech",)),
    ]
    return {p.user_id: p for p in people}


PEOPLE = _people()
MEMBERS = [p for p in PEOPLE.values() if p.roles == ("member",) and p.departments == ("ops",)]
MANAGERS = [PEOPLE["wang.min"], PEOPLE["li.qiang"]]
LEADERSHIP = [PEOPLE["ma.jun"], PEOPLE["hu.bin"]]
FINANCE = [PEOPLE["guo.ting"], PEOPLE["he.ming"]]
AGENTS = [PEOPLE["sun.fang"], PEOPLE["wu.xia"]]


# -- reproducible ids ---------------------------------------------------------------------------

_ids = threading.local()


def _uuid4() -> UUID:
    rng: random.Random | None = getattr(_ids, "rng", None)
    if rng is None:  # a thread outside the seeding (projector, writer): real random ids
        return uuid.uuid4()
    return UUID(int=rng.getrandbits(128), version=4)


@contextmanager
def _seeded_ids() -> Iterator[None]:
    """While seeding, the domain's ``uuid4`` draws from the current storyline's stream.

    The domain rightly makes its ids with ``uuid4`` (module-level imports in ``domain.*`` and
    the library's ``Aggregate.create_id``); to make a seed reproducible those names are pointed
    at :func:`_uuid4` for the duration of the run, which falls back to real random ids in every
    thread that is not running a storyline.
    """
    import eventsourcing.domain

    modules = [m for name, m in list(sys.modules.items())
               if name == "eventsourcing.domain" or name.startswith("domain.")]
    patched = [m for m in modules if getattr(m, "uuid4", None) is uuid.uuid4]
    for module in patched:
        module.uuid4 = _uuid4  # type: ignore[attr-defined]
    assert eventsourcing.domain.uuid4 is _uuid4
    try:
        yield
    finally:
        for module in patched:
            module.uuid4 = uuid.uuid4  # type: ignore[attr-defined]


# -- storylines ---------------------------------------------------------------------------------

class Story:
    """One record's life, told in one thread with its own random stream."""

    def __init__(self, seeder: Seeder, key: str):
        self.seeder = seeder
        self.key = key
        self.rng = random.Random(f"{seeder.seed}:{key}")
        self._id_rng = random.Random(f"{seeder.seed}:{key}:ids")
        self.correlation_id = str(uuid5(DEMO_NAMESPACE, f"{seeder.seed}:{key}"))
        self._previous: str | None = None
        self.commands = 0

    @property
    def year(self) -> int:
        return self.seeder.year

    def do(self, who: Person, record_cls: type[Record], command: str,
           record_id: UUID | str | None = None, comment: str | None = None,
           **params: Any) -> dict[str, Any]:
        """Runs one command as ``who``, exactly as the REST endpoint would."""
        spec = self.seeder.spec(record_cls, command)
        body = spec.body_model.model_validate({**params, "comment": comment})
        request_id = str(uuid5(DEMO_NAMESPACE, f"{self.seeder.seed}:{self.key}:{self.commands}"))
        ctx = CommandContext(actor=who.actor, comment=comment,
                             correlation_id=self.correlation_id, causation_id=self._previous,
                             request_id=request_id)
        _ids.rng = self._id_rng
        try:
            rid = None if record_id is None else UUID(str(record_id))
            result = self.seeder.ledger.execute(spec, ctx, body, rid)
        finally:
            _ids.rng = None
        self._previous = request_id
        self.commands += 1
        self.seeder.tick()
        return result.body

    def load(self, record_cls: type[Record], record_id: UUID | str) -> Any:
        return self.seeder.ledger.load(record_cls, record_id)

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]


@dataclass
class SeedReport:
    seed: int
    year: int
    scale: int
    commands: int = 0
    events: int = 0
    seconds: float = 0.0
    records: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, status) → n
    events_by_type: Counter[str] = field(default_factory=Counter)

    @property
    def commands_per_second(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Seeder:
    """Seeds one department ("ops", escalations to "tech") at ``scale`` (1: ~60 records)."""

    def __init__(self, ledger: Ledger, *, seed: int = 1, year: int = 2026, scale: int = 1,
                 threads: int = 16, progress: Callable[[int, int], None] | None = None):
        if scale < 1:
            raise ValueError("scale is a whole number from 1")
        self.ledger = ledger
        self.seed = seed
        self.year = year
        self.scale = scale
        self.threads = threads
        self.progress = progress
        self._specs: dict[tuple[type[Record], str], CommandSpec] = {}
        self._done = 0
        self._total = 0
        self._lock = threading.Lock()

    def spec(self, record_cls: type[Record], command: str) -> CommandSpec:
        key = (record_cls, command)
        if key not in self._specs:
            found = {s.name: s for s in commands_of(record_cls)}
            self._specs[key] = found[command]
        return self._specs[key]

    def tick(self) -> None:
        with self._lock:
            self._done += 1
            done, total = self._done, self._total
        if self.progress is not None:
            self.progress(done, max(total, done))

    def run(self) -> SeedReport:
        from service.demo import stories

        report = SeedReport(self.seed, self.year, self.scale)
        head = self.ledger.store.max_position()
        started = time.perf_counter()
        self._total = stories.estimated_commands(self.scale)
        with _seeded_ids():
            # Phase 1: customers; 2: projects and service requests (which name customers);
            # 3: risks (linked to projects and customers), budgets (actuals name projects).
            customers = self._phase([(f"customer-{i}", stories.customer, i)
                                     for i in range(stories.customer_count(self.scale))])
            active = [c for c in customers if c.status in ("active", "dormant")]
            second: list[tuple[str, Any, Any]] = [
                (f"project-{i}", stories.project, (i, customers))
                for i in range(stories.project_count(self.scale))]
            second += [(f"request-{i}", stories.service_request, (i, active[i % len(active)]))
                       for i in range(stories.request_count(self.scale))]
            made = self._phase(second)
            projects = [m for m in made if isinstance(m, stories.ProjectMade)]
            # The budgets' long storylines first, so they do not run on alone at the end.
            made += self._phase([(f"budget-{name}", stories.budget, (name, projects))
                                 for name in stories.BUDGETS]
                                + [("targets", stories.targets, None)]
                                + [(f"risk-{i}", stories.risk, (i, projects, customers))
                                   for i in range(stories.risk_count(self.scale))])
        report.seconds = time.perf_counter() - started
        report.commands = self._done
        report.events = self.ledger.store.max_position() - head
        for m in [*customers, *made]:
            report.records[(m.record_type, m.status)] += 1
        rows = self.ledger.store.execute(
            "SELECT record_type, count(*) AS n FROM event_log WHERE position > %s"
            " GROUP BY record_type", (head,))
        report.events_by_type.update({row["record_type"]: int(row["n"]) for row in rows})
        return report

    def _phase(self, jobs: list[tuple[str, Callable[[Story, Any], Any], Any]]) -> list[Any]:
        def run(job: tuple[str, Callable[[Story, Any], Any], Any]) -> Any:
            key, story_fn, arg = job
            return story_fn(Story(self, key), arg)

        with ThreadPoolExecutor(self.threads, thread_name_prefix="seed") as pool:
            return list(pool.map(run, jobs))
