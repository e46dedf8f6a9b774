"""The budget query tables: `budgets`, their current `budget_lines`, `budget_actuals`, and the
`budget_warnings` raised by budget control (SPEC §5).

The first two are written from the evolved Budget aggregate (a ``RecordTable``): one row per
budget for filters, and its lines as they stand in the current version (replaced on every
change). Actuals and warnings need the events themselves — the aggregate keeps only each
line's running actual, and a threshold can fire again after an adjustment re-arms it — so each
is its own insert-only projection over its event type (``ActualRecorded``,
``BudgetWarningRaised``), keyed so that writing an event again changes nothing. Every amount is
``numeric(18, 2)``: never a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid5

from psycopg import Connection

from domain.budget import Budget
from domain.shared import Record
from projections.bulk import insert_rows
from projections.codec import Doc, doc_jsonb
from projections.engine import Envelope, Write
from projections.event_rows import EventRows

BUDGETS_SQL = """
CREATE TABLE IF NOT EXISTS budgets (
    id               uuid PRIMARY KEY,
    department       text NOT NULL,
    fiscal_year      int NOT NULL,
    status           text NOT NULL,
    currency         text NOT NULL,
    overspend_policy text NOT NULL,
    version_no       int NOT NULL,
    compiled_by      text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          bigint NOT NULL,
    position         bigint NOT NULL,
    doc              jsonb NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS budgets_department_year_idx ON budgets (department, fiscal_year);
CREATE INDEX IF NOT EXISTS budgets_year_idx ON budgets (fiscal_year, department);
CREATE INDEX IF NOT EXISTS budgets_status_idx ON budgets (status, updated_at);
CREATE INDEX IF NOT EXISTS budgets_updated_idx ON budgets (updated_at, id);

CREATE TABLE IF NOT EXISTS budget_lines (
    budget_id  uuid NOT NULL,
    line_id    text NOT NULL,
    seq        int NOT NULL,
    kind       text NOT NULL,
    category   text NOT NULL,
    name       text NOT NULL,
    amount     numeric(18, 2) NOT NULL,
    monthly    numeric(18, 2)[],
    PRIMARY KEY (budget_id, line_id)
);
"""

# Before budgets kept only their lines' totals (class version 2), this table was written from
# the aggregates' lists of actuals, without the events' positions: such a table is dropped,
# and this projection (tracked from 0, as it is new) fills it again from the events.
ACTUALS_SQL = """
DO $$ BEGIN
  IF to_regclass('budget_actuals') IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM pg_attribute
       WHERE attrelid = to_regclass('budget_actuals') AND attname = 'recorded_at') THEN
    DROP TABLE budget_actuals;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS budget_actuals (
    id              uuid PRIMARY KEY,
    budget_id       uuid NOT NULL,
    line_id         text NOT NULL,
    kind            text NOT NULL,
    amount          numeric(18, 2) NOT NULL,
    date            date NOT NULL,
    month           smallint NOT NULL,
    reference       text NOT NULL,
    project_id      uuid,
    recorded_by     text NOT NULL,
    overspent       boolean NOT NULL,
    override_by     text,
    override_reason text,
    position        bigint NOT NULL,
    recorded_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_actuals_line_idx ON budget_actuals (budget_id, line_id, month);
CREATE INDEX IF NOT EXISTS budget_actuals_project_idx ON budget_actuals (project_id)
    WHERE project_id IS NOT NULL;
"""

WARNINGS_SQL = """
CREATE TABLE IF NOT EXISTS budget_warnings (
    id          uuid PRIMARY KEY,
    position    bigint NOT NULL,
    budget_id   uuid NOT NULL,
    department  text,
    line_id     text NOT NULL,
    threshold   int NOT NULL,
    utilisation numeric(18, 2),
    actual      numeric(18, 2) NOT NULL,
    amount      numeric(18, 2) NOT NULL,
    raised_at   timestamptz NOT NULL,
    raised_by   text,
    command     text
);
CREATE INDEX IF NOT EXISTS budget_warnings_budget_idx ON budget_warnings (budget_id, position);
CREATE INDEX IF NOT EXISTS budget_warnings_position_idx ON budget_warnings (position, id);
"""

BUDGET_COLUMNS = ("id", "department", "fiscal_year", "status", "currency", "overspend_policy",
                  "version_no", "compiled_by", "created_at", "updated_at", "version", "position",
                  "doc")
ACTUAL_COLUMNS = ("id", "budget_id", "line_id", "kind", "amount", "date", "month", "reference",
                  "project_id", "recorded_by", "overspent", "override_by", "override_reason",
                  "position", "recorded_at")

# The event classes the library made from ``Budget._actual_recorded`` and
# ``Budget._budget_warning_raised``.
ACTUAL_RECORDED: type = getattr(Budget, "ActualRecorded")  # noqa: B009
WARNING_RAISED: type = getattr(Budget, "BudgetWarningRaised")  # noqa: B009
WARNING_ID_NAMESPACE = UUID("5b0e7f1c-2d7e-4a53-8c1e-6f4a9d2b7c31")


def _copy(values: list[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _insert(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


class BudgetActualsProjection(EventRows):
    """`budget_actuals`: one row per ActualRecorded event, never changed once written."""

    name = "budget_actuals"
    sql = ACTUALS_SQL
    columns = ACTUAL_COLUMNS
    event_types = (ACTUAL_RECORDED,)

    def row(self, env: Envelope) -> tuple[Any, ...]:
        e: Any = env.event
        a = e.actual
        return (UUID(a["id"]), e.originator_id, a["line_id"], a["kind"], a["amount"],
                a["date"], a["date"].month, a["reference"], a.get("project_id"),
                a["recorded_by"], bool(a.get("overspent")), a.get("override_by"),
                a.get("override_reason"), env.position, e.timestamp)


class BudgetsTable:
    """`budgets` and `budget_lines` from the evolved Budget aggregates."""

    record_type = Budget.RECORD_TYPE
    tables: tuple[str, ...] = ("budgets", "budget_lines")
    # As of a moment, `budget_actuals` is made from these budgets' events up to then.
    as_of_events = (BudgetActualsProjection(),)

    def create_tables(self, conn: Connection[Any]) -> None:
        conn.execute(BUDGETS_SQL)

    def writes(self, rows: Sequence[tuple[Record, int, Doc]]) -> Write:
        budgets, lines = [], []
        for b, position, doc in rows:
            s: Any = b
            budgets.append((b.id, s.department, s.fiscal_year, s.status, s.currency,
                            s.overspend_policy, s.version_no, s.compiled_by, b.created_on,
                            b.modified_on, b.version, position, doc_jsonb(doc)))
            lines += [(b.id, line["id"], seq, line["kind"], line["category"], line["name"],
                       line["amount"], _copy(line.get("monthly")))
                      for seq, line in enumerate(s.lines)]
        ids = [b.id for b, _, _ in rows]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in BUDGET_COLUMNS[1:]
                            if c != "created_at")

        def write(conn: Connection[Any]) -> None:
            with conn.cursor() as cur:
                insert_rows(cur, "budgets", BUDGET_COLUMNS, budgets,
                            f"ON CONFLICT (id) DO UPDATE SET {updates}")
                # The current version's lines replace the previous ones (an adjustment may add,
                # change or remove lines); earlier versions stay in the record's ``versions``.
                cur.execute("DELETE FROM budget_lines WHERE budget_id = ANY(%s)", (ids,))
                # (Each line's monthly amounts are an array: one statement per line.)
                cur.executemany(_insert("budget_lines", ("budget_id", "line_id", "seq", "kind",
                                                         "category", "name", "amount",
                                                         "monthly")), lines)
        return write


class BudgetWarningsProjection(EventRows):
    """`budget_warnings`: one row per BudgetWarningRaised event (80 % / 100 % of a line)."""

    name = "budget_warnings"
    sql = WARNINGS_SQL
    columns = ("id", "position", "budget_id", "department", "line_id", "threshold",
               "utilisation", "actual", "amount", "raised_at", "raised_by", "command")
    event_types = (WARNING_RAISED,)

    def row(self, env: Envelope) -> tuple[Any, ...]:
        e: Any = env.event
        actor = env.meta.get("actor") or {}
        return (uuid5(WARNING_ID_NAMESPACE, f"{e.originator_id}:{e.originator_version}"),
                env.position, e.originator_id, env.meta.get("department"), e.line_id,
                e.threshold, e.utilisation, e.actual, e.amount, e.timestamp,
                actor.get("user_id"), env.meta.get("command"))
