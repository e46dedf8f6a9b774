"""REST for auditors' scripts: a record's history, past state and diffs; the global log and its
streaming export; the log of audit reads; and the read-only auditor console page.

Routes only translate HTTP to the audit use cases (``service.audit``); who may read what is
decided there (auditors: everything; department managers: their departments; others 403).
"""

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from service.audit import Auditor, ReadContext, auditor_of
from service.audit.log import LogFilter, as_csv, as_jsonl
from service.rest.commands import PROBLEMS, ActorDep

CONSOLE = Path(__file__).resolve().parents[1] / "console" / "index.html"
READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    k: v for k, v in PROBLEMS.items() if k in (401, 403, 404, 422, 503)}


def get_auditor(request: Request) -> Auditor:
    return auditor_of(request.app.state.container)


def read_context(actor: ActorDep, x_request_id: Annotated[str | None, Header(
        max_length=200)] = None) -> ReadContext:
    return ReadContext(actor=actor, via="rest", request_id=x_request_id)


AuditorDep = Annotated[Auditor, Depends(get_auditor)]
ReaderDep = Annotated[ReadContext, Depends(read_context)]


class Change(BaseModel):
    path: str = Field(description="The field: `status`, `lead.user_id`, `tasks[<id>].status`, "
                                  "`lines[0].amount`.")
    kind: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class Actor(BaseModel):
    user_id: str | None
    name: str | None
    roles: list[str]
    departments: list[str]


class HistoryEntry(BaseModel):
    version: int
    position: int | None = Field(description="Global position of the event.")
    event_type: str
    at: datetime = Field(description="When the event happened (UTC).")
    actor: Actor
    command: str | None
    comment: str | None = Field(description="Why: the comment sent with the command.")
    reason: str | None = Field(description="The reason the command itself carried, if any.")
    correlation_id: str | None
    causation_id: str | None
    request_id: str | None
    idempotency_key: str | None
    trace_id: str | None
    span_id: str | None
    changes: list[Change]
    state: dict[str, Any] | None = Field(default=None, description=(
        "The whole initial state (first event only)."))


class History(BaseModel):
    record_type: str
    record_id: UUID
    current_version: int
    department: str | None
    from_version: int
    entries: list[HistoryEntry]
    next_from_version: int | None = Field(description="Pass as from_version for the next page.")
    personal_data_erased: bool = Field(default=False, description=(
        "The record's personal data is erased: its personal fields read as null at every "
        "version."))


class DiffEvent(BaseModel):
    version: int
    position: int
    event_type: str
    at: datetime
    actor_id: str | None


class Diff(BaseModel):
    record_type: str
    record_id: UUID
    from_version: int
    to_version: int
    from_at: datetime
    to_at: datetime
    changes: list[Change]
    events: list[DiffEvent] = Field(description="The events between the two versions.")


class LogEntry(BaseModel):
    kind: Literal["event", "refusal"]
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
    status: int | None = Field(description="Refusals: the HTTP status the command got.")
    rule: str | None
    detail: str | None
    correlation_id: str | None
    request_id: str | None
    trace_id: str | None
    cursor: str


class LogPage(BaseModel):
    items: list[LogEntry]
    next_cursor: str | None = Field(description="Pass as `after` for the next page.")


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor_id: str
    actor_name: str | None
    actor_roles: list[str]
    record_type: str
    record_id: UUID | None
    what: str
    via: str
    request_id: str | None


def log_filter(
    actor: Annotated[str | None, Query(description="User id of whoever acted.")] = None,
    since: Annotated[datetime | None, Query(description="From this moment (inclusive; "
                                                         "UTC when no zone).")] = None,
    until: Annotated[datetime | None, Query(description="Up to this moment (inclusive).")
                     ] = None,
    record_type: Annotated[str | None, Query()] = None,
    record_id: Annotated[UUID | None, Query()] = None,
    event_type: Annotated[str | None, Query(description="e.g. `Approved`; events only.")
                          ] = None,
    department: Annotated[str | None, Query()] = None,
    kind: Annotated[Literal["all", "events", "refusals"], Query()] = "all",
) -> LogFilter:
    return LogFilter(actor_id=actor, since=since, until=until, record_type=record_type,
                     record_id=record_id, event_type=event_type, department=department,
                     kind=kind)


FilterDep = Annotated[LogFilter, Depends(log_filter)]
NewestFirst = Annotated[bool, Query(description="Newest first (default: oldest first).")]


def build_audit_router() -> APIRouter:
    router = APIRouter(prefix="/audit", tags=["audit"], responses=READ_PROBLEMS)

    @router.get("/records/{record_type}/{record_id}/history", operation_id="audit-history",
                summary="A record's history: who, when, what changed and why",
                response_model=History)
    def history(record_type: str, record_id: UUID, auditor: AuditorDep, rc: ReaderDep,
                from_version: Annotated[int, Query(ge=1)] = 1,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Every event of the record in order (a page of `limit` from `from_version`), each
        with its actor and roles, UTC time, the field changes (old → new, nested lines by id),
        the comment and reason, and the correlation and trace ids. The first event carries the
        whole initial state."""
        return auditor.history(rc, record_type, record_id, from_version=from_version,
                               limit=limit)

    @router.get("/records/{record_type}/{record_id}/as-of", operation_id="audit-as-of",
                summary="A record as of a version or a moment", response_model=dict[str, Any])
    def as_of(record_type: str, record_id: UUID, auditor: AuditorDep, rc: ReaderDep,
              response: Response,
              version: Annotated[int | None, Query(ge=1)] = None,
              at: Annotated[datetime | None, Query(description="A moment (UTC when no zone): "
                                                   "the state after the last event at or "
                                                   "before it.")] = None,
              ) -> dict[str, Any]:
        """The same shape as `GET /<records>/{id}` (the record view), as it stood then."""
        view = auditor.as_of(rc, record_type, record_id, version=version, at=at)
        response.headers["ETag"] = f'"{view["version"]}"'
        return view

    @router.get("/records/{record_type}/{record_id}/diff", operation_id="audit-diff",
                summary="What changed between two versions of a record", response_model=Diff)
    def diff(record_type: str, record_id: UUID, auditor: AuditorDep, rc: ReaderDep,
             from_version: Annotated[int, Query(alias="from", ge=1)],
             to_version: Annotated[int, Query(alias="to", ge=1)]) -> dict[str, Any]:
        return auditor.diff(rc, record_type, record_id, from_version, to_version)

    @router.get("/log", operation_id="audit-log", response_model=LogPage,
                summary="The global audit log: events and refused commands")
    def audit_log(f: FilterDep, auditor: AuditorDep, rc: ReaderDep,
                  newest_first: NewestFirst = False,
                  after: Annotated[str | None, Query(description="A `next_cursor`.")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Ordered by time (events before refusals at the same instant, then by position);
        a department manager sees their departments' entries only."""
        return auditor.log_page(rc, f, after=after, limit=limit, newest_first=newest_first)

    @router.get("/log/export", operation_id="audit-log-export",
                summary="Export the audit log as CSV or JSON Lines (streamed)",
                responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}},
                                 "description": "The matching entries, streamed."}})
    def export(f: FilterDep, auditor: AuditorDep, rc: ReaderDep,
               format: Annotated[Literal["csv", "jsonl"], Query()] = "csv",
               newest_first: NewestFirst = False) -> StreamingResponse:
        entries = auditor.log_export(rc, f, newest_first=newest_first)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        if format == "csv":
            body, media = as_csv(entries), "text/csv; charset=utf-8"
        else:
            body, media = as_jsonl(entries), "application/x-ndjson"
        return StreamingResponse(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="audit-log-{stamp}.{format}"'})

    @router.get("/reads", operation_id="audit-reads", response_model=list[AuditRead],
                summary="Who read personal data through the audit API (auditors only)")
    def reads(auditor: AuditorDep, rc: ReaderDep, record_id: UUID | None = None,
              actor: str | None = None, since: datetime | None = None,
              until: datetime | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return auditor.audit_reads(rc, record_id=record_id, actor_id=actor, since=since,
                                   until=until, limit=limit)

    return router


def build_console_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console")
    def console() -> FileResponse:
        return FileResponse(CONSOLE, media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    return router


def build_router() -> APIRouter:
    """The audit API and the console page."""
    router = APIRouter()
    router.include_router(build_audit_router())
    router.include_router(build_console_router())
    return router
