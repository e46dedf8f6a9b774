"""REST catch-up feed (``GET /events``) and Server-Sent Events (``GET /events/stream``).

Who reads: integrations hold tokens with the ``analyst`` or ``auditor`` role (read-only roles,
SPEC §1); ``leadership`` may read too. Everyone else gets 403: the stream spans every
department, so department-scoped roles do not see it.
"""

# No `from __future__ import annotations` here: FastAPI reads the signatures.

import json
import time
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from domain.shared import Actor, NotPermitted, Role, ValidationFailed
from service.rest.commands import ActorDep
from service.streams.cloudevents import UnknownEventType
from service.streams.hub import Streams
from service.streams.reader import MAX_PAGE, EventFilter, follow

READER_ROLES = (Role.ANALYST, Role.AUDITOR, Role.LEADERSHIP)
SSE_PAGE = 100


def require_stream_reader(actor: Actor) -> Actor:
    if not actor.has_role(*READER_ROLES):
        raise NotPermitted("the event streams are read with an analyst, auditor or leadership "
                           "token", rule="stream_reader_role")
    return actor


def get_streams(request: Request) -> Streams:
    return request.app.state.container.streams


def reader(actor: ActorDep) -> Actor:
    return require_stream_reader(actor)


StreamsDep = Annotated[Streams, Depends(get_streams)]
ReaderDep = Annotated[Actor, Depends(reader)]
RecordTypeQuery = Annotated[list[str], Query(
    description="Only these record types (repeat the parameter), e.g. `project`.")]
TypeQuery = Annotated[list[str], Query(
    description="Only these event types (repeat): `project.approved`, or the full CloudEvents "
                "type `opsledger.project.approved.v1`.")]
RecordIdQuery = Annotated[UUID | None, Query(description="Only the events of this record.")]


def event_filter(streams: Streams, record_type: list[str], type: list[str],  # noqa: A002
                 record_id: UUID | None) -> EventFilter:
    try:
        return EventFilter.parse(streams.catalogue, record_type, type, record_id)
    except UnknownEventType as exc:
        raise ValidationFailed(str(exc), field="type", rule="unknown_event_type") from None


class FeedPage(BaseModel):
    """A page of the feed: published events in global order, and where to continue."""

    events: list[dict[str, Any]] = Field(description=(
        "CloudEvents 1.0 (structured JSON), ordered by their `position`; see "
        "openapi/asyncapi.yaml for every type and its data schema."))
    next_after: int = Field(description="Pass as `after` to read on; it may be beyond the last "
                                        "event shown when later events did not match.")
    head: int = Field(description="The last committed position when the page was read.")
    has_more: bool = Field(description="The page is full: more events may follow at once.")


class Consumer(BaseModel):
    """A stream worker's progress (NATS publisher, webhook dispatcher)."""

    name: str
    position: int = Field(description="The last position the consumer has handled.")
    head: int = Field(description="The last committed position.")
    lag: int = Field(description="head - position")
    updated_at: datetime


def build_router() -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.get("/events", operation_id="events-feed", response_model=FeedPage,
                summary="Published events after a position (catch-up feed)",
                description=(
                    "Published events in global order after `after` (exclusive), at most "
                    "`limit`, filtered by record type, event type or record. Stable: the same "
                    "request returns the same events, and an event committed later never "
                    "appears before `next_after`. Read from 0 and follow `next_after`; "
                    "`has_more` false means you are at the head. Readers: analyst, auditor, "
                    "leadership."),
                responses={401: {"description": "Missing or invalid token"},
                           403: {"description": "Not a stream reader"},
                           422: {"description": "Unknown record type or event type"}})
    def feed(streams: StreamsDep, _actor: ReaderDep,
             after: Annotated[int, Query(ge=0, description="Exclusive position cursor.")] = 0,
             limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 100,
             record_type: RecordTypeQuery = [],  # noqa: B006
             type: TypeQuery = [],  # noqa: A002, B006
             record_id: RecordIdQuery = None) -> FeedPage:
        flt = event_filter(streams, record_type, type, record_id)
        page = streams.feed.read(after, limit, flt)
        return FeedPage(events=page.events, next_after=page.next_after, head=page.head,
                        has_more=page.full)

    @router.get("/events/stream", operation_id="events-stream",
                summary="Published events live (Server-Sent Events)",
                description=(
                    "The feed as `text/event-stream`: every event after `after` (or after the "
                    "`Last-Event-ID` header, which wins) and then each new one as it commits. "
                    "Each SSE message has `id:` = the event's position and `data:` = the "
                    "CloudEvent; reconnect with `Last-Event-ID` to resume without loss or "
                    "duplicates. A `: heartbeat` comment comes after a quiet interval. The "
                    "server reads the next page only when the previous one was sent, so a slow "
                    "client slows only itself. When the token expires the stream ends (within "
                    "one heartbeat interval) with an `event: token-expired` message: reconnect "
                    "with a fresh token and `Last-Event-ID`."),
                response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "An endless event stream"},
                           401: {"description": "Missing or invalid token"},
                           403: {"description": "Not a stream reader"},
                           422: {"description": "Unknown type, or a bad Last-Event-ID"}})
    async def stream(request: Request, streams: StreamsDep, _actor: ReaderDep,
                     after: Annotated[int, Query(ge=0)] = 0,
                     record_type: RecordTypeQuery = [],  # noqa: B006
                     type: TypeQuery = [],  # noqa: A002, B006
                     record_id: RecordIdQuery = None,
                     last_event_id: Annotated[str | None, Header(
                         description="The `id` of the last message received: resume after it."
                     )] = None) -> StreamingResponse:
        flt = event_filter(streams, record_type, type, record_id)
        start = after
        if last_event_id is not None and last_event_id.strip():
            text = last_event_id.strip()
            if not text.isdigit():
                raise ValidationFailed("Last-Event-ID must be the position of an event",
                                       field="Last-Event-ID", rule="last_event_id")
            start = int(text)
        settings = streams.settings
        # A long-lived stream must not outlive the token that opened it (checked before each
        # message; a quiet stream checks at each heartbeat).
        expires = request.app.state.container.auth.expiry(request.headers.get("authorization"))

        async def messages() -> Any:
            # Headers go out at once; `retry` tells clients how soon to reconnect.
            yield f"retry: {int(settings.stream_retry_ms)}\n: connected\n\n"
            async for event in follow(streams.feed, streams.signal, start, flt,
                                      heartbeat=settings.stream_heartbeat_seconds,
                                      page_size=SSE_PAGE):
                if expires is not None and time.time() >= expires:
                    yield ("event: token-expired\ndata: {\"detail\":\"the token has expired; "
                           "reconnect with a fresh token and Last-Event-ID\"}\n\n")
                    return
                if event is None:
                    yield ": heartbeat\n\n"
                else:
                    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                    yield f"id: {event['position']}\ndata: {data}\n\n"

        return StreamingResponse(messages(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @router.get("/events/consumers", operation_id="events-consumers",
                response_model=list[Consumer],
                summary="Stream consumers' positions and lag",
                description="Where the NATS publisher and the webhook dispatcher are, and how "
                            "far behind the head (also the metric `opsledger.stream.lag`).",
                responses={401: {"description": "Missing or invalid token"},
                           403: {"description": "Not a stream reader"}})
    def consumers(streams: StreamsDep, _actor: ReaderDep) -> list[dict[str, Any]]:
        return streams.consumers()

    return router
