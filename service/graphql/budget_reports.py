"""Reports across budgets (SPEC §5): budget vs actual grouped by department, line, category
and/or month, and the company consolidation of a fiscal year.

Both read the budgets' current lines and their actual sums per (budget, line, month) — two
statements — and add them up in exact decimals in one function, so every report agrees to the
cent. As of a past moment (``asOf``) the same two statements run over the budget tables
rebuilt, in temporary tables, from the budgets as they stood then (``fetch_as_of``).
Figures read as in ``budgets.py``: variance = actual − budget, percentages of the budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from domain.budget import LINE_KINDS
from projections.budgets import BudgetsTable
from service.graphql.audit import fetch_as_of
from service.graphql.budgets import ZERO, BudgetFigures, figures
from service.graphql.context import GraphQLContext, ReadError

APPROVED_STATUSES = ["approved", "issued", "in_execution", "closed"]
KIND_ORDER = {k: i for i, k in enumerate(LINE_KINDS)}


@strawberry.enum(description="What budget-vs-actual rows are grouped by; the line kind and the "
                             "currency always split rows (revenue is never added to spending, "
                             "nor CNY to USD).")
class BudgetDimension(Enum):
    DEPARTMENT = "department"
    LINE = "line"
    CATEGORY = "category"
    MONTH = "month"


@strawberry.type
class BudgetVsActualRow:
    """Budget against actual for one group; a field is null when not grouped by it."""

    fiscal_year: int
    currency: str
    kind: str
    department: str | None
    budget_id: UUID | None
    line_id: str | None
    line_name: str | None
    category: str | None
    month: int | None = strawberry.field(description="1–12 when grouped by month; null on the "
                                                     "row of budget without a monthly plan.")
    unallocated: bool = strawberry.field(description="Grouped by month: the budget of lines "
                                                     "without a monthly allocation.")
    budget: Decimal
    actual: Decimal
    remaining: Decimal
    variance: Decimal
    variance_percent: Decimal | None
    utilisation_percent: Decimal | None


async def _facts(info: Info[GraphQLContext, None], fiscal_year: int, department: str | None,
                 statuses: list[str] | None, currency: str | None = None,
                 as_of: datetime | None = None,
                 ) -> tuple[list[dict[str, Any]], dict[tuple[UUID, str, int], Decimal]]:
    """The budgets' current lines, and their actual sums per (budget, line, month); as of a
    moment, the same statements over the budget tables rebuilt as of then."""
    where, params = " WHERE b.fiscal_year = %s", list[Any]([fiscal_year])
    if department is not None:
        where += " AND b.department = %s"
        params.append(department)
    if statuses:
        where += " AND b.status = ANY(%s)"
        params.append(statuses)
    if currency is not None:
        where += " AND b.currency = %s"
        params.append(currency)
    lines, sums = await fetch_as_of(info, as_of, [BudgetsTable()], [
        ("SELECT b.id AS budget_id, b.department, b.currency, b.status, b.version_no,"
         " l.line_id, l.seq, l.kind, l.category, l.name, l.amount, l.monthly"
         f" FROM budgets b JOIN budget_lines l ON l.budget_id = b.id{where}"
         " ORDER BY b.department, l.seq", params),
        ("SELECT a.budget_id, a.line_id, a.month, sum(a.amount) AS actual"
         f" FROM budget_actuals a JOIN budgets b ON b.id = a.budget_id{where}"
         " GROUP BY a.budget_id, a.line_id, a.month", params)])
    return lines, {(r["budget_id"], r["line_id"], r["month"]): r["actual"] for r in sums}


def group_budget_vs_actual(fiscal_year: int, lines: list[dict[str, Any]],
                           actuals: dict[tuple[UUID, str, int], Decimal],
                           dims: set[BudgetDimension]) -> list[BudgetVsActualRow]:
    """Sums budget and actual per group in exact decimals (one reading for every view)."""
    by_line = BudgetDimension.LINE in dims
    by_dept = by_line or BudgetDimension.DEPARTMENT in dims
    by_cat = by_line or BudgetDimension.CATEGORY in dims
    by_month = BudgetDimension.MONTH in dims
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(line: dict[str, Any], month: int | None, budget: Decimal, actual: Decimal) -> None:
        key = (line["currency"], line["department"] if by_dept else "",
               KIND_ORDER[line["kind"]], line["category"] if by_cat and not by_line else "",
               (line["seq"], str(line["budget_id"])) if by_line else (0, ""),
               (month is None, month or 0))  # months in order, the unallocated row last
        g = groups.setdefault(key, {
            "currency": line["currency"], "kind": line["kind"],
            "department": line["department"] if by_dept else None,
            "budget_id": line["budget_id"] if by_line else None,
            "line_id": line["line_id"] if by_line else None,
            "line_name": line["name"] if by_line else None,
            "category": line["category"] if by_cat else None,
            "month": month, "unallocated": by_month and month is None,
            "budget": ZERO, "actual": ZERO})
        g["budget"] += budget
        g["actual"] += actual

    for line in lines:
        spent = {m: actuals.get((line["budget_id"], line["line_id"], m), ZERO)
                 for m in range(1, 13)}
        if not by_month:
            add(line, None, line["amount"], sum(spent.values(), ZERO))
            continue
        monthly = line["monthly"]
        for m in range(1, 13):
            add(line, m, monthly[m - 1] if monthly else ZERO, spent[m])
        if not monthly:
            add(line, None, line["amount"], ZERO)
    rows = []
    for _key, g in sorted(groups.items(), key=lambda kv: kv[0]):
        f = figures(g.pop("budget"), g.pop("actual"))
        rows.append(BudgetVsActualRow(fiscal_year=fiscal_year, **g, budget=f.budget,
                                      actual=f.actual, remaining=f.remaining,
                                      variance=f.variance,
                                      variance_percent=f.variance_percent,
                                      utilisation_percent=f.utilisation_percent))
    return rows


async def budget_vs_actual(info: Info[GraphQLContext, None], fiscal_year: int,
                           department: str | None, group_by: list[BudgetDimension],
                           status: list[str] | None, wait_for_position: int | None,
                           as_of: datetime | None = None) -> list[BudgetVsActualRow]:
    ctx = info.context
    ctx.require_actor()
    if not group_by:
        raise ReadError("'groupBy' needs at least one of DEPARTMENT, LINE, CATEGORY, MONTH",
                        "BAD_ARGUMENT")
    await ctx.wait_for_position(None if as_of else wait_for_position)
    lines, actuals = await _facts(info, fiscal_year, department, status, as_of=as_of)
    return group_budget_vs_actual(fiscal_year, lines, actuals, set(group_by))


@strawberry.type
class ConsolidatedBudget:
    """One department's budget in the consolidation."""

    department: str
    budget_id: UUID
    status: str
    version_no: int
    revenue: BudgetFigures
    cost: BudgetFigures
    expense: BudgetFigures
    spending: BudgetFigures = strawberry.field(description="cost + expense")
    net_budget: Decimal = strawberry.field(description="revenue budget − spending budget")
    net_actual: Decimal = strawberry.field(description="revenue actual − spending actual")


@strawberry.type
class BudgetRef:
    department: str
    budget_id: UUID
    status: str


@strawberry.type
class BudgetConsolidation:
    """The company's budgets of one fiscal year and currency, added up (SPEC §5)."""

    fiscal_year: int
    currency: str
    statuses: list[str] = strawberry.field(description="The budget statuses included.")
    departments: list[ConsolidatedBudget]
    excluded: list[BudgetRef] = strawberry.field(description="Budgets of the year and currency "
                                                             "left out by their status.")
    revenue: BudgetFigures
    cost: BudgetFigures
    expense: BudgetFigures
    spending: BudgetFigures = strawberry.field(description="cost + expense")
    net_budget: Decimal
    net_actual: Decimal


def _consolidated(rows: Iterable[BudgetVsActualRow]) -> dict[str, Any]:
    per_kind = {k: (ZERO, ZERO) for k in LINE_KINDS}
    for r in rows:
        b, a = per_kind[r.kind]
        per_kind[r.kind] = (b + r.budget, a + r.actual)
    spend_b = per_kind["cost"][0] + per_kind["expense"][0]
    spend_a = per_kind["cost"][1] + per_kind["expense"][1]
    return {"revenue": figures(*per_kind["revenue"]), "cost": figures(*per_kind["cost"]),
            "expense": figures(*per_kind["expense"]), "spending": figures(spend_b, spend_a),
            "net_budget": per_kind["revenue"][0] - spend_b,
            "net_actual": per_kind["revenue"][1] - spend_a}


async def budget_consolidation(info: Info[GraphQLContext, None], fiscal_year: int,
                               currency: str, statuses: list[str] | None,
                               wait_for_position: int | None,
                               as_of: datetime | None = None) -> BudgetConsolidation:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(None if as_of else wait_for_position)
    included = statuses or APPROVED_STATUSES
    lines, actuals = await _facts(info, fiscal_year, None, None, currency, as_of)
    rows = group_budget_vs_actual(fiscal_year, [r for r in lines if r["status"] in included],
                                  actuals, {BudgetDimension.LINE})
    budgets: dict[UUID, dict[str, Any]] = {}
    for r in lines:
        budgets.setdefault(r["budget_id"], r)
    departments = []
    for bid, b in budgets.items():
        if b["status"] in included:
            departments.append(ConsolidatedBudget(
                department=b["department"], budget_id=bid, status=b["status"],
                version_no=b["version_no"],
                **_consolidated(r for r in rows if r.budget_id == bid)))
    excluded = [BudgetRef(department=b["department"], budget_id=bid, status=b["status"])
                for bid, b in budgets.items() if b["status"] not in included]
    return BudgetConsolidation(fiscal_year=fiscal_year, currency=currency,
                               statuses=list(included), departments=departments,
                               excluded=excluded, **_consolidated(rows))
