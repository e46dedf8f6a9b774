"""The global audit log: every event and every refused command, filtered, paged and exported.

Events come from ``event_log`` (written in the events' own transaction) joined to their stored
body for the metadata the index does not hold (actor name and roles, comment, command, request
and trace ids); refusals from ``refused_commands``. Both are ordered by time, then events before
refusals, then position (events) or refusal number: the keyset a cursor resumes from. Exports
stream through a server-side cursor in batches, never holding the log in memory.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.rows import dict_row

from domain.shared import ValidationFailed
from service.audit.history import reason_of
from service.store import EventStore

log = logging.getLogger(__name__)

Kind = Literal["all", "events", "refusals"]
MAX_PAGE = 1000
EXPORT_BATCH = 1000

COLUMNS = ("kind", "at", "position", "refusal_id", "record_type", "record_id", "version",
           "event_type", "command", "actor_id", "actor_name", "actor_roles", "department",
           "comment", "reason", "status", "rule", "detail", "correlation_id", "request_id",
           "trace_id")


@dataclass(frozen=True)
class LogFilter:
    actor_id: str | None = None
    since: datetime | None = None   # inclusive
    until: datetime | None = None   # inclusive
    record_type: str | None = None
    record_id: UUID | None = None
    event_type: str | None = None   # events only: refusals have no event type
    department: str | None = None
    kind: Kind = "all"


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["at"].isoformat(), row["rank"], row["seq"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int, int]:
    try:
        at, rank, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), int(rank), int(seq)
    except Exception:
        raise ValidationFailed("'after' is not a cursor returned by the audit log",
                               field="after", rule="bad_cursor") from None


def _events_sql(f: LogFilter, scope: Collection[str] | None) -> tuple[str, list[Any]]:
    sql = ("SELECT 'event' AS kind, 0 AS rank, e.position AS seq, e.occurred_at AS at,"
           " e.record_type, e.record_id, e.version, e.event_type, NULL::text AS command,"
           " e.actor_id, NULL::text[] AS actor_roles, e.department, e.correlation_id,"
           " NULL::text AS request_id, NULL::int AS status, NULL::text AS rule,"
           " NULL::text AS detail, s.topic, s.state"
           " FROM event_log e LEFT JOIN stored_events s ON s.notification_id = e.position"
           " WHERE true")
    params: list[Any] = []
    for clause, value in (("e.actor_id = %s", f.actor_id), ("e.occurred_at >= %s", f.since),
                          ("e.occurred_at <= %s", f.until),
                          ("e.record_type = %s", f.record_type),
                          ("e.record_id = %s", f.record_id),
                          ("e.event_type = %s", f.event_type),
                          ("e.department = %s", f.department)):
        if value is not None:
            sql += f" AND {clause}"
            params.append(value)
    if scope is not None:
        sql += " AND e.department = ANY(%s)"
        params.append(list(scope))
    return sql, params


# A refusal's department: its record's (from the records projection) or, when it names no
# record (a creation), the departments of the person refused.
_REFUSAL_DEPARTMENT = "coalesce(rs.department, array_to_string(r.departments, ','))"


def _refusals_sql(f: LogFilter, scope: Collection[str] | None) -> tuple[str, list[Any]]:
    sql = ("SELECT 'refusal' AS kind, 1 AS rank, r.id AS seq, r.at,"
           " r.record_type, r.record_id, NULL::bigint AS version, NULL::text AS event_type,"
           " r.command, r.actor_id, r.actor_roles,"
           f" {_REFUSAL_DEPARTMENT} AS department, r.correlation_id, r.request_id,"
           " r.status, r.rule, r.detail, NULL::text AS topic, NULL::bytea AS state"
           " FROM refused_commands r LEFT JOIN record_state rs ON rs.id = r.record_id"
           " WHERE true")
    params: list[Any] = []
    for clause, value in (("r.actor_id = %s", f.actor_id), ("r.at >= %s", f.since),
                          ("r.at <= %s", f.until), ("r.record_type = %s", f.record_type),
                          ("r.record_id = %s", f.record_id)):
        if value is not None:
            sql += f" AND {clause}"
            params.append(value)
    if f.department is not None:
        sql += (" AND (rs.department = %s"
                " OR (rs.department IS NULL AND %s = ANY(r.departments)))")
        params += [f.department, f.department]
    if scope is not None:
        sql += (" AND (rs.department = ANY(%s)"
                " OR (rs.department IS NULL AND r.departments && %s::text[]))")
        params += [list(scope), list(scope)]
    return sql, params


def log_query(f: LogFilter, scope: Collection[str] | None, *, after: str | None = None,
              newest_first: bool = False, limit: int | None = None,
              ordered: bool = True) -> tuple[str, list[Any]]:
    """One statement over events and refusals, in keyset order, resuming after a cursor."""
    branches = []
    if f.kind in ("all", "events"):
        branches.append((0, *_events_sql(f, scope)))
    if f.kind in ("all", "refusals") and f.event_type is None:
        branches.append((1, *_refusals_sql(f, scope)))
    if not branches:
        return "SELECT NULL WHERE false", []
    direction = "DESC" if newest_first else "ASC"
    op = "<" if newest_first else ">"
    order = f"at {direction}, rank {direction}, seq {direction}"
    parts, params = [], []
    for rank, sql, branch_params in branches:
        at_col, seq_col = ("e.occurred_at", "e.position") if rank == 0 else ("r.at", "r.id")
        if after:
            at, c_rank, seq = decode_cursor(after)
            sql += f" AND ({at_col}, {rank}, {seq_col}) {op} (%s, %s, %s)"
            sql += f" AND {at_col} {op}= %s"  # lets the time index bound the scan
            branch_params = [*branch_params, at, c_rank, seq, at]
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY {order} LIMIT {int(limit)}) b{rank}"
        parts.append(f"({sql})")
        params += branch_params
    sql = " UNION ALL ".join(parts) + (f" ORDER BY {order}" if ordered else "")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


class LogRows:
    """Turns raw log rows into entries, decoding event metadata from the stored bodies."""

    def __init__(self, store: EventStore):
        self.store = store

    def _event(self, row: dict[str, Any]) -> Any:
        if row.get("state") is None:
            return None
        try:
            # The log shows metadata only: personal data stays sealed (no key look-up).
            return self.store.to_event(StoredEvent(
                row["record_id"], row["version"], row["topic"], bytes(row["state"])),
                with_personal=False)
        except Exception:  # an unreadable body still has its index row to show
            log.warning("could not decode the event at position %s", row["seq"])
            return None

    def entry(self, row: dict[str, Any]) -> dict[str, Any]:
        is_event = row["kind"] == "event"
        event = self._event(row) if is_event else None
        meta = (getattr(event, "meta", None) or {}) if event is not None else {}
        actor = meta.get("actor") or {}
        roles = row["actor_roles"] if row["actor_roles"] is not None else actor.get("roles")
        return {
            "kind": row["kind"],
            "at": row["at"].isoformat(),
            "position": row["seq"] if is_event else None,
            "refusal_id": None if is_event else row["seq"],
            "record_type": row["record_type"],
            "record_id": str(row["record_id"]) if row["record_id"] else None,
            "version": row["version"],
            "event_type": row["event_type"],
            "command": row["command"] or meta.get("command"),
            "actor_id": row["actor_id"],
            "actor_name": actor.get("name"),
            "actor_roles": list(roles or []),
            "department": row["department"],
            "comment": meta.get("comment"),
            "reason": reason_of(event) if event is not None else None,
            "status": row["status"],
            "rule": row["rule"],
            "detail": row["detail"],
            "correlation_id": row["correlation_id"],
            "request_id": row["request_id"] or meta.get("request_id"),
            "trace_id": meta.get("trace_id"),
            "cursor": encode_cursor(row),
        }


class AuditLog:
    def __init__(self, store: EventStore):
        self.store = store
        self.rows = LogRows(store)

    def page(self, f: LogFilter, scope: Collection[str] | None, *, after: str | None = None,
             limit: int = 100, newest_first: bool = False) -> dict[str, Any]:
        limit = max(1, min(limit, MAX_PAGE))
        sql, params = log_query(f, scope, after=after, newest_first=newest_first,
                                limit=limit + 1)
        rows = self.store.execute(sql, params)
        more = len(rows) > limit
        items = [self.rows.entry(r) for r in rows[:limit]]
        return {"items": items, "next_cursor": items[-1]["cursor"] if more and items else None}

    def count(self, f: LogFilter, scope: Collection[str] | None) -> int:
        sql, params = log_query(f, scope, ordered=False)
        return int(self.store.execute(f"SELECT count(*) AS n FROM ({sql}) c", params)[0]["n"])

    def stream(self, f: LogFilter, scope: Collection[str] | None, *,
               newest_first: bool = False) -> Iterator[dict[str, Any]]:
        """Every matching entry, read through a server-side cursor in batches."""
        sql, params = log_query(f, scope, newest_first=newest_first)
        with psycopg.connect(self.store.database.conninfo) as conn, \
                conn.cursor(name="audit_log_export", row_factory=dict_row) as cur:
            cur.itersize = EXPORT_BATCH
            cur.execute(sql, params)
            while True:
                batch = cur.fetchmany(EXPORT_BATCH)
                if not batch:
                    return
                for row in batch:
                    yield self.rows.entry(row)


def as_jsonl(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    for e in entries:
        yield json.dumps({k: e[k] for k in COLUMNS}, ensure_ascii=False) + "\n"


def as_csv(entries: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for n, e in enumerate(entries, 1):
        writer.writerow(["|".join(e[k]) if k == "actor_roles" else
                         ("" if e[k] is None else e[k]) for k in COLUMNS])
        if n % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
