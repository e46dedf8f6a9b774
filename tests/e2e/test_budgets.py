"""Budgets end to end (SPEC §5), as the issue says it will be checked.

Two department budgets of fiscal year 2026 are compiled with monthly allocations, pushed
through finance review and leadership approval (the self-approval refused), issued and
executed; actuals are recorded until the 80 % and 100 % warnings fire, the block policy refuses
an overspend and leadership overrides it, an adjustment becomes version 2 with version 1 still
readable. Every figure the GraphQL views show is checked against a hand calculation to the
cent, written here as strings. Nothing anywhere is a JSON float.

Hand calculation (ops budget, block policy; percentages rounded half-up to 2 places):

    Travel (expense/travel) v1 12 000.00, monthly 500 / 1 500 / 1 000 × 10
      2026-01-15  4 000.00                    → 4 000.00  33.33 %
      2026-02-10  5 600.00 (project P)        → 9 600.00  80.00 %  warning 80
      2026-03-05  2 400.00                    → 12 000.00 100.00 % warning 100
      2026-03-20    150.50 refused (block), remaining 0.00; leadership override
                                              → 12 150.50 101.25 % (flagged overspent)
    adjustment → v2: Travel 15 000.00 (monthly 500 / 1 500 / 1 000 × 8 / 2 500 / 2 500),
                     new line Training (expense/personnel) 3 000.00, no monthly plan
      Travel now 81.00 %: the 80 warning stays, the 100 one re-arms
      2026-04-10  2 000.00                    → 14 150.50 94.34 %
      2026-04-20    849.50                    → 15 000.00 100.00 % warning 100 (again)
    Consulting (revenue/other) 60 000.00, 5 000.00 a month: 4 800.00 (Jan) + 5 200.00 (Feb)
    Materials (cost/materials) 5 000.00, no monthly plan: 1 234.56 (Feb, project P)

    sales budget (warn policy): Marketing (expense/marketing) 8 000.00: 7 000.00 → 87.50 %
    warning 80; 1 500.00 → 8 500.00 106.25 % warning 100, recorded and flagged.
    Sales revenue (revenue/other) 100 000.00: 30 000.00.
    hr budget: compiled only (draft) — left out of the consolidation.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

YEAR = 2026
TRAVEL_MONTHLY_V1 = ["500.00", "1500.00"] + ["1000.00"] * 10
TRAVEL_MONTHLY_V2 = ["500.00", "1500.00"] + ["1000.00"] * 8 + ["2500.00", "2500.00"]

OPS_LINES = [
    {"kind": "expense", "category": "travel", "name": "Travel", "amount": "12000.00",
     "monthly": TRAVEL_MONTHLY_V1},
    {"kind": "revenue", "category": "other", "name": "Consulting", "amount": "60000.00",
     "monthly": ["5000.00"] * 12},
    {"kind": "cost", "category": "materials", "name": "Materials", "amount": "5000.00"},
]
SALES_LINES = [
    {"kind": "expense", "category": "marketing", "name": "Marketing", "amount": "8000.00",
     "monthly": ["1000.00"] * 4 + ["500.00"] * 8},
    {"kind": "revenue", "category": "other", "name": "Sales revenue", "amount": "100000.00"},
]
PROJECT = {
    "department": "ops", "name": "Trade fair", "background": "Leads", "objectives": "Leads",
    "scope": "Booth", "requested_budget": "20000.00", "expected_revenue": "50000.00",
    "start_date": "2026-01-05", "end_date": "2026-12-20",
}

BUDGET_Q = """
query($id: ID!, $pos: Int) {
  budget(id: $id, waitForPosition: $pos) {
    id recordId department fiscalYear currency overspendPolicy status versionNo
    compiledBy submittedBy issuedBy approvals { stage by } returns { stage by reason }
    lines { id kind category name amount monthly actual remaining variance variancePercent
            utilisationPercent overspent warnedThresholds }
    totals { kind figures { budget actual remaining utilisationPercent } }
    actuals { lineId amount date reference projectId recordedBy overspent overrideBy
              overrideReason recordedAt position }
    versions { versionNo adjustmentId approvedBy totals { kind amount }
               lines { name amount monthly } }
    v1: versionLines(versionNo: 1) { name amount }
    adjustments { status requestedBy reason versionNo approvals { stage by }
                  changes { action lineId name amount } }
    warnings { lineName threshold utilisationPercent actual amount raisedBy }
  }
}"""


# --- helpers: HTTP with the no-float check on every answer ---------------------------------

def assert_no_float(value: Any, path: str = "$") -> None:
    assert not isinstance(value, float), f"float at {path}: {value!r}"
    if isinstance(value, dict):
        for k, v in value.items():
            assert_no_float(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_float(v, f"{path}[{i}]")


def post(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None = None,
         expect: int = 200) -> dict[str, Any]:
    r = client.post(path, json=body or {}, headers=who)
    assert r.status_code == expect, r.text
    data: dict[str, Any] = r.json()
    assert_no_float(data)
    return data


def gql(client: Any, who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": query, "variables": variables}, headers=who)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body.get("errors"), body
    assert_no_float(body)
    data: dict[str, Any] = body["data"]
    return data


def refused(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None,
            status: int, rule: str) -> dict[str, Any]:
    r = client.post(path, json=body or {}, headers=who)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = r.json()
    assert problem["rule"] == rule, problem
    return problem


# --- the scenario, built once for the module ------------------------------------------------

@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        # a department manager who also sits in finance and on the leadership committee: the
        # maker who may not check their own budget
        "mark": token("mark", "dept_manager", "finance", "leadership"),
        "ann": token("ann", "member"),
        "felix": token("felix", "finance", "leadership", departments=()),
        "fiona": token("fiona", "finance", departments=()),
        "lena": token("lena", "leadership", departments=()),
        "leo": token("leo", "leadership", departments=()),
        "sam": token("sam", "dept_manager", departments=("sales",)),
        "sue": token("sue", "member", departments=("sales",)),
        "hank": token("hank", "dept_manager", departments=("hr",)),
        "audrey": token("audrey", "auditor"),
    }


def actual(client: Any, base: str, who: dict[str, str], line_id: str, amount: str, day: str,
           ref: str, expect: int = 200, **extra: Any) -> dict[str, Any]:
    return post(client, f"{base}/record-actual", who, {
        "line_id": line_id, "amount": amount, "date": day, "reference": ref, **extra},
        expect=expect)


@pytest.fixture(scope="module")
def world(client: Any, people: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Runs the whole scenario over HTTP, checking each refusal on the way."""
    p = people
    mark, felix, lena, ann = p["mark"], p["felix"], p["lena"], p["ann"]
    project_id = post(client, "/projects", ann, PROJECT, expect=201)["id"]

    created = post(client, "/budgets", mark, {"department": "ops", "fiscal_year": YEAR,
                                             "overspend_policy": "block",
                                             "lines": OPS_LINES}, expect=201)
    bid = created["id"]
    base = f"/budgets/{bid}"
    assert created["status"] == "draft"

    # submit → finance returns with a reason → resubmit → finance passes → leadership approves
    post(client, f"{base}/submit", mark, {"comment": "ops plan 2026"})
    refused(client, f"{base}/return-for-revision", felix, {"reason": " "}, 422,
            "reason_required")
    post(client, f"{base}/return-for-revision", felix, {"reason": "travel plan missing"})
    post(client, f"{base}/submit", mark, {"comment": "travel plan attached"})
    self_review = refused(client, f"{base}/pass-finance-review", mark, None, 403,
                          "maker_checker")
    refused(client, f"{base}/approve", lena, None, 409, "invalid_transition")
    post(client, f"{base}/pass-finance-review", felix)
    refused(client, f"{base}/approve", mark, None, 403, "maker_checker")
    refused(client, f"{base}/approve", felix, None, 403, "distinct_approvers")
    refused(client, f"{base}/approve", p["fiona"], None, 403, "leadership_approval_role")
    post(client, f"{base}/approve", lena, {"comment": "approved by the committee"})
    refused(client, f"{base}/record-actual", ann, {
        "line_id": "x", "amount": "1.00", "date": "2026-01-01", "reference": "early"}, 409,
        "invalid_transition")
    post(client, f"{base}/issue", p["fiona"])
    post(client, f"{base}/start-execution", mark)

    state = client.get(base, headers=ann).json()
    travel, consulting, materials = (line["id"] for line in state["lines"])

    actual(client, base, ann, travel, "4000.00", "2026-01-15", "INV-001")
    actual(client, base, ann, travel, "5600.00", "2026-02-10", "INV-002",
           project_id=project_id)
    actual(client, base, ann, travel, "2400.00", "2026-03-05", "INV-003")
    blocked = refused(client, f"{base}/record-actual", ann, {
        "line_id": travel, "amount": "150.50", "date": "2026-03-20", "reference": "INV-004"},
        422, "overspend_blocked")
    member_override = refused(client, f"{base}/record-actual", ann, {
        "line_id": travel, "amount": "150.50", "date": "2026-03-20", "reference": "INV-004",
        "override_reason": "urgent"}, 403, "override_requires_leadership")
    actual(client, base, lena, travel, "150.50", "2026-03-20", "INV-004",
           override_reason="client visit approved by the board")
    actual(client, base, ann, consulting, "4800.00", "2026-01-31", "SO-1")
    actual(client, base, ann, consulting, "5200.00", "2026-02-28", "SO-2")
    actual(client, base, ann, materials, "1234.56", "2026-02-14", "PO-7",
           project_id=project_id)
    unknown_project = refused(client, f"{base}/record-actual", ann, {
        "line_id": materials, "amount": "1.00", "date": "2026-02-14", "reference": "PO-8",
        "project_id": str(uuid.uuid4())}, 422, "unknown_reference")

    # adjustment: department requests, finance reviews, leadership approves → version 2
    post(client, f"{base}/request-adjustment", mark, {
        "reason": "Q4 trade fair", "changes": [
            {"line_id": travel, "kind": "expense", "category": "travel", "name": "Travel",
             "amount": "15000.00", "monthly": TRAVEL_MONTHLY_V2},
            {"kind": "expense", "category": "personnel", "name": "Training",
             "amount": "3000.00"}]})
    adjustment_id = client.get(base, headers=ann).json()["adjustments"][0]["id"]
    body = {"adjustment_id": adjustment_id}
    refused(client, f"{base}/pass-adjustment-finance-review", mark, body, 403, "maker_checker")
    post(client, f"{base}/pass-adjustment-finance-review", p["fiona"], body)
    refused(client, f"{base}/approve-adjustment", p["fiona"], body, 403,
            "leadership_approval_role")
    post(client, f"{base}/approve-adjustment", p["leo"], body)
    actual(client, base, ann, travel, "2000.00", "2026-04-10", "INV-005")
    last = actual(client, base, ann, travel, "849.50", "2026-04-20", "INV-006")

    # sales: warn policy, overspend recorded and flagged
    s = post(client, "/budgets", p["sam"], {"department": "sales", "fiscal_year": YEAR,
                                            "lines": SALES_LINES}, expect=201)
    sbase = f"/budgets/{s['id']}"
    post(client, f"{sbase}/submit", p["sam"])
    post(client, f"{sbase}/pass-finance-review", p["fiona"])
    post(client, f"{sbase}/approve", p["leo"])
    post(client, f"{sbase}/issue", p["fiona"])
    marketing, revenue = (line["id"] for line in client.get(sbase, headers=ann).json()["lines"])
    actual(client, sbase, p["sue"], marketing, "7000.00", "2026-02-01", "MK-1")
    actual(client, sbase, p["sue"], marketing, "1500.00", "2026-03-01", "MK-2")
    actual(client, sbase, p["sue"], revenue, "30000.00", "2026-03-31", "SR-1")

    hr = post(client, "/budgets", p["hank"], {"department": "hr", "fiscal_year": YEAR,
                                              "lines": [{"kind": "expense",
                                                         "category": "personnel",
                                                         "name": "Recruiting",
                                                         "amount": "9000.00"}]}, expect=201)
    return {"bid": bid, "sales": s["id"], "hr": hr["id"], "project": project_id,
            "travel": travel, "consulting": consulting, "materials": materials,
            "adjustment": adjustment_id, "blocked": blocked, "self_review": self_review,
            "member_override": member_override, "unknown_project": unknown_project,
            "pos": max(last["position"], hr["position"])}


# --- the checks ------------------------------------------------------------------------------

def test_self_approval_and_missing_reasons_are_refused(world: dict[str, Any]) -> None:
    assert "submitted" in world["self_review"]["detail"]
    assert world["member_override"]["status"] == 403
    assert world["unknown_project"]["field"] == "project_id"


def test_block_policy_refuses_naming_the_line_and_its_remaining_amount(
        world: dict[str, Any]) -> None:
    problem = world["blocked"]
    assert problem["status"] == 422 and problem["field"] == "amount"
    assert "'Travel'" in problem["detail"] and world["travel"] in problem["detail"]
    assert "remaining 0.00 CNY" in problem["detail"]


def test_budget_shows_lines_figures_versions_adjustment_and_warnings(
        client: Any, people: dict, world: dict[str, Any]) -> None:
    b = gql(client, people["audrey"], BUDGET_Q, id=world["bid"], pos=world["pos"])["budget"]
    assert (b["department"], b["fiscalYear"], b["currency"]) == ("ops", YEAR, "CNY")
    assert (b["status"], b["versionNo"], b["overspendPolicy"]) == ("in_execution", 2, "block")
    assert (b["compiledBy"], b["submittedBy"], b["issuedBy"]) == ("mark", "mark", "fiona")
    assert b["approvals"] == [{"stage": "finance_review", "by": "felix"},
                              {"stage": "leadership_approval", "by": "lena"}]
    assert b["returns"] == [{"stage": "finance_review", "by": "felix",
                             "reason": "travel plan missing"}]

    lines = {line["name"]: line for line in b["lines"]}
    assert list(lines) == ["Travel", "Consulting", "Materials", "Training"]
    fig = ("amount", "actual", "remaining", "variance", "variancePercent",
           "utilisationPercent", "overspent", "warnedThresholds")
    assert {k: lines["Travel"][k] for k in fig} == {
        "amount": "15000.00", "actual": "15000.00", "remaining": "0.00", "variance": "0.00",
        "variancePercent": "0.00", "utilisationPercent": "100.00", "overspent": False,
        "warnedThresholds": [80, 100]}
    assert lines["Travel"]["monthly"] == TRAVEL_MONTHLY_V2
    assert {k: lines["Consulting"][k] for k in fig} == {
        "amount": "60000.00", "actual": "10000.00", "remaining": "50000.00",
        "variance": "-50000.00", "variancePercent": "-83.33", "utilisationPercent": "16.67",
        "overspent": False, "warnedThresholds": []}
    assert {k: lines["Materials"][k] for k in fig} == {
        "amount": "5000.00", "actual": "1234.56", "remaining": "3765.44",
        "variance": "-3765.44", "variancePercent": "-75.31", "utilisationPercent": "24.69",
        "overspent": False, "warnedThresholds": []}
    assert lines["Materials"]["monthly"] is None
    assert {k: lines["Training"][k] for k in fig} == {
        "amount": "3000.00", "actual": "0.00", "remaining": "3000.00", "variance": "-3000.00",
        "variancePercent": "-100.00", "utilisationPercent": "0.00", "overspent": False,
        "warnedThresholds": []}
    assert b["totals"] == [
        {"kind": "revenue", "figures": {"budget": "60000.00", "actual": "10000.00",
                                        "remaining": "50000.00", "utilisationPercent": "16.67"}},
        {"kind": "cost", "figures": {"budget": "5000.00", "actual": "1234.56",
                                     "remaining": "3765.44", "utilisationPercent": "24.69"}},
        {"kind": "expense", "figures": {"budget": "18000.00", "actual": "15000.00",
                                        "remaining": "3000.00", "utilisationPercent": "83.33"}}]

    # the override is recorded, flagged, with who and why; actuals carry over to version 2
    travel_actuals = [a for a in b["actuals"] if a["lineId"] == world["travel"]]
    assert [a["amount"] for a in travel_actuals] == [
        "4000.00", "5600.00", "2400.00", "150.50", "2000.00", "849.50"]
    override = travel_actuals[3]
    assert (override["overspent"], override["overrideBy"], override["recordedBy"]) == (
        True, "lena", "lena")
    assert override["overrideReason"] == "client visit approved by the board"
    assert [a["projectId"] for a in b["actuals"] if a["projectId"]] == [world["project"]] * 2

    # version 1 (as approved) and version 2 (the adjustment) are both readable
    v1, v2 = b["versions"]
    assert (v1["versionNo"], v1["adjustmentId"], v1["approvedBy"]) == (1, None, "lena")
    assert [(x["name"], x["amount"]) for x in v1["lines"]] == [
        ("Travel", "12000.00"), ("Consulting", "60000.00"), ("Materials", "5000.00")]
    assert v1["lines"][0]["monthly"] == TRAVEL_MONTHLY_V1
    assert v1["totals"] == [{"kind": "revenue", "amount": "60000.00"},
                            {"kind": "cost", "amount": "5000.00"},
                            {"kind": "expense", "amount": "12000.00"}]
    assert b["v1"] == [{"name": x["name"], "amount": x["amount"]} for x in v1["lines"]]
    assert (v2["versionNo"], v2["adjustmentId"], v2["approvedBy"]) == (
        2, world["adjustment"], "leo")
    assert v2["totals"][-1] == {"kind": "expense", "amount": "18000.00"}
    assert b["adjustments"] == [{
        "status": "approved", "requestedBy": "mark", "reason": "Q4 trade fair", "versionNo": 2,
        "approvals": [{"stage": "finance_review", "by": "fiona"},
                      {"stage": "leadership_approval", "by": "leo"}],
        "changes": [
            {"action": "change", "lineId": world["travel"], "name": "Travel",
             "amount": "15000.00"},
            {"action": "add", "lineId": lines["Training"]["id"], "name": "Training",
             "amount": "3000.00"}]}]

    # 80 and 100 once each, then 100 again after the adjustment re-armed it
    assert b["warnings"] == [
        {"lineName": "Travel", "threshold": 80, "utilisationPercent": "80.00",
         "actual": "9600.00", "amount": "12000.00", "raisedBy": "ann"},
        {"lineName": "Travel", "threshold": 100, "utilisationPercent": "100.00",
         "actual": "12000.00", "amount": "12000.00", "raisedBy": "ann"},
        {"lineName": "Travel", "threshold": 100, "utilisationPercent": "100.00",
         "actual": "15000.00", "amount": "15000.00", "raisedBy": "ann"}]


def test_figures_reconcile_with_the_recorded_events(client: Any, people: dict,
                                                    world: dict[str, Any]) -> None:
    """Two independent paths: the REST record's running totals (the aggregate, from its
    events) and the actuals view (a row per ActualRecorded event), summed per line."""
    from decimal import Decimal

    rest = client.get(f"/budgets/{world['bid']}", headers=people["ann"]).json()
    assert_no_float(rest)
    assert "actuals" not in rest  # the budget keeps totals; the actuals are their events
    b = gql(client, people["ann"], BUDGET_Q, id=world["bid"], pos=world["pos"])["budget"]
    sums: dict[str, Decimal] = {}
    for a in b["actuals"]:
        sums[a["lineId"]] = sums.get(a["lineId"], Decimal("0")) + Decimal(a["amount"])
    assert {k: Decimal(v) for k, v in rest["line_actuals"].items()} == sums
    positions = [a["position"] for a in b["actuals"]]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [a["recordedAt"] for a in b["actuals"]] == sorted(a["recordedAt"]
                                                            for a in b["actuals"])
    for line in b["lines"]:
        assert Decimal(line["actual"]) == sums.get(line["id"], Decimal("0"))
        assert Decimal(line["remaining"]) == Decimal(line["amount"]) - Decimal(line["actual"])
    for line in rest["lines"]:
        if line["monthly"]:
            assert sum(Decimal(m) for m in line["monthly"]) == Decimal(line["amount"])


VS_Q = """query($year: Int!, $dept: String, $by: [BudgetDimension!]!, $pos: Int) {
  budgetVsActual(fiscalYear: $year, department: $dept, groupBy: $by, waitForPosition: $pos) {
    department kind category lineName month unallocated currency
    budget actual remaining variance variancePercent utilisationPercent } }"""


def row(r: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(r[k] for k in keys)


def test_budget_vs_actual_by_category(client: Any, people: dict, world: dict) -> None:
    rows = gql(client, people["audrey"], VS_Q, year=YEAR, dept="ops", by=["CATEGORY"],
               pos=world["pos"])["budgetVsActual"]
    keys = ("kind", "category", "budget", "actual", "remaining", "variance", "variancePercent",
            "utilisationPercent")
    assert [row(r, *keys) for r in rows] == [
        ("revenue", "other", "60000.00", "10000.00", "50000.00", "-50000.00", "-83.33",
         "16.67"),
        ("cost", "materials", "5000.00", "1234.56", "3765.44", "-3765.44", "-75.31", "24.69"),
        ("expense", "personnel", "3000.00", "0.00", "3000.00", "-3000.00", "-100.00", "0.00"),
        ("expense", "travel", "15000.00", "15000.00", "0.00", "0.00", "0.00", "100.00")]
    assert {r["department"] for r in rows} == {None} and {r["currency"] for r in rows} == {"CNY"}


def test_budget_vs_actual_by_month(client: Any, people: dict, world: dict) -> None:
    rows = gql(client, people["audrey"], VS_Q, year=YEAR, dept="ops", by="MONTH",
               pos=world["pos"])["budgetVsActual"]
    keys = ("budget", "actual", "variance", "variancePercent", "utilisationPercent")
    by = {(r["kind"], r["month"]): row(r, *keys) for r in rows}
    assert len(rows) == 3 * 12 + 2  # revenue, cost, expense × 12 months + 2 unallocated rows
    assert by[("revenue", 1)] == ("5000.00", "4800.00", "-200.00", "-4.00", "96.00")
    assert by[("revenue", 2)] == ("5000.00", "5200.00", "200.00", "4.00", "104.00")
    assert by[("revenue", 3)] == ("5000.00", "0.00", "-5000.00", "-100.00", "0.00")
    assert by[("expense", 1)] == ("500.00", "4000.00", "3500.00", "700.00", "800.00")
    assert by[("expense", 2)] == ("1500.00", "5600.00", "4100.00", "273.33", "373.33")
    assert by[("expense", 3)] == ("1000.00", "2550.50", "1550.50", "155.05", "255.05")
    assert by[("expense", 4)] == ("1000.00", "2849.50", "1849.50", "184.95", "284.95")
    assert by[("expense", 11)] == ("2500.00", "0.00", "-2500.00", "-100.00", "0.00")
    # Training and Materials have no monthly plan: their budget is on the unallocated row,
    # their actuals in the months they were recorded
    assert by[("expense", None)] == ("3000.00", "0.00", "-3000.00", "-100.00", "0.00")
    assert by[("cost", None)] == ("5000.00", "0.00", "-5000.00", "-100.00", "0.00")
    assert by[("cost", 2)] == ("0.00", "1234.56", "1234.56", None, None)
    unallocated = [r for r in rows if r["unallocated"]]
    assert [r["kind"] for r in unallocated] == ["cost", "expense"]
    assert rows[-1]["unallocated"] and rows[-1]["month"] is None
    assert [r["month"] for r in rows if r["kind"] == "revenue"] == list(range(1, 13))


def test_budget_vs_actual_by_line_and_by_department(client: Any, people: dict,
                                                    world: dict) -> None:
    lines = gql(client, people["audrey"], VS_Q, year=YEAR, dept="ops", by=["LINE"],
                pos=world["pos"])["budgetVsActual"]
    assert [row(r, "lineName", "budget", "actual") for r in lines] == [
        ("Consulting", "60000.00", "10000.00"), ("Materials", "5000.00", "1234.56"),
        ("Travel", "15000.00", "15000.00"), ("Training", "3000.00", "0.00")]
    depts = gql(client, people["audrey"], VS_Q, year=YEAR, by=["DEPARTMENT"],
                pos=world["pos"])["budgetVsActual"]
    assert [row(r, "department", "kind", "budget", "actual", "variance", "variancePercent")
            for r in depts] == [
        ("hr", "expense", "9000.00", "0.00", "-9000.00", "-100.00"),
        ("ops", "revenue", "60000.00", "10000.00", "-50000.00", "-83.33"),
        ("ops", "cost", "5000.00", "1234.56", "-3765.44", "-75.31"),
        ("ops", "expense", "18000.00", "15000.00", "-3000.00", "-16.67"),
        ("sales", "revenue", "100000.00", "30000.00", "-70000.00", "-70.00"),
        ("sales", "expense", "8000.00", "8500.00", "500.00", "6.25")]
    both = gql(client, people["audrey"], VS_Q, year=YEAR, dept="sales",
               by=["DEPARTMENT", "MONTH"], pos=world["pos"])["budgetVsActual"]
    march = [r for r in both if r["month"] == 3]
    assert [row(r, "department", "kind", "budget", "actual") for r in march] == [
        ("sales", "revenue", "0.00", "30000.00"), ("sales", "expense", "1000.00", "1500.00")]


CONSOLIDATION_Q = """query($year: Int!, $pos: Int) {
  budgetConsolidation(fiscalYear: $year, waitForPosition: $pos) {
    fiscalYear currency statuses netBudget netActual
    revenue { ...F } cost { ...F } expense { ...F } spending { ...F }
    departments { department status versionNo netBudget netActual spending { ...F } }
    excluded { department status } } }
fragment F on BudgetFigures { budget actual remaining variance variancePercent
                              utilisationPercent }"""


def figs(*values: str | None) -> dict[str, str | None]:
    keys = ("budget", "actual", "remaining", "variance", "variancePercent",
            "utilisationPercent")
    return dict(zip(keys, values, strict=True))


def test_company_consolidation_per_fiscal_year(client: Any, people: dict, world: dict) -> None:
    c = gql(client, people["fiona"], CONSOLIDATION_Q, year=YEAR,
            pos=world["pos"])["budgetConsolidation"]
    assert (c["fiscalYear"], c["currency"]) == (YEAR, "CNY")
    assert c["revenue"] == figs("160000.00", "40000.00", "120000.00", "-120000.00", "-75.00",
                                "25.00")
    assert c["cost"] == figs("5000.00", "1234.56", "3765.44", "-3765.44", "-75.31", "24.69")
    assert c["expense"] == figs("26000.00", "23500.00", "2500.00", "-2500.00", "-9.62",
                                "90.38")
    assert c["spending"] == figs("31000.00", "24734.56", "6265.44", "-6265.44", "-20.21",
                                 "79.79")
    assert (c["netBudget"], c["netActual"]) == ("129000.00", "15265.44")
    assert [(d["department"], d["status"], d["versionNo"], d["netBudget"], d["netActual"])
            for d in c["departments"]] == [
        ("ops", "in_execution", 2, "37000.00", "-6234.56"),
        ("sales", "issued", 1, "92000.00", "21500.00")]
    assert c["departments"][1]["spending"] == figs("8000.00", "8500.00", "-500.00", "500.00",
                                                   "6.25", "106.25")
    assert c["excluded"] == [{"department": "hr", "status": "draft"}]


WARNINGS_Q = """query($year: Int, $dept: String, $first: Int, $after: String, $pos: Int) {
  budgetWarnings(fiscalYear: $year, department: $dept, first: $first, after: $after,
                 waitForPosition: $pos) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { department lineName threshold utilisationPercent actual amount } } } }"""


def test_budget_warnings_view_pages_newest_first(client: Any, people: dict,
                                                 world: dict) -> None:
    seen, after = [], None
    while True:
        page = gql(client, people["audrey"], WARNINGS_Q, year=YEAR, first=2, after=after,
                   pos=world["pos"])["budgetWarnings"]
        assert page["totalCount"] == 5
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [(w["department"], w["lineName"], w["threshold"], w["utilisationPercent"],
             w["actual"]) for w in seen] == [
        ("sales", "Marketing", 100, "106.25", "8500.00"),
        ("sales", "Marketing", 80, "87.50", "7000.00"),
        ("ops", "Travel", 100, "100.00", "15000.00"),
        ("ops", "Travel", 100, "100.00", "12000.00"),
        ("ops", "Travel", 80, "80.00", "9600.00")]
    ops = gql(client, people["audrey"], WARNINGS_Q, dept="ops",
              pos=world["pos"])["budgetWarnings"]
    assert ops["totalCount"] == 3


def test_sales_overspend_under_warn_policy_is_recorded_and_flagged(
        client: Any, people: dict, world: dict) -> None:
    b = gql(client, people["sam"], BUDGET_Q, id=world["sales"], pos=world["pos"])["budget"]
    marketing = b["lines"][0]
    assert (marketing["actual"], marketing["remaining"], marketing["utilisationPercent"],
            marketing["overspent"]) == ("8500.00", "-500.00", "106.25", True)
    assert [a["overspent"] for a in b["actuals"]] == [False, True, False]


def test_budgets_list_filters_and_pages(client: Any, people: dict, world: dict) -> None:
    q = """query($after: String, $pos: Int) {
      budgets(first: 1, after: $after, waitForPosition: $pos,
              filter: {fiscalYear: 2026, status: ["issued", "in_execution"]},
              orderBy: {field: DEPARTMENT, direction: ASC}) {
        totalCount edges { node { id department status lines { name } } }
        pageInfo { hasNextPage endCursor } } }"""
    seen, after = [], None
    while True:
        page = gql(client, people["audrey"], q, after=after, pos=world["pos"])["budgets"]
        assert page["totalCount"] == 2
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [(b["department"], b["status"]) for b in seen] == [("ops", "in_execution"),
                                                             ("sales", "issued")]
    hr = gql(client, people["audrey"], """query($pos: Int) { budgets(filter: {department:
        ["hr"]}, waitForPosition: $pos) { edges { node { id status } } } }""",
             pos=world["pos"])["budgets"]["edges"]
    assert [e["node"]["status"] for e in hr] == ["draft"]
    node = gql(client, people["audrey"], "query($id: ID!) { node(id: $id) { ... on Budget {"
               " department fiscalYear } } }", id=seen[0]["id"])["node"]
    assert node == {"department": "ops", "fiscalYear": YEAR}


PROJECT_COST_Q = """query($id: ID!, $pos: Int) { project(id: $id, waitForPosition: $pos) {
  cost { currency budget actual remaining variance variancePercent utilisationPercent
         revenueActual actualCount } } }"""


def test_project_cost_rolls_up_its_actuals(client: Any, people: dict, world: dict) -> None:
    cost = gql(client, people["audrey"], PROJECT_COST_Q, id=world["project"],
               pos=world["pos"])["project"]["cost"]
    assert cost == {"currency": "CNY", "budget": "20000.00", "actual": "6834.56",
                    "remaining": "13165.44", "variance": "-13165.44",
                    "variancePercent": "-65.83", "utilisationPercent": "34.17",
                    "revenueActual": "0.00", "actualCount": 2}


def test_project_cost_on_a_page_costs_constant_sql(client: Any, people: dict,
                                                   world: dict) -> None:
    ann = people["ann"]
    made = [post(client, "/projects", ann, {**PROJECT, "name": f"Costed {i}"}, expect=201)
            for i in range(5)]
    q = """query($n: Int, $pos: Int) {
      projects(first: $n, filter: {department: ["ops"]}, waitForPosition: $pos) {
      edges { node { name cost { actual utilisationPercent }
                     acceptanceReviews { costControl { actual } } } } } }"""
    counts = []
    for n in (1, 5):
        r = client.post("/graphql", json={"query": q, "variables": {
            "n": n, "pos": made[-1]["position"]}}, headers=ann)
        body = r.json()
        assert not body.get("errors"), body
        assert len(body["data"]["projects"]["edges"]) == n
        assert_no_float(body)
        counts.append(body["extensions"]["sqlStatements"])
    assert counts[0] == counts[1] == 3  # the page, its count, one batched cost lookup


def test_acceptance_review_shows_the_cost_for_cost_control(client: Any, token: Any) -> None:
    ann, mark, lena = token("ann", "member"), token("mark", "dept_manager"), token(
        "lena", "leadership", departments=())
    pid = post(client, "/projects", ann, {**PROJECT, "name": "Accepted",
                                          "requested_budget": "1000.00"}, expect=201)["id"]
    base = f"/projects/{pid}"
    post(client, f"{base}/submit", ann)
    post(client, f"{base}/pass-preliminary-review", mark)
    post(client, f"{base}/approve", lena)
    post(client, f"{base}/appoint-lead", mark, {"user_id": "leo", "name": "Leo"})
    leo = token("leo", "member")
    post(client, f"{base}/submit-plan", leo, {
        "milestones": [{"name": "Done", "due_date": "2026-06-30"}], "tasks": [],
        "resources": []})
    post(client, f"{base}/approve-plan", mark)
    bid = post(client, "/budgets", token("hal", "dept_manager", departments=("it",)), {
        "department": "it", "fiscal_year": YEAR + 1, "lines": [
            {"kind": "cost", "category": "other", "name": "Delivery", "amount": "900.00"}]},
        expect=201)["id"]
    hal = token("hal", "dept_manager", departments=("it",))
    post(client, f"/budgets/{bid}/submit", hal)
    post(client, f"/budgets/{bid}/pass-finance-review", token("fin", "finance", departments=()))
    post(client, f"/budgets/{bid}/approve", lena)
    post(client, f"/budgets/{bid}/issue", lena)
    line = client.get(f"/budgets/{bid}", headers=hal).json()["lines"][0]["id"]
    actual(client, f"/budgets/{bid}", token("ivy", "member", departments=("it",)), line,
           "850.25", "2027-05-05", "DLV-1", project_id=pid)
    post(client, f"{base}/request-acceptance", leo, {"report": "done"})
    last = post(client, f"{base}/review-acceptance", lena, {
        "objectives_met": True, "deliverable_quality": True, "cost_control": True,
        "documentation_complete": True, "cost_control_note": "85.03 % of budget"})
    q = """query($id: ID!, $pos: Int) { project(id: $id, waitForPosition: $pos) {
      acceptanceReviews { passed criteria costControl { budget actual remaining
                                                        utilisationPercent } } } }"""
    review = gql(client, ann, q, id=pid, pos=last["position"])["project"]["acceptanceReviews"][0]
    assert review["costControl"] == {"budget": "1000.00", "actual": "850.25",
                                     "remaining": "149.75", "utilisationPercent": "85.03"}


def test_one_budget_per_department_and_year(client: Any, people: dict, world: dict) -> None:
    r = client.post("/budgets", json={"department": "ops", "fiscal_year": YEAR,
                                      "lines": OPS_LINES}, headers=people["mark"])
    assert r.status_code == 409 and r.json()["rule"] == "duplicate_record"


def test_two_concurrent_compiles_exactly_one_wins(client: Any, token: Any) -> None:
    managers = [token(f"m{i}", "dept_manager", departments=("legal",)) for i in range(2)]
    body = {"department": "legal", "fiscal_year": YEAR + 1, "lines": [
        {"kind": "expense", "category": "other", "name": "Counsel", "amount": "100.00"}]}
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def compile_budget(who: dict[str, str]) -> None:
        barrier.wait()
        statuses.append(client.post("/budgets", json=body, headers=who).status_code)

    threads = [threading.Thread(target=compile_budget, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [201, 409]


def test_floats_and_unknown_categories_are_refused(client: Any, people: dict) -> None:
    mark = people["mark"]
    line = {"kind": "expense", "category": "travel", "name": "T", "amount": 10.5}
    r = client.post("/budgets", json={"department": "ops", "fiscal_year": 2027,
                                      "lines": [line]}, headers=mark)
    assert r.status_code == 422 and "float" in r.json()["detail"]
    r = client.post("/budgets", json={"department": "ops", "fiscal_year": 2027, "lines": [
        {**line, "amount": "10.50", "category": "yachts"}]}, headers=mark)
    assert r.status_code == 422 and r.json()["rule"] == "unknown_category"
    r = client.post("/budgets", json={"department": "ops", "fiscal_year": 2027, "lines": [
        {**line, "amount": "12.00", "monthly": ["1.00"] * 11 + ["0.99"]}]}, headers=mark)
    assert r.status_code == 422 and r.json()["rule"] == "monthly_sum"


def test_graphql_schema_has_no_float(client: Any, people: dict) -> None:
    q = """{ __schema { types { name kind fields { name type { name kind ofType { name kind
             ofType { name kind ofType { name } } } } } } } }"""
    types = gql(client, people["audrey"], q)["__schema"]["types"]
    mine = {"Budget", "BudgetLine", "BudgetActual", "BudgetFigures", "BudgetVsActualRow",
            "BudgetConsolidation", "BudgetWarning", "ProjectCost", "OperationsIndicators",
            "IndicatorValue", "IndicatorTarget"}
    for t in types:
        if t["name"] not in mine:
            continue
        text = str(t["fields"])
        assert "'Float'" not in text, t["name"]
