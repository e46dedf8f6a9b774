"""The log of audit reads of personal data (``audit_reads``): who looked at which record, when,
and what they asked for. Reading a customer's history, past state or diff is itself an auditable
act (PIPL, 21 CFR 11: access to records is recorded), whoever does it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.shared import Actor
from service.audit.access import PERSONAL_RECORD_TYPES
from service.store import EventStore

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS audit_reads (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    text NOT NULL,
    actor_name  text,
    actor_roles text[] NOT NULL,
    record_type text NOT NULL,
    record_id   uuid,
    what        text NOT NULL,
    via         text NOT NULL,
    request_id  text
);
CREATE INDEX IF NOT EXISTS audit_reads_record_idx ON audit_reads (record_id, at);
CREATE INDEX IF NOT EXISTS audit_reads_actor_idx ON audit_reads (actor_id, at);
-- One row per record: finds the records of a type that existed at a moment (views as of).
CREATE INDEX IF NOT EXISTS event_log_created_idx ON event_log (record_type, occurred_at)
    WHERE version = 1;
"""


@dataclass(frozen=True)
class ReadContext:
    """Who reads, and through which surface (``rest``, ``graphql``, ``console``)."""

    actor: Actor
    via: str = "rest"
    request_id: str | None = None


class AuditReads:
    def __init__(self, store: EventStore):
        self.store = store

    def create_schema(self) -> None:
        with self.store.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(724017)")
            try:
                conn.execute(SCHEMA_SQL)
            finally:
                conn.execute("SELECT pg_advisory_unlock(724017)")

    def record(self, reader: ReadContext, record_type: str, record_id: UUID | None,
               what: str) -> None:
        """Logs the read when ``record_type`` holds personal data; before the data is returned,
        so a read that cannot be logged is not served."""
        if record_type not in PERSONAL_RECORD_TYPES:
            return
        actor = reader.actor
        self.store.execute(
            "INSERT INTO audit_reads (actor_id, actor_name, actor_roles, record_type, record_id,"
            " what, via, request_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            (actor.user_id, actor.name, sorted(actor.roles), record_type, record_id, what,
             reader.via, reader.request_id))

    def list(self, *, record_id: UUID | None = None, actor_id: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM audit_reads WHERE true", []
        for clause, value in (("record_id = %s", record_id), ("actor_id = %s", actor_id),
                              ("at >= %s", since), ("at <= %s", until)):
            if value is not None:
                sql += f" AND {clause}"
                params.append(value)
        rows = self.store.execute(sql + " ORDER BY at DESC, id DESC LIMIT %s", [*params, limit])
        return [{**r, "at": r["at"].isoformat(),
                 "record_id": str(r["record_id"]) if r["record_id"] else None} for r in rows]
