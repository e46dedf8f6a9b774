"""Views as of a past date (issue 6 item 5): the risk register and heat map, budget vs actual
and the consolidation, and the customer KPIs, asked "as of T", answer from the events up to T.

One scenario per domain is run over HTTP; the moment T is remembered between two commands; then
things change after T (risks re-assessed, closed and added, an action done, a budget adjusted,
more actuals, another budget approved, a request resolved and rated badly, another opened). Each
view as of T must equal the count made here by hand from the commands issued up to T — and
differ from the live view — and each view as of now must equal the live view, field by field.

Hand calculation of the budgets (fiscal year 2026, CNY; percentages half-up to 2 places):

    aso (issued before T)   Travel (expense) 10 000.00: 1 000.25 + 2 500.00 = 3 500.25  35.00 %
                            Consulting (revenue) 50 000.00: 7 000.00                    14.00 %
      after T: adjustment → Travel 12 000.00; Travel + 3 000.00, Consulting + 2 000.00
    asx (draft at T)        Recruiting (expense) 9 000.00, nothing spent
      after T: submitted, reviewed, approved, issued; Recruiting + 500.00
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

YEAR = 2026


def post(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None = None,
         expect: int = 200) -> dict[str, Any]:
    r = client.post(path, json=body or {}, headers=who)
    assert r.status_code == expect, r.text
    data: dict[str, Any] = r.json()
    return data


def ask(client: Any, who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": query, "variables": variables}, headers=who)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def gql(client: Any, who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    body = ask(client, who, query, **variables)
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        "mel": token("mel", "member", departments=("aso",)),
        "mona": token("mona", "dept_manager", departments=("aso",)),
        "xena": token("xena", "dept_manager", departments=("asx",)),
        "cara": token("cara", "customer_service", departments=("aso",)),
        "fiona": token("fiona", "finance", departments=()),
        "lena": token("lena", "leadership", departments=()),
        "leo": token("leo", "leadership", departments=()),
        "audrey": token("audrey", "auditor"),
        "oscar": token("oscar", "dept_manager", departments=("other",)),
    }


@pytest.fixture(scope="module")
def world(client: Any, people: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Builds the three scenarios, remembers T between commands, and moves on after it."""
    p = people
    mel, mona, cara, fiona = p["mel"], p["mona"], p["cara"], p["fiona"]
    today = datetime.now(UTC).date()

    # -- risks (department aso) ------------------------------------------------------------
    def risk(title: str) -> str:
        return post(client, "/risks", mel, {
            "title": title, "description": "as-of scenario", "category": "operational",
            "scope": "department", "department": "aso", "owner": "mel"}, expect=201)["id"]

    def assess(rid: str, likelihood: int, impact: int) -> int:
        return int(post(client, f"/risks/{rid}/assess", mona, {
            "likelihood": likelihood, "impact": impact, "rationale": "review"})["position"])

    r1, r2, r3, r4 = (risk(f"Risk {n}") for n in range(1, 5))
    assess(r1, 4, 5)
    assess(r2, 2, 2)
    assess(r3, 3, 3)                                   # r4: identified, never assessed
    post(client, f"/risks/{r3}/choose-response", mel, {"strategy": "reduce"})
    post(client, f"/risks/{r3}/add-action", mel, {
        "action": "second supplier", "owner": "mel", "due_date": str(today - timedelta(days=2))})
    action_id = client.get(f"/risks/{r3}", headers=mel).json()["actions"][0]["id"]

    # -- budgets (aso issued with actuals; asx a draft) -------------------------------------
    created = post(client, "/budgets", mona, {
        "department": "aso", "fiscal_year": YEAR, "lines": [
            {"kind": "expense", "category": "travel", "name": "Travel", "amount": "10000.00"},
            {"kind": "revenue", "category": "other", "name": "Consulting",
             "amount": "50000.00"}]}, expect=201)
    base = f"/budgets/{created['id']}"
    post(client, f"{base}/submit", mona)
    post(client, f"{base}/pass-finance-review", fiona)
    post(client, f"{base}/approve", p["lena"])
    post(client, f"{base}/issue", fiona)
    travel, consulting = (line["id"] for line in client.get(base, headers=mel).json()["lines"])

    def actual(line_id: str, amount: str, day: str, ref: str, budget: str = base,
               who: dict[str, str] = mel) -> None:
        post(client, f"{budget}/record-actual", who, {
            "line_id": line_id, "amount": amount, "date": day, "reference": ref})

    actual(travel, "1000.25", "2026-01-10", "INV-1")
    actual(travel, "2500.00", "2026-02-05", "INV-2")
    actual(consulting, "7000.00", "2026-01-31", "SO-1")
    asx = post(client, "/budgets", p["xena"], {
        "department": "asx", "fiscal_year": YEAR, "lines": [
            {"kind": "expense", "category": "personnel", "name": "Recruiting",
             "amount": "9000.00"}]}, expect=201)["id"]

    # -- customer requests (intake department aso) ------------------------------------------
    customer = post(client, "/customers", cara, {
        "department": "aso", "kind": "company", "name": "As-of Ltd",
        "credit_code": "91" + uuid.uuid4().hex[:16].upper()}, expect=201)["id"]

    def request(category: str, priority: str) -> str:
        return post(client, "/service-requests", cara, {
            "customer_id": customer, "department": "aso", "channel": "phone",
            "category": category, "priority": priority,
            "description": "as-of scenario"}, expect=201)["id"]

    simple = request("inquiry", "normal")
    post(client, f"/service-requests/{simple}/resolve-directly", cara, {"resolution": "done"})
    post(client, f"/service-requests/{simple}/record-satisfaction", cara, {"score": 5})
    waiting = request("application", "high")
    post(client, f"/service-requests/{waiting}/acknowledge", cara, {"note": "on it"})

    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)

    # -- after T: everything moves on -------------------------------------------------------
    assess(r1, 1, 2)                                        # out of the critical cell
    post(client, f"/risks/{r2}/close", mona, {"outcome": "accepted"})
    r5 = risk("Risk 5")
    assess(r5, 5, 5)
    post(client, f"/risks/{r3}/update-action", mel, {"action_id": action_id, "status": "done"})

    post(client, f"{base}/request-adjustment", mona, {"reason": "more travel", "changes": [
        {"line_id": travel, "kind": "expense", "category": "travel", "name": "Travel",
         "amount": "12000.00"}]})
    adjustment = client.get(base, headers=mel).json()["adjustments"][0]["id"]
    post(client, f"{base}/pass-adjustment-finance-review", fiona, {"adjustment_id": adjustment})
    post(client, f"{base}/approve-adjustment", p["leo"], {"adjustment_id": adjustment})
    actual(travel, "3000.00", "2026-03-01", "INV-3")
    actual(consulting, "2000.00", "2026-03-15", "SO-2")
    xbase = f"/budgets/{asx}"
    post(client, f"{xbase}/submit", p["xena"])
    post(client, f"{xbase}/pass-finance-review", fiona)
    post(client, f"{xbase}/approve", p["lena"])
    post(client, f"{xbase}/issue", fiona)
    [recruiting] = [line["id"] for line in client.get(xbase, headers=mel).json()["lines"]]
    actual(recruiting, "500.00", "2026-04-01", "HR-1", budget=xbase, who=p["xena"])

    post(client, f"/service-requests/{waiting}/resolve-directly", cara, {"resolution": "done"})
    post(client, f"/service-requests/{waiting}/record-satisfaction", cara, {"score": 1})
    last = post(client, "/service-requests", cara, {
        "customer_id": customer, "department": "aso", "channel": "email",
        "category": "inquiry", "priority": "low", "description": "after T"}, expect=201)
    return {"at": moment.isoformat(), "pos": last["position"], "today": today,
            "risks": {"r1": r1, "r2": r2, "r3": r3, "r4": r4, "r5": r5},
            "requests": (simple, waiting), "aso": created["id"], "asx": asx}


def now() -> str:
    return datetime.now(UTC).isoformat()


# --- the risk register and the heat map ------------------------------------------------------

REGISTER = """query($at: DateTime, $pos: Int, $f: RiskFilter, $first: Int, $after: String) {
  risks(asOf: $at, waitForPosition: $pos, filter: $f, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id recordId title status likelihood impact score level
      suggestedStrategy overdueActionCount openWarningCount version position
      actions { action status overdue daysOverdue } } } } }"""

HEAT_MAP = """query($at: DateTime, $pos: Int, $f: RiskFilter) {
  heatMap(asOf: $at, waitForPosition: $pos, filter: $f) {
    likelihood impact score level suggestedStrategy count } }"""

ASO = {"department": ["aso"]}


def cells(rows: list[dict[str, Any]]) -> dict[tuple[int, int], int]:
    return {(c["likelihood"], c["impact"]): c["count"] for c in rows if c["count"]}


def test_the_risk_register_as_of_t_is_the_hand_count_and_not_the_live_one(
        client: Any, people: dict, world: dict) -> None:
    audrey, r = people["audrey"], world["risks"]
    then = gql(client, audrey, REGISTER, at=world["at"], f=ASO, first=100)["risks"]
    # four risks by T, highest score first, the unassessed one last; nothing after T
    nodes = [e["node"] for e in then["edges"]]
    assert then["totalCount"] == 4
    assert [(n["recordId"], n["score"], n["status"], n["version"]) for n in nodes] == [
        (r["r1"], 20, "assessed", 2), (r["r3"], 9, "responding", 4), (r["r2"], 4, "assessed", 2),
        (r["r4"], None, "identified", 1)]
    assert nodes[0]["level"] == "critical" and nodes[0]["suggestedStrategy"] == "avoid"
    # the action was open and two days late at T (done since)
    assert nodes[1]["actions"] == [{"action": "second supplier", "status": "open",
                                    "overdue": True, "daysOverdue": 2}]
    assert nodes[1]["overdueActionCount"] == 1
    overdue = gql(client, audrey, REGISTER, at=world["at"], first=10,
                  f={**ASO, "hasOverdueActions": True})["risks"]
    assert [e["node"]["recordId"] for e in overdue["edges"]] == [r["r3"]]

    live = gql(client, audrey, REGISTER, pos=world["pos"], f=ASO, first=100)["risks"]
    assert live["totalCount"] == 5
    assert {e["node"]["recordId"]: e["node"]["score"] for e in live["edges"]}[r["r1"]] == 2
    assert [e["node"]["overdueActionCount"] for e in live["edges"]
            if e["node"]["recordId"] == r["r3"]] == [0]

    # pages as of T follow the same keyset as the live register
    first = gql(client, audrey, REGISTER, at=world["at"], f=ASO, first=3)["risks"]
    assert first["pageInfo"]["hasNextPage"]
    rest = gql(client, audrey, REGISTER, at=world["at"], f=ASO, first=3,
               after=first["pageInfo"]["endCursor"])["risks"]
    assert [e["node"]["recordId"] for e in first["edges"] + rest["edges"]] == [
        n["recordId"] for n in nodes]


def test_the_heat_map_as_of_t_is_the_hand_count_and_not_the_live_one(
        client: Any, people: dict, world: dict) -> None:
    audrey = people["audrey"]
    then = gql(client, audrey, HEAT_MAP, at=world["at"], f=ASO)["heatMap"]
    assert len(then) == 25
    assert cells(then) == {(4, 5): 1, (3, 3): 1, (2, 2): 1}       # open, assessed by T
    live = gql(client, audrey, HEAT_MAP, pos=world["pos"], f=ASO)["heatMap"]
    assert cells(live) == {(1, 2): 1, (3, 3): 1, (5, 5): 1}       # r2 closed since
    assert cells(gql(client, audrey, HEAT_MAP, at=world["at"],
                     f={**ASO, "level": ["critical"]})["heatMap"]) == {(4, 5): 1}


def test_risk_views_as_of_now_equal_the_live_views(client: Any, people: dict,
                                                   world: dict) -> None:
    audrey = people["audrey"]
    gql(client, audrey, HEAT_MAP, pos=world["pos"])             # the projections caught up
    at = now()
    for f in (None, ASO, {"openOnly": True}):
        assert (gql(client, audrey, REGISTER, at=at, f=f, first=100)
                == gql(client, audrey, REGISTER, f=f, first=100))
        assert (gql(client, audrey, HEAT_MAP, at=at, f=f)
                == gql(client, audrey, HEAT_MAP, f=f))


# --- budget vs actual and the consolidation ----------------------------------------------------

FIGURES = "budget actual remaining variance variancePercent utilisationPercent"
BVA = f"""query($at: DateTime, $pos: Int, $by: [BudgetDimension!]!, $dept: String) {{
  budgetVsActual(fiscalYear: {YEAR}, groupBy: $by, department: $dept, asOf: $at,
                 waitForPosition: $pos) {{
    currency kind department budgetId lineId lineName category month unallocated {FIGURES} }} }}"""
CONSOLIDATION = f"""query($at: DateTime, $pos: Int) {{
  budgetConsolidation(fiscalYear: {YEAR}, asOf: $at, waitForPosition: $pos) {{
    currency statuses netBudget netActual
    revenue {{ {FIGURES} }} cost {{ {FIGURES} }} expense {{ {FIGURES} }}
    spending {{ {FIGURES} }}
    departments {{ department budgetId status versionNo netBudget netActual
                  revenue {{ budget actual }} expense {{ budget actual }} }}
    excluded {{ department budgetId status }} }} }}"""


def figs(budget: str, actual: str, remaining: str, variance: str, variance_pct: str | None,
         utilisation_pct: str | None) -> dict[str, str | None]:
    return {"budget": budget, "actual": actual, "remaining": remaining, "variance": variance,
            "variancePercent": variance_pct, "utilisationPercent": utilisation_pct}


def by_department(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["department"], r["kind"], {k: r[k] for k in FIGURES.split()}) for r in rows]


def test_budget_vs_actual_as_of_t_is_the_hand_count_and_not_the_live_one(
        client: Any, people: dict, world: dict) -> None:
    audrey = people["audrey"]
    then = gql(client, audrey, BVA, at=world["at"], by=["DEPARTMENT"])["budgetVsActual"]
    assert by_department(then) == [
        ("aso", "revenue", figs("50000.00", "7000.00", "43000.00", "-43000.00", "-86.00",
                                "14.00")),
        ("aso", "expense", figs("10000.00", "3500.25", "6499.75", "-6499.75", "-65.00",
                                "35.00")),
        ("asx", "expense", figs("9000.00", "0.00", "9000.00", "-9000.00", "-100.00",
                                "0.00"))]
    live = gql(client, audrey, BVA, pos=world["pos"], by=["DEPARTMENT"])["budgetVsActual"]
    assert by_department(live) == [
        ("aso", "revenue", figs("50000.00", "9000.00", "41000.00", "-41000.00", "-82.00",
                                "18.00")),
        ("aso", "expense", figs("12000.00", "6500.25", "5499.75", "-5499.75", "-45.83",
                                "54.17")),
        ("asx", "expense", figs("9000.00", "500.00", "8500.00", "-8500.00", "-94.44",
                                "5.56"))]
    # by line and month: the actuals of T's months only, the lines of version 1
    months = gql(client, audrey, BVA, at=world["at"], by=["LINE", "MONTH"],
                 dept="aso")["budgetVsActual"]
    spent = {(r["lineName"], r["month"]): r["actual"] for r in months if r["actual"] != "0.00"}
    assert spent == {("Consulting", 1): "7000.00", ("Travel", 1): "1000.25",
                     ("Travel", 2): "2500.00"}
    assert {(r["lineName"], r["budget"]) for r in months if r["unallocated"]} == {
        ("Travel", "10000.00"), ("Consulting", "50000.00")}


def test_the_consolidation_as_of_t_is_the_hand_count_and_not_the_live_one(
        client: Any, people: dict, world: dict) -> None:
    audrey = people["audrey"]
    then = gql(client, audrey, CONSOLIDATION, at=world["at"])["budgetConsolidation"]
    assert [(d["department"], d["status"], d["versionNo"]) for d in then["departments"]] == [
        ("aso", "issued", 1)]
    assert then["excluded"] == [{"department": "asx", "budgetId": world["asx"],
                                 "status": "draft"}]
    assert then["revenue"] == figs("50000.00", "7000.00", "43000.00", "-43000.00", "-86.00",
                                   "14.00")
    assert then["cost"] == figs("0.00", "0.00", "0.00", "0.00", None, None)
    assert then["spending"] == figs("10000.00", "3500.25", "6499.75", "-6499.75", "-65.00",
                                    "35.00")
    assert (then["netBudget"], then["netActual"]) == ("40000.00", "3499.75")

    live = gql(client, audrey, CONSOLIDATION, pos=world["pos"])["budgetConsolidation"]
    assert [(d["department"], d["status"], d["versionNo"]) for d in live["departments"]] == [
        ("aso", "issued", 2), ("asx", "issued", 1)]
    assert live["excluded"] == []
    assert (live["netBudget"], live["netActual"]) == ("29000.00", "1999.75")


def test_budget_views_as_of_now_equal_the_live_views(client: Any, people: dict,
                                                     world: dict) -> None:
    audrey = people["audrey"]
    gql(client, audrey, CONSOLIDATION, pos=world["pos"])
    at = now()
    for by in (["DEPARTMENT"], ["LINE", "MONTH"], ["CATEGORY"]):
        assert (gql(client, audrey, BVA, at=at, by=by)
                == gql(client, audrey, BVA, by=by))
    assert gql(client, audrey, CONSOLIDATION, at=at) == gql(client, audrey, CONSOLIDATION)


# --- customer KPIs -------------------------------------------------------------------------------

KPIS = """query($at: DateTime, $pos: Int, $dept: [String!]) {
  customerKpis(department: $dept, asOf: $at, waitForPosition: $pos) {
    department month requests complaints complaintsReopened complaintRate
    complaintCategoryRequests
    satisfaction { count average distribution { score count } }
    firstResponse { count p50Seconds p90Seconds breached }
    resolution { count p50Seconds p90Seconds breached } } }"""


def total(rows: list[dict[str, Any]], *path: str) -> int:
    out = 0
    for row in rows:
        value: Any = row
        for key in path:
            value = value[key]
        out += value
    return out


def scores(rows: list[dict[str, Any]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for row in rows:
        for d in row["satisfaction"]["distribution"]:
            if d["count"]:
                out[d["score"]] = out.get(d["score"], 0) + d["count"]
    return out


def test_customer_kpis_as_of_t_are_the_hand_count_and_not_the_live_ones(
        client: Any, people: dict, world: dict) -> None:
    audrey = people["audrey"]
    then = gql(client, audrey, KPIS, at=world["at"], dept=["aso"])["customerKpis"]
    # by T: two requests, both answered, one resolved and rated 5, no complaint
    assert total(then, "requests") == 2 and total(then, "complaints") == 0
    assert scores(then) == {5: 1}
    assert total(then, "firstResponse", "count") == 2
    assert total(then, "resolution", "count") == 1
    if len(then) == 1:
        simple = client.get(f"/service-requests/{world['requests'][0]}",
                            headers=people["cara"]).json()
        took = (datetime.fromisoformat(simple["resolved_at"])
                - datetime.fromisoformat(simple["opened_at"]))
        p50 = Decimal(then[0]["resolution"]["p50Seconds"])
        assert abs(p50 - Decimal(str(took.total_seconds()))) <= Decimal("0.000001")
        assert then[0]["complaintRate"] == "0.0000"
        assert then[0]["satisfaction"]["average"] == "5.00"

    live = gql(client, audrey, KPIS, pos=world["pos"], dept=["aso"])["customerKpis"]
    assert total(live, "requests") == 3 and total(live, "complaints") == 1
    assert scores(live) == {1: 1, 5: 1}
    assert total(live, "resolution", "count") == 2


def test_customer_kpis_as_of_now_equal_the_live_ones(client: Any, people: dict,
                                                     world: dict) -> None:
    audrey = people["audrey"]
    gql(client, audrey, KPIS, pos=world["pos"])
    at = now()
    for dept in (None, ["aso"]):
        assert (gql(client, audrey, KPIS, at=at, dept=dept)
                == gql(client, audrey, KPIS, dept=dept))


# --- who may ask --------------------------------------------------------------------------------

def test_as_of_views_are_for_auditors_and_managers_of_their_departments(
        client: Any, people: dict, world: dict) -> None:
    at = world["at"]
    mona, oscar = people["mona"], people["oscar"]
    # the department's manager sees what the auditor sees of it
    for query, variables in ((REGISTER, {"f": ASO, "first": 100}), (HEAT_MAP, {"f": ASO}),
                             (KPIS, {"dept": ["aso"]}),
                             (BVA, {"by": ["DEPARTMENT"], "dept": "aso"})):
        assert (gql(client, mona, query, at=at, **variables)
                == gql(client, people["audrey"], query, at=at, **variables))
    # a manager of another department sees none of it; a member may not ask
    assert gql(client, oscar, REGISTER, at=at, f=ASO, first=10)["risks"]["totalCount"] == 0
    assert not cells(gql(client, oscar, HEAT_MAP, at=at)["heatMap"])
    assert gql(client, oscar, BVA, at=at, by=["DEPARTMENT"])["budgetVsActual"] == []
    assert gql(client, oscar, KPIS, at=at)["customerKpis"] == []
    consolidated = gql(client, people["xena"], CONSOLIDATION, at=at)["budgetConsolidation"]
    assert consolidated["departments"] == [] and [
        e["department"] for e in consolidated["excluded"]] == ["asx"]
    for query, variables in ((REGISTER, {}), (HEAT_MAP, {}), (KPIS, {}),
                             (BVA, {"by": ["LINE"]}), (CONSOLIDATION, {})):
        denied = ask(client, people["mel"], query, at=at, **variables)
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN", denied
    # without asOf the live views stay open to members
    assert gql(client, people["mel"], HEAT_MAP, f=ASO)["heatMap"]


def test_an_as_of_view_leaves_no_table_behind_and_touches_no_live_row(
        client: Any, people: dict, world: dict, container: Any) -> None:
    count = "SELECT (SELECT count(*) FROM risks) + (SELECT count(*) FROM budget_actuals) AS n"
    before = container.store.execute(count)[0]["n"]
    gql(client, people["audrey"], HEAT_MAP, at=world["at"])
    gql(client, people["audrey"], BVA, at=world["at"], by=["LINE"])
    assert container.store.execute(count)[0]["n"] == before
    assert container.store.execute(
        "SELECT count(*) AS n FROM pg_class WHERE relpersistence = 't'")[0]["n"] == 0


def test_overdue_as_of_a_moment_is_judged_on_that_moments_utc_date() -> None:
    from service.graphql.risks import _today

    assert _today(None).startswith("(now()")
    moment = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    assert _today(moment) == "DATE '2026-03-31'"
    east = moment.astimezone(ZoneInfo("Asia/Shanghai"))           # 2026-04-01 07:59 there
    assert east.date() == date(2026, 4, 1) and _today(east) == "DATE '2026-03-31'"


def test_every_view_as_of_t_in_one_request(client: Any, people: dict, world: dict) -> None:
    """The views resolve side by side (each rebuild and temporary-table read on its own)."""
    q = f"""query($at: DateTime) {{
      risks(asOf: $at, filter: {{department: ["aso"]}}) {{ totalCount }}
      heatMap(asOf: $at, filter: {{department: ["aso"]}}) {{ count }}
      budgetVsActual(fiscalYear: {YEAR}, groupBy: [DEPARTMENT], asOf: $at) {{ actual }}
      budgetConsolidation(fiscalYear: {YEAR}, asOf: $at) {{ netActual }}
      customerKpis(department: ["aso"], asOf: $at) {{ requests }} }}"""
    data = gql(client, people["audrey"], q, at=world["at"])
    assert data["risks"]["totalCount"] == 4
    assert sum(c["count"] for c in data["heatMap"]) == 3
    assert [r["actual"] for r in data["budgetVsActual"]] == ["7000.00", "3500.25", "0.00"]
    assert data["budgetConsolidation"]["netActual"] == "3499.75"
    assert total(data["customerKpis"], "requests") == 2


# --- overdue actions, open warnings and budget warnings ----------------------------------------

LISTS = """query($at: DateTime, $pos: Int, $f: RiskFilter) {
  overdueActions(asOf: $at, waitForPosition: $pos, filter: $f, first: 50) {
    totalCount edges { node { action status overdue daysOverdue } } }
  openWarnings(asOf: $at, waitForPosition: $pos, filter: $f, first: 50, includeAcknowledged: true) {
    totalCount edges { node { riskId } } }
  budgetWarnings(asOf: $at, waitForPosition: $pos, first: 50) {
    totalCount edges { node { budgetId lineName threshold raisedAt } } } }"""


def test_overdue_actions_and_warnings_as_of_t_and_as_of_now(client: Any, people: dict,
                                                            world: dict) -> None:
    audrey = people["audrey"]
    then = gql(client, audrey, LISTS, at=world["at"], f=ASO)
    # r3's action was open and two days late at T; it is done since
    assert [e["node"] for e in then["overdueActions"]["edges"]] == [
        {"action": "second supplier", "status": "open", "overdue": True, "daysOverdue": 2}]
    live = gql(client, audrey, LISTS, pos=world["pos"], f=ASO)
    assert live["overdueActions"]["totalCount"] == 0
    # as of now: the live lists, field by field (warnings included, whatever their number)
    assert gql(client, audrey, LISTS, at=now(), f=ASO) == live
    assert gql(client, audrey, LISTS, at=now()) == gql(client, audrey, LISTS)
    # as of a moment before anything: nothing
    before = gql(client, audrey, LISTS, at="2000-01-01T00:00:00Z")
    assert [before[k]["totalCount"] for k in before] == [0, 0, 0]
    # asOf is for auditors and managers, as for the other views
    denied = ask(client, people["mel"], LISTS, at=world["at"], f=ASO)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN", denied


BUDGET_WARNINGS = """query($at: DateTime, $pos: Int, $year: Int) {
  budgetWarnings(asOf: $at, waitForPosition: $pos, fiscalYear: $year, first: 10) {
    totalCount edges { node { threshold lineName actual } } } }"""


def test_budget_warnings_as_of_t_are_those_raised_by_then(client: Any, people: dict) -> None:
    """A budget of its own fiscal year (the other tests' hand counts are of YEAR): 850 of a
    1,000 line spent before T raises the 80 % warning; 200 more after T raise the 100 % one."""
    p = people
    year = YEAR + 1
    created = post(client, "/budgets", p["mona"], {
        "department": "aso", "fiscal_year": year, "lines": [
            {"kind": "expense", "category": "travel", "name": "Trips",
             "amount": "1000.00"}]}, expect=201)
    base = f"/budgets/{created['id']}"
    post(client, f"{base}/submit", p["mona"])
    post(client, f"{base}/pass-finance-review", p["fiona"])
    post(client, f"{base}/approve", p["lena"])
    post(client, f"{base}/issue", p["fiona"])
    [line] = [x["id"] for x in client.get(base, headers=p["mel"]).json()["lines"]]
    post(client, f"{base}/record-actual", p["mel"], {
        "line_id": line, "amount": "850.00", "date": f"{year}-01-10", "reference": "W-1"})
    time.sleep(0.01)
    moment = now()
    time.sleep(0.01)
    last = post(client, f"{base}/record-actual", p["mel"], {
        "line_id": line, "amount": "200.00", "date": f"{year}-01-11", "reference": "W-2"})
    audrey = p["audrey"]
    then = gql(client, audrey, BUDGET_WARNINGS, at=moment, year=year)["budgetWarnings"]
    assert [e["node"] for e in then["edges"]] == [
        {"threshold": 80, "lineName": "Trips", "actual": "850.00"}]
    live = gql(client, audrey, BUDGET_WARNINGS, pos=last["position"], year=year)
    assert [e["node"]["threshold"] for e in live["budgetWarnings"]["edges"]] == [100, 80]
    assert gql(client, audrey, BUDGET_WARNINGS, at=now(), year=year) == live
