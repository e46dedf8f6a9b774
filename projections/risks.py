"""The risk query tables: the register (`risks`), action items and warnings across risks.

`risks` holds one row per risk with typed columns for the register's filters, its ordering by
score and the heat map's grouping; the nested detail (assessments, responses, emergency plan
versions, indicators and readings …) is the record's JSON view in ``doc``. Action items and
warnings get child tables (`risk_actions`, `risk_warnings`) so "overdue actions" and "open
warnings" across all risks are single filtered statements. Whether an action is overdue depends
on the day it is read, so it is decided by the query (``due_date < today``), never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from domain.risk import FINISHED_ACTION_STATUSES, suggest_strategy
from domain.shared import Record
from projections.bulk import insert_rows
from projections.codec import Doc, doc_jsonb, jsonable
from projections.engine import Write

SQL = """
CREATE TABLE IF NOT EXISTS risks (
    id                 uuid PRIMARY KEY,
    title              text NOT NULL,
    category           text NOT NULL,
    scope              text NOT NULL,
    linked_id          uuid,
    project_id         uuid,
    department         text NOT NULL,
    owner              text NOT NULL,
    identified_by      text NOT NULL,
    status             text NOT NULL,
    likelihood         int,
    impact             int,
    score              int,
    level              text,
    financial_exposure numeric(18, 2),
    suggested_strategy text,
    strategy           text,
    reassessment_due   boolean NOT NULL,
    open_warnings      int NOT NULL,
    pending_actions    int NOT NULL,
    next_action_due    date,
    outcome            text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint NOT NULL,
    position           bigint NOT NULL,
    doc                jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS risks_score_idx ON risks (score, id);
CREATE INDEX IF NOT EXISTS risks_status_idx ON risks (status, score);
CREATE INDEX IF NOT EXISTS risks_department_idx ON risks (department, score);
CREATE INDEX IF NOT EXISTS risks_project_idx ON risks (project_id, score);
CREATE INDEX IF NOT EXISTS risks_linked_idx ON risks (linked_id);
CREATE INDEX IF NOT EXISTS risks_owner_idx ON risks (owner);
CREATE INDEX IF NOT EXISTS risks_cell_idx ON risks (likelihood, impact);
CREATE INDEX IF NOT EXISTS risks_next_due_idx ON risks (next_action_due);
CREATE INDEX IF NOT EXISTS risks_updated_idx ON risks (updated_at, id);

CREATE TABLE IF NOT EXISTS risk_actions (
    id         uuid PRIMARY KEY,
    risk_id    uuid NOT NULL,
    action     text NOT NULL,
    owner      text NOT NULL,
    due_date   date NOT NULL,
    status     text NOT NULL,
    percent    int NOT NULL,
    doc        jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_actions_risk_idx ON risk_actions (risk_id);
CREATE INDEX IF NOT EXISTS risk_actions_due_idx ON risk_actions (due_date, id)
    WHERE status NOT IN ('done', 'cancelled');

CREATE TABLE IF NOT EXISTS risk_warnings (
    id              uuid PRIMARY KEY,
    risk_id         uuid NOT NULL,
    indicator_id    uuid NOT NULL,
    indicator       text NOT NULL,
    value           numeric NOT NULL,
    threshold       numeric NOT NULL,
    direction       text NOT NULL,
    observed_at     timestamptz NOT NULL,
    raised_at       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    reassessment_n  int,
    doc             jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_warnings_risk_idx ON risk_warnings (risk_id);
CREATE INDEX IF NOT EXISTS risk_warnings_open_idx ON risk_warnings (raised_at, id)
    WHERE acknowledged_at IS NULL;
"""

RISK_COLUMNS = (
    "id", "title", "category", "scope", "linked_id", "project_id", "department", "owner",
    "identified_by", "status", "likelihood", "impact", "score", "level", "financial_exposure",
    "suggested_strategy", "strategy", "reassessment_due", "open_warnings", "pending_actions",
    "next_action_due", "outcome", "created_at", "updated_at", "version", "position", "doc")
ACTION_COLUMNS = ("id", "risk_id", "action", "owner", "due_date", "status", "percent", "doc")
WARNING_COLUMNS = ("id", "risk_id", "indicator_id", "indicator", "value", "threshold",
                   "direction", "observed_at", "raised_at", "acknowledged_at", "reassessment_n",
                   "doc")


def _upsert(columns: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:] if c != "created_at")
    return f"ON CONFLICT (id) DO UPDATE SET {updates}"


class RisksTable:
    record_type = "risk"
    tables = ("risks", "risk_actions", "risk_warnings")

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(SQL)

    def writes(self, rows: Sequence[tuple[Record, int, Doc]]) -> Write:
        risks, actions, warnings = [], [], []
        for r, position, doc in rows:
            state: dict[str, Any] = vars(r)
            pending = [a for a in state["actions"] if a["status"] not in FINISHED_ACTION_STATUSES]
            likelihood, impact = state["likelihood"], state["impact"]
            suggested = (suggest_strategy(likelihood, impact)
                         if likelihood is not None and impact is not None else None)
            response = state["response"] or {}
            risks.append((
                r.id, state["title"], state["category"], state["scope"], state["linked_id"],
                state["project_id"], state["department"], state["owner"],
                state["identified_by"], state["status"], likelihood, impact, state["score"],
                state["level"], state["financial_exposure"], suggested, response.get("strategy"),
                state["reassessment_due"],
                sum(1 for w in state["warnings"] if w["acknowledged_at"] is None), len(pending),
                min((a["due_date"] for a in pending), default=None), state["outcome"],
                r.created_on, r.modified_on, r.version, position, doc_jsonb(doc)))
            actions += [(a["id"], r.id, a["action"], a["owner"], a["due_date"], a["status"],
                         a["percent"], Jsonb(jsonable(a))) for a in state["actions"]]
            warnings += [(w["id"], r.id, w["indicator_id"], w["indicator"], w["value"],
                          w["threshold"], w["direction"], w["observed_at"], w["raised_at"],
                          w["acknowledged_at"], w["reassessment_n"], Jsonb(jsonable(w)))
                         for w in state["warnings"]]
        ids = [r.id for r, _, _ in rows]

        def write(conn: Connection[Any]) -> None:
            with conn.cursor() as cur:
                insert_rows(cur, "risks", RISK_COLUMNS, risks, _upsert(RISK_COLUMNS))
                # A risk's items only ever change with the risk: replace them wholesale.
                cur.execute("DELETE FROM risk_actions WHERE risk_id = ANY(%s)", (ids,))
                cur.execute("DELETE FROM risk_warnings WHERE risk_id = ANY(%s)", (ids,))
                insert_rows(cur, "risk_actions", ACTION_COLUMNS, actions)
                insert_rows(cur, "risk_warnings", WARNING_COLUMNS, warnings)
        return write
