"""The GraphQL schema (Strawberry) and its FastAPI router at /graphql."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from fastapi.requests import HTTPConnection
from psycopg_pool import AsyncConnectionPool
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import Info

from service.auth import Unauthorized
from service.graphql.audit import AuditQuery
from service.graphql.budget_reports import (
    BudgetConsolidation,
    BudgetDimension,
    BudgetVsActualRow,
    budget_consolidation,
    budget_vs_actual,
)
from service.graphql.budgets import (
    Budget,
    BudgetFilter,
    BudgetOrder,
    BudgetWarning,
    budget_by_id,
    list_budget_warnings,
    list_budgets,
)
from service.graphql.context import GraphQLContext
from service.graphql.customer_kpis import CustomerKpi, customer_kpis
from service.graphql.customers import (
    Customer,
    CustomerFilter,
    CustomerOrder,
    customer_by_id,
    list_customers,
)
from service.graphql.executor import Executor
from service.graphql.http import OpsGraphQLRouter
from service.graphql.indicators import (
    IndicatorTarget,
    OperationsIndicators,
    indicator_targets,
    operations_indicators,
)
from service.graphql.integrity import IntegrityQuery
from service.graphql.nodes import Node, parse_global_id, record_uuid
from service.graphql.pagination import Connection
from service.graphql.positions import ProjectedPositions
from service.graphql.projects import (
    Project,
    ProjectFilter,
    ProjectOrder,
    answer_preloaded,
    list_projects,
    project_by_id,
)
from service.graphql.read_pool import read_pool
from service.graphql.risks import (
    HeatMapCell,
    Risk,
    RiskAction,
    RiskFilter,
    RiskOrder,
    RiskWarning,
    StrategySuggestion,
    heat_map,
    list_risks,
    open_warnings,
    overdue_actions,
    risk_by_id,
    suggestion,
)
from service.graphql.service_requests import (
    QueueScope,
    ServiceRequest,
    ServiceRequestFilter,
    ServiceRequestOrder,
    request_by_id,
    request_queue,
)
from service.graphql.subscriptions import Subscription


@strawberry.type
class Query(AuditQuery, IntegrityQuery):  # + integrityDigests, inclusionProof, …
    @strawberry.field(description="Projects, newest activity first by default (Relay "
                                  "connection). waitForPosition: read your own write. asOf: "
                                  "the portfolio as it stood then (auditors; managers: their "
                                  "departments).")
    async def projects(self, info: Info[GraphQLContext, None], first: int | None = 20,
                       after: str | None = None, filter: ProjectFilter | None = None,
                       order_by: ProjectOrder | None = None,
                       wait_for_position: int | None = None,
                       as_of: datetime | None = None) -> Connection[Project]:
        return await list_projects(info, first, after, filter, order_by, wait_for_position,
                                   as_of)

    @strawberry.field(description="One project by its UUID or global id.")
    async def project(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                      wait_for_position: int | None = None) -> Project | None:
        return await project_by_id(info, record_uuid(id, "Project"), wait_for_position)

    @strawberry.field(description="The risk register, highest score first by default (Relay "
                                  "connection); every risk, closed ones included, unless "
                                  "filtered. asOf: the register as it stood then, overdue "
                                  "actions judged on that date (auditors; managers: their "
                                  "departments).")
    async def risks(self, info: Info[GraphQLContext, None], first: int | None = 20,
                    after: str | None = None, filter: RiskFilter | None = None,
                    order_by: RiskOrder | None = None,
                    wait_for_position: int | None = None,
                    as_of: datetime | None = None) -> Connection[Risk]:
        return await list_risks(info, first, after, filter, order_by, wait_for_position,
                                as_of)

    @strawberry.field(description="One risk by its UUID or global id, with its assessment "
                                  "history, response, actions, plan versions and warnings.")
    async def risk(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                   wait_for_position: int | None = None) -> Risk | None:
        return await risk_by_id(info, record_uuid(id, "Risk"), wait_for_position)

    @strawberry.field(description="The 5×5 risk heat map: 25 cells (likelihood, then impact, "
                                  "ascending) counting the assessed risks filtered like the "
                                  "register; open risks only unless the filter names a status "
                                  "or sets openOnly. asOf: the map as it stood then (auditors; "
                                  "managers: their departments).")
    async def heat_map(self, info: Info[GraphQLContext, None], filter: RiskFilter | None = None,
                       wait_for_position: int | None = None,
                       as_of: datetime | None = None) -> list[HeatMapCell]:
        return await heat_map(info, filter, wait_for_position, as_of)

    @strawberry.field(description="The response strategy the policy suggests for a likelihood "
                                  "and an impact (1–5 each).")
    def suggest_strategy(self, likelihood: int, impact: int) -> StrategySuggestion:
        return suggestion(likelihood, impact)

    @strawberry.field(description="Risk action items past their due date (UTC today) and not "
                                  "done or cancelled, earliest first; risks filtered like the "
                                  "register (open risks unless a status is named). asOf: as "
                                  "they stood then, judged on that date (auditors; managers: "
                                  "their departments).")
    async def overdue_actions(self, info: Info[GraphQLContext, None], first: int | None = 20,
                              after: str | None = None, filter: RiskFilter | None = None,
                              action_owner: str | None = None,
                              wait_for_position: int | None = None,
                              as_of: datetime | None = None) -> Connection[RiskAction]:
        return await overdue_actions(info, first, after, filter, action_owner,
                                     wait_for_position, as_of)

    @strawberry.field(description="Risk warnings not yet acknowledged, newest first "
                                  "(includeAcknowledged: also those awaiting their "
                                  "re-assessment); risks filtered like the register. asOf: as "
                                  "they stood then (auditors; managers: their departments).")
    async def open_warnings(self, info: Info[GraphQLContext, None], first: int | None = 20,
                            after: str | None = None, filter: RiskFilter | None = None,
                            include_acknowledged: bool = False,
                            wait_for_position: int | None = None,
                            as_of: datetime | None = None) -> Connection[RiskWarning]:
        return await open_warnings(info, first, after, filter, include_acknowledged,
                                   wait_for_position, as_of)

    @strawberry.field(description="Customers, newest activity first by default (Relay "
                                  "connection); filter by status, segment (tier), owner, "
                                  "industry, department; search by name.")
    async def customers(self, info: Info[GraphQLContext, None], first: int | None = 20,
                        after: str | None = None, filter: CustomerFilter | None = None,
                        order_by: CustomerOrder | None = None,
                        wait_for_position: int | None = None) -> Connection[Customer]:
        return await list_customers(info, first, after, filter, order_by, wait_for_position)

    @strawberry.field(description="Customer 360 by UUID or global id: profile, contacts, "
                                  "cooperation history, open requests, satisfaction trend.")
    async def customer(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                       wait_for_position: int | None = None) -> Customer | None:
        return await customer_by_id(info, record_uuid(id, "Customer"), wait_for_position)

    @strawberry.field(description="A department's service-request queue, oldest first by "
                                  "default (Relay connection), each with its SLA clock; "
                                  "department null: every department.")
    async def service_request_queue(
            self, info: Info[GraphQLContext, None], department: str | None = None,
            scope: QueueScope = QueueScope.INVOLVED, first: int | None = 20,
            after: str | None = None, filter: ServiceRequestFilter | None = None,
            order_by: ServiceRequestOrder | None = None,
            wait_for_position: int | None = None) -> Connection[ServiceRequest]:
        return await request_queue(info, department, scope, first, after, filter, order_by,
                                   wait_for_position)

    @strawberry.field(description="One service request by its UUID or global id.")
    async def service_request(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                              wait_for_position: int | None = None) -> ServiceRequest | None:
        return await request_by_id(info, record_uuid(id, "ServiceRequest"), wait_for_position)

    @strawberry.field(description="Customer KPIs per intake department and UTC month "
                                  "(YYYY-MM bounds, inclusive): satisfaction, complaint rate, "
                                  "first-response and resolution p50/p90, SLA breaches. "
                                  "asOf: from the requests as they stood then (auditors; "
                                  "managers: their departments).")
    async def customer_kpis(self, info: Info[GraphQLContext, None],
                            department: list[str] | None = None, from_month: str | None = None,
                            to_month: str | None = None,
                            wait_for_position: int | None = None,
                            as_of: datetime | None = None) -> list[CustomerKpi]:
        return await customer_kpis(info, department, from_month, to_month, wait_for_position,
                                   as_of)

    @strawberry.field(description="Budgets, newest activity first by default (Relay "
                                  "connection); filter by department, fiscal year, status.")
    async def budgets(self, info: Info[GraphQLContext, None], first: int | None = 20,
                      after: str | None = None, filter: BudgetFilter | None = None,
                      order_by: BudgetOrder | None = None,
                      wait_for_position: int | None = None) -> Connection[Budget]:
        return await list_budgets(info, first, after, filter, order_by, wait_for_position)

    @strawberry.field(description="One budget by its UUID or global id: lines with figures, "
                                  "actuals, versions, adjustments, warnings.")
    async def budget(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                     wait_for_position: int | None = None) -> Budget | None:
        return await budget_by_id(info, record_uuid(id, "Budget"), wait_for_position)

    @strawberry.field(description="Budget vs actual of a fiscal year grouped by DEPARTMENT, "
                                  "LINE, CATEGORY and/or MONTH (kind and currency always "
                                  "split rows); variance = actual − budget. asOf: from the "
                                  "budgets and actuals as they stood then (auditors; managers: "
                                  "their departments).")
    async def budget_vs_actual(self, info: Info[GraphQLContext, None], fiscal_year: int,
                               group_by: list[BudgetDimension], department: str | None = None,
                               status: list[str] | None = None,
                               wait_for_position: int | None = None,
                               as_of: datetime | None = None) -> list[BudgetVsActualRow]:
        return await budget_vs_actual(info, fiscal_year, department, group_by, status,
                                      wait_for_position, as_of)

    @strawberry.field(description="Company consolidation of a fiscal year's budgets in one "
                                  "currency; statuses default to approved and later. asOf: "
                                  "as it stood then (auditors; managers: their departments).")
    async def budget_consolidation(self, info: Info[GraphQLContext, None], fiscal_year: int,
                                   currency: str = "CNY", statuses: list[str] | None = None,
                                   wait_for_position: int | None = None,
                                   as_of: datetime | None = None) -> BudgetConsolidation:
        return await budget_consolidation(info, fiscal_year, currency, statuses,
                                          wait_for_position, as_of)

    @strawberry.field(description="Budget warnings (80 % / 100 % of a line), newest first "
                                  "(Relay connection). asOf: those raised by then, with their "
                                  "budgets as they stood then (auditors; managers: their "
                                  "departments).")
    async def budget_warnings(self, info: Info[GraphQLContext, None], first: int | None = 20,
                              after: str | None = None, fiscal_year: int | None = None,
                              department: str | None = None, budget_id: strawberry.ID | None = None,
                              threshold: int | None = None,
                              wait_for_position: int | None = None,
                              as_of: datetime | None = None) -> Connection[BudgetWarning]:
        bid = record_uuid(budget_id, "Budget") if budget_id else None
        return await list_budget_warnings(info, first, after, fiscal_year, department, bid,
                                          threshold, wait_for_position, as_of)

    @strawberry.field(description="Operations indicators of a department for a UTC month "
                                  "(YYYY-MM), each with its target and an off-target flag.")
    async def operations_indicators(self, info: Info[GraphQLContext, None], department: str,
                                    month: str, wait_for_position: int | None = None,
                                    ) -> OperationsIndicators:
        return await operations_indicators(info, department, month, wait_for_position)

    @strawberry.field(description="Analysts' indicator targets, active ones unless "
                                  "includeWithdrawn.")
    async def indicator_targets(self, info: Info[GraphQLContext, None],
                                department: str | None = None, include_withdrawn: bool = False,
                                wait_for_position: int | None = None) -> list[IndicatorTarget]:
        return await indicator_targets(info, department, include_withdrawn, wait_for_position)

    @strawberry.field(description="Any object by its global id (Relay).")
    async def node(self, info: Info[GraphQLContext, None], id: strawberry.ID) -> Node | None:
        type_name, rid = parse_global_id(id)
        if type_name == "Project":
            return await project_by_id(info, rid)
        if type_name == "Risk":
            return await risk_by_id(info, rid)
        if type_name == "Customer":
            return await customer_by_id(info, rid)
        if type_name == "ServiceRequest":
            return await request_by_id(info, rid)
        if type_name == "Budget":
            return await budget_by_id(info, rid)
        return None


class SqlCounter(SchemaExtension):
    """Reports how many SQL statements a request ran (``extensions.sqlStatements``)."""

    def get_results(self) -> dict[str, Any]:
        ctx = self.execution_context.context
        return {"sqlStatements": getattr(ctx, "sql_statements", 0)}


LIMIT_RULES = [query_depth_limiter.create_validator(12, None),
               max_aliases.create_validator(30)]

schema = strawberry.Schema(
    query=Query, subscription=Subscription, execution_context_class=Executor,
    types=[Project, Risk, Customer, ServiceRequest, Budget],
    extensions=[lambda: MaxTokensLimiter(max_token_count=4000),
                lambda: ParserCache(maxsize=256),
                # QueryDepthLimiter(max_depth=12) and MaxAliasesLimiter(max_alias_count=30),
                # their rules made once: the same rules each time let ValidationCache reuse
                # the validation of a query text seen before (as clients send the same few).
                lambda: AddValidationRules(LIMIT_RULES),  # type: ignore[arg-type]
                lambda: ValidationCache(maxsize=256), SqlCounter])
answer_preloaded(schema)


async def _pool(request: HTTPConnection) -> AsyncConnectionPool:
    pool = getattr(request.app.state, "graphql_pool", None)
    if pool is None:
        container = request.app.state.container
        pool = read_pool(container.database.conninfo, container.settings.pool_size)
        await pool.open()
        request.app.state.graphql_pool = pool
        request.app.state.projected_positions = ProjectedPositions(
            container.database.conninfo, pool)
    return pool


async def get_context(request: HTTPConnection) -> GraphQLContext:  # HTTP or WebSocket
    container = request.app.state.container
    header = request.headers.get("authorization")
    actor = None
    if header:
        try:
            actor = container.auth.actor(header)
        except Unauthorized:
            raise
    pool = await _pool(request)
    return GraphQLContext(container, pool, actor, header,
                          positions=request.app.state.projected_positions)


def graphql_router() -> GraphQLRouter[Any, None]:
    return OpsGraphQLRouter(schema, context_getter=get_context, graphql_ide="graphiql",
                            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,
                                                    GRAPHQL_WS_PROTOCOL))
