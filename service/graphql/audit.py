"""GraphQL for auditors: recordHistory, recordAsOf, recordDiff, auditLog — and the helpers
views use to answer "as of" a past moment (``records_as_of`` + ``as_of_connection`` for views
filtered in memory; ``fetch_as_of`` for views whose live path is SQL over projection tables).

The work is done by the audit use cases (``service.audit``), which decide who may read (auditors:
everything; department managers: their departments) and log reads of personal data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar, cast
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.shared import DomainError
from projections.records import RecordTable
from service.application import NotFound
from service.audit import ReadContext, auditor_of
from service.audit.asof import RecordAt, Statement
from service.audit.log import LogFilter
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.nodes import parse_global_id
from service.graphql.pagination import (
    Connection,
    Edge,
    PageInfo,
    decode_cursor,
    encode_cursor,
    page_size,
)

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type
class AuditActor:
    user_id: str | None
    name: str | None
    roles: list[str]
    departments: list[str]


@strawberry.type(description="One field that changed: `status`, `lead.user_id`, "
                             "`tasks[<id>].status`, `lines[0].amount`.")
class FieldChange:
    path: str
    kind: str = strawberry.field(description="added, removed or changed")
    old: JSON | None
    new: JSON | None


@strawberry.type
class HistoryEntry:
    version: int
    position: int | None
    event_type: str
    at: datetime
    actor: AuditActor
    command: str | None
    comment: str | None
    reason: str | None
    correlation_id: str | None
    causation_id: str | None
    request_id: str | None
    idempotency_key: str | None
    trace_id: str | None
    span_id: str | None
    changes: list[FieldChange]
    state: JSON | None = strawberry.field(description="The whole initial state (first event).")


@strawberry.type
class RecordHistory:
    record_type: str
    record_id: UUID
    current_version: int
    department: str | None
    from_version: int
    entries: list[HistoryEntry]
    next_from_version: int | None
    personal_data_erased: bool = strawberry.field(default=False, description=(
        "The record's personal data is erased: its personal fields read as null at every "
        "version."))


@strawberry.type
class DiffEvent:
    version: int
    position: int
    event_type: str
    at: datetime
    actor_id: str | None


@strawberry.type
class RecordDiff:
    record_type: str
    record_id: UUID
    from_version: int
    to_version: int
    from_at: datetime
    to_at: datetime
    changes: list[FieldChange]
    events: list[DiffEvent]


@strawberry.enum
class AuditLogKind(Enum):
    ALL = "all"
    EVENTS = "events"
    REFUSALS = "refusals"


@strawberry.input
class AuditLogFilter:
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    record_type: str | None = None
    record_id: UUID | None = None
    event_type: str | None = None
    department: str | None = None
    kind: AuditLogKind = AuditLogKind.ALL


@strawberry.type
class AuditLogEntry:
    kind: str
    at: datetime
    position: int | None
    refusal_id: int | None
    record_type: str
    record_id: UUID | None
    version: int | None
    event_type: str | None
    command: str | None
    actor_id: str | None
    actor_name: str | None
    actor_roles: list[str]
    department: str | None
    comment: str | None
    reason: str | None
    status: int | None
    rule: str | None
    detail: str | None
    correlation_id: str | None
    request_id: str | None
    trace_id: str | None


@strawberry.type
class AuditLogConnection:
    edges: list[Edge[AuditLogEntry]]
    page_info: PageInfo
    filter: strawberry.Private[LogFilter]
    reader: strawberry.Private[ReadContext]

    @strawberry.field(description="How many entries match (counted only when asked).")
    async def total_count(self, info: Info[GraphQLContext, None]) -> int:
        auditor = auditor_of(info.context.container)
        return await _call(auditor.log_count, self.reader, self.filter)


# -- plumbing -------------------------------------------------------------------------------
def _reader(info: Info[GraphQLContext, None]) -> ReadContext:
    return ReadContext(actor=info.context.require_actor(), via="graphql")


async def _call(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Runs an audit use case off the event loop; its refusals become GraphQL errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except DomainError as exc:
        code = {403: "FORBIDDEN", 409: "CONFLICT"}.get(exc.status, "BAD_ARGUMENT")
        raise ReadError(exc.message, code) from None
    except NotFound as exc:
        raise ReadError(str(exc), "NOT_FOUND") from None


def _changes(items: list[dict[str, Any]]) -> list[FieldChange]:
    return [FieldChange(**c) for c in items]


def _history(doc: dict[str, Any]) -> RecordHistory:
    entries = [HistoryEntry(**{**e, "at": datetime.fromisoformat(e["at"]),
                               "actor": AuditActor(**e["actor"]),
                               "changes": _changes(e["changes"]), "state": e.get("state")})
               for e in doc["entries"]]
    return RecordHistory(**{**doc, "record_id": UUID(doc["record_id"]), "entries": entries})


def _diff(doc: dict[str, Any]) -> RecordDiff:
    events = [DiffEvent(**{**e, "at": datetime.fromisoformat(e["at"])}) for e in doc["events"]]
    return RecordDiff(**{**doc, "record_id": UUID(doc["record_id"]),
                         "from_at": datetime.fromisoformat(doc["from_at"]),
                         "to_at": datetime.fromisoformat(doc["to_at"]),
                         "changes": _changes(doc["changes"]), "events": events})


def _log_entry(item: dict[str, Any]) -> AuditLogEntry:
    values = {k: v for k, v in item.items() if k != "cursor"}
    values["at"] = datetime.fromisoformat(values["at"])
    values["record_id"] = UUID(values["record_id"]) if values["record_id"] else None
    return AuditLogEntry(**values)


# -- resolvers ------------------------------------------------------------------------------
async def record_history(info: Info[GraphQLContext, None], record_type: str, id: str,
                         from_version: int, first: int) -> RecordHistory:
    auditor = auditor_of(info.context.container)
    doc = await _call(auditor.history, _reader(info), record_type, _uuid(id),
                      from_version=from_version, limit=first)
    return _history(doc)


async def record_as_of(info: Info[GraphQLContext, None], record_type: str, id: str,
                       version: int | None, at: datetime | None) -> dict[str, Any]:
    auditor = auditor_of(info.context.container)
    return await _call(auditor.as_of, _reader(info), record_type, _uuid(id), version=version,
                       at=at)


async def record_diff(info: Info[GraphQLContext, None], record_type: str, id: str,
                      from_version: int, to_version: int) -> RecordDiff:
    auditor = auditor_of(info.context.container)
    return _diff(await _call(auditor.diff, _reader(info), record_type, _uuid(id),
                             from_version, to_version))


async def audit_log(info: Info[GraphQLContext, None], filter: AuditLogFilter | None,
                    first: int | None, after: str | None,
                    newest_first: bool) -> AuditLogConnection:
    auditor = auditor_of(info.context.container)
    f = filter or AuditLogFilter()
    log_filter = LogFilter(actor_id=f.actor, since=f.since, until=f.until,
                           record_type=f.record_type, record_id=f.record_id,
                           event_type=f.event_type, department=f.department,
                           kind=f.kind.value)
    reader = _reader(info)
    size = page_size(first)
    page = await _call(auditor.log_page, reader, log_filter, after=after, limit=max(size, 1),
                       newest_first=newest_first)
    items = page["items"][:size]
    edges = [Edge(cursor=i["cursor"], node=_log_entry(i)) for i in items]
    return AuditLogConnection(
        edges=edges, filter=log_filter, reader=reader,
        page_info=PageInfo(has_next_page=page["next_cursor"] is not None or
                           len(page["items"]) > size,
                           has_previous_page=bool(after),
                           start_cursor=edges[0].cursor if edges else None,
                           end_cursor=edges[-1].cursor if edges else None))


def _uuid(value: str) -> UUID:
    """A record's UUID, or its global id (of whatever type)."""
    try:
        return UUID(value)
    except ValueError:
        return parse_global_id(value)[1]


# -- views as of a past moment --------------------------------------------------------------
async def records_as_of(info: Info[GraphQLContext, None], record_type: str,
                        at: datetime) -> list[RecordAt]:
    """Every record of ``record_type`` as it stood at ``at`` (``.doc`` is its ``record_view``
    then, ``.position`` the global position of its last event by then), restricted to what the
    caller may audit (auditors: all; department managers: their departments then; others get
    a FORBIDDEN error). Reads of personal data are logged. A view answers "as of" by filtering,
    sorting and aggregating these docs in memory instead of reading its projection table."""
    auditor = auditor_of(info.context.container)
    return await _call(auditor.views_as_of, _reader(info), record_type, at)


async def fetch_as_of(info: Info[GraphQLContext, None], as_of: datetime | None,
                      tables: Sequence[RecordTable],
                      statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
    """The rows of a view's own statements: on the live projection tables (``as_of`` None),
    or as of a moment on temporary tables of the same names filled by the same
    ``RecordTable``s from the records of their types rebuilt as of then (audit scope and read
    logging as in ``records_as_of``). A view whose live path is SQL answers "as of" with the
    very same SQL — nothing is computed twice."""
    ctx = info.context
    if as_of is None:
        return [await ctx.fetch(sql, params) for sql, params in statements]
    ctx.sql_statements += len(statements)
    auditor = auditor_of(ctx.container)
    return await _call(auditor.query_as_of, _reader(info), as_of, tables, statements)


def as_of_connection(records: list[RecordAt], *, first: int | None, after: str | None,
                     sort_key: Callable[[dict[str, Any]], Any], descending: bool,
                     make_node: Callable[[RecordAt], T]) -> Connection[T]:
    """A Relay page over records rebuilt as of a moment, sorted by ``sort_key(doc)`` (``None``
    last) then id. As-of results are fixed for a past moment, so a cursor is simply the id of
    the last record shown."""
    size = page_size(first)

    present = sorted((r for r in records if sort_key(r.doc) is not None),
                     key=lambda r: (sort_key(r.doc), str(r.record_id)), reverse=descending)
    missing = sorted((r for r in records if sort_key(r.doc) is None),
                     key=lambda r: str(r.record_id), reverse=descending)
    ordered = present + missing
    start = 0
    if after:
        _, last_id = decode_cursor(after)
        ids = [str(r.record_id) for r in ordered]
        start = ids.index(last_id) + 1 if last_id in ids else 0
    chunk = ordered[start:start + size]
    edges = [Edge(cursor=encode_cursor(sort_key(r.doc), r.record_id), node=make_node(r))
             for r in chunk]
    return Connection(edges=edges, total_count=len(ordered), page_info=PageInfo(
        has_next_page=start + size < len(ordered), has_previous_page=start > 0,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None))


# -- the Query fields (Query in schema.py inherits them) -----------------------------------
@strawberry.type
class AuditQuery:
    @strawberry.field(description="A record's history: every event in order with who (user, "
                                  "roles), when (UTC), what changed (old → new, nested lines "
                                  "by id) and why. Auditors; managers for their departments.")
    async def record_history(self, info: Info[GraphQLContext, None], record_type: str,
                             id: strawberry.ID, from_version: int = 1,
                             first: int = 100) -> RecordHistory:
        return await record_history(info, record_type, id, from_version, first)

    @strawberry.field(description="A record as it stood at a version or a moment (one of "
                                  "them): the same JSON view as its current state.")
    async def record_as_of(self, info: Info[GraphQLContext, None], record_type: str,
                           id: strawberry.ID, version: int | None = None,
                           at: datetime | None = None) -> JSON:
        return cast(JSON, await record_as_of(info, record_type, id, version, at))

    @strawberry.field(description="What changed between two versions of a record.")
    async def record_diff(self, info: Info[GraphQLContext, None], record_type: str,
                          id: strawberry.ID, from_version: int,
                          to_version: int) -> RecordDiff:
        return await record_diff(info, record_type, id, from_version, to_version)

    @strawberry.field(description="The global audit log: events and refused commands, oldest "
                                  "first unless newestFirst (Relay connection).")
    async def audit_log(self, info: Info[GraphQLContext, None],
                        filter: AuditLogFilter | None = None, first: int | None = 20,
                        after: str | None = None,
                        newest_first: bool = False) -> AuditLogConnection:
        return await audit_log(info, filter, first, after, newest_first)
