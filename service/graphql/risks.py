"""GraphQL types and queries over the risk tables (SPEC §4): the register, the 5×5 heat map,
overdue actions, open warnings, each risk's history, and a project's linked risks.

"Today" (for overdue actions) is the database's UTC date, read by the same statement that reads
the rows, so one response never mixes two clocks.

The register and the heat map answer ``asOf`` a past moment with the same statements, run over
the risks rebuilt as of then (``fetch_as_of``); "today" is then the moment's UTC date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, get_args
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.risk import (
    FINISHED_ACTION_STATUSES,
    Category,
    Level,
    RiskStatus,
    Scope,
    score_level,
    suggest_strategy,
)
from projections.risks import RisksTable
from service.graphql.audit import fetch_as_of
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.convert import from_doc
from service.graphql.nodes import Node, global_id
from service.graphql.pagination import Connection, Keyset, SortDirection, connection, page_size

T = TypeVar("T")

TODAY = "(now() AT TIME ZONE 'UTC')::date"


def _risk_columns(today: str) -> str:
    return f"r.id, r.position, r.doc, {today} AS today"


RISK_COLUMNS = _risk_columns(TODAY)


def _today(as_of: datetime | None) -> str:
    """SQL for "today" (UTC): the database's date, or, for a view as of a moment, its date
    (an action is overdue as of a moment when its due date had passed by then)."""
    if as_of is None:
        return TODAY
    moment = as_of if as_of.tzinfo is None else as_of.astimezone(UTC)
    return f"DATE '{moment.date().isoformat()}'"


# --- types -------------------------------------------------------------------------------------

@strawberry.type
class Assessment:
    n: int
    likelihood: int
    impact: int
    score: int
    level: str
    financial_exposure: Decimal | None
    rationale: str
    warning_ids: list[str] = strawberry.field(
        description="Warnings this re-assessment answered.")
    by: str
    at: datetime

    @strawberry.field(description="The strategy the policy suggests for this assessment.")
    def suggested_strategy(self) -> str:
        return suggest_strategy(self.likelihood, self.impact)


@strawberry.type
class Response:
    suggested: str
    strategy: str
    justification: str
    overridden: bool = strawberry.field(description="A strategy other than the suggested one.")
    assessment_n: int = strawberry.field(description="The assessment it responded to.")
    by: str
    at: datetime


@strawberry.type
class ActionUpdate:
    status: str
    percent: int
    note: str
    by: str
    at: datetime


@strawberry.type
class RiskAction:
    id: str
    risk_id: UUID
    action: str
    owner: str
    due_date: date
    status: str
    percent: int
    added_by: str
    added_at: datetime
    updates: list[ActionUpdate]
    overdue: bool = strawberry.field(
        description="Past its due date (UTC, today) and neither done nor cancelled.")
    days_overdue: int

    @strawberry.field(description="The risk this action responds to.")
    async def risk(self, info: Info[GraphQLContext, None]) -> Risk | None:
        return await _risk_loader(info.context).load(self.risk_id)


@strawberry.type
class EmergencyPlan:
    version: int
    trigger_conditions: str
    steps: list[str]
    responsible: list[str]
    by: str
    at: datetime


@strawberry.type
class Reading:
    id: str
    value: Decimal
    observed_at: datetime
    outside: bool = strawberry.field(description="Beyond the indicator's threshold.")
    late: bool = strawberry.field(description="Older than a reading already recorded; kept "
                                              "but does not move the alarm.")
    by: str
    at: datetime


@strawberry.type
class Indicator:
    id: str
    name: str
    unit: str
    threshold: Decimal
    direction: str
    breached: bool
    last_observed_at: datetime | None
    defined_by: str
    defined_at: datetime
    readings: list[Reading]


@strawberry.type
class RiskWarning:
    id: str
    risk_id: UUID
    indicator_id: str
    indicator: str
    value: Decimal
    threshold: Decimal
    direction: str
    observed_at: datetime
    raised_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    note: str
    reassessment_n: int | None = strawberry.field(
        description="The re-assessment that answered the warning, once made.")

    @strawberry.field(description="raised → acknowledged → reassessed.")
    def state(self) -> str:
        if self.acknowledged_at is None:
            return "raised"
        return "acknowledged" if self.reassessment_n is None else "reassessed"

    @strawberry.field(description="The risk the warning was raised on.")
    async def risk(self, info: Info[GraphQLContext, None]) -> Risk | None:
        return await _risk_loader(info.context).load(self.risk_id)


@strawberry.type
class Closure:
    outcome: str
    impact_note: str
    from_status: str
    by: str
    at: datetime
    reopened_by: str | None
    reopened_at: datetime | None
    reopen_reason: str | None


@strawberry.type
class Risk(Node):
    """A risk as its projection shows it (SPEC §4)."""

    record_id: UUID
    title: str
    description: str
    category: str
    scope: str
    linked_id: UUID | None
    project_id: UUID | None
    department: str
    owner: str
    owner_name: str
    identified_by: str
    status: str
    likelihood: int | None
    impact: int | None
    score: int | None
    level: str | None
    financial_exposure: Decimal | None
    suggested_strategy: str | None = strawberry.field(
        description="What the policy suggests for the current assessment.")
    assessments: list[Assessment] = strawberry.field(
        description="Every assessment and re-assessment, oldest first.")
    response: Response | None
    responses: list[Response]
    actions: list[RiskAction]
    overdue_action_count: int
    emergency_plan: EmergencyPlan | None
    emergency_plans: list[EmergencyPlan] = strawberry.field(
        description="Every version of the emergency plan, oldest first.")
    indicators: list[Indicator]
    warnings: list[RiskWarning]
    open_warning_count: int = strawberry.field(description="Warnings not yet acknowledged.")
    reassessment_due: bool
    outcome: str | None
    impact_note: str
    closed_at: datetime | None
    closures: list[Closure]
    version: int
    position: int
    created_on: datetime
    modified_on: datetime
    detail: JSON = strawberry.field(description="The whole record view as JSON.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Risk:
        doc = _enriched(row["doc"], row["today"])
        return from_doc(cls, doc, id=global_id("Risk", doc["id"]), record_id=UUID(doc["id"]),
                        position=row["position"], detail=row["doc"])


def _action(item: dict[str, Any], risk_id: str, today: date) -> dict[str, Any]:
    late = (today - date.fromisoformat(item["due_date"])).days
    overdue = item["status"] not in FINISHED_ACTION_STATUSES and late > 0
    return {**item, "risk_id": risk_id, "overdue": overdue,
            "days_overdue": late if overdue else 0}


def _enriched(doc: dict[str, Any], today: date) -> dict[str, Any]:
    """The record view plus what is read, not recorded: overdue flags, counts, suggestion.
    A document read in part (``project_risks_statement`` with keys) gets what its keys give
    (``DERIVED_FROM``)."""
    rid = doc["id"]
    out = dict(doc)
    if "actions" in doc:
        actions = [_action(a, rid, today) for a in doc["actions"]]
        out["actions"] = actions
        out["overdue_action_count"] = sum(1 for a in actions if a["overdue"])
    if "warnings" in doc:
        out["warnings"] = [{**w, "risk_id": rid} for w in doc["warnings"]]
        out["open_warning_count"] = sum(1 for w in doc["warnings"]
                                        if w["acknowledged_at"] is None)
    if "indicators" in doc:
        out["indicators"] = [{**i, "readings": doc["readings"].get(i["id"], [])}
                             for i in doc["indicators"]]
    likelihood, impact = doc.get("likelihood"), doc.get("impact")
    out["suggested_strategy"] = (suggest_strategy(likelihood, impact)
                                 if likelihood is not None and impact is not None else None)
    return out


@strawberry.type
class HeatMapCell:
    likelihood: int
    impact: int
    score: int
    level: str
    suggested_strategy: str
    count: int


@strawberry.type
class StrategySuggestion:
    likelihood: int
    impact: int
    score: int
    level: str
    strategy: str


# --- filters and ordering ----------------------------------------------------------------------

@strawberry.input(description="Filters of the risk register; the heat map, overdue actions and "
                              "open warnings take the same ones.")
class RiskFilter:
    level: list[str] | None = None
    category: list[str] | None = None
    department: list[str] | None = None
    project_id: UUID | None = None
    scope: list[str] | None = None
    linked_id: UUID | None = None
    status: list[str] | None = None
    open_only: bool | None = strawberry.field(default=None,
                                              description="Only risks not closed.")
    owner: str | None = None
    likelihood: list[int] | None = None
    impact: list[int] | None = None
    min_score: int | None = None
    reassessment_due: bool | None = None
    has_overdue_actions: bool | None = None
    has_open_warnings: bool | None = strawberry.field(
        default=None, description="Risks with warnings not yet acknowledged.")
    title_contains: str | None = None


STATUSES = tuple(s.value for s in RiskStatus)
CHOICES = {"level": get_args(Level), "category": get_args(Category), "scope": get_args(Scope),
           "status": STATUSES}


def _conditions(f: RiskFilter | None, alias: str = "r", *, open_by_default: bool = False,
                today: str = TODAY) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter over ``risks`` (as ``alias``) and its parameters."""
    a = alias
    sql: list[str] = ["true"]
    params: list[Any] = []
    if f is None:
        f = RiskFilter()
    for name, options in CHOICES.items():
        values = getattr(f, name)
        if values is None:
            continue
        unknown = sorted(set(values) - set(options))
        if unknown:
            raise ReadError(f"unknown {name} {', '.join(map(repr, unknown))}; one of "
                            f"{', '.join(options)}", "BAD_FILTER")
        sql.append(f"{a}.{name} = ANY(%s)")
        params.append(values)
    for name in ("department", "likelihood", "impact"):
        values = getattr(f, name)
        if values is not None:
            sql.append(f"{a}.{name} = ANY(%s)")
            params.append(values)
    for name in ("project_id", "linked_id", "owner", "reassessment_due"):
        value = getattr(f, name)
        if value is not None:
            sql.append(f"{a}.{name} = %s")
            params.append(value)
    # Views of current exposure leave closed risks out unless the filter speaks of status.
    default_open = open_by_default and f.status is None and f.open_only is None
    if f.open_only or default_open:
        sql.append(f"{a}.status <> 'closed'")
    if f.min_score is not None:
        sql.append(f"{a}.score >= %s")
        params.append(f.min_score)
    if f.has_overdue_actions is not None:
        overdue = f"coalesce({a}.next_action_due < {today}, false)"
        sql.append(overdue if f.has_overdue_actions else f"NOT {overdue}")
    if f.has_open_warnings is not None:
        sql.append(f"{a}.open_warnings {'>' if f.has_open_warnings else '='} 0")
    if f.title_contains:
        sql.append(f"{a}.title ILIKE %s")
        params.append("%" + f.title_contains.replace("%", r"\%").replace("_", r"\_") + "%")
    return " WHERE " + " AND ".join(sql), params


@strawberry.enum
class RiskOrderField(Enum):
    SCORE = "score"
    UPDATED_AT = "updated_at"
    CREATED_AT = "created_at"
    TITLE = "title"
    FINANCIAL_EXPOSURE = "financial_exposure"
    NEXT_ACTION_DUE = "next_action_due"


ORDER_TYPES = {"score": "int", "updated_at": "timestamptz", "created_at": "timestamptz",
               "title": "text", "financial_exposure": "numeric", "next_action_due": "date"}


@strawberry.input
class RiskOrder:
    field: RiskOrderField = RiskOrderField.SCORE
    direction: SortDirection = SortDirection.DESC


# --- loaders (one per request) -----------------------------------------------------------------

def _risk_loader(ctx: GraphQLContext) -> DataLoader[UUID, Risk | None]:
    def make(ctx: GraphQLContext) -> DataLoader[UUID, Risk | None]:
        async def load(ids: list[UUID]) -> list[Risk | None]:
            rows = await ctx.fetch(f"SELECT {RISK_COLUMNS} FROM risks r WHERE r.id = ANY(%s)",
                                   [[UUID(str(i)) for i in ids]])
            found = {row["id"]: Risk.from_row(row) for row in rows}
            return [found.get(UUID(str(i))) for i in ids]
        return DataLoader(load_fn=load)
    return ctx.loader("risk_by_id", make)


# The keys of a risk's document the fields ``_enriched`` adds are made from.
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "actions": ("actions",), "overdue_action_count": ("actions",),
    "warnings": ("warnings",), "open_warning_count": ("warnings",),
    "indicators": ("indicators", "readings"), "suggested_strategy": ("likelihood", "impact")}


def project_risks_statement(ids: list[UUID], open_only: bool,
                            keys: Iterable[str] | None = None) -> tuple[str, list[Any]]:
    """The statement reading the linked risks of several projects, highest score first;
    with ``keys`` (the fields asked), only the keys of their documents those fields are read
    from are sent — a risk's document is mostly history a page rarely asks for."""
    only_open = " AND r.status <> 'closed'" if open_only else ""
    columns = RISK_COLUMNS
    if keys is not None:
        wanted = sorted({"id"}.union(*(DERIVED_FROM.get(k, (k,)) for k in keys)))
        assert all(k.isidentifier() for k in wanted)  # field names, never query text
        # each doc->'key' of an inline document is cheap (unlike a TOASTed one)
        pairs = ", ".join(f"'{k}', r.doc->'{k}'" for k in wanted)
        columns = f"r.id, r.position, jsonb_build_object({pairs}) AS doc, {TODAY} AS today"
    return (f"SELECT r.project_id, {columns} FROM risks r"
            f" WHERE r.project_id = ANY(%s){only_open}"
            " ORDER BY r.score DESC NULLS LAST, r.updated_at DESC, r.id", [list(ids)])


def risks_by_project(rows: list[dict[str, Any]], ids: list[UUID]) -> dict[UUID, list[Risk]]:
    """The rows of ``project_risks_statement`` per project."""
    by_project: dict[UUID, list[Risk]] = {i: [] for i in ids}
    for row in rows:
        by_project[row["project_id"]].append(Risk.from_row(row))
    return by_project


async def risks_of_projects(ctx: GraphQLContext, ids: list[UUID], open_only: bool,
                            ) -> dict[UUID, list[Risk]]:
    """The linked risks of several projects, highest score first: one statement."""
    return risks_by_project(await ctx.fetch(*project_risks_statement(ids, open_only)), ids)


def _project_risks_loader(ctx: GraphQLContext, open_only: bool,
                          ) -> DataLoader[UUID, list[Risk]]:
    def make(ctx: GraphQLContext) -> DataLoader[UUID, list[Risk]]:
        async def load(ids: list[UUID]) -> list[list[Risk]]:
            by_project = await risks_of_projects(ctx, list(ids), open_only)
            return [by_project[i] for i in ids]
        return DataLoader(load_fn=load)
    return ctx.loader(f"project_risks:{open_only}", make)


async def project_risks(info: Info[GraphQLContext, None], project_id: UUID,
                        open_only: bool) -> list[Risk]:
    """A project's linked risks, highest score first: one statement for a whole page."""
    return await _project_risks_loader(info.context, open_only).load(project_id)


# --- queries -----------------------------------------------------------------------------------

async def _ready(info: Info[GraphQLContext, None], wait_for_position: int | None) -> None:
    info.context.require_actor()
    await info.context.wait_for_position(wait_for_position)


async def list_risks(info: Info[GraphQLContext, None], first: int | None, after: str | None,
                     filter: RiskFilter | None, order_by: RiskOrder | None,
                     wait_for_position: int | None,
                     as_of: datetime | None = None) -> Connection[Risk]:
    """The register; as of a moment, the same statements over the risks rebuilt as of then."""
    await _ready(info, None if as_of else wait_for_position)
    order = order_by or RiskOrder()
    keyset = Keyset(order.field.value, ORDER_TYPES[order.field.value],
                    order.direction == SortDirection.DESC)
    today = _today(as_of)
    where, params = _conditions(filter, today=today)
    return await _keyset_page(info, as_of, keyset, first, after,
                              f"r.{keyset.column}, {_risk_columns(today)}",
                              f"FROM risks r{where}", params, Risk.from_row)


async def _keyset_page(info: Info[GraphQLContext, None], as_of: datetime | None,
                       keyset: Keyset, first: int | None, after: str | None, columns: str,
                       source: str, params: list[Any], make_node: Callable[[Any], T],
                       ) -> Connection[T]:
    """A page of ``SELECT columns source`` in the keyset's order after the cursor, with the
    total count: on the live tables, or as of a moment over the risks rebuilt as of then."""
    size = page_size(first)
    after_sql, after_params = keyset.after_sql(after)
    rows, counted = await fetch_as_of(info, as_of, [RisksTable()], [
        (f"SELECT * FROM (SELECT {columns} {source}) t WHERE true{after_sql}"
         f" ORDER BY {keyset.order_sql()} LIMIT %s", [*params, *after_params, size + 1]),
        (f"SELECT count(*) AS n {source}", params)])
    return connection(rows, size, keyset, counted[0]["n"], make_node, bool(after))


async def risk_by_id(info: Info[GraphQLContext, None], record_id: UUID,
                     wait_for_position: int | None = None) -> Risk | None:
    await _ready(info, wait_for_position)
    return await _risk_loader(info.context).load(record_id)


def suggestion(likelihood: int, impact: int) -> StrategySuggestion:
    if not (1 <= likelihood <= 5 and 1 <= impact <= 5):
        raise ReadError("likelihood and impact are rated 1 to 5", "BAD_ARGUMENT")
    score = likelihood * impact
    return StrategySuggestion(likelihood=likelihood, impact=impact, score=score,
                              level=score_level(score),
                              strategy=suggest_strategy(likelihood, impact))


async def heat_map(info: Info[GraphQLContext, None], filter: RiskFilter | None,
                   wait_for_position: int | None,
                   as_of: datetime | None = None) -> list[HeatMapCell]:
    """The 5×5 grid; as of a moment, the same statement over the risks rebuilt as of then."""
    await _ready(info, None if as_of else wait_for_position)
    where, params = _conditions(filter, open_by_default=True, today=_today(as_of))
    [rows] = await fetch_as_of(info, as_of, [RisksTable()], [
        (f"SELECT r.likelihood, r.impact, count(*) AS n FROM risks r{where}"
         " AND r.likelihood IS NOT NULL GROUP BY r.likelihood, r.impact", params)])
    counts = {(row["likelihood"], row["impact"]): row["n"] for row in rows}
    cells = []
    for likelihood in range(1, 6):
        for impact in range(1, 6):
            s = suggestion(likelihood, impact)
            cells.append(HeatMapCell(likelihood=likelihood, impact=impact, score=s.score,
                                     level=s.level, suggested_strategy=s.strategy,
                                     count=counts.get((likelihood, impact), 0)))
    return cells


def _action_node(row: dict[str, Any]) -> RiskAction:
    return from_doc(RiskAction, _action(row["doc"], str(row["risk_id"]), row["today"]))


async def overdue_actions(info: Info[GraphQLContext, None], first: int | None,
                          after: str | None, filter: RiskFilter | None,
                          action_owner: str | None, wait_for_position: int | None,
                          as_of: datetime | None = None) -> Connection[RiskAction]:
    """Overdue actions; as of a moment, the same statements over the risks rebuilt as of then,
    judged on that moment's UTC date."""
    await _ready(info, None if as_of else wait_for_position)
    keyset = Keyset("due_date", "date", descending=False)
    today = _today(as_of)
    where, params = _conditions(filter, open_by_default=True, today=today)
    where += f" AND a.status NOT IN ('done', 'cancelled') AND a.due_date < {today}"
    if action_owner is not None:
        where += " AND a.owner = %s"
        params.append(action_owner)
    return await _keyset_page(info, as_of, keyset, first, after,
                              f"a.id, a.due_date, a.risk_id, a.doc, {today} AS today",
                              f"FROM risk_actions a JOIN risks r ON r.id = a.risk_id{where}",
                              params, _action_node)


def _warning_node(row: dict[str, Any]) -> RiskWarning:
    return from_doc(RiskWarning, {**row["doc"], "risk_id": row["risk_id"]})


async def open_warnings(info: Info[GraphQLContext, None], first: int | None,
                        after: str | None, filter: RiskFilter | None,
                        include_acknowledged: bool, wait_for_position: int | None,
                        as_of: datetime | None = None) -> Connection[RiskWarning]:
    """Open warnings; as of a moment, over the risks rebuilt as of then."""
    await _ready(info, None if as_of else wait_for_position)
    keyset = Keyset("raised_at", "timestamptz", descending=True)
    where, params = _conditions(filter, open_by_default=True, today=_today(as_of))
    where += (" AND w.reassessment_n IS NULL" if include_acknowledged
              else " AND w.acknowledged_at IS NULL")
    return await _keyset_page(info, as_of, keyset, first, after,
                              "w.id, w.raised_at, w.risk_id, w.doc",
                              f"FROM risk_warnings w JOIN risks r ON r.id = w.risk_id{where}",
                              params, _warning_node)
