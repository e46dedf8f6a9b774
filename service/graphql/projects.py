"""GraphQL types and queries over the `projects` projection."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from graphql import FieldNode, GraphQLObjectType, GraphQLResolveInfo
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from service.graphql.budgets import (
    ProjectCost,
    cost_from_sums,
    project_cost,
    project_sums_statement,
    sums_by_project,
)
from service.graphql.context import GraphQLContext
from service.graphql.convert import from_doc
from service.graphql.lookahead import argument, selected_below, selected_below_node
from service.graphql.nodes import Node, global_id
from service.graphql.pagination import Connection, Keyset, SortDirection, connection, page_size
from service.graphql.risks import Risk, project_risks, project_risks_statement, risks_by_project

if TYPE_CHECKING:
    from service.graphql.customers import Customer

CustomerRef = Annotated["Customer", strawberry.lazy("service.graphql.customers")]


@strawberry.type
class Person:
    user_id: str
    name: str


@strawberry.type
class TeamMember:
    user_id: str
    name: str
    role: str


@strawberry.type
class Milestone:
    id: str
    name: str
    due_date: date
    budget: Decimal | None
    completed_on: date | None


@strawberry.type
class Task:
    id: str
    name: str
    owner: str
    start_date: date
    due_date: date
    depends_on: list[str]
    milestone: str | None
    milestone_id: str | None
    status: str


@strawberry.type
class Resource:
    milestone: str
    milestone_id: str | None
    people: list[str]
    amount: Decimal


@strawberry.type
class Plan:
    version: int
    status: str
    submitted_by: str
    milestones: list[Milestone]
    tasks: list[Task]
    resources: list[Resource]
    summary: str | None
    reason: str | None
    reviewed_by: str | None
    return_reason: str | None
    filed_with: str | None


@strawberry.type
class ProgressReport:
    id: str
    period: str
    percent_complete: int
    work_done: str
    problems: str
    measures: str
    by: str


@strawberry.type
class Meeting:
    id: str
    date: date
    attendees: list[str]
    decisions: str
    minutes: str
    by: str


@strawberry.type
class ScheduleItem:
    milestone: str
    due_date: date
    completed_on: date | None


@strawberry.type
class Evaluation:
    id: str
    period: str
    schedule: list[ScheduleItem]
    schedule_note: str
    quality_note: str
    quality_rating: int
    budget: Decimal
    actual_cost: Decimal
    cost_variance: Decimal
    verdict: str
    adjustments: str
    by: str


@strawberry.type
class AcceptanceReview:
    id: str
    passed: bool
    criteria: JSON
    findings: str
    rectification_items: list[str]
    by: str
    cost_of: strawberry.Private[tuple[UUID, str, Decimal] | None] = None

    @strawberry.field(description="Evidence for the cost-control criterion: the project's "
                                  "budget vs its actual cost (as recorded now).")
    async def cost_control(self, info: Info[GraphQLContext, None]) -> ProjectCost | None:
        return None if self.cost_of is None else await project_cost(info, *self.cost_of)


@strawberry.type
class Document:
    id: str
    name: str
    version: int
    uri: str
    checksum: str
    by: str


@strawberry.type
class Return:
    stage: str
    by: str
    reason: str


@strawberry.type
class Project(Node):
    """A project as its projection shows it (SPEC §2)."""

    record_id: UUID
    name: str
    status: str
    department: str
    background: str
    objectives: str
    scope: str
    requested_budget: Decimal
    expected_revenue: Decimal
    currency: str
    start_date: date | None
    end_date: date | None
    customer_id: UUID | None
    proposer: str
    preliminary_reviewer: str | None
    approver: str | None
    lead: Person | None
    team: list[TeamMember]
    plans: list[Plan]
    current_plan_version: int | None
    milestones: list[Milestone]
    tasks: list[Task]
    resources: list[Resource]
    progress_reports: list[ProgressReport]
    percent_complete: int | None
    meetings: list[Meeting]
    evaluations: list[Evaluation]
    acceptance_report: str | None
    acceptance_reviews: list[AcceptanceReview]
    rectification_items: list[str]
    documents: list[Document]
    summary: str | None
    lessons_learned: str | None
    cancel_reason: str | None
    reject_reason: str | None
    returns: list[Return]
    version: int
    position: int
    created_on: datetime
    modified_on: datetime
    detail: JSON = strawberry.field(description="The whole record view as JSON.")
    # Read by the page (``list_projects``) for all its projects at once, when the query asks;
    # answered by ``answer_preloaded``'s resolvers.
    preloaded_risks: strawberry.Private[dict[bool, list[Risk]] | None] = None
    preloaded_cost: strawberry.Private[ProjectCost | None] = None

    @strawberry.field(description="Risks linked to the project (its plan's risk assessment), "
                                  "highest score first; open ones only unless openOnly: false.")
    async def risks(self, info: Info[GraphQLContext, None], open_only: bool | None = True,
                    ) -> list[Risk]:
        return await project_risks(info, self.record_id, open_only is not False)

    @strawberry.field(description="The customer the project is for.")
    async def customer(self, info: Info[GraphQLContext, None]) -> CustomerRef | None:
        from service.graphql.customers import load_customer  # customers show their projects

        return None if self.customer_id is None else await load_customer(info.context,
                                                                          self.customer_id)

    @strawberry.field(description="Budget (the requested budget) vs the cost actuals "
                                  "recorded against the project in budgets (SPEC §5).")
    async def cost(self, info: Info[GraphQLContext, None]) -> ProjectCost:
        return await project_cost(info, self.record_id, self.currency, self.requested_budget)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Project:
        doc = row["doc"]
        project = from_doc(cls, doc, id=global_id("Project", doc["id"]),
                           record_id=UUID(doc["id"]), position=row["position"], detail=doc)
        for review in project.acceptance_reviews:
            review.cost_of = (project.record_id, project.currency, project.requested_budget)
        return project


@strawberry.enum
class ProjectOrderField(Enum):
    UPDATED_AT = "updated_at"
    CREATED_AT = "created_at"
    NAME = "name"
    REQUESTED_BUDGET = "requested_budget"
    START_DATE = "start_date"


ORDER_TYPES = {"updated_at": "timestamptz", "created_at": "timestamptz", "name": "text",
               "requested_budget": "numeric", "start_date": "date"}


@strawberry.input
class ProjectOrder:
    field: ProjectOrderField = ProjectOrderField.UPDATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.input
class ProjectFilter:
    status: list[str] | None = None
    department: list[str] | None = None
    lead_id: str | None = None
    customer_id: UUID | None = None
    name_contains: str | None = None


def _where(f: ProjectFilter | None) -> tuple[str, list[Any]]:
    sql, params = " WHERE true", list[Any]()
    if f is None:
        return sql, params
    if f.status:
        sql += " AND status = ANY(%s)"
        params.append(f.status)
    if f.department:
        sql += " AND department = ANY(%s)"
        params.append(f.department)
    if f.lead_id:
        sql += " AND lead_id = %s"
        params.append(f.lead_id)
    if f.customer_id:
        sql += " AND customer_id = %s"
        params.append(f.customer_id)
    if f.name_contains:
        sql += " AND name ILIKE %s"
        params.append("%" + f.name_contains.replace("%", r"\%").replace("_", r"\_") + "%")
    return sql, params


async def list_projects(info: Info[GraphQLContext, None], first: int | None, after: str | None,
                        filter: ProjectFilter | None, order_by: ProjectOrder | None,
                        wait_for_position: int | None,
                        as_of: datetime | None = None) -> Connection[Project]:
    ctx = info.context
    ctx.require_actor()
    if as_of is not None:
        return await _projects_as_of(info, first, after, filter, order_by, as_of)
    await ctx.wait_for_position(wait_for_position)
    order = order_by or ProjectOrder()
    keyset = Keyset(order.field.value, ORDER_TYPES[order.field.value],
                    order.direction == SortDirection.DESC)
    size = page_size(first)
    where, params = _where(filter)
    after_sql, after_params = keyset.after_sql(after)
    fields = selected_below(info, "edges", "node")
    keys = _asked_keys(info, fields)
    doc, doc_params = ((_DOC_SUBSET, [keys]) if keys is not None else ("doc", []))
    rows, counted = await ctx.fetch_many([
        (f"SELECT id, {keyset.column}, position, {doc} FROM projects{where}{after_sql}"
         f" ORDER BY {keyset.order_sql()} LIMIT %s",
         [*doc_params, *params, *after_params, size + 1]),
        (f"SELECT count(*) AS n FROM projects{where}", params)])
    total = counted[0]["n"]
    page = connection(rows, size, keyset, total, Project.from_row, bool(after))
    await _preload(info, [edge.node for edge in page.edges], fields)
    return page


# What a project's fields need of its document besides their own keys: its id (record_id,
# risks, cost), customer (customer), cost (currency, requested budget), acceptance reviews
# (read by from_row).
_ALWAYS_KEYS = frozenset({"id", "customer_id", "currency", "requested_budget",
                          "acceptance_reviews"})
# The asked keys of a document, read in one pass (each ``doc->'key'`` would detoast the whole
# document again; ``doc - keys`` costs more than it saves).
_DOC_SUBSET = ("(SELECT jsonb_object_agg(key, value) FROM jsonb_each(doc)"
               " WHERE key = ANY(%s)) AS doc")


def _asked_keys(info: Info[GraphQLContext, None], fields: list[FieldNode] | None,
                ) -> list[str] | None:
    """The top-level keys of the project documents the selected fields read: a page asks for
    a few fields, while plans, tasks and reports are most of a document (~7 kB, all of it
    sent as JSON text and decoded). None — the whole document — when it is read (``detail``)
    or the selection is not known."""
    keys = None if fields is None else _document_keys(info, Project, fields)
    return None if keys is None else sorted(keys | set(_ALWAYS_KEYS))


def _asked_risk_keys(info: Info[GraphQLContext, None], risks: list[FieldNode],
                     ) -> list[str] | None:
    """The keys of the risk documents the ``risks`` selections read (None: all of them)."""
    keep: set[str] = set()
    for field in risks:
        selected = selected_below_node(info, field)
        keys = None if selected is None else _document_keys(info, Risk, selected)
        if keys is None:
            return None
        keep |= keys
    return sorted(keep) if len(keep) <= 30 else None


# GraphQL field name → document key, per type (made on first use from the schema).
_field_keys: dict[type, dict[str, str]] = {}


def _document_keys(info: Info[GraphQLContext, None], cls: type, nodes: list[FieldNode],
                   ) -> set[str] | None:
    """The document keys the selected fields of ``cls`` read; None when one needs the whole
    document (``detail``, or a field that is not a plain key)."""
    keys = _field_keys.get(cls)
    if keys is None:
        names = info.schema.config.name_converter
        keys = _field_keys[cls] = {names.get_graphql_name(f): f.python_name
                                   for f in get_object_definition(cls, strict=True).fields}
    keep: set[str] = set()
    for node in nodes:
        name = node.name.value
        if name.startswith("__"):
            continue
        if name == "detail" or name not in keys:
            return None
        keep.add(keys[name])
    return keep


async def _preload(info: Info[GraphQLContext, None], projects: list[Project],
                   fields: list[FieldNode] | None) -> None:
    """The risks and cost the query asks of every project of a page, one statement each (the
    statements the DataLoaders would run), handed to the projects before their fields run."""
    if not projects or not fields:
        return
    risk_variants = sorted({argument(info, f, "openOnly") is not False
                            for f in fields if f.name.value == "risks"})
    wants_cost = any(f.name.value == "cost" for f in fields)
    if not risk_variants and not wants_cost:
        return
    ids = [p.record_id for p in projects]
    keys = _asked_risk_keys(info, [f for f in fields if f.name.value == "risks"])
    statements = [project_risks_statement(ids, v, keys) for v in risk_variants]
    if wants_cost:
        statements.append(project_sums_statement(ids))
    found = await info.context.fetch_many(statements)
    risks = [risks_by_project(rows, ids) for rows in found[:len(risk_variants)]]
    sums = sums_by_project(found[-1], ids) if wants_cost else {}
    for project in projects:
        if risk_variants:
            project.preloaded_risks = {v: by_project[project.record_id]
                                       for v, by_project in zip(risk_variants, risks,
                                                                strict=True)}
        if wants_cost:
            project.preloaded_cost = cost_from_sums(sums[project.record_id],
                                                    project.currency, project.requested_budget)


# The portfolio as of a past moment: every project rebuilt from its events up to then (see
# docs/architecture.md, "Views as of a past date"), filtered and sorted like the table above.
_AS_OF_SORT = {
    "updated_at": lambda d: datetime.fromisoformat(d["modified_on"]),
    "created_at": lambda d: datetime.fromisoformat(d["created_on"]),
    "name": lambda d: d.get("name"),
    "requested_budget": lambda d: Decimal(d["requested_budget"]),
    "start_date": lambda d: d.get("start_date"),
}


def _matches(f: ProjectFilter | None, doc: dict[str, Any]) -> bool:
    if f is None:
        return True
    lead = doc.get("lead") or {}
    return ((not f.status or doc.get("status") in f.status)
            and (not f.department or doc.get("department") in f.department)
            and (not f.lead_id or lead.get("user_id") == f.lead_id)
            and (not f.customer_id or doc.get("customer_id") == str(f.customer_id))
            and (not f.name_contains
                 or f.name_contains.casefold() in (doc.get("name") or "").casefold()))


async def _projects_as_of(info: Info[GraphQLContext, None], first: int | None,
                          after: str | None, filter: ProjectFilter | None,
                          order_by: ProjectOrder | None, as_of: datetime) -> Connection[Project]:
    from service.graphql.audit import as_of_connection, records_as_of

    order = order_by or ProjectOrder()
    records = [r for r in await records_as_of(info, "project", as_of) if _matches(filter, r.doc)]
    return as_of_connection(
        records, first=first, after=after, sort_key=_AS_OF_SORT[order.field.value],
        descending=order.direction == SortDirection.DESC,
        make_node=lambda r: Project.from_row({"doc": r.doc, "position": r.position}))


async def project_by_id(info: Info[GraphQLContext, None], record_id: UUID,
                        wait_for_position: int | None = None) -> Project | None:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    rows = await ctx.fetch("SELECT position, doc FROM projects WHERE id = %s", [record_id])
    return Project.from_row(rows[0]) if rows else None


def answer_preloaded(schema: strawberry.Schema) -> None:
    """``Project.risks`` and ``Project.cost`` answer at once with what the page preloaded:
    graphql-core calls these functions directly (no Strawberry argument conversion, ``Info``,
    task or future per project); without a preloaded value they call the Strawberry resolver
    (the DataLoader). The schema is unchanged."""
    project = schema._schema.get_type("Project")
    assert isinstance(project, GraphQLObjectType)
    fields = project.fields
    risks_resolver = fields["risks"].resolve
    cost_resolver = fields["cost"].resolve
    assert risks_resolver is not None and cost_resolver is not None

    def risks(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        preloaded = getattr(source, "preloaded_risks", None)
        if preloaded is not None:
            ready = preloaded.get(args.get("openOnly") is not False)
            if ready is not None:
                return ready
        return risks_resolver(source, info, **args)

    def cost(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        ready = getattr(source, "preloaded_cost", None)
        return ready if ready is not None else cost_resolver(source, info, **args)

    fields["risks"].resolve = risks
    fields["cost"].resolve = cost
