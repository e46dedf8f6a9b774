"""The customer side's query tables: `customers`, `service_requests` and their KPI facts.

One row per customer and per service request, with typed columns for the list filters, the
department queues, the SLA clock and the KPIs; the nested detail is the record's JSON view in
``doc``. Two fact tables keep what the KPIs count per month and that a request may hold more
than once: every recorded satisfaction score (`service_request_satisfaction`) and every
complaint process, first or reopened (`service_request_complaints`). Lists in the aggregate
only grow, so a fact is its list index (``seq``) and writing them again is idempotent.

SLA targets are settings, not data: the views compute due times and breaches when they read,
so changing a target needs no rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from psycopg import Connection

from domain.service_request import Priority
from domain.shared import Record
from projections.bulk import insert_rows
from projections.codec import Doc, doc_jsonb
from projections.engine import Write

CUSTOMERS_SQL = """
CREATE TABLE IF NOT EXISTS customers (
    id                  uuid PRIMARY KEY,
    name                text,
    kind                text NOT NULL,
    status              text NOT NULL,
    department          text NOT NULL,
    credit_code         text,
    industry            text,
    segment             text,
    account_owner       text,
    acquisition_channel text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    version             bigint NOT NULL,
    position            bigint NOT NULL,
    doc                 jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_status_idx ON customers (status, updated_at);
CREATE INDEX IF NOT EXISTS customers_department_idx ON customers (department, updated_at);
CREATE INDEX IF NOT EXISTS customers_segment_idx ON customers (segment);
CREATE INDEX IF NOT EXISTS customers_owner_idx ON customers (account_owner);
CREATE INDEX IF NOT EXISTS customers_industry_idx ON customers (industry);
CREATE INDEX IF NOT EXISTS customers_name_idx ON customers (name, id);
CREATE INDEX IF NOT EXISTS customers_updated_idx ON customers (updated_at, id);
CREATE INDEX IF NOT EXISTS customers_created_idx ON customers (created_at, id);
"""

SERVICE_REQUESTS_SQL = """
CREATE TABLE IF NOT EXISTS service_requests (
    id                  uuid PRIMARY KEY,
    customer_id         uuid NOT NULL,
    department          text NOT NULL,
    handling_department text NOT NULL,
    status              text NOT NULL,
    channel             text NOT NULL,
    category            text NOT NULL,
    priority            text NOT NULL,
    priority_rank       int NOT NULL,
    escalated_to        text,
    assignee            text,
    opened_by           text NOT NULL,
    opened_at           timestamptz NOT NULL,
    first_response_at   timestamptz,
    resolved_at         timestamptz,
    resolved_via        text,
    closed_at           timestamptz,
    complaint_count     int NOT NULL,
    satisfaction        smallint,
    satisfaction_count  int NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    version             bigint NOT NULL,
    position            bigint NOT NULL,
    doc                 jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS service_requests_customer_idx
    ON service_requests (customer_id, opened_at);
CREATE INDEX IF NOT EXISTS service_requests_department_idx
    ON service_requests (department, opened_at);
CREATE INDEX IF NOT EXISTS service_requests_escalated_idx
    ON service_requests (escalated_to, opened_at);
CREATE INDEX IF NOT EXISTS service_requests_handling_idx
    ON service_requests (handling_department, status);
CREATE INDEX IF NOT EXISTS service_requests_opened_idx ON service_requests (opened_at, id);

CREATE TABLE IF NOT EXISTS service_request_satisfaction (
    request_id  uuid NOT NULL,
    seq         int NOT NULL,
    customer_id uuid NOT NULL,
    department  text NOT NULL,
    score       smallint NOT NULL,
    unsatisfied boolean NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX IF NOT EXISTS service_request_satisfaction_department_idx
    ON service_request_satisfaction (department, recorded_at);
CREATE INDEX IF NOT EXISTS service_request_satisfaction_customer_idx
    ON service_request_satisfaction (customer_id, recorded_at);

CREATE TABLE IF NOT EXISTS service_request_complaints (
    request_id  uuid NOT NULL,
    seq         int NOT NULL,
    customer_id uuid NOT NULL,
    department  text NOT NULL,
    trigger     text NOT NULL,
    opened_at   timestamptz NOT NULL,
    resolved_at timestamptz,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX IF NOT EXISTS service_request_complaints_department_idx
    ON service_request_complaints (department, opened_at);
"""

CUSTOMER_COLUMNS = ("id", "name", "kind", "status", "department", "credit_code", "industry",
                    "segment", "account_owner", "acquisition_channel", "created_at",
                    "updated_at", "version", "position", "doc")

REQUEST_COLUMNS = ("id", "customer_id", "department", "handling_department", "status",
                   "channel", "category", "priority", "priority_rank", "escalated_to",
                   "assignee", "opened_by", "opened_at", "first_response_at", "resolved_at",
                   "resolved_via", "closed_at", "complaint_count", "satisfaction",
                   "satisfaction_count", "created_at", "updated_at", "version", "position", "doc")

# low = 1 … urgent = 4: the queue sorts by urgency with an integer keyset.
PRIORITY_RANK = {name: rank for rank, name in enumerate(get_args(Priority), start=1)}


def _upsert(columns: Sequence[str], key: Sequence[str] = ("id",),
            keep: Sequence[str] = ("created_at",)) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns
                        if c not in key and c not in keep)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


class CustomersTable:
    record_type = "customer"
    tables = ("customers",)

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(CUSTOMERS_SQL)

    def writes(self, rows: Sequence[tuple[Record, int, Doc]]) -> Write:
        values = [(c.id, getattr(c, "name", None), getattr(c, "kind", None), c.status,
                   c.department, getattr(c, "credit_code", None),
                   getattr(c, "industry", None), getattr(c, "segment", None),
                   getattr(c, "account_owner", None), getattr(c, "acquisition_channel", None),
                   c.created_on, c.modified_on, c.version, position, doc_jsonb(doc))
                  for c, position, doc in rows]

        def write(conn: Connection[Any]) -> None:
            with conn.cursor() as cur:
                insert_rows(cur, "customers", CUSTOMER_COLUMNS, values,
                            _upsert(CUSTOMER_COLUMNS))
        return write


class ServiceRequestsTable:
    record_type = "service_request"
    tables = ("service_requests", "service_request_satisfaction", "service_request_complaints")

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(SERVICE_REQUESTS_SQL)

    def writes(self, rows: Sequence[tuple[Record, int, Doc]]) -> Write:
        requests, scores, complaints = [], [], []
        for r, position, doc in rows:
            s: Any = r
            # The request sits with the escalated department while it works it; otherwise
            # with the intake department (triage, satisfaction, complaints, closure).
            handling = s.escalated_to if s.status == "escalated" and s.escalated_to else (
                s.department)
            latest = s.satisfaction_scores[-1]["score"] if s.satisfaction_scores else None
            requests.append((
                s.id, s.customer_id, s.department, handling, s.status, s.channel, s.category,
                s.priority, PRIORITY_RANK.get(s.priority, 0), s.escalated_to, s.assignee,
                s.opened_by, s.opened_at, s.first_response_at, s.resolved_at, s.resolved_via,
                s.closed_at, s.complaint_count, latest, len(s.satisfaction_scores),
                s.created_on, s.modified_on, s.version, position, doc_jsonb(doc)))
            scores += [(s.id, seq, s.customer_id, s.department, score["score"],
                        bool(score.get("unsatisfied")), score["at"])
                       for seq, score in enumerate(s.satisfaction_scores)]
            complaints += [(s.id, seq, s.customer_id, s.department, c["trigger"],
                            c["opened_at"], c.get("resolved_at"))
                           for seq, c in enumerate(s.complaints)]

        def write(conn: Connection[Any]) -> None:
            with conn.cursor() as cur:
                insert_rows(cur, "service_requests", REQUEST_COLUMNS, requests,
                            _upsert(REQUEST_COLUMNS))
                insert_rows(cur, "service_request_satisfaction",
                            ("request_id", "seq", "customer_id", "department", "score",
                             "unsatisfied", "recorded_at"), scores,
                            "ON CONFLICT (request_id, seq) DO NOTHING")
                complaint_columns = ("request_id", "seq", "customer_id", "department",
                                     "trigger", "opened_at", "resolved_at")
                insert_rows(cur, "service_request_complaints", complaint_columns, complaints,
                            _upsert(complaint_columns, key=("request_id", "seq"), keep=()))
        return write
