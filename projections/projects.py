"""The `projects` query table: one row per project, typed columns for filters and ordering.

The nested detail (team, plans, milestones, tasks, progress, evaluations, acceptance) is the
record's JSON view in ``doc``; list pages and GraphQL read both from this one row, so a page of
projects costs one statement whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from domain.shared import Record
from projections.bulk import insert_rows
from projections.codec import Doc, doc_jsonb
from projections.engine import Write

SQL = """
CREATE TABLE IF NOT EXISTS projects (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    status           text NOT NULL,
    department       text NOT NULL,
    lead_id          text,
    proposer         text,
    customer_id      uuid,
    requested_budget numeric(18, 2),
    expected_revenue numeric(18, 2),
    currency         text,
    start_date       date,
    end_date         date,
    percent_complete int,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL,
    position         bigint NOT NULL,
    doc              jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS projects_status_idx ON projects (status, updated_at);
CREATE INDEX IF NOT EXISTS projects_department_idx ON projects (department, updated_at);
CREATE INDEX IF NOT EXISTS projects_lead_idx ON projects (lead_id);
CREATE INDEX IF NOT EXISTS projects_customer_idx ON projects (customer_id);
CREATE INDEX IF NOT EXISTS projects_updated_idx ON projects (updated_at, id);
CREATE INDEX IF NOT EXISTS projects_name_idx ON projects (name, id);
"""

COLUMNS = ("id", "name", "status", "department", "lead_id", "proposer", "customer_id",
           "requested_budget", "expected_revenue", "currency", "start_date", "end_date",
           "percent_complete", "created_at", "updated_at", "version", "position", "doc")
UPSERT = "ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:] if c != "created_at")


class ProjectsTable:
    record_type = "project"
    tables = ("projects",)

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(SQL)

    def writes(self, rows: Sequence[tuple[Record, int, Doc]]) -> Write:
        values = []
        for p, position, doc in rows:
            lead = getattr(p, "lead", None) or {}
            values.append((
                p.id, p.name, p.status, p.department, lead.get("user_id"),  # type: ignore[attr-defined]
                getattr(p, "proposer", None), getattr(p, "customer_id", None),
                getattr(p, "requested_budget", None), getattr(p, "expected_revenue", None),
                getattr(p, "currency", None), getattr(p, "start_date", None),
                getattr(p, "end_date", None), getattr(p, "percent_complete", None),
                p.created_on, p.modified_on, p.version, position, doc_jsonb(doc)))

        def write(conn: Connection[Any]) -> None:
            with conn.cursor() as cur:
                insert_rows(cur, "projects", COLUMNS, values, UPSERT)
        return write
