"""GraphQL types and queries over the `projects` projection."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from service.graphql.context import GraphQLContext
from service.graphql.convert import from_doc
from service.graphql.nodes import Node, global_id
from service.graphql.pagination import Connection, Keyset, SortDirection, connection, page_size


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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Project:
        doc = row["doc"]
        return from_doc(cls, doc, id=global_id("Project", doc["id"]), record_id=UUID(doc["id"]),
                        position=row["position"], detail=doc)


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
    sql, params = " WHERE true", []
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
                        wait_for_position: int | None) -> Connection[Project]:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    order = order_by or ProjectOrder()
    keyset = Keyset(order.field.value, ORDER_TYPES[order.field.value],
                    order.direction == SortDirection.DESC)
    size = page_size(first)
    where, params = _where(filter)
    after_sql, after_params = keyset.after_sql(after)
    rows = await ctx.fetch(
        f"SELECT id, {keyset.column}, position, doc FROM projects{where}{after_sql}"
        f" ORDER BY {keyset.order_sql()} LIMIT %s", [*params, *after_params, size + 1])
    total = (await ctx.fetch(f"SELECT count(*) AS n FROM projects{where}", params))[0]["n"]
    return connection(rows, size, keyset, total, Project.from_row, bool(after))


async def project_by_id(info: Info[GraphQLContext, None], record_id: UUID,
                        wait_for_position: int | None = None) -> Project | None:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    rows = await ctx.fetch("SELECT position, doc FROM projects WHERE id = %s", [record_id])
    return Project.from_row(rows[0]) if rows else None
