"""GraphQL subscriptions (graphql-ws / graphql-transport-ws at /graphql): published events live.

The same events as the REST feed and Server-Sent Events (CloudEvents, personal data withheld),
for the same readers (analyst, auditor, leadership). Authenticate with the
``Authorization: Bearer`` header of the WebSocket upgrade, or — browsers cannot set it — with
``{"Authorization": "Bearer …"}`` as the ``connection_init`` payload. Without ``after`` a
subscription starts at the current head (new events only); with it, it first catches up. When
the token expires, the subscription ends with a ``TOKEN_EXPIRED`` error.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import anyio
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.shared import Actor, DomainError
from service.auth import Unauthorized
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.nodes import parse_global_id
from service.streams.cloudevents import UnknownEventType
from service.streams.feed import require_stream_reader
from service.streams.reader import EventFilter, follow


@strawberry.type(description="A published event (a CloudEvent; see openapi/asyncapi.yaml).")
class IntegrationEvent:
    id: str = strawberry.field(description="Stable event id: de-duplicate on it.")
    type: str = strawberry.field(description="e.g. opsledger.project.approved.v1")
    source: str
    subject: str = strawberry.field(description="The record's id.")
    time: datetime
    position: int = strawberry.field(description="Global position (resume with `after`).")
    record_type: str
    record_version: int
    department: str | None
    actor_id: str | None
    correlation_id: str | None
    traceparent: str | None
    data: JSON = strawberry.field(description="The event's payload.")
    cloud_event: JSON = strawberry.field(description="The whole CloudEvent as published.")

    @classmethod
    def of(cls, ce: dict[str, Any]) -> IntegrationEvent:
        return cls(id=ce["id"], type=ce["type"], source=ce["source"], subject=ce["subject"],
                   time=datetime.fromisoformat(ce["time"].replace("Z", "+00:00")),
                   position=ce["position"], record_type=ce["recordtype"],
                   record_version=ce["recordversion"], department=ce.get("department"),
                   actor_id=ce.get("actorid"), correlation_id=ce.get("correlationid"),
                   traceparent=ce.get("traceparent"), data=ce["data"],
                   cloud_event=cast(Any, ce))


@strawberry.input(description="Empty lists mean all.")
class EventFilterInput:
    record_types: list[str] | None = strawberry.field(
        default=None, description="e.g. [\"project\", \"risk\"]")
    types: list[str] | None = strawberry.field(
        default=None, description="e.g. [\"project.approved\"] or full CloudEvents types")


def _reader(context: GraphQLContext) -> tuple[Actor, str | None]:
    """The subscriber (a stream reader) and the Authorization it was read from."""
    actor, header = context.actor, context.authorization
    if actor is None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if header:
            try:
                actor = context.container.auth.actor(str(header))
            except Unauthorized as exc:
                raise ReadError(str(exc), "UNAUTHENTICATED") from None
    if actor is None:
        raise ReadError("send 'Authorization: Bearer <token>' (header or connection_init "
                        "payload) to subscribe", "UNAUTHENTICATED")
    try:
        return require_stream_reader(actor), (str(header) if header else None)
    except DomainError as exc:
        raise ReadError(exc.message, "FORBIDDEN") from None


async def _events(info: Info[GraphQLContext, None], after: int | None,
                  flt: EventFilter) -> AsyncGenerator[IntegrationEvent, None]:
    context = info.context
    _, header = _reader(context)
    # A subscription must not outlive the token that opened it (as the SSE stream): checked
    # before each event and at each heartbeat interval of a quiet stream.
    expires = context.container.auth.expiry(header)
    streams = context.container.streams
    if after is None:
        after = (await anyio.to_thread.run_sync(streams.feed.read, 0, 0)).head  # from now on
    async for ce in follow(streams.feed, streams.signal, after, flt,
                           heartbeat=streams.settings.stream_heartbeat_seconds):
        if expires is not None and time.time() >= expires:
            raise ReadError("the token has expired: subscribe again with a fresh token, with "
                            "`after` set to the last position received", "TOKEN_EXPIRED")
        if ce is not None:  # heartbeats: graphql-ws keeps the connection alive itself
            yield IntegrationEvent.of(ce)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Published events as they commit, filtered; `after`: "
                                         "start after this position (default: now).")
    async def events(self, info: Info[GraphQLContext, None], after: int | None = None,
                     filter: EventFilterInput | None = None,
                     ) -> AsyncGenerator[IntegrationEvent, None]:
        try:
            flt = EventFilter.parse(info.context.container.streams.catalogue,
                                    (filter and filter.record_types) or (),
                                    (filter and filter.types) or ())
        except UnknownEventType as exc:
            raise ReadError(str(exc), "BAD_FILTER") from None
        async for event in _events(info, after, flt):
            yield event

    @strawberry.subscription(description="Each change of one record (its UUID or global id): "
                                         "every published event of it, as it commits.")
    async def record_changed(self, info: Info[GraphQLContext, None], id: strawberry.ID,
                             after: int | None = None,
                             ) -> AsyncGenerator[IntegrationEvent, None]:
        try:
            record_id = UUID(str(id))
        except ValueError:
            record_id = parse_global_id(str(id))[1]
        async for event in _events(info, after, EventFilter(record_id=record_id)):
            yield event
