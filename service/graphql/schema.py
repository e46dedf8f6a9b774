"""The GraphQL schema (Strawberry) and its FastAPI router at /graphql."""

from __future__ import annotations

from typing import Any

import strawberry
from fastapi import Request
from psycopg_pool import AsyncConnectionPool
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.fastapi import GraphQLRouter
from strawberry.types import Info

from service.auth import Unauthorized
from service.graphql.context import GraphQLContext
from service.graphql.nodes import Node, parse_global_id, record_uuid
from service.graphql.pagination import Connection
from service.graphql.projects import (
    Project,
    ProjectFilter,
    ProjectOrder,
    list_projects,
    project_by_id,
)


@strawberry.type
class Query:
    @strawberry.field(description="Projects, newest activity first by default (Relay "
                                  "connection). waitForPosition: read your own write.")
    async def projects(self, info: Info[GraphQLContext, None], first: int | None = 20,
                       after: str | None = None, filter: ProjectFilter | None = None,
                       order_by: ProjectOrder | None = None,
                       wait_for_position: int | None = None) -> Connection[Project]:
        return await list_projects(info, first, after, filter, order_by, wait_for_position)

    @strawberry.field(description="One project by its UUID or global id.")
    async def project(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                      wait_for_position: int | None = None) -> Project | None:
        return await project_by_id(info, record_uuid(id, "Project"), wait_for_position)

    @strawberry.field(description="Any object by its global id (Relay).")
    async def node(self, info: Info[GraphQLContext, None], id: strawberry.ID) -> Node | None:
        type_name, rid = parse_global_id(id)
        if type_name == "Project":
            return await project_by_id(info, rid)
        return None


class SqlCounter(SchemaExtension):
    """Reports how many SQL statements a request ran (``extensions.sqlStatements``)."""

    def get_results(self) -> dict[str, Any]:
        ctx = self.execution_context.context
        return {"sqlStatements": getattr(ctx, "sql_statements", 0)}


schema = strawberry.Schema(
    query=Query, types=[Project],
    extensions=[lambda: QueryDepthLimiter(max_depth=12),
                lambda: MaxTokensLimiter(max_token_count=4000),
                lambda: MaxAliasesLimiter(max_alias_count=30), SqlCounter])


async def _pool(request: Request) -> AsyncConnectionPool:
    pool = getattr(request.app.state, "graphql_pool", None)
    if pool is None:
        container = request.app.state.container
        pool = AsyncConnectionPool(container.database.conninfo, min_size=1,
                                   max_size=container.settings.pool_size, open=False)
        await pool.open()
        request.app.state.graphql_pool = pool
    return pool


async def get_context(request: Request) -> GraphQLContext:
    container = request.app.state.container
    header = request.headers.get("authorization")
    actor = None
    if header:
        try:
            actor = container.auth.actor(header)
        except Unauthorized:
            raise
    return GraphQLContext(container, await _pool(request), actor)


def graphql_router() -> GraphQLRouter[Any, None]:
    return GraphQLRouter(schema, context_getter=get_context, graphql_ide="graphiql")
