"""GraphQL types and queries over the `customers` table: the customer list and the customer 360
(profile, contacts, cooperation history, open requests, satisfaction trend) — SPEC §3.

Cooperation history is derived when read, never stored: the customer's projects (by
``Project.customer_id``), its interactions and feedback (in its own record) and its service
requests, merged in time order. An interaction has a date, not a time: it sorts at 00:00 UTC of
that date. Nested lists load through per-request DataLoaders, so a page of customers costs the
same number of statements whatever its size.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from datetime import UTC, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.customer import CustomerKind, CustomerStatus
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.convert import from_doc
from service.graphql.nodes import Node, global_id
from service.graphql.pagination import Connection, Keyset, SortDirection, connection, page_size
from service.graphql.projects import Project
from service.graphql.service_requests import ServiceRequest, customer_requests

MONTH = "to_char(date_trunc('month', {} AT TIME ZONE 'UTC'), 'YYYY-MM')"
AVERAGE_PLACES = Decimal("0.01")


# --- types -------------------------------------------------------------------------------------

@strawberry.type(description="A contact person (personal data, SPEC §7).")
class Contact:
    id: str
    name: str | None
    phone: str | None
    email: str | None
    title: str | None
    is_primary: bool


@strawberry.type
class StatusChange:
    from_status: str
    to_status: str
    reason: str
    by: str
    at: datetime


@strawberry.type
class Interaction:
    id: str
    date: dt.date
    channel: str
    summary: str
    follow_up_date: dt.date | None
    by: str


@strawberry.type
class Feedback:
    id: str
    subject: str
    rating: int | None
    text: str
    by: str
    at: datetime


@strawberry.enum
class CooperationKind(Enum):
    PROJECT = "project"
    INTERACTION = "interaction"
    FEEDBACK = "feedback"
    SERVICE_REQUEST = "service_request"


@strawberry.type(description="One item of a customer's cooperation history.")
class CooperationEntry:
    kind: CooperationKind
    at: datetime = strawberry.field(description="When: a project's proposal, a request's "
                                                "opening, feedback's recording; an "
                                                "interaction's date at 00:00 UTC.")
    record_id: UUID | None = strawberry.field(description="The project or service request.")
    item_id: str | None = strawberry.field(description="The interaction or feedback entry.")
    title: str
    status: str | None
    channel: str | None
    department: str | None
    by: str | None


@strawberry.type(description="The customer's satisfaction scores in one UTC month.")
class SatisfactionPoint:
    month: str
    count: int
    average: Decimal


@strawberry.type
class Customer(Node):
    """A customer as its projection shows it (SPEC §3)."""

    record_id: UUID
    name: str | None = strawberry.field(description="Null once an individual's personal data "
                                                    "is erased.")
    kind: str
    status: str
    department: str
    credit_code: str | None
    industry: str | None
    acquisition_channel: str | None
    needs: str | None
    preferences: str | None
    segment: str | None = strawberry.field(description="The customer's tier / segment.")
    account_owner: str | None
    registered_by: str
    contacts: list[Contact]
    status_history: list[StatusChange]
    interactions: list[Interaction]
    feedback: list[Feedback]
    version: int
    position: int
    created_on: datetime
    modified_on: datetime
    detail: JSON = strawberry.field(description="The whole record view as JSON.")

    @strawberry.field(description="The customer's personal data (contact people, an "
                                  "individual's name) is erased: those fields are null for "
                                  "good (PIPL art. 47 / GDPR art. 17).")
    def personal_data_erased(self) -> bool:
        return bool(self.detail.get("personal_data_erased"))  # type: ignore[attr-defined]

    @strawberry.field(description="When the personal data was erased.")
    def personal_data_erased_at(self) -> datetime | None:
        at = self.detail.get("personal_data_erased_at")  # type: ignore[attr-defined]
        return datetime.fromisoformat(at) if at else None

    @strawberry.field(description="Projects for this customer, oldest first.")
    async def projects(self, info: Info[GraphQLContext, None]) -> list[Project]:
        return await _projects_loader(info.context).load(self.record_id)

    @strawberry.field(description="Service requests of this customer, oldest first.")
    async def service_requests(self, info: Info[GraphQLContext, None],
                               open_only: bool = False) -> list[ServiceRequest]:
        requests = await customer_requests(info.context, self.record_id)
        return [r for r in requests if r.status != "closed"] if open_only else requests

    @strawberry.field(description="Service requests not closed yet, oldest first.")
    async def open_requests(self, info: Info[GraphQLContext, None]) -> list[ServiceRequest]:
        return [r for r in await customer_requests(info.context, self.record_id)
                if r.status != "closed"]

    @strawberry.field(description="Cooperation history: projects, interactions, feedback and "
                                  "service requests in time order (oldest first by default).")
    async def cooperation_history(self, info: Info[GraphQLContext, None],
                                  direction: SortDirection = SortDirection.ASC,
                                  ) -> list[CooperationEntry]:
        entries = [CooperationEntry(
            kind=CooperationKind.INTERACTION, at=datetime.combine(i.date, time(), UTC),
            record_id=None, item_id=i.id, title=i.summary, status=None, channel=i.channel,
            department=None, by=i.by) for i in self.interactions]
        entries += [CooperationEntry(
            kind=CooperationKind.FEEDBACK, at=f.at, record_id=None, item_id=f.id, title=f.subject,
            status=None, channel=None, department=None, by=f.by) for f in self.feedback]
        entries += [CooperationEntry(
            kind=CooperationKind.PROJECT, at=p.created_on, record_id=p.record_id, item_id=None,
            title=p.name, status=p.status, channel=None, department=p.department,
            by=p.proposer) for p in await _projects_loader(info.context).load(self.record_id)]
        entries += [CooperationEntry(
            kind=CooperationKind.SERVICE_REQUEST, at=r.opened_at, record_id=r.record_id,
            item_id=None, title=f"{r.category}: {r.description}", status=r.status,
            channel=r.channel, department=r.department, by=r.opened_by)
            for r in await customer_requests(info.context, self.record_id)]
        entries.sort(key=lambda e: e.at, reverse=direction == SortDirection.DESC)
        return entries

    @strawberry.field(description="Average satisfaction per UTC month over every score "
                                  "recorded for this customer's requests (re-asked ones "
                                  "included), oldest month first.")
    async def satisfaction_trend(self, info: Info[GraphQLContext, None]
                                 ) -> list[SatisfactionPoint]:
        return await _trend_loader(info.context).load(self.record_id)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Customer:
        doc = row["doc"]
        return from_doc(cls, doc, id=global_id("Customer", doc["id"]), record_id=UUID(doc["id"]),
                        position=row["position"], detail=doc)


# --- the list ----------------------------------------------------------------------------------

@strawberry.enum
class CustomerOrderField(Enum):
    UPDATED_AT = "updated_at"
    CREATED_AT = "created_at"
    NAME = "name"


ORDER_TYPES = {"updated_at": "timestamptz", "created_at": "timestamptz", "name": "text"}


@strawberry.input
class CustomerOrder:
    field: CustomerOrderField = CustomerOrderField.UPDATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.input
class CustomerFilter:
    status: list[str] | None = None
    segment: list[str] | None = strawberry.field(default=None, description="Tier / segment.")
    account_owner: str | None = None
    industry: list[str] | None = None
    department: list[str] | None = None
    kind: str | None = None
    search: str | None = strawberry.field(
        default=None, description="Part of the name, case-insensitive.")


def _where(f: CustomerFilter | None) -> tuple[str, list[Any]]:
    sql, params = " WHERE true", list[Any]()
    if f is None:
        return sql, params
    unknown = sorted(set(f.status or ()) - {s.value for s in CustomerStatus})
    if unknown or (f.kind is not None and f.kind not in {k.value for k in CustomerKind}):
        raise ReadError(f"unknown customer status or kind: {unknown or [f.kind]}", "BAD_FILTER")
    for column, values in (("status", f.status), ("segment", f.segment),
                           ("industry", f.industry), ("department", f.department)):
        if values:
            sql += f" AND {column} = ANY(%s)"
            params.append(values)
    if f.account_owner:
        sql += " AND account_owner = %s"
        params.append(f.account_owner)
    if f.kind:
        sql += " AND kind = %s"
        params.append(f.kind)
    if f.search and f.search.strip():
        text = f.search.strip().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        sql += " AND name ILIKE %s"
        params.append(f"%{text}%")
    return sql, params


async def list_customers(info: Info[GraphQLContext, None], first: int | None, after: str | None,
                         filter: CustomerFilter | None, order_by: CustomerOrder | None,
                         wait_for_position: int | None) -> Connection[Customer]:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    order = order_by or CustomerOrder()
    keyset = Keyset(order.field.value, ORDER_TYPES[order.field.value],
                    order.direction == SortDirection.DESC)
    size = page_size(first)
    where, params = _where(filter)
    after_sql, after_params = keyset.after_sql(after)
    rows = await ctx.fetch(
        f"SELECT id, {keyset.column}, position, doc FROM customers{where}{after_sql}"
        f" ORDER BY {keyset.order_sql()} LIMIT %s", [*params, *after_params, size + 1])
    total = (await ctx.fetch(f"SELECT count(*) AS n FROM customers{where}", params))[0]["n"]
    return connection(rows, size, keyset, total, Customer.from_row, bool(after))


async def customer_by_id(info: Info[GraphQLContext, None], record_id: UUID,
                         wait_for_position: int | None = None) -> Customer | None:
    ctx = info.context
    ctx.require_actor()
    await ctx.wait_for_position(wait_for_position)
    return await load_customer(ctx, record_id)


# --- loaders (one per request) -----------------------------------------------------------------

def _customer_loader(ctx: GraphQLContext) -> DataLoader[UUID, Customer | None]:
    def make(ctx: GraphQLContext) -> DataLoader[UUID, Customer | None]:
        async def load(ids: list[UUID]) -> list[Customer | None]:
            rows = await ctx.fetch("SELECT id, position, doc FROM customers WHERE id = ANY(%s)",
                                   [list(ids)])
            found = {row["id"]: Customer.from_row(row) for row in rows}
            return [found.get(i) for i in ids]
        return DataLoader(load_fn=load)
    return ctx.loader("customer_by_id", make)


async def load_customer(ctx: GraphQLContext, customer_id: UUID | str) -> Customer | None:
    """One customer by id, batched with every other lookup in the same request."""
    return await _customer_loader(ctx).load(UUID(str(customer_id)))


def _projects_loader(ctx: GraphQLContext) -> DataLoader[UUID, list[Project]]:
    def make(ctx: GraphQLContext) -> DataLoader[UUID, list[Project]]:
        async def load(ids: list[UUID]) -> list[list[Project]]:
            rows = await ctx.fetch(
                "SELECT customer_id, position, doc FROM projects WHERE customer_id = ANY(%s)"
                " ORDER BY created_at, id", [list(ids)])
            found: dict[UUID, list[Project]] = defaultdict(list)
            for row in rows:
                found[row["customer_id"]].append(Project.from_row(row))
            return [found.get(i, []) for i in ids]
        return DataLoader(load_fn=load)
    return ctx.loader("projects_by_customer", make)


def _trend_loader(ctx: GraphQLContext) -> DataLoader[UUID, list[SatisfactionPoint]]:
    def make(ctx: GraphQLContext) -> DataLoader[UUID, list[SatisfactionPoint]]:
        async def load(ids: list[UUID]) -> list[list[SatisfactionPoint]]:
            month = MONTH.format("recorded_at")
            rows = await ctx.fetch(
                f"SELECT customer_id, {month} AS month, count(*) AS n, sum(score) AS total"
                " FROM service_request_satisfaction WHERE customer_id = ANY(%s)"
                " GROUP BY 1, 2 ORDER BY 2", [list(ids)])
            found: dict[UUID, list[SatisfactionPoint]] = defaultdict(list)
            for row in rows:
                average = (Decimal(row["total"]) / row["n"]).quantize(AVERAGE_PLACES,
                                                                       ROUND_HALF_UP)
                found[row["customer_id"]].append(
                    SatisfactionPoint(month=row["month"], count=row["n"], average=average))
            return [found.get(i, []) for i in ids]
        return DataLoader(load_fn=load)
    return ctx.loader("satisfaction_trend_by_customer", make)
