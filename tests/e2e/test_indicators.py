"""Operations indicators (SPEC §6) end to end: analysts' targets and the per-month view.

Service requests are stamped with the wall clock, so the view is read for the current UTC
month; everything else (milestone dates, budget actuals) is dated inside it. Expected values
are worked out by hand below; response and handling times are milliseconds here, so they read
0.00 hours (their arithmetic is checked to the cent in tests/unit/test_indicator_readings.py).

    satisfaction      scores 5, 4, 2                          → 11 / 3 = 3.67   target 4.50 ↑ off
    complaint_rate    3 opened; 1 complaint process (the 2) → 33.33 %; the intake category
                      "complaint" is not a complaint process              target 20 ↓ off
    on_time_milestone due this month: 1 on time, 1 completed late, 1 open and overdue,
                      1 due on the last day and still open (not counted) → 33.33 %  target 30 ↑ ok
    budget_utilisation  8 500.00 of 10 000.00 spent to the month's end → 85.00 %  target 90 ↓ ok
    open_high_risks   one high (4×4) open; a critical one closed; a low one → 1   target 0 ↓ off
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.test_budgets import assert_no_float, gql, post

TODAY = datetime.now(UTC).date()
MONTH = f"{TODAY.year:04d}-{TODAY.month:02d}"
FIRST = TODAY.replace(day=1)
LAST = TODAY.replace(day=calendar.monthrange(TODAY.year, TODAY.month)[1])

DATES = {"start_date": date(TODAY.year, 1, 1).isoformat(),
         "end_date": date(TODAY.year, 12, 31).isoformat()}

INDICATORS_Q = """query($dept: String!, $month: String!, $pos: Int) {
  operationsIndicators(department: $dept, month: $month, waitForPosition: $pos) {
    department month firstDay lastDay offTarget
    indicators { name unit value sampleSize target direction offTarget }
    projectsByState { state count }
    budget { budget actual remaining utilisationPercent } } }"""


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        "ana": token("ana", "analyst", departments=()),
        "cs": token("cora", "customer_service"),
        "ann": token("ann", "member"),
        "mark": token("mark", "dept_manager"),
        "lena": token("lena", "leadership", departments=()),
        "leo": token("leo", "member"),
        "fiona": token("fiona", "finance", departments=()),
    }


def target(client: Any, who: dict[str, str], indicator: str, value: str,
           **extra: Any) -> dict[str, Any]:
    return post(client, "/indicator-targets", who, {"department": "ops", "indicator": indicator,
                                                    "target": value, **extra}, expect=201)


@pytest.fixture(scope="module")
def world(client: Any, people: dict[str, dict[str, str]]) -> dict[str, Any]:
    p = people
    cs, ann, mark, lena, leo = p["cs"], p["ann"], p["mark"], p["lena"], p["leo"]
    # analysts' targets; satisfaction is set twice (a new event on the same record)
    satisfaction = target(client, p["ana"], "satisfaction", "4.00")
    target(client, p["ana"], "complaint_rate", "20.00")
    target(client, p["ana"], "on_time_milestone_rate", "30.00")
    target(client, p["ana"], "budget_utilisation", "90.00")
    target(client, p["ana"], "open_high_risks", "0")
    withdrawn = target(client, p["ana"], "handling_hours", "1.00")
    post(client, f"/indicator-targets/{withdrawn['id']}/withdraw", p["ana"],
         {"reason": "measured by the customer team"})
    revised = post(client, f"/indicator-targets/{satisfaction['id']}/revise", p["ana"],
                   {"target": "4.50"})

    # three service requests, scored 5, 4 and 2 (the last opens a complaint)
    customer = post(client, "/customers", cs, {"department": "ops", "kind": "individual",
                                               "name": "Acme"}, expect=201)["id"]
    for category, score in (("inquiry", 5), ("complaint", 4), ("inquiry", 2)):
        rid = post(client, "/service-requests", cs, {
            "customer_id": customer, "department": "ops", "channel": "phone",
            "category": category, "description": "help"}, expect=201)["id"]
        post(client, f"/service-requests/{rid}/resolve-directly", cs, {"resolution": "done"})
        post(client, f"/service-requests/{rid}/record-satisfaction", cs, {"score": score})

    # a project in execution with four milestones due this month, and a draft one
    due = [FIRST, FIRST.replace(day=2), FIRST.replace(day=3), LAST]
    pid = post(client, "/projects", ann, {
        "department": "ops", "name": "Portal", "background": "b", "objectives": "o",
        "scope": "s", "requested_budget": "1000.00", "expected_revenue": "0.00", **DATES},
        expect=201)["id"]
    post(client, "/projects", ann, {
        "department": "ops", "name": "Idea", "background": "b", "objectives": "o",
        "scope": "s", "requested_budget": "1.00", "expected_revenue": "0.00", **DATES},
        expect=201)
    base = f"/projects/{pid}"
    post(client, f"{base}/submit", ann)
    post(client, f"{base}/pass-preliminary-review", mark)
    post(client, f"{base}/approve", lena)
    post(client, f"{base}/appoint-lead", mark, {"user_id": "leo", "name": "Leo"})
    post(client, f"{base}/submit-plan", leo, {
        "milestones": [{"name": f"M{i}", "due_date": d.isoformat()} for i, d in enumerate(due)],
        "tasks": [], "resources": []})
    post(client, f"{base}/approve-plan", mark)
    milestones = client.get(base, headers=ann).json()["milestones"]
    post(client, f"{base}/complete-milestone", leo, {
        "milestone_id": milestones[0]["id"], "completed_on": date.fromordinal(
            FIRST.toordinal() - 1).isoformat()})                       # early: on time
    post(client, f"{base}/complete-milestone", leo, {
        "milestone_id": milestones[1]["id"], "completed_on": LAST.isoformat()})  # late
    # milestones[2] (due the 3rd) is open and overdue — unless today is the 1st or 2nd
    # milestones[3] (due on the last day) is open and not due yet: not counted

    # the year's budget: 8 500.00 of 10 000.00 spent to the month's end
    bid = post(client, "/budgets", mark, {"department": "ops", "fiscal_year": TODAY.year,
                                         "lines": [
        {"kind": "expense", "category": "other", "name": "Running", "amount": "10000.00"},
        {"kind": "revenue", "category": "other", "name": "Fees", "amount": "5000.00"}]},
        expect=201)["id"]
    post(client, f"/budgets/{bid}/submit", mark)
    post(client, f"/budgets/{bid}/pass-finance-review", p["fiona"])
    post(client, f"/budgets/{bid}/approve", lena)
    post(client, f"/budgets/{bid}/issue", lena)
    running, fees = (line["id"] for line in client.get(f"/budgets/{bid}", headers=ann).json()[
        "lines"])
    for line, amount, day in ((running, "8500.00", FIRST), (fees, "4000.00", FIRST)):
        post(client, f"/budgets/{bid}/record-actual", ann, {
            "line_id": line, "amount": amount, "date": day.isoformat(), "reference": "R"})
    if TODAY.month < 12:  # an actual after the month's end is not counted yet
        post(client, f"/budgets/{bid}/record-actual", ann, {
            "line_id": running, "amount": "100.00", "reference": "later",
            "date": date(TODAY.year, 12, 1).isoformat()})

    # risks: a high one open, a critical one closed, a low one open
    def risk(likelihood: int, impact: int) -> str:
        rid: str = post(client, "/risks", ann, {
            "title": "r", "description": "d", "category": "operational", "scope": "department",
            "department": "ops", "owner": "ann"}, expect=201)["id"]
        post(client, f"/risks/{rid}/assess", ann, {"likelihood": likelihood, "impact": impact,
                                                   "rationale": "seen"})
        return rid
    risk(4, 4)
    closed = risk(5, 5)
    risk(1, 1)
    last = post(client, f"/risks/{closed}/close", mark, {"outcome": "mitigated"})
    return {"pos": last["position"], "satisfaction": satisfaction, "revised": revised,
            "overdue_counted": TODAY.day > 3}


def indicators(client: Any, who: dict[str, str], world: dict[str, Any], dept: str = "ops",
               month: str = MONTH) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": INDICATORS_Q, "variables": {
        "dept": dept, "month": month, "pos": world["pos"]}}, headers=who)
    body = r.json()
    assert not body.get("errors"), body
    assert_no_float(body)
    assert body["extensions"]["sqlStatements"] == 2
    view: dict[str, Any] = body["data"]["operationsIndicators"]
    return view


def test_setting_a_target_again_is_a_new_event_on_the_same_record(
        client: Any, people: dict, world: dict) -> None:
    assert world["revised"]["id"] == world["satisfaction"]["id"]
    assert world["revised"]["version"] == 2
    r = client.post("/indicator-targets", json={"department": "ops", "indicator": "satisfaction",
                                                "target": "3.00"}, headers=people["ana"])
    assert r.status_code == 409 and r.json()["rule"] == "duplicate_record"
    q = """query($pos: Int) { indicatorTargets(department: "ops", waitForPosition: $pos) {
             indicator target direction status setBy version } }"""
    targets = gql(client, people["mark"], q, pos=world["pos"])["indicatorTargets"]
    assert {t["indicator"]: (t["target"], t["direction"], t["version"]) for t in targets} == {
        "budget_utilisation": ("90.00", "lower", 1),
        "complaint_rate": ("20.00", "lower", 1),
        "on_time_milestone_rate": ("30.00", "higher", 1),
        "open_high_risks": ("0.00", "lower", 1),
        "satisfaction": ("4.50", "higher", 2)}


def test_only_analysts_set_targets(client: Any, people: dict) -> None:
    for who in ("mark", "lena", "cs"):
        r = client.post("/indicator-targets", json={
            "department": "ops", "indicator": "complaint_rate", "target": "5"},
            headers=people[who])
        assert r.status_code == 403 and r.json()["rule"] == "indicator_target_analyst"
    r = client.post("/indicator-targets", json={
        "department": "ops", "indicator": "complaint_rate", "target": 5.5},
        headers=people["ana"])
    assert r.status_code == 422


def test_indicators_of_the_month_with_targets_and_off_target_flags(
        client: Any, people: dict, world: dict) -> None:
    view = indicators(client, people["mark"], world)
    assert (view["department"], view["month"]) == ("ops", MONTH)
    assert (view["firstDay"], view["lastDay"]) == (FIRST.isoformat(), LAST.isoformat())
    got = {i["name"]: (i["value"], i["sampleSize"], i["target"], i["direction"],
                       i["offTarget"]) for i in view["indicators"]}
    on_time = ("33.33", 3, "30.00", "higher", False) if world["overdue_counted"] else \
        ("50.00", 2, "30.00", "higher", False)
    assert got == {
        "satisfaction": ("3.67", 3, "4.50", "higher", True),
        "complaint_rate": ("33.33", 3, "20.00", "lower", True),
        "first_response_hours": ("0.00", 3, None, "lower", None),
        "handling_hours": ("0.00", 3, None, "lower", None),   # its target was withdrawn
        "on_time_milestone_rate": on_time,
        "budget_utilisation": ("85.00", 1, "90.00", "lower", False),
        "open_high_risks": ("1", 1, "0.00", "lower", True),
    }
    assert view["offTarget"] == ["satisfaction", "complaint_rate", "open_high_risks"]
    assert view["projectsByState"] == [{"state": "draft", "count": 1},
                                       {"state": "in_execution", "count": 1}]
    assert view["budget"] == {"budget": "10000.00", "actual": "8500.00",
                              "remaining": "1500.00", "utilisationPercent": "85.00"}


def test_service_indicators_agree_with_the_customer_kpis(client: Any, people: dict,
                                                        world: dict) -> None:
    q = """query($month: String!, $pos: Int) {
      customerKpis(department: ["ops"], fromMonth: $month, toMonth: $month,
                   waitForPosition: $pos) {
        requests complaintRate satisfaction { count average }
        firstResponse { count p50Seconds } resolution { count p50Seconds } } }"""
    [kpi] = gql(client, people["ana"], q, month=MONTH, pos=world["pos"])["customerKpis"]
    view = {i["name"]: i for i in indicators(client, people["ana"], world)["indicators"]}
    assert Decimal(view["complaint_rate"]["value"]) == Decimal(kpi["complaintRate"]) * 100
    assert view["complaint_rate"]["sampleSize"] == kpi["requests"]
    assert view["satisfaction"]["value"] == kpi["satisfaction"]["average"]
    assert view["satisfaction"]["sampleSize"] == kpi["satisfaction"]["count"]
    for name, key in (("first_response_hours", "firstResponse"),
                      ("handling_hours", "resolution")):
        assert view[name]["sampleSize"] == kpi[key]["count"]
        hours = (Decimal(kpi[key]["p50Seconds"]) / 3600).quantize(Decimal("0.01"))
        assert Decimal(view[name]["value"]) == hours


def test_a_department_without_records_shows_what_exists(client: Any, people: dict,
                                                       world: dict) -> None:
    view = indicators(client, people["ana"], world, dept="legal")
    values = {i["name"]: (i["value"], i["sampleSize"], i["offTarget"])
              for i in view["indicators"]}
    assert values["satisfaction"] == (None, 0, None)
    assert values["budget_utilisation"] == (None, 0, None)
    assert values["open_high_risks"] == ("0", 0, None)
    assert view["budget"] is None and view["projectsByState"] == []


def test_an_earlier_month_does_not_see_later_records(client: Any, people: dict,
                                                    world: dict) -> None:
    view = indicators(client, people["mark"], world, month=f"{TODAY.year - 1}-06")
    values = {i["name"]: (i["value"], i["sampleSize"]) for i in view["indicators"]}
    assert values["satisfaction"] == (None, 0)
    assert values["open_high_risks"] == ("0", 0)
    assert view["projectsByState"] == []


def test_a_bad_month_is_refused(client: Any, people: dict) -> None:
    r = client.post("/graphql", json={"query": INDICATORS_Q, "variables": {
        "dept": "ops", "month": "2026-13"}}, headers=people["mark"])
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_ARGUMENT"
