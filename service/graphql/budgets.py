"""GraphQL types and queries over the budget projections (SPEC §5).

Budgets with their lines' figures, actuals, versions, adjustments and warnings, and the cost
side of a project; the reports across budgets (budget vs actual, consolidation) are in
``budget_reports.py``. Money and percentages are ``Decimal`` (sent as strings), never
floats. Figures follow one reading everywhere:

* ``remaining = budget − actual``;
* ``variance = actual − budget`` (negative: under budget / below the revenue plan);
* ``variancePercent = variance × 100 / budget`` and ``utilisationPercent = actual × 100 /
  budget``, both rounded half-up to 2 places, null for a zero budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from domain.budget import LINE_KINDS, WARNING_THRESHOLDS, sum_by_line, utilisation
from projections.budgets import BudgetsTable
from service.graphql.audit import fetch_as_of
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.convert import from_doc
from service.graphql.nodes import Node, global_id
from service.graphql.pagination import Connection, Keyset, SortDirection, connection, page_size

ZERO = Decimal("0.00")


def dec(value: Any) -> Decimal:
    """A JSON view's amount (a decimal string) as a Decimal; never through float."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- Figures -------------------------------------------------------------------------------


@strawberry.type(description="Budget against actual: remaining = budget − actual; variance = "
                             "actual − budget; percentages of the budget, null for a zero "
                             "budget.")
class BudgetFigures:
    budget: Decimal
    actual: Decimal
    remaining: Decimal
    variance: Decimal
    variance_percent: Decimal | None
    utilisation_percent: Decimal | None


def figures(budget: Decimal, actual: Decimal) -> BudgetFigures:
    variance = actual - budget
    return BudgetFigures(budget=budget, actual=actual, remaining=budget - actual,
                         variance=variance, variance_percent=utilisation(variance, budget),
                         utilisation_percent=utilisation(actual, budget))


# --- The Budget type -----------------------------------------------------------------------


@strawberry.type
class BudgetLine:
    """A line of the current version with its figures (SPEC §5 "each line tracks budget,
    actual, remaining, utilisation %")."""

    id: str
    kind: str
    category: str
    name: str
    amount: Decimal
    monthly: list[Decimal] | None
    actual: Decimal
    remaining: Decimal
    variance: Decimal
    variance_percent: Decimal | None
    utilisation_percent: Decimal | None
    overspent: bool = strawberry.field(description="A cost/expense line whose actual exceeds "
                                                   "its budget.")
    warned_thresholds: list[int] = strawberry.field(
        description="Thresholds (80, 100) whose warning has fired and not re-armed.")


@strawberry.type
class BudgetActual:
    id: str
    line_id: str
    kind: str = strawberry.field(description="expense (cost and expense lines) or revenue.")
    amount: Decimal
    date: date
    reference: str
    project_id: UUID | None
    recorded_by: str
    overspent: bool = strawberry.field(description="Recorded past the line's budget (warn "
                                                   "policy, or a leadership override).")
    override_by: str | None
    override_reason: str | None
    recorded_at: datetime = strawberry.field(description="When it was recorded (its event).")
    position: int = strawberry.field(description="Its event's position in the global log.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BudgetActual:
        return cls(id=str(row["id"]), line_id=row["line_id"], kind=row["kind"],
                   amount=row["amount"], date=row["date"], reference=row["reference"],
                   project_id=row["project_id"], recorded_by=row["recorded_by"],
                   overspent=row["overspent"], override_by=row["override_by"],
                   override_reason=row["override_reason"], recorded_at=row["recorded_at"],
                   position=row["position"])


def _actuals_loader(ctx: GraphQLContext) -> DataLoader[UUID, list[dict[str, Any]]]:
    """The actuals of the budgets on a page, oldest first: one statement."""
    async def load(ids: list[UUID]) -> list[list[dict[str, Any]]]:
        rows = await ctx.fetch("SELECT * FROM budget_actuals WHERE budget_id = ANY(%s)"
                               " ORDER BY position", [list(ids)])
        found: dict[UUID, list[dict[str, Any]]] = {i: [] for i in ids}
        for row in rows:
            found[row["budget_id"]].append(row)
        return [found[i] for i in ids]
    return DataLoader(load_fn=load)


@strawberry.type
class BudgetVersionLine:
    id: str
    kind: str
    category: str
    name: str
    amount: Decimal
    monthly: list[Decimal] | None


@strawberry.type
class BudgetKindTotal:
    kind: str
    amount: Decimal


@strawberry.type
class BudgetVersion:
    """An approved version: 1 is the budget as leadership approved it, each later one an
    approved adjustment. Every version stays readable."""

    version_no: int
    adjustment_id: str | None
    approved_by: str
    lines: list[BudgetVersionLine]

    @strawberry.field(description="The version's total per line kind.")
    def totals(self) -> list[BudgetKindTotal]:
        return [BudgetKindTotal(kind=k, amount=a) for k, a in _kind_totals(
            (line.kind, line.amount) for line in self.lines).items()]


@strawberry.type
class BudgetApproval:
    stage: str
    by: str


@strawberry.type
class BudgetReturn:
    stage: str
    by: str
    reason: str


@strawberry.type
class BudgetLineChange:
    action: str = strawberry.field(description="add, change or remove.")
    line_id: str
    kind: str
    category: str
    name: str
    amount: Decimal
    monthly: list[Decimal] | None


@strawberry.type
class BudgetAdjustment:
    id: str
    status: str
    requested_by: str
    reason: str
    changes: list[BudgetLineChange]
    approvals: list[BudgetApproval]
    returns: list[BudgetReturn]
    version_no: int | None = strawberry.field(description="The budget version it became, once "
                                                          "approved.")


@strawberry.type
class BudgetWarning:
    """A line's utilisation crossed 80 % or 100 % (a BudgetWarningRaised event)."""

    id: strawberry.ID
    budget_id: UUID
    department: str
    fiscal_year: int
    currency: str
    line_id: str
    line_name: str | None
    threshold: int
    utilisation_percent: Decimal | None
    actual: Decimal
    amount: Decimal
    raised_at: datetime
    raised_by: str | None
    position: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BudgetWarning:
        return cls(id=strawberry.ID(str(row["id"])), budget_id=row["budget_id"],
                   department=row["department"], fiscal_year=row["fiscal_year"],
                   currency=row["currency"], line_id=row["line_id"],
                   line_name=row["line_name"], threshold=row["threshold"],
                   utilisation_percent=row["utilisation"], actual=row["actual"],
                   amount=row["amount"], raised_at=row["raised_at"],
                   raised_by=row["raised_by"], position=row["position"])


WARNING_SELECT = """
SELECT w.id, w.position, w.budget_id, b.department, b.fiscal_year, b.currency, w.line_id,
       l.name AS line_name, w.threshold, w.utilisation, w.actual, w.amount, w.raised_at,
       w.raised_by
  FROM budget_warnings w
  JOIN budgets b ON b.id = w.budget_id
  LEFT JOIN budget_lines l ON l.budget_id = w.budget_id AND l.line_id = w.line_id
"""


def _warnings_loader(ctx: GraphQLContext) -> DataLoader[UUID, list[BudgetWarning]]:
    async def load(ids: list[UUID]) -> list[list[BudgetWarning]]:
        rows = await ctx.fetch(WARNING_SELECT + " WHERE w.budget_id = ANY(%s)"
                               " ORDER BY w.position", [list(ids)])
        found: dict[UUID, list[BudgetWarning]] = {i: [] for i in ids}
        for row in rows:
            found[row["budget_id"]].append(BudgetWarning.from_row(row))
        return [found[i] for i in ids]
    return DataLoader(load_fn=load)


@strawberry.type
class BudgetKindFigures:
    kind: str
    figures: BudgetFigures


@strawberry.type
class Budget(Node):
    """A department's annual budget as its projection shows it (SPEC §5)."""

    record_id: UUID
    department: str
    fiscal_year: int
    currency: str
    overspend_policy: str
    status: str
    version_no: int = strawberry.field(description="The current budget version (1 = as "
                                                   "approved; +1 per approved adjustment).")
    compiled_by: str
    submitted_by: str | None
    approvals: list[BudgetApproval]
    returns: list[BudgetReturn]
    issued_by: str | None
    execution_started_by: str | None
    closed_by: str | None
    close_reason: str
    lines: list[BudgetLine]
    versions: list[BudgetVersion]
    adjustments: list[BudgetAdjustment]
    totals: list[BudgetKindFigures]
    version: int
    position: int
    created_on: datetime
    modified_on: datetime

    @strawberry.field(description="The actuals recorded against the budget, oldest first; "
                                  "optionally of one line, one project or one month.")
    async def actuals(self, info: Info[GraphQLContext, None], line_id: str | None = None,
                      project_id: UUID | None = None,
                      month: int | None = None) -> list[BudgetActual]:
        loader = info.context.loader("budget_actuals", _actuals_loader)
        rows: list[dict[str, Any]] = await loader.load(self.record_id)
        return [BudgetActual.from_row(r) for r in rows
                if (line_id is None or r["line_id"] == line_id)
                and (project_id is None or r["project_id"] == project_id)
                and (month is None or r["month"] == month)]

    @strawberry.field(description="Warnings raised on the budget's lines, oldest first.")
    async def warnings(self, info: Info[GraphQLContext, None]) -> list[BudgetWarning]:
        loader = info.context.loader("budget_warnings", _warnings_loader)
        result: list[BudgetWarning] = await loader.load(self.record_id)
        return result

    @strawberry.field(description="The lines as they stood in one version (1 = as approved).")
    def version_lines(self, version_no: int) -> list[BudgetVersionLine] | None:
        return next((v.lines for v in self.versions if v.version_no == version_no), None)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Budget:
        doc = row["doc"]
        spent = {line_id: dec(amount)
                 for line_id, amount in _line_actuals(doc).items()}
        warned = doc.get("warned_thresholds") or {}
        lines = []
        for line in doc["lines"]:
            amount, actual = dec(line["amount"]), spent.get(line["id"], ZERO)
            f = figures(amount, actual)
            lines.append(BudgetLine(
                id=line["id"], kind=line["kind"], category=line["category"], name=line["name"],
                amount=amount, monthly=_monthly(line.get("monthly")), actual=actual,
                remaining=f.remaining, variance=f.variance, variance_percent=f.variance_percent,
                utilisation_percent=f.utilisation_percent,
                overspent=line["kind"] != "revenue" and actual > amount,
                warned_thresholds=sorted(warned.get(line["id"], []))))
        totals = [BudgetKindFigures(kind=k, figures=figures(b, a))
                  for k, (b, a) in _kind_figures((line.kind, line.amount, line.actual)
                                                 for line in lines).items()]
        return from_doc(cls, doc, id=global_id("Budget", doc["id"]), record_id=UUID(doc["id"]),
                        lines=lines, totals=totals, position=row["position"])


def _line_actuals(doc: dict[str, Any]) -> dict[str, Any]:
    """Each line's actual in a budget's view. A view written before budgets kept totals (class
    version 2) lists the actuals instead, until the budget next changes: they are summed."""
    if "line_actuals" in doc:
        return dict(doc["line_actuals"])
    return sum_by_line({"line_id": a["line_id"], "amount": dec(a["amount"])}
                       for a in doc.get("actuals") or [])


def _monthly(values: list[Any] | None) -> list[Decimal] | None:
    return None if values is None else [dec(v) for v in values]


def _kind_totals(items: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    """Sum per line kind, of the kinds present, in the order revenue, cost, expense."""
    out: dict[str, Decimal] = {}
    for kind, amount in items:
        out[kind] = out.get(kind, ZERO) + amount
    return {k: out[k] for k in LINE_KINDS if k in out}


def _kind_figures(items: Iterable[tuple[str, Decimal, Decimal]],
                  ) -> dict[str, tuple[Decimal, Decimal]]:
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for kind, budget, actual in items:
        b, a = out.get(kind, (ZERO, ZERO))
        out[kind] = (b + budget, a + actual)
    return {k: out[k] for k in LINE_KINDS if k in out}


# --- budgets / budget -----------------------------------------------------------------------


@strawberry.enum
class BudgetOrderField(Enum):
    UPDATED_AT = "updated_at"
    DEPARTMENT = "department"
    FISCAL_YEAR = "fiscal_year"


ORDER_TYPES = {"updated_at": "timestamptz", "department": "text", "fiscal_year": "int"}


@strawberry.input
class BudgetOrder:
    field: BudgetOrderField = BudgetOrderField.UPDATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.input
class BudgetFilter:
    department: list[str] | None = None
    fiscal_year: int | None = None
    status: list[str] | None = None


def _where(f: BudgetFilter | None) -> tuple[str, list[Any]]:
    sql, params = " WHERE true", list[Any]()
    if f is None:
        return sql, params
    if f.department:
        sql += " AND department = ANY(%s)"
        params.append(f.department)
    if f.fiscal_year is not None:
        sql += " AND fiscal_year = %s"
        params.append(f.fiscal_year)
    if f.status:
        sql += " AND status = ANY(%s)"
        params.append(f.status)
    return sql, params


async def list_budgets(info: Info[GraphQLContext, None], first: int | None, after: str | None,
                       filter: BudgetFilter | None, order_by: BudgetOrder | None,
                       wait_for_position: int | None) -> Connection[Budget]:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    order = order_by or BudgetOrder()
    keyset = Keyset(order.field.value, ORDER_TYPES[order.field.value],
                    order.direction == SortDirection.DESC)
    size = page_size(first)
    where, params = _where(filter)
    after_sql, after_params = keyset.after_sql(after)
    rows = await ctx.fetch(
        f"SELECT id, {keyset.column}, position, doc FROM budgets{where}{after_sql}"
        f" ORDER BY {keyset.order_sql()} LIMIT %s", [*params, *after_params, size + 1])
    total = (await ctx.fetch(f"SELECT count(*) AS n FROM budgets{where}", params))[0]["n"]
    return connection(rows, size, keyset, total, Budget.from_row, bool(after))


async def budget_by_id(info: Info[GraphQLContext, None], record_id: UUID,
                       wait_for_position: int | None = None) -> Budget | None:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    rows = await ctx.fetch("SELECT position, doc FROM budgets WHERE id = %s", [record_id])
    return Budget.from_row(rows[0]) if rows else None


# --- budgetWarnings -------------------------------------------------------------------------


async def list_budget_warnings(info: Info[GraphQLContext, None], first: int | None,
                               after: str | None, fiscal_year: int | None,
                               department: str | None, budget_id: UUID | None,
                               threshold: int | None, wait_for_position: int | None,
                               as_of: datetime | None = None) -> Connection[BudgetWarning]:
    """Budget warnings; as of a moment, those raised by then, with their budgets and lines as
    they stood then (the same statements over the budget tables rebuilt as of then)."""
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(None if as_of else wait_for_position)
    if threshold is not None and threshold not in WARNING_THRESHOLDS:
        raise ReadError(f"'threshold' is one of {list(WARNING_THRESHOLDS)}", "BAD_ARGUMENT")
    where, params = " WHERE true", list[Any]()
    for column, value in (("fiscal_year", fiscal_year), ("department", department),
                          ("budget_id", budget_id), ("threshold", threshold),
                          ("raised_at", as_of)):
        if value is not None:
            where += f" AND {column} {'<=' if column == 'raised_at' else '='} %s"
            params.append(value)
    keyset = Keyset("position", "bigint", True)
    size = page_size(first)
    after_sql, after_params = keyset.after_sql(after)
    rows, counted = await fetch_as_of(info, as_of, [BudgetsTable()], [
        (f"SELECT * FROM ({WARNING_SELECT}) w{where}{after_sql}"
         f" ORDER BY {keyset.order_sql()} LIMIT %s", [*params, *after_params, size + 1]),
        (f"SELECT count(*) AS n FROM ({WARNING_SELECT}) w{where}", params)])
    return connection(rows, size, keyset, counted[0]["n"], BudgetWarning.from_row, bool(after))


# --- A project's cost (SPEC §5 "Project cost") ------------------------------------------------


@strawberry.type(description="A project's budget (its requested budget) against the cost "
                             "actuals recorded with its id, in the project's currency.")
class ProjectCost:
    currency: str
    budget: Decimal
    actual: Decimal
    remaining: Decimal
    variance: Decimal
    variance_percent: Decimal | None
    utilisation_percent: Decimal | None
    revenue_actual: Decimal = strawberry.field(description="Revenue actuals recorded with the "
                                                           "project's id.")
    actual_count: int = strawberry.field(description="How many actuals (cost and revenue) "
                                                     "name the project.")


ProjectSums = dict[str, dict[str, Any]]


def project_sums_statement(ids: list[UUID]) -> tuple[str, list[Any]]:
    """The statement summing the actuals recorded with several projects' ids, per currency."""
    return ("SELECT a.project_id, b.currency,"
            " coalesce(sum(a.amount) FILTER (WHERE a.kind <> 'revenue'), 0.00) AS spent,"
            " coalesce(sum(a.amount) FILTER (WHERE a.kind = 'revenue'), 0.00) AS earned,"
            " count(*) AS n"
            " FROM budget_actuals a JOIN budgets b ON b.id = a.budget_id"
            " WHERE a.project_id = ANY(%s) GROUP BY a.project_id, b.currency", [list(ids)])


def sums_by_project(rows: list[dict[str, Any]], ids: list[UUID]) -> dict[UUID, ProjectSums]:
    """The rows of ``project_sums_statement`` per project and currency."""
    found: dict[UUID, ProjectSums] = {i: {} for i in ids}
    for r in rows:
        found[r["project_id"]][r["currency"]] = r
    return found


async def sums_of_projects(ctx: GraphQLContext, ids: list[UUID]) -> dict[UUID, ProjectSums]:
    """The actuals recorded with several projects' ids, per currency: one statement."""
    return sums_by_project(await ctx.fetch(*project_sums_statement(ids)), ids)


def _project_cost_loader(ctx: GraphQLContext) -> DataLoader[UUID, ProjectSums]:
    async def load(ids: list[UUID]) -> list[ProjectSums]:
        found = await sums_of_projects(ctx, list(ids))
        return [found[i] for i in ids]
    return DataLoader(load_fn=load)


def cost_from_sums(sums: ProjectSums, currency: str, requested_budget: Decimal) -> ProjectCost:
    """A project's figures from its actuals' sums (``sums_of_projects``)."""
    mine = sums.get(currency) or {}
    f = figures(requested_budget, dec(mine.get("spent", ZERO)))
    return ProjectCost(currency=currency, budget=f.budget, actual=f.actual,
                       remaining=f.remaining, variance=f.variance,
                       variance_percent=f.variance_percent,
                       utilisation_percent=f.utilisation_percent,
                       revenue_actual=dec(mine.get("earned", ZERO)),
                       actual_count=int(mine.get("n", 0)))


async def project_cost(info: Info[GraphQLContext, None], project_id: UUID, currency: str,
                       requested_budget: Decimal) -> ProjectCost:
    """Figures of one project; batched with its siblings on the page (one statement)."""
    loader = info.context.loader("project_cost", _project_cost_loader)
    sums: ProjectSums = await loader.load(project_id)
    return cost_from_sums(sums, currency, requested_budget)
