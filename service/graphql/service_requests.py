"""GraphQL types and queries over the `service_requests` table: one request with its SLA clock,
and the service-request queue of a department (SPEC §3).

The SLA clock. A request's priority names two targets in hours (settings
``sla_first_response_hours`` and ``sla_resolution_hours``); both run from ``opened_at``. Time to
first response ends at the first acknowledge / direct resolution / escalation, time to resolution
at the first resolution (direct or by the department's result). A target is breached when that
moment came after the due time, or has not come and the due time has passed "now" — the
database's clock, read by the same statement that reads the rows. Targets are applied when the
view is read, so changing a setting re-judges every request without a rebuild.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, get_args
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.service_request import Category, Channel, Priority, ServiceRequestStatus
from service.config import Settings
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.convert import from_doc
from service.graphql.nodes import Node, global_id
from service.graphql.pagination import Connection, Keyset, SortDirection, connection, page_size

if TYPE_CHECKING:
    from service.graphql.customers import Customer

CustomerRef = Annotated["Customer", strawberry.lazy("service.graphql.customers")]


def sla_values(settings: Settings) -> tuple[str, list[Any]]:
    """The SLA targets as an SQL ``VALUES`` list ``(priority, response_h, resolution_h)``."""
    rows: list[str] = []
    params: list[Any] = []
    for priority in get_args(Priority):
        rows.append("(%s, %s::numeric, %s::numeric)")
        params += [priority, settings.sla_first_response_hours[priority],
                   settings.sla_resolution_hours[priority]]
    return "(VALUES " + ", ".join(rows) + ") AS sla(priority, response_h, resolution_h)", params


def requests_source(settings: Settings) -> tuple[str, list[Any]]:
    """``service_requests`` as a derived table ``sr`` with each request's SLA clock columns."""
    values, params = sla_values(settings)
    sql = f"""(SELECT t.*,
        extract(epoch FROM t.first_response_at - t.opened_at) AS first_response_seconds,
        extract(epoch FROM t.resolved_at - t.opened_at) AS resolution_seconds,
        extract(epoch FROM now() - t.opened_at) AS age_seconds,
        coalesce(coalesce(t.first_response_at, now()) > t.first_response_due_at, false)
            AS first_response_breached,
        coalesce(coalesce(t.resolved_at, now()) > t.resolution_due_at, false)
            AS resolution_breached
      FROM (SELECT r.*, sla.response_h AS first_response_target_hours,
                   sla.resolution_h AS resolution_target_hours,
                   r.opened_at + sla.response_h * interval '1 hour' AS first_response_due_at,
                   r.opened_at + sla.resolution_h * interval '1 hour' AS resolution_due_at
            FROM service_requests r LEFT JOIN {values} USING (priority)) t) sr"""
    return sql, params


# --- types -------------------------------------------------------------------------------------

@strawberry.type
class Acknowledgement:
    note: str
    by: str
    at: datetime


@strawberry.type
class Escalation:
    id: str
    to_department: str
    assignee: str | None
    note: str
    by: str
    at: datetime


@strawberry.type
class ProgressUpdate:
    id: str
    note: str
    by: str
    at: datetime


@strawberry.type
class SatisfactionScore:
    score: int
    unsatisfied: bool
    note: str
    by: str
    at: datetime


@strawberry.type
class Finding:
    id: str
    text: str
    by: str
    at: datetime


@strawberry.type
class Complaint:
    id: str
    trigger: str = strawberry.field(description="'satisfaction' (a low score) or 'reopen'.")
    reason: str
    opened_by: str
    opened_at: datetime
    findings: list[Finding]
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None


@strawberry.type(description="The request's SLA clock: targets by priority, times, breaches.")
class SlaClock:
    first_response_target_hours: Decimal
    first_response_due_at: datetime
    first_response_seconds: Decimal | None = strawberry.field(
        description="Opened → first response; null while nobody has answered.")
    first_response_breached: bool
    resolution_target_hours: Decimal
    resolution_due_at: datetime
    resolution_seconds: Decimal | None = strawberry.field(
        description="Opened → first resolution; null while unresolved.")
    resolution_breached: bool
    age_seconds: Decimal = strawberry.field(description="Opened → now.")

    @strawberry.field(description="Either target breached.")
    def breached(self) -> bool:
        return self.first_response_breached or self.resolution_breached

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SlaClock:
        return cls(**{f: row[f] for f in (
            "first_response_target_hours", "first_response_due_at", "first_response_seconds",
            "first_response_breached", "resolution_target_hours", "resolution_due_at",
            "resolution_seconds", "resolution_breached", "age_seconds")})


@strawberry.type
class ServiceRequest(Node):
    """A customer's service request as its projection shows it (SPEC §3)."""

    record_id: UUID
    customer_id: UUID
    department: str = strawberry.field(description="The intake department.")
    handling_department: str = strawberry.field(
        description="Who must act now: the escalated department while it works the request, "
                    "otherwise the intake department.")
    channel: str
    category: str
    description: str
    priority: str
    opened_by: str
    status: str
    opened_at: datetime
    first_response_at: datetime | None
    acknowledgements: list[Acknowledgement]
    escalated_to: str | None
    assignee: str | None
    escalations: list[Escalation]
    progress: list[ProgressUpdate]
    resolution: str | None
    resolved_via: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    satisfaction_scores: list[SatisfactionScore]
    latest_satisfaction: int | None
    complaints: list[Complaint]
    complaint_count: int
    closed_at: datetime | None
    sla: SlaClock
    version: int
    position: int
    created_on: datetime
    modified_on: datetime
    detail: JSON = strawberry.field(description="The whole record view as JSON.")

    @strawberry.field(description="The customer the request is for.")
    async def customer(self, info: Info[GraphQLContext, None]) -> CustomerRef | None:
        from service.graphql.customers import load_customer

        return await load_customer(info.context, self.customer_id)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ServiceRequest:
        doc = row["doc"]
        return from_doc(cls, doc, id=global_id("ServiceRequest", doc["id"]),
                        record_id=UUID(doc["id"]), position=row["position"],
                        handling_department=row["handling_department"],
                        latest_satisfaction=row["satisfaction"], sla=SlaClock.from_row(row),
                        detail=doc)


# --- the queue ---------------------------------------------------------------------------------

@strawberry.enum(description="Which of a department's requests a queue shows.")
class QueueScope(Enum):
    INVOLVED = "involved"    # taken in by it or escalated to it
    INTAKE = "intake"        # taken in by it
    ESCALATED = "escalated"  # escalated to it (its current escalation target)
    HANDLING = "handling"    # waiting on it now


SCOPE_SQL = {QueueScope.INVOLVED: "(sr.department = %s OR sr.escalated_to = %s)",
             QueueScope.INTAKE: "sr.department = %s",
             QueueScope.ESCALATED: "sr.escalated_to = %s",
             QueueScope.HANDLING: "sr.handling_department = %s"}


@strawberry.enum
class ServiceRequestOrderField(Enum):
    OPENED_AT = "opened_at"
    UPDATED_AT = "updated_at"
    PRIORITY = "priority_rank"
    FIRST_RESPONSE_DUE_AT = "first_response_due_at"
    RESOLUTION_DUE_AT = "resolution_due_at"


ORDER_TYPES = {"opened_at": "timestamptz", "updated_at": "timestamptz", "priority_rank": "int",
               "first_response_due_at": "timestamptz", "resolution_due_at": "timestamptz"}


@strawberry.input
class ServiceRequestOrder:
    field: ServiceRequestOrderField = ServiceRequestOrderField.OPENED_AT
    direction: SortDirection = SortDirection.ASC


@strawberry.input
class ServiceRequestFilter:
    status: list[str] | None = None
    priority: list[str] | None = None
    category: list[str] | None = None
    channel: list[str] | None = None
    customer_id: UUID | None = None
    assignee: str | None = None
    open: bool | None = strawberry.field(
        default=None, description="true: not closed yet; false: closed.")
    breached: bool | None = strawberry.field(
        default=None, description="true: an SLA target is breached (open ones judged now).")
    min_age_hours: Decimal | None = strawberry.field(
        default=None, description="Opened at least this many hours ago.")
    max_age_hours: Decimal | None = strawberry.field(
        default=None, description="Opened at most this many hours ago.")
    opened_from: datetime | None = None
    opened_before: datetime | None = None


def _check_values(values: list[str] | None, allowed: tuple[str, ...], name: str) -> None:
    unknown = sorted(set(values or ()) - set(allowed))
    if unknown:
        raise ReadError(f"filter '{name}': unknown {unknown}; one of {list(allowed)}",
                        "BAD_FILTER")


def _where(f: ServiceRequestFilter | None) -> tuple[str, list[Any]]:
    sql, params = "", list[Any]()
    if f is None:
        return sql, params
    _check_values(f.status, tuple(s.value for s in ServiceRequestStatus), "status")
    _check_values(f.priority, get_args(Priority), "priority")
    _check_values(f.category, get_args(Category), "category")
    _check_values(f.channel, get_args(Channel), "channel")
    for column, values in (("status", f.status), ("priority", f.priority),
                           ("category", f.category), ("channel", f.channel)):
        if values:
            sql += f" AND sr.{column} = ANY(%s)"
            params.append(values)
    if f.customer_id:
        sql += " AND sr.customer_id = %s"
        params.append(f.customer_id)
    if f.assignee:
        sql += " AND sr.assignee = %s"
        params.append(f.assignee)
    if f.open is not None:
        sql += " AND sr.status <> 'closed'" if f.open else " AND sr.status = 'closed'"
    if f.breached is not None:
        sql += (" AND %s = (sr.first_response_breached OR sr.resolution_breached)")
        params.append(f.breached)
    if f.min_age_hours is not None:
        sql += " AND sr.opened_at <= now() - %s * interval '1 hour'"
        params.append(f.min_age_hours)
    if f.max_age_hours is not None:
        sql += " AND sr.opened_at >= now() - %s * interval '1 hour'"
        params.append(f.max_age_hours)
    if f.opened_from is not None:
        sql += " AND sr.opened_at >= %s"
        params.append(f.opened_from)
    if f.opened_before is not None:
        sql += " AND sr.opened_at < %s"
        params.append(f.opened_before)
    return sql, params


async def request_queue(info: Info[GraphQLContext, None], department: str | None,
                        scope: QueueScope, first: int | None, after: str | None,
                        filter: ServiceRequestFilter | None, order_by: ServiceRequestOrder | None,
                        wait_for_position: int | None) -> Connection[ServiceRequest]:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    order = order_by or ServiceRequestOrder()
    keyset = Keyset(order.field.value, ORDER_TYPES[order.field.value],
                    order.direction == SortDirection.DESC)
    size = page_size(first)
    source, params = requests_source(ctx.container.settings)
    where, where_params = " WHERE true", list[Any]()
    if department is not None:
        clause = SCOPE_SQL[scope]
        where += " AND " + clause
        where_params += [department] * clause.count("%s")
    filter_sql, filter_params = _where(filter)
    where += filter_sql
    where_params += filter_params
    after_sql, after_params = keyset.after_sql(after)
    rows = await ctx.fetch(
        f"SELECT sr.* FROM {source}{where}{after_sql} ORDER BY {keyset.order_sql()} LIMIT %s",
        [*params, *where_params, *after_params, size + 1])
    total = (await ctx.fetch(f"SELECT count(*) AS n FROM {source}{where}",
                             [*params, *where_params]))[0]["n"]
    return connection(rows, size, keyset, total, ServiceRequest.from_row, bool(after))


async def request_by_id(info: Info[GraphQLContext, None], record_id: UUID,
                        wait_for_position: int | None = None) -> ServiceRequest | None:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    source, params = requests_source(ctx.container.settings)
    rows = await ctx.fetch(f"SELECT sr.* FROM {source} WHERE sr.id = %s", [*params, record_id])
    return ServiceRequest.from_row(rows[0]) if rows else None


# --- loaders (one per request) -----------------------------------------------------------------

def _customer_requests_loader(ctx: GraphQLContext) -> DataLoader[UUID, list[ServiceRequest]]:
    def make(ctx: GraphQLContext) -> DataLoader[UUID, list[ServiceRequest]]:
        async def load(ids: list[UUID]) -> list[list[ServiceRequest]]:
            source, params = requests_source(ctx.container.settings)
            rows = await ctx.fetch(f"SELECT sr.* FROM {source} WHERE sr.customer_id = ANY(%s)"
                                   " ORDER BY sr.opened_at, sr.id", [*params, list(ids)])
            found: dict[UUID, list[ServiceRequest]] = defaultdict(list)
            for row in rows:
                found[row["customer_id"]].append(ServiceRequest.from_row(row))
            return [found.get(i, []) for i in ids]
        return DataLoader(load_fn=load)
    return ctx.loader("service_requests_by_customer", make)


async def customer_requests(ctx: GraphQLContext, customer_id: UUID) -> list[ServiceRequest]:
    """A customer's service requests, oldest first (batched across a page of customers)."""
    return await _customer_requests_loader(ctx).load(customer_id)
