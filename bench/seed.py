"""Fast, realistic seeding for the benchmarks: events decided by the real domain (every rule
runs), stamped with the metadata a command would give them, appended straight through the
``EventStore`` in batches of at most 500 events (group commit, no HTTP, no Ledger).

A *unit* is what one project brings to the store, about 50 events:

* a customer (registered, profile updated, interactions recorded);
* a project for that customer, proposed → submitted → reviewed → approved → lead appointed →
  plan (4 milestones, 8 tasks) submitted and approved → then task status changes and progress
  reports (``--tail`` events, 30 by default);
* two risks linked to the project, each identified and assessed twice;
* two cost actuals booked against the project on its department's budget (one budget per
  department and year, compiled → reviewed → approved → issued → in execution).

Departments: ``dept00`` … (one per 25 units, at most 40). Users: ``pm<n>`` proposes, the
department's manager ``mgr<d>`` reviews and appoints, ``lead<n>`` leads.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from domain.budget import Budget
from domain.customer import Customer
from domain.project import Project
from domain.risk import Risk
from domain.shared import Actor
from service.catalogue import CommandSpec, commands_of
from service.store import EventStore

YEAR = 2026
APPEND_BATCH = 500  # events per append (psycopg stalls on single statements of a few MB)
IN_FLIGHT = 4  # appends queued at once (the writer may group them)

LEADERSHIP = Actor("lena", "Lena", frozenset({"leadership"}), frozenset())
FINANCE = Actor("felix", "Felix", frozenset({"finance"}), frozenset())


def _spec(cls: type, name: str) -> CommandSpec:
    return next(s for s in commands_of(cls) if s.name == name)


class Commands:
    """The specs used by the seeder (looked up once)."""

    def __init__(self) -> None:
        self.specs = {(cls.__name__, s.name): s
                      for cls in (Project, Customer, Risk, Budget) for s in commands_of(cls)}

    def __call__(self, target: Any, actor: Actor, command: str, /, **body: Any) -> Any:
        cls = target if isinstance(target, type) else type(target)
        spec = self.specs[(cls.__name__, command)]
        return spec.call(target, actor, spec.body_model(**body))


@dataclass
class Seeded:
    events: int = 0
    projects: list[uuid.UUID] = field(default_factory=list)
    risks: int = 0
    customers: int = 0
    budgets: int = 0
    seconds: float = 0.0


def department_of(unit: int) -> str:
    return f"dept{(unit // 25) % 40:02d}"


class Seeder:
    """Generates units of events and appends them; ``run(total)`` seeds about ``total``."""

    def __init__(self, store: EventStore, *, tail: int = 30, seed: int = 7,
                 progress: Callable[[int], None] | None = None, pause: float = 0.0):
        self.store = store
        self.tail = tail
        self.random = random.Random(seed)
        self.cmd = Commands()
        self.progress = progress
        self.pause = pause  # seconds of rest after each 500,000 events (a shared machine)
        self.budgets: dict[str, Budget] = {}
        self.lines: dict[str, str] = {}
        self.result = Seeded()
        self._pending: list[Any] = []
        self._futures: list[Future[list[int]]] = []

    # -- appending ----------------------------------------------------------------------
    def _emit(self, record: Any, actor: Actor, command: str) -> None:
        events = record.collect_events()
        meta = {"schema": 1, "command": command, "actor": actor.as_dict(), "comment": None,
                "department": getattr(record, "department", None),
                "correlation_id": str(uuid.uuid4()), "causation_id": None,
                "request_id": str(uuid.uuid4()), "idempotency_key": None,
                "trace_id": None, "span_id": None}
        for event in events:
            object.__setattr__(event, "meta", meta)
        self._pending += events
        self.result.events += len(events)
        while len(self._pending) >= APPEND_BATCH:
            self._append(self._pending[:APPEND_BATCH])
            self._pending = self._pending[APPEND_BATCH:]

    def _append(self, events: list[Any]) -> None:
        self._futures.append(self.store.append(events))
        while len(self._futures) >= IN_FLIGHT:
            self._futures.pop(0).result(300)

    def flush(self) -> None:
        if self._pending:
            self._append(self._pending)
            self._pending = []
        for f in self._futures:
            f.result(300)
        self._futures = []

    # -- units --------------------------------------------------------------------------
    def _budget(self, department: str, manager: Actor) -> Budget:
        budget = self.budgets.get(department)
        if budget is not None:
            return budget
        c = self.cmd
        lines = [{"kind": "cost", "category": "materials", "name": "Project costs",
                  "amount": "900000000.00"},
                 {"kind": "expense", "category": "travel", "name": "Travel",
                  "amount": "120000.00"}]
        budget = c(Budget, manager, "compile", department=department, fiscal_year=YEAR,
                   lines=lines)
        self._emit(budget, manager, "budget.compile")
        c(budget, manager, "submit")
        self._emit(budget, manager, "budget.submit")
        c(budget, FINANCE, "pass_finance_review")
        self._emit(budget, FINANCE, "budget.pass_finance_review")
        c(budget, LEADERSHIP, "approve")
        self._emit(budget, LEADERSHIP, "budget.approve")
        c(budget, FINANCE, "issue")
        self._emit(budget, FINANCE, "budget.issue")
        c(budget, manager, "start_execution")
        self._emit(budget, manager, "budget.start_execution")
        self.budgets[department] = budget
        self.lines[department] = budget.lines[0]["id"]
        self.result.budgets += 1
        return budget

    def unit(self, n: int) -> None:
        c, rnd = self.cmd, self.random
        department = department_of(n)
        depts = frozenset({department})
        pm = Actor(f"pm{n}", f"PM {n}", frozenset({"member"}), depts)
        manager = Actor(f"mgr{department}", "Manager", frozenset({"dept_manager"}), depts)
        lead = Actor(f"lead{n}", f"Lead {n}", frozenset({"member"}), depts)
        budget = self._budget(department, manager)

        made = c(Customer, pm, "register", department=department, kind="company",
                 name=f"Customer {n}", credit_code=f"91{n:016d}", industry="manufacturing",
                 segment="key account")
        customer, claim = made if isinstance(made, tuple) else (made, None)
        self._emit(customer, pm, "customer.register")
        if claim is not None:  # the credit code's uniqueness claim
            self._emit(claim, pm, "customer.register")
        c(customer, pm, "update_profile", needs=f"needs of customer {n}")
        self._emit(customer, pm, "customer.update_profile")
        for k in range(2):
            c(customer, pm, "record_interaction", date=date(YEAR, 1 + k, 10), channel="phone",
              summary=f"call {k}")
            self._emit(customer, pm, "customer.record_interaction")
        self.result.customers += 1

        p = c(Project, pm, "propose", department=department, name=f"Project {n:07d}",
              background="why", objectives="what", scope="how",
              requested_budget=f"{rnd.randint(10, 900) * 1000}.00", expected_revenue="0.00",
              start_date=date(YEAR, 1, 5), end_date=date(YEAR, 12, 20),
              customer_id=customer.id)
        self._emit(p, pm, "project.propose")
        for actor, name in ((pm, "submit"), (manager, "pass_preliminary_review"),
                            (LEADERSHIP, "approve")):
            c(p, actor, name)
            self._emit(p, actor, f"project.{name}")
        c(p, manager, "appoint_lead", user_id=lead.user_id, name=lead.name)
        self._emit(p, manager, "project.appoint_lead")
        milestones = [{"name": f"M{k}", "due_date": date(YEAR, 3 * k + 3, 28),
                       "budget": "1000.00"} for k in range(4)]
        tasks = [{"name": f"Task {k}", "owner": lead.user_id, "start_date": date(YEAR, 1, 10),
                  "due_date": date(YEAR, 3 * (k % 4) + 3, 20), "milestone": f"M{k % 4}"}
                 for k in range(8)]
        c(p, lead, "submit_plan", milestones=milestones, tasks=tasks,
          resources=[{"milestone": "M0", "people": [lead.user_id], "amount": "1000.00"}])
        self._emit(p, lead, "project.submit_plan")
        c(p, manager, "approve_plan")
        self._emit(p, manager, "project.approve_plan")
        task_ids = [t["id"] for t in p.tasks]
        status = dict.fromkeys(task_ids, "todo")
        for k in range(self.tail):
            if k % 10 == 9:
                c(p, lead, "report_progress", period=f"week {k // 10}",
                  percent_complete=min(99, k), work_done="steady progress")
                self._emit(p, lead, "project.report_progress")
                continue
            task = rnd.choice(task_ids)
            status[task] = "doing" if status[task] != "doing" else "todo"
            c(p, lead, "update_task_status", task_id=task, status=status[task])
            self._emit(p, lead, "project.update_task_status")
        self.result.projects.append(p.id)

        for k in range(2):
            risk = c(Risk, pm, "identify", title=f"Risk {k} of project {n}",
                     description="supplier may be late", category="operational",
                     scope="project", department=department, owner=pm.user_id,
                     linked_id=p.id)
            self._emit(risk, pm, "risk.identify")
            for likelihood in (2, 3 + k):
                c(risk, pm, "assess", likelihood=likelihood, impact=3 + k, rationale="review")
                self._emit(risk, pm, "risk.assess")
            self.result.risks += 1

        for k in range(2):
            c(budget, pm, "record_actual", line_id=self.lines[department],
              amount=f"{rnd.randint(1, 500) * 10}.00", date=date(YEAR, 2 + k, 15),
              reference=f"INV-{n}-{k}", project_id=p.id)
            self._emit(budget, pm, "budget.record_actual")

    def units(self) -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    def run(self, total: int) -> Seeded:
        """Seeds units until about ``total`` events (whole units) are stored."""
        started = time.perf_counter()
        last = 0
        for n in self.units():
            if self.result.events >= total:
                break
            self.unit(n)
            if self.result.events - last >= 100_000:
                if self.pause and self.result.events // 500_000 > last // 500_000:
                    self.flush()
                    time.sleep(self.pause)
                last = self.result.events
                if self.progress is not None:
                    self.progress(last)
        self.flush()
        self.result.seconds = time.perf_counter() - started
        return self.result


def seed(store: EventStore, total: int, *, tail: int = 30, quiet: bool = False,
         pause: float = 0.0) -> Seeded:
    def show(n: int) -> None:
        if not quiet:
            print(f"  … {n:,} events", flush=True)

    result = Seeder(store, tail=tail, progress=show, pause=pause).run(total)
    if not quiet:
        print(f"seeded {result.events:,} events ({len(result.projects):,} projects, "
              f"{result.risks:,} risks, {result.customers:,} customers, {result.budgets} "
              f"budgets) in {result.seconds:.1f} s = {result.events / result.seconds:,.0f} "
              "events/s", flush=True)
    return result


def seed_amount(value: str) -> int:
    """'100k', '1M', '5000000' → an int."""
    text = value.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(Decimal(text[:-1] if scale > 1 else text) * scale)
