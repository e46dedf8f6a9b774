"""The audit use cases, each checking who may read and logging reads of personal data:
a record's history, its state as of a version or moment, a diff between two versions, the
global log, and every record of a type as of a moment (for views as of a past date)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from domain.shared import Record, ValidationFailed
from projections.records import RecordTable
from service.audit.access import AuditAccessDenied, audit_scope, check_record_access
from service.audit.asof import (
    AsOfReader,
    NotFoundAt,
    RecordAt,
    Statement,
    VersionAt,
    resolve_record_type,
)
from service.audit.history import HistoryReader
from service.audit.log import AuditLog, LogFilter
from service.audit.reads import AuditReads, ReadContext
from service.store import EventStore


def utc(at: datetime) -> datetime:
    """A moment without a zone is read as UTC (SPEC §7: every timestamp is UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class Auditor:
    """The audit use cases over one event store. Past states are read on a small pool of its
    own (no per-checkout ping: an as-of read is two statements, and round trips dominate)."""

    def __init__(self, store: EventStore, *, create_schema: bool = True, pool_size: int = 6):
        self.store = store
        self.pool: ConnectionPool[Any] = ConnectionPool(
            store.database.conninfo, min_size=1, max_size=pool_size, name="audit",
            kwargs={"autocommit": True, "row_factory": dict_row}, open=True,
            check=ConnectionPool.check_connection, timeout=5.0)  # survives a restart
        self.reader = AsOfReader(store, self.pool, workers=max(1, pool_size - 2))
        self.histories = HistoryReader(self.reader)
        self.log = AuditLog(store)
        self.reads = AuditReads(store)
        if create_schema:
            self.reads.create_schema()

    def close(self) -> None:
        self.reader.close()
        self.pool.close()

    def _open(self, rc: ReadContext, record_type: str, record_id: UUID, conn: Any,
              at: datetime | None = None) -> tuple[type[Record], VersionAt, int | None]:
        """The record's class, where it stands (and its version at ``at``), once the reader is
        known to be allowed to audit it."""
        audit_scope(rc.actor)  # 403 before anything is looked up
        cls = resolve_record_type(record_type)
        head, at_version = self.reader.head(cls, record_id, at=at, conn=conn)
        check_record_access(rc.actor, head.department)
        return cls, head, at_version

    # -- one record ------------------------------------------------------------------------
    def history(self, rc: ReadContext, record_type: str, record_id: UUID, *,
                from_version: int = 1, limit: int = 100) -> dict[str, Any]:
        with self.reader.connection() as conn:
            cls, head, _ = self._open(rc, record_type, record_id, conn)
        upto = min(head.version, from_version + limit - 1)
        self.reads.record(rc, cls.RECORD_TYPE, record_id,
                          f"history versions {from_version}-{upto}")
        return self.histories.history(cls, record_id, head, from_version=from_version,
                                      limit=limit)

    def as_of(self, rc: ReadContext, record_type: str, record_id: UUID, *,
              version: int | None = None, at: datetime | None = None) -> dict[str, Any]:
        """The record's ``record_view`` at ``version`` or at the moment ``at`` (one of them;
        neither: now)."""
        if version is not None and at is not None:
            raise ValidationFailed("ask for a version or a moment ('at'), not both",
                                   field="version", rule="as_of_one_of")
        at = utc(at) if at is not None else None
        with self.reader.connection() as conn:
            cls, head, at_version = self._open(rc, record_type, record_id, conn, at)
            if at is not None:
                self.reads.record(rc, cls.RECORD_TYPE, record_id,
                                  f"state as of {at.isoformat()}")
                if at_version is None:
                    raise NotFoundAt(cls.RECORD_TYPE, record_id,
                                     f"{cls.RECORD_TYPE} {record_id} did not exist yet at "
                                     f"{at.isoformat()}")
                version = at_version
            else:
                self.reads.record(rc, cls.RECORD_TYPE, record_id,
                                  f"state as of version {version or head.version}")
            record = self.reader.at_version(cls, record_id, version or head.version, conn=conn)
        return self.reader.view(record)

    def diff(self, rc: ReadContext, record_type: str, record_id: UUID, from_version: int,
             to_version: int) -> dict[str, Any]:
        with self.reader.connection() as conn:
            cls, _, _ = self._open(rc, record_type, record_id, conn)
        self.reads.record(rc, cls.RECORD_TYPE, record_id,
                          f"diff versions {from_version}-{to_version}")
        return self.histories.diff(cls, record_id, from_version, to_version)

    # -- every record of a type --------------------------------------------------------------
    def views_as_of(self, rc: ReadContext, record_type: str, at: datetime) -> list[RecordAt]:
        """Every record of a type as it stood at ``at`` that the reader may audit (managers:
        the records their departments held then). The building block of views as of a past
        date: filter, sort and aggregate the returned ``doc``s (``record_view``s) in memory."""
        scope = audit_scope(rc.actor)
        cls = resolve_record_type(record_type)
        at = utc(at)
        records = self.reader.views_at(cls.RECORD_TYPE, at, scope)
        self.reads.record(rc, cls.RECORD_TYPE, None,
                          f"all records as of {at.isoformat()} ({len(records)} records)")
        return records

    def query_as_of(self, rc: ReadContext, at: datetime, tables: Sequence[RecordTable],
                    statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        """A view's own SQL as of ``at``: its projection tables are rebuilt, in temporary
        tables of the same names, from the records of their types as they stood then that
        the reader may audit (``views_as_of``), and the statements run against them."""
        at = utc(at)
        loaded = [(t, self.views_as_of(rc, t.record_type, at)) for t in tables]
        return self.reader.query_tables_at(loaded, statements)

    # -- the global log ----------------------------------------------------------------------
    def log_page(self, rc: ReadContext, f: LogFilter, *, after: str | None = None,
                 limit: int = 100, newest_first: bool = False) -> dict[str, Any]:
        return self.log.page(self._log_filter(f), audit_scope(rc.actor), after=after,
                             limit=limit, newest_first=newest_first)

    def log_count(self, rc: ReadContext, f: LogFilter) -> int:
        return self.log.count(self._log_filter(f), audit_scope(rc.actor))

    def log_export(self, rc: ReadContext, f: LogFilter, *,
                   newest_first: bool = False) -> Iterator[dict[str, Any]]:
        scope = audit_scope(rc.actor)  # checked now, before the response starts
        return self.log.stream(self._log_filter(f), scope, newest_first=newest_first)

    def audit_reads(self, rc: ReadContext, **filters: Any) -> list[dict[str, Any]]:
        if audit_scope(rc.actor) is not None:
            raise AuditAccessDenied("only auditors read the log of audit reads")
        return self.reads.list(**filters)

    @staticmethod
    def _log_filter(f: LogFilter) -> LogFilter:
        """Record types by their plural too; moments without a zone in UTC."""
        return replace(
            f, record_type=f.record_type and resolve_record_type(f.record_type).RECORD_TYPE,
            since=f.since and utc(f.since), until=f.until and utc(f.until))


def auditor_of(container: Any) -> Auditor:
    """The container's Auditor (``service.bootstrap`` builds it)."""
    audit = getattr(container, "audit", None)
    if audit is None:
        raise RuntimeError("this container has no Auditor: build it with service.bootstrap")
    return audit
