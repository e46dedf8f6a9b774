"""The budget tables are rebuildable: a rebuild from the events gives the very same rows —
lines of the current version, and the actuals and warnings (projections of their events)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest

from domain.budget import Budget
from domain.shared import Actor
from service.application import CommandContext
from service.catalogue import commands_of
from tests.conftest import make_settings

TABLES = {"budgets": "id", "budget_lines": "budget_id, line_id", "budget_actuals": "id",
          "budget_warnings": "position"}
MANAGER = Actor("mgr", roles=frozenset({"dept_manager"}), departments=frozenset({"ops"}))
MEMBER = Actor("mem", roles=frozenset({"member"}), departments=frozenset({"ops"}))
FINANCE = Actor("fin", roles=frozenset({"finance"}))
LEADER = Actor("boss", roles=frozenset({"leadership"}))


@pytest.fixture
def app(fresh_database: Any) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), fresh_database, start_projector=False)
    yield c
    c.close()


def run(app: Any, command: str, actor: Actor, record_id: UUID | None = None,
        **body: Any) -> UUID:
    spec = next(s for s in commands_of(Budget) if s.name == command)
    result = app.ledger.execute(spec, CommandContext(actor=actor), spec.body_model(**body),
                                record_id)
    return UUID(result.body["id"])


def snapshot(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(app.database.conninfo) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall()
                for t, key in TABLES.items()}


def test_rebuilding_the_budget_tables_gives_the_same_rows(app: Any) -> None:
    bid = run(app, "compile", MANAGER, department="ops", fiscal_year=2026, lines=[
        {"kind": "expense", "category": "travel", "name": "Travel", "amount": "100.00"}])
    run(app, "submit", MANAGER, bid)
    run(app, "pass_finance_review", FINANCE, bid)
    run(app, "approve", LEADER, bid)
    run(app, "issue", LEADER, bid)
    line = app.ledger.load(Budget, bid).lines[0]["id"]
    run(app, "record_actual", MEMBER, bid, line_id=line, amount="85.00",
        date=date(2026, 2, 1), reference="A")
    app.runner.catch_up()  # part of the history in one batch …
    run(app, "request_adjustment", MANAGER, bid, reason="more", changes=[
        {"line_id": line, "kind": "expense", "category": "travel", "name": "Travel",
         "amount": "200.00"},
        {"kind": "cost", "category": "other", "name": "New", "amount": "10.00"}])
    adjustment = app.ledger.load(Budget, bid).adjustments[0]["id"]
    run(app, "pass_adjustment_finance_review", FINANCE, bid, adjustment_id=adjustment)
    run(app, "approve_adjustment", LEADER, bid, adjustment_id=adjustment)
    run(app, "record_actual", MEMBER, bid, line_id=line, amount="120.00",
        date=date(2026, 3, 1), reference="B")
    app.runner.catch_up()  # … the rest in another
    before = snapshot(app)
    assert sorted((r[2], r[5], r[6]) for r in before["budget_lines"]) == [
        (0, "Travel", Decimal("200.00")), (1, "New", Decimal("10.00"))]  # version 2
    assert sum(r[4] for r in before["budget_actuals"]) == Decimal("205.00")
    # 85 % → 80; version 2 brings it to 42.5 % (80 re-arms); 102.5 % → 80 and 100
    assert [r[5] for r in before["budget_warnings"]] == [80, 80, 100]

    app.runner.reset(["records", "budget_actuals", "budget_warnings"])
    assert all(not rows for rows in snapshot(app).values())
    app.runner.catch_up()
    assert snapshot(app) == before


def issued(app: Any) -> tuple[UUID, str]:
    bid = run(app, "compile", MANAGER, department="ops", fiscal_year=2026, lines=[
        {"kind": "expense", "category": "travel", "name": "Travel", "amount": "1000.00"}])
    for command, actor in (("submit", MANAGER), ("pass_finance_review", FINANCE),
                           ("approve", LEADER), ("issue", LEADER)):
        run(app, command, actor, bid)
    return bid, app.ledger.load(Budget, bid).lines[0]["id"]


def test_the_actuals_are_their_events_and_the_budget_their_totals(app: Any) -> None:
    """Each ActualRecorded event is one row, at its position and time; the budget's state and
    view hold each line's total, and stay the size they were however many actuals come."""
    from projections.codec import freeze

    bid, line = issued(app)
    sizes = []
    for n in range(7):
        run(app, "record_actual", MEMBER, bid, line_id=line, amount=f"{n + 1}.25",
            date=date(2026, 2, n + 1), reference=f"R{n} ünïcode \"quoted\"")
        sizes.append(len(freeze(app.store.mapper, app.ledger.load(Budget, bid))))
        if n % 3 == 0:
            app.runner.catch_up()  # in several batches
    app.runner.catch_up()
    assert max(sizes) - min(sizes) <= 2  # the state grows by the total's digits only

    with psycopg.connect(app.database.conninfo) as conn:
        rows = conn.execute(
            "SELECT a.reference, a.amount, a.position, a.recorded_at, e.occurred_at, e.version"
            " FROM budget_actuals a JOIN event_log e USING (position)"
            " WHERE a.budget_id = %s ORDER BY a.position", (bid,)).fetchall()
        doc = conn.execute("SELECT doc FROM budgets WHERE id = %s", (bid,)).fetchone()[0]
    assert [(r[0], r[1]) for r in rows] == [
        (f"R{n} ünïcode \"quoted\"", Decimal(f"{n + 1}.25")) for n in range(7)]
    assert all(r[3] == r[4] for r in rows)  # recorded when the event occurred
    assert doc["line_actuals"] == {line: "29.75"}
    assert "actuals" not in doc
    budget = app.ledger.load(Budget, bid)
    assert [v for *_, v in rows] == [v for v in range(6, budget.version + 1)]


def test_a_budget_actuals_table_of_before_is_refilled_from_the_events(app: Any) -> None:
    """A table of the version that wrote actuals from the aggregates (no positions) is
    replaced when the tables are created, and the new projection fills it from position 0."""
    bid, line = issued(app)
    run(app, "record_actual", MEMBER, bid, line_id=line, amount="5.00",
        date=date(2026, 2, 1), reference="A")
    app.runner.catch_up()
    with psycopg.connect(app.database.conninfo) as conn:
        conn.execute("ALTER TABLE budget_actuals DROP COLUMN position, DROP COLUMN recorded_at")
        conn.execute("DELETE FROM projection_tracking WHERE name = 'budget_actuals'")
    app.runner.create_tables()
    app.runner.positions.pop("budget_actuals", None)
    app.runner.catch_up()
    with psycopg.connect(app.database.conninfo) as conn:
        assert conn.execute("SELECT reference, amount FROM budget_actuals").fetchall() == [
            ("A", Decimal("5.00"))]
