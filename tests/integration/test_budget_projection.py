"""The budget tables are rebuildable: a rebuild from the events gives the very same rows —
lines of the current version, actuals, and the warnings (their own projection)."""

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

    app.runner.reset(["records", "budget_warnings"])
    assert all(not rows for rows in snapshot(app).values())
    app.runner.catch_up()
    assert snapshot(app) == before


def test_a_budget_read_back_between_batches_is_stored_as_if_encoded_whole(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget's actuals already stored are reused, not encoded again (records.py
    ``APPEND_ONLY``): its state and view are still exactly those of the whole aggregate."""
    from projections import records
    from projections.codec import freeze, record_view

    spliced = []
    encode = records._Grown.encode

    def counting(self: Any, mapper: Any, record: Any) -> Any:
        result = encode(self, mapper, record)
        spliced.append(result is not None)
        return result

    monkeypatch.setattr(records._Grown, "encode", counting)
    bid = run(app, "compile", MANAGER, department="ops", fiscal_year=2026, lines=[
        {"kind": "expense", "category": "travel", "name": "Travel", "amount": "1000.00"}])
    for command, actor in (("submit", MANAGER), ("pass_finance_review", FINANCE),
                           ("approve", LEADER), ("issue", LEADER)):
        run(app, command, actor, bid)
    line = app.ledger.load(Budget, bid).lines[0]["id"]
    app.runner.rebuild_batch_size = 2  # the budget is read back for every other event
    for n in range(7):
        run(app, "record_actual", MEMBER, bid, line_id=line, amount=f"{n + 1}.25",
            date=date(2026, 2, n + 1), reference=f"R{n} ünïcode \"quoted\"")
        app.runner.catch_up()
    assert any(spliced)

    def stored() -> tuple[Any, ...]:
        with psycopg.connect(app.database.conninfo) as conn:
            return conn.execute(  # type: ignore[return-value]
                "SELECT r.state, r.doc, b.doc FROM record_state r JOIN budgets b USING (id)"
                " WHERE id = %s", (bid,)).fetchone()

    budget = app.ledger.load(Budget, bid)
    state, doc, table_doc = stored()
    assert len(budget.actuals) == 7
    assert bytes(state) == freeze(app.store.mapper, budget)
    assert doc == table_doc == record_view(budget)

    app.runner.reset(["records"])
    app.runner.rebuild_batch_size = 1000  # whole, in one batch
    app.runner.catch_up()
    assert stored() == (state, doc, table_doc)
