"""Operations indicators (運營指標, SPEC §6) per department and month, with analysts' targets.

Read-only views over the other records: service requests (satisfaction, complaint rate,
response and handling time), projects (counts by state, on-time milestones), budgets
(utilisation) and risks (open high/critical). The customer and risk parts are read from the
records' JSON views in ``record_state`` — present for every record type from its first event —
so an indicator grows with its part: until a department has such records its value is null
with a sample size of 0. Months are calendar months in UTC.

Readings (also in each indicator's ``description``):
* service requests read exactly as the customer KPIs (``customerKpis``) read them, so the two
  views agree: a request belongs to its intake department; satisfaction averages the scores
  recorded in the month; the complaint rate is the complaint processes opened in the month
  (first ones, from an unsatisfied customer — not the intake category ``complaint``) per 100
  requests opened in the month; response and handling hours are the medians (continuous, like
  ``percentile_cont(0.5)``) of the requests first answered / first resolved in the month,
  from their opening;
* projects by state count the department's projects created by the month's end, in their
  current state; the on-time rate takes the milestones due in the month of projects not
  cancelled or rejected — completed on or before the due date is on time, completed later or
  still open after it is late, still open before it is not counted yet;
* budget utilisation is the cost and expense actuals dated up to the month's end against the
  year's cost and expense budget (current version);
* open high/critical risks are those at level high or critical (their current level)
  identified by the month's end and not closed at it.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.indicators import INDICATORS, off_target
from domain.project import ProjectStatus
from service.graphql.budgets import BudgetFigures, dec, figures
from service.graphql.context import GraphQLContext, ReadError

PLACES = Decimal("0.01")
HIGH_LEVELS = ("high", "critical")
NOT_COUNTED_PROJECTS = (ProjectStatus.CANCELLED.value, ProjectStatus.REJECTED.value)


@strawberry.type
class IndicatorTarget:
    """An analyst's target for one indicator of one department (record ``indicator_target``)."""

    record_id: UUID
    department: str
    indicator: str
    unit: str
    target: Decimal
    direction: str = strawberry.field(description="higher or lower is better.")
    status: str
    set_by: str
    version: int


@strawberry.type
class IndicatorValue:
    name: str
    unit: str
    description: str
    value: Decimal | None = strawberry.field(description="Null when nothing was there to "
                                                         "measure.")
    sample_size: int = strawberry.field(description="How many items the value is computed "
                                                    "from.")
    direction: str = strawberry.field(description="Which way is better: the target's, or the "
                                                  "indicator's default.")
    target: Decimal | None
    off_target: bool | None = strawberry.field(description="True when the value misses its "
                                                           "target; null without a value or "
                                                           "target.")


@strawberry.type
class StateCount:
    state: str
    count: int


@strawberry.type
class OperationsIndicators:
    department: str
    month: str
    first_day: date
    last_day: date
    indicators: list[IndicatorValue]
    projects_by_state: list[StateCount]
    budget: BudgetFigures | None = strawberry.field(
        description="The year's cost and expense budget against its actuals to the month's "
                    "end; null without a budget for the year.")

    @strawberry.field(description="The names of the indicators off target.")
    def off_target(self) -> list[str]:
        return [i.name for i in self.indicators if i.off_target]


def parse_month(month: str) -> tuple[datetime, datetime]:
    """'2026-03' → [2026-03-01, 2026-04-01) in UTC."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=UTC)
    except (ValueError, TypeError):
        raise ReadError(f"'month' must be YYYY-MM, not '{month}'", "BAD_ARGUMENT") from None
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _average(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(PLACES, rounding=ROUND_HALF_UP)


def _percent(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / whole).quantize(PLACES, rounding=ROUND_HALF_UP)


def _median(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    ordered, middle = sorted(values), len(values) // 2
    value = ordered[middle] if len(values) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return value.quantize(PLACES, rounding=ROUND_HALF_UP)


def _hours(start: datetime, end: datetime) -> Decimal:
    return Decimal((end - start) // timedelta(microseconds=1)) / 3_600_000_000


def service_indicators(docs: Iterable[dict[str, Any]], start: datetime, end: datetime,
                       ) -> dict[str, tuple[Decimal | None, int]]:
    """satisfaction, complaint_rate, first_response_hours, handling_hours: (value, sample)."""
    def within(at: datetime | None) -> bool:
        return at is not None and start <= at < end

    scores: list[Decimal] = []
    opened = complaints = 0
    response: list[Decimal] = []
    handling: list[Decimal] = []
    for doc in docs:
        opened_at = _at(doc.get("opened_at") or doc.get("created_on"))
        assert opened_at is not None
        scores += [Decimal(s["score"]) for s in doc.get("satisfaction_scores") or []
                   if within(_at(s.get("at")))]
        opened += within(opened_at)
        first_complaint = (doc.get("complaints") or [{}])[0]
        complaints += within(_at(first_complaint.get("opened_at")))
        first = _at(doc.get("first_response_at"))
        if first is not None and within(first):
            response.append(_hours(opened_at, first))
        resolved = _at(doc.get("resolved_at"))
        if resolved is not None and within(resolved):
            handling.append(_hours(opened_at, resolved))
    return {"satisfaction": (_average(scores), len(scores)),
            "complaint_rate": (_percent(complaints, opened), opened),
            "first_response_hours": (_median(response), len(response)),
            "handling_hours": (_median(handling), len(handling))}


def project_indicators(docs: Iterable[dict[str, Any]], start: datetime, end: datetime,
                       today: date) -> tuple[Counter[str], tuple[Decimal | None, int]]:
    """Projects by (current) state, and the on-time milestone rate of the month."""
    states: Counter[str] = Counter()
    on_time = late = 0
    first, last = start.date(), (end - timedelta(days=1)).date()
    for doc in docs:
        states[doc["status"]] += 1
        if doc["status"] in NOT_COUNTED_PROJECTS:
            continue
        for m in doc.get("milestones") or []:
            due = date.fromisoformat(m["due_date"])
            if not first <= due <= last:
                continue
            done = date.fromisoformat(m["completed_on"]) if m.get("completed_on") else None
            if done is not None and done <= due:
                on_time += 1
            elif done is not None or due < today:
                late += 1
    return states, (_percent(on_time, on_time + late), on_time + late)


def open_high_risks(docs: Iterable[dict[str, Any]], end: datetime) -> tuple[Decimal, int]:
    count = 0
    for doc in docs:
        if doc.get("level") not in HIGH_LEVELS:
            continue
        closed_at = _at(doc.get("closed_at"))
        if doc.get("status") == "closed" and closed_at is not None and closed_at < end:
            continue
        count += 1
    return Decimal(count), count


async def operations_indicators(info: Info[GraphQLContext, None], department: str, month: str,
                                wait_for_position: int | None) -> OperationsIndicators:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    start, end = parse_month(month)
    # Every record the month can involve, in one statement: anything that happened in the
    # month implies the record existed before its end and was last updated after its start.
    rows = await ctx.fetch(
        "SELECT record_type, doc FROM record_state WHERE department = %s"
        " AND created_at < %s AND (record_type IN ('project', 'risk', 'indicator_target')"
        " OR (record_type = 'service_request' AND updated_at >= %s))",
        [department, end, start])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(r["record_type"], []).append(r["doc"])
    budget_rows = await ctx.fetch(
        "SELECT b.id, (SELECT coalesce(sum(l.amount), 0.00) FROM budget_lines l"
        "   WHERE l.budget_id = b.id AND l.kind <> 'revenue') AS budget,"
        " (SELECT coalesce(sum(a.amount), 0.00) FROM budget_actuals a"
        "   WHERE a.budget_id = b.id AND a.kind <> 'revenue' AND a.date < %s) AS actual"
        " FROM budgets b WHERE b.department = %s AND b.fiscal_year = %s",
        [end.date(), department, start.year])

    values: dict[str, tuple[Decimal | None, int]] = {}
    values.update(service_indicators(by_type.get("service_request", []), start, end))
    states, on_time = project_indicators(by_type.get("project", []), start, end,
                                         datetime.now(UTC).date())
    values["on_time_milestone_rate"] = on_time
    budget = None
    if budget_rows:
        budget = figures(dec(budget_rows[0]["budget"]), dec(budget_rows[0]["actual"]))
        values["budget_utilisation"] = (budget.utilisation_percent, 1)
    else:
        values["budget_utilisation"] = (None, 0)
    values["open_high_risks"] = open_high_risks(by_type.get("risk", []), end)

    targets = {d["indicator"]: d for d in by_type.get("indicator_target", [])
               if d.get("status") == "active"}
    indicators = []
    for name, spec in INDICATORS.items():
        value, sample = values[name]
        t = targets.get(name)
        target = dec(t["target"]) if t else None
        direction = t["direction"] if t else spec.better
        indicators.append(IndicatorValue(
            name=name, unit=spec.unit, description=spec.description, value=value,
            sample_size=sample, direction=direction, target=target,
            off_target=off_target(value, target, direction)))
    last_day = date(start.year, start.month, calendar.monthrange(start.year, start.month)[1])
    return OperationsIndicators(
        department=department, month=f"{start.year:04d}-{start.month:02d}",
        first_day=start.date(), last_day=last_day, indicators=indicators,
        projects_by_state=[StateCount(state=s.value, count=states[s.value])
                           for s in ProjectStatus if states[s.value]],
        budget=budget)


async def indicator_targets(info: Info[GraphQLContext, None], department: str | None,
                            include_withdrawn: bool, wait_for_position: int | None,
                            ) -> list[IndicatorTarget]:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    sql = "SELECT doc FROM record_state WHERE record_type = 'indicator_target'"
    params: list[Any] = []
    if department is not None:
        sql += " AND department = %s"
        params.append(department)
    if not include_withdrawn:
        sql += " AND status = 'active'"
    rows = await ctx.fetch(sql + " ORDER BY department, doc->>'indicator'", params)
    return [IndicatorTarget(record_id=UUID(d["id"]), department=d["department"],
                            indicator=d["indicator"], unit=d["unit"], target=dec(d["target"]),
                            direction=d["direction"], status=d["status"], set_by=d["set_by"],
                            version=d["version"])
            for d in (r["doc"] for r in rows)]
