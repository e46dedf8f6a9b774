"""The readings behind the operations indicators and budget views, on hand-made inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

from service.graphql.budget_reports import BudgetDimension, group_budget_vs_actual
from service.graphql.indicators import (
    open_high_risks,
    parse_month,
    project_indicators,
    service_indicators,
)

START, END = parse_month("2026-03")


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> str:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC).isoformat()


def test_a_month_is_a_utc_calendar_month() -> None:
    start, end = parse_month("2026-03")
    assert [start, end] == [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)]
    assert parse_month("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)


def test_service_readings_count_what_happened_in_the_month() -> None:
    docs = [
        {"opened_at": at(2, 9), "first_response_at": at(2, 10, 30), "resolved_at": at(3, 9),
         "category": "inquiry", "complaints": [],
         "satisfaction_scores": [{"score": 4, "at": at(3, 10)}]},
        {"opened_at": at(28, 9, month=2), "first_response_at": at(1, 9, 15),
         "resolved_at": None, "category": "complaint", "complaints": [],
         "satisfaction_scores": [{"score": 1, "at": at(27, month=2)}]},   # scored in Feb
        {"opened_at": at(10, 8), "first_response_at": at(10, 8, 20), "resolved_at": at(10, 12),
         "category": "inquiry", "complaints": [{"opened_at": at(11)}, {"opened_at": at(21)}],
         "satisfaction_scores": [{"score": 2, "at": at(11)}, {"score": 5, "at": at(20)}]},
        {"opened_at": at(25, 9, month=2), "first_response_at": at(25, 10, month=2),
         "category": "inquiry", "complaints": [{"opened_at": at(5)}],   # complaint in March
         "satisfaction_scores": []},
    ]

    readings = service_indicators(docs, START, END)

    assert readings["satisfaction"] == (Decimal("3.67"), 3)          # (4 + 2 + 5) / 3
    # opened in March: 2; complaint processes first opened in March: 2 (one request opened
    # in February); the intake category "complaint" is not a complaint process
    assert readings["complaint_rate"] == (Decimal("100.00"), 2)
    # 1.5 h, 24.25 h (opened 28 Feb 09:00), 0.3333 h → median 1.50
    assert readings["first_response_hours"] == (Decimal("1.50"), 3)
    assert readings["handling_hours"] == (Decimal("14.00"), 2)       # median of 24 h and 4 h


def test_on_time_milestones_of_the_month() -> None:
    doc = {"status": "in_execution", "milestones": [
        {"due_date": "2026-03-05", "completed_on": "2026-03-05"},    # on time
        {"due_date": "2026-03-06", "completed_on": "2026-03-09"},    # late
        {"due_date": "2026-03-10", "completed_on": None},            # overdue at the 20th
        {"due_date": "2026-03-25", "completed_on": None},            # not due yet
        {"due_date": "2026-04-01", "completed_on": "2026-03-02"},    # another month
    ]}
    cancelled = {"status": "cancelled", "milestones": [{"due_date": "2026-03-05",
                                                        "completed_on": None}]}

    states, rate = project_indicators([doc, cancelled], START, END, date(2026, 3, 20))

    assert rate == (Decimal("33.33"), 3)
    assert states == {"in_execution": 1, "cancelled": 1}


def test_open_high_risks_at_the_months_end() -> None:
    docs = [{"level": "high", "status": "monitoring", "closed_at": None},
            {"level": "critical", "status": "closed", "closed_at": at(31, 23)},
            {"level": "critical", "status": "closed", "closed_at": at(2, month=4)},
            {"level": "medium", "status": "assessed", "closed_at": None}]

    assert open_high_risks(docs, END) == (Decimal(2), 2)


def test_budget_vs_actual_groups_in_exact_decimals() -> None:
    bid = uuid4()
    lines = [{"budget_id": bid, "department": "ops", "currency": "CNY", "line_id": "a",
              "seq": 0, "kind": "expense", "category": "travel", "name": "A",
              "amount": Decimal("0.30"), "monthly": [Decimal("0.10")] * 3 + [Decimal("0")] * 9},
             {"budget_id": bid, "department": "ops", "currency": "CNY", "line_id": "b",
              "seq": 1, "kind": "expense", "category": "travel", "name": "B",
              "amount": Decimal("0.03"), "monthly": None}]
    actuals = {(bid, "a", 1): Decimal("0.10"), (bid, "a", 2): Decimal("0.20"),
               (bid, "b", 2): Decimal("0.01")}

    [by_category] = group_budget_vs_actual(2026, lines, actuals, {BudgetDimension.CATEGORY})
    months = group_budget_vs_actual(2026, lines, actuals, {BudgetDimension.MONTH})

    assert (by_category.budget, by_category.actual, by_category.variance) == (
        Decimal("0.33"), Decimal("0.31"), Decimal("-0.02"))
    assert by_category.variance_percent == Decimal("-6.06")
    assert by_category.utilisation_percent == Decimal("93.94")
    feb = months[1]
    assert (feb.month, feb.budget, feb.actual, feb.variance_percent) == (
        2, Decimal("0.10"), Decimal("0.21"), Decimal("110.00"))
    assert (months[-1].unallocated, months[-1].budget) == (True, Decimal("0.03"))
    assert sum((r.budget for r in months), Decimal(0)) == Decimal("0.33")
