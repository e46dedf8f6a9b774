"""Risk management (SPEC §4) over HTTP, read back in GraphQL — as the issue says it is checked:
risks across categories and scopes, assessed and re-assessed; the suggested strategy in every
cell of the 5×5 grid; an override with and without a justification; readings across a threshold
and back, counting the warnings; the heat map and register against a count made by hand.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_project_lifecycle import PROJECT, gql, post

# SPEC §4, written out cell by cell: likelihood → the strategy for impact 1..5.
POLICY = {
    1: ["accept", "accept", "reduce", "transfer", "transfer"],
    2: ["accept", "accept", "reduce", "transfer", "transfer"],
    3: ["reduce", "reduce", "reduce", "reduce", "reduce"],
    4: ["reduce", "reduce", "reduce", "avoid", "avoid"],
    5: ["reduce", "reduce", "reduce", "avoid", "avoid"],
}
LEVELS = {range(1, 5): "low", range(5, 10): "medium", range(10, 17): "high",
          range(17, 26): "critical"}


def level_of(score: int) -> str:
    return next(level for scores, level in LEVELS.items() if score in scores)


RISK = {"title": "Key supplier insolvency", "description": "Our only packaging supplier is late",
        "category": "operational", "scope": "department", "department": "ops", "owner": "olga",
        "owner_name": "Olga"}

RISK_FIELDS = """id recordId title category scope linkedId projectId department owner status
  likelihood impact score level financialExposure suggestedStrategy reassessmentDue
  openWarningCount overdueActionCount"""


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        "olga": token("olga", "member"),                               # risk owner, ops
        "mia": token("mia", "dept_manager"),                           # ops manager
        "lena": token("lena", "leadership"),
        "ana": token("ana", "analyst"),
        "audrey": token("audrey", "auditor"),
        "sam": token("sam", "member", departments=("sales",)),
        "sally": token("sally", "dept_manager", departments=("sales",)),
    }


def identify(client: Any, who: dict[str, str], **fields: Any) -> dict[str, Any]:
    return post(client, "/risks", who, {**RISK, **fields}, expect=201)


def assess(client: Any, who: dict[str, str], rid: str, likelihood: int, impact: int,
           **fields: Any) -> dict[str, Any]:
    return post(client, f"/risks/{rid}/assess", who, {
        "likelihood": likelihood, "impact": impact, "rationale": "workshop", **fields})


def refused(client: Any, path: str, who: dict[str, str], body: dict[str, Any],
            status: int) -> dict[str, Any]:
    r = client.post(path, json=body, headers=who)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def register(client: Any, who: dict[str, str], pos: int, **filter: Any) -> dict[str, Any]:
    q = f"""query($f: RiskFilter, $pos: Int) {{ risks(first: 100, filter: $f,
      waitForPosition: $pos) {{ totalCount edges {{ node {{ {RISK_FIELDS} }} }} }} }}"""
    return gql(client, who, q, f=filter, pos=pos)["risks"]


def heat_map(client: Any, who: dict[str, str], pos: int | None = None,
             **filter: Any) -> dict[tuple[int, int], dict[str, Any]]:
    q = """query($f: RiskFilter, $pos: Int) { heatMap(filter: $f, waitForPosition: $pos) {
      likelihood impact score level suggestedStrategy count } }"""
    cells = gql(client, who, q, f=filter, pos=pos)["heatMap"]
    return {(c["likelihood"], c["impact"]): c for c in cells}


# --- the policy's grid ------------------------------------------------------------------------

def test_suggested_strategy_and_level_follow_the_policy_in_all_25_cells(
        client: Any, people: dict) -> None:
    cells = heat_map(client, people["ana"])
    assert len(cells) == 25
    for (likelihood, impact), cell in cells.items():
        assert cell["suggestedStrategy"] == POLICY[likelihood][impact - 1], cell
        assert cell["score"] == likelihood * impact
        assert cell["level"] == level_of(likelihood * impact)
    aliases = " ".join(f"c{li}{im}: suggestStrategy(likelihood: {li}, impact: {im})"
                       " { strategy level }" for li in range(1, 6) for im in range(1, 6))
    answered = gql(client, people["ana"], f"{{ {aliases} }}")
    for li in range(1, 6):
        for im in range(1, 6):
            assert answered[f"c{li}{im}"] == {"strategy": POLICY[li][im - 1],
                                              "level": level_of(li * im)}
    r = client.post("/graphql", json={"query": "{ suggestStrategy(likelihood: 6, impact: 1)"
                                               " { strategy } }"}, headers=people["ana"])
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_ARGUMENT"


def test_a_risk_assessed_in_each_cell_gets_the_policys_suggestion(
        client: Any, token: Any) -> None:
    owner = token("gina", "member", departments=("grid",))
    last = 0
    for likelihood in range(1, 6):
        for impact in range(1, 6):
            rid = identify(client, owner, department="grid", owner="gina",
                           title=f"cell {likelihood}x{impact}")["id"]
            last = assess(client, owner, rid, likelihood, impact)["position"]
    risks = register(client, owner, last, department=["grid"])
    assert risks["totalCount"] == 25
    for node in (e["node"] for e in risks["edges"]):
        li, im = node["likelihood"], node["impact"]
        assert node["suggestedStrategy"] == POLICY[li][im - 1]
        assert (node["score"], node["level"]) == (li * im, level_of(li * im))
        # choosing the suggestion needs no justification, in every cell
        chosen = post(client, f"/risks/{node['recordId']}/choose-response", owner,
                      {"strategy": node["suggestedStrategy"]})
        assert chosen["status"] == "responding"
    cells = heat_map(client, owner, chosen["position"], department=["grid"])
    assert {key: c["count"] for key, c in cells.items()} == {key: 1 for key in cells}


# --- identification across categories and scopes ---------------------------------------------

def test_risks_are_identified_across_categories_and_scopes(client: Any, people: dict) -> None:
    olga, mia = people["olga"], people["mia"]
    project = post(client, "/projects", olga, PROJECT, expect=201)["id"]
    customer = post(client, "/customers", olga, {"department": "ops", "kind": "individual",
                                                 "name": "Li Lei"}, expect=201)["id"]
    made = [
        identify(client, olga, category="market", scope="company"),
        identify(client, olga, category="data_security", scope="department"),
        identify(client, mia, category="technical", scope="project", linked_id=project),
        identify(client, olga, category="customer", scope="customer", linked_id=customer),
    ]
    state = client.get(f"/risks/{made[2]['id']}", headers=olga).json()
    assert (state["scope"], state["linked_id"], state["project_id"]) == (
        "project", project, project)
    assert (state["identified_by"], state["status"]) == ("mia", "identified")
    nodes = register(client, olga, made[-1]["position"], category=["market", "data_security",
                                                                    "technical", "customer"],
                     department=["ops"], titleContains=RISK["title"])["edges"]
    ids = {made_["id"] for made_ in made}
    seen = {n["node"]["recordId"]: n["node"] for n in nodes if n["node"]["recordId"] in ids}
    assert {(n["category"], n["scope"]) for n in seen.values()} == {
        ("market", "company"), ("data_security", "department"), ("technical", "project"),
        ("customer", "customer")}
    by_customer = register(client, olga, 0, linkedId=customer)
    assert [e["node"]["recordId"] for e in by_customer["edges"]] == [made[3]["id"]]


@pytest.mark.parametrize("scope", ["project", "customer", "budget"])
def test_a_linked_risk_must_name_an_existing_record(client: Any, people: dict,
                                                    scope: str) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    body = refused(client, "/risks", people["olga"], {**RISK, "scope": scope,
                                                      "linked_id": missing}, 422)
    assert body["field"] == "linked_id" and body["rule"] == "unknown_reference"
    body = refused(client, "/risks", people["olga"], {**RISK, "scope": scope}, 422)
    assert body["rule"] == "linked_id_required"


def test_unknown_category_is_refused(client: Any, people: dict) -> None:
    refused(client, "/risks", people["olga"], {**RISK, "category": "weather"}, 422)


# --- permissions ------------------------------------------------------------------------------

def test_analysts_do_not_identify_risks(client: Any, people: dict) -> None:
    refused(client, "/risks", people["ana"], RISK, 403)


def test_members_of_other_departments_cannot_touch_a_departments_risk(
        client: Any, people: dict) -> None:
    refused(client, "/risks", people["sam"], RISK, 403)
    refused(client, "/risks", people["sally"], RISK, 403)
    rid = identify(client, people["olga"])["id"]
    for who in ("sam", "sally"):
        refused(client, f"/risks/{rid}/assess", people[who],
                {"likelihood": 2, "impact": 2, "rationale": "x"}, 403)
        refused(client, f"/risks/{rid}/close", people[who], {"outcome": "accepted"}, 403)


def test_auditors_issue_no_risk_command(client: Any, people: dict, container: Any) -> None:
    olga, audrey = people["olga"], people["audrey"]
    rid = identify(client, olga)["id"]
    assess(client, olga, rid, 3, 3)
    attempts: dict[str, dict[str, Any]] = {
        "/risks": RISK,
        f"/risks/{rid}/assess": {"likelihood": 1, "impact": 1, "rationale": "x"},
        f"/risks/{rid}/choose-response": {"strategy": "reduce"},
        f"/risks/{rid}/set-emergency-plan": {"trigger_conditions": "x", "steps": ["a"],
                                             "responsible": ["b"]},
        f"/risks/{rid}/define-indicator": {"name": "x", "unit": "", "threshold": "1",
                                           "direction": "above"},
        f"/risks/{rid}/close": {"outcome": "accepted"},
    }
    for path, body in attempts.items():
        assert refused(client, path, audrey, body, 403)["rule"] == "auditor_read_only"
    rows = container.store.execute(
        "SELECT count(*) AS n FROM refused_commands WHERE actor_id = 'audrey'"
        " AND record_type = 'risk'")
    assert rows[0]["n"] >= len(attempts)


# --- assessment, response, actions, emergency plan ----------------------------------------------

def test_every_reassessment_is_kept_and_visible(client: Any, people: dict) -> None:
    olga, mia = people["olga"], people["mia"]
    rid = identify(client, olga)["id"]
    assess(client, olga, rid, 2, 3, financial_exposure="250000.50")
    assess(client, mia, rid, 4, 4)
    last = assess(client, olga, rid, 5, 4)
    q = """query($id: ID!, $pos: Int) { risk(id: $id, waitForPosition: $pos) {
      score level financialExposure assessments { n likelihood impact score level
      financialExposure by suggestedStrategy } } }"""
    risk = gql(client, olga, q, id=rid, pos=last["position"])["risk"]
    assert (risk["score"], risk["level"], risk["financialExposure"]) == (20, "critical", None)
    assert [(a["n"], a["score"], a["level"], a["by"], a["suggestedStrategy"])
            for a in risk["assessments"]] == [
        (1, 6, "medium", "olga", "reduce"), (2, 16, "high", "mia", "avoid"),
        (3, 20, "critical", "olga", "avoid")]
    assert risk["assessments"][0]["financialExposure"] == "250000.50"
    refused(client, f"/risks/{rid}/assess", olga,
            {"likelihood": 3, "impact": 2, "rationale": "x", "financial_exposure": 1.5}, 422)
    refused(client, f"/risks/{rid}/assess", olga,
            {"likelihood": 6, "impact": 2, "rationale": "x"}, 422)


def test_overriding_the_suggestion_needs_a_justification_which_is_recorded(
        client: Any, people: dict) -> None:
    olga = people["olga"]
    rid = identify(client, olga)["id"]
    assess(client, olga, rid, 5, 5)                      # the policy suggests avoid
    body = refused(client, f"/risks/{rid}/choose-response", olga, {"strategy": "accept"}, 422)
    assert (body["field"], body["rule"]) == ("justification", "justification_required")
    assert "avoid" in body["detail"]
    done = post(client, f"/risks/{rid}/choose-response", olga,
                {"strategy": "transfer", "justification": "insured with the carrier"})
    assert done["status"] == "responding"
    q = """query($id: ID!, $pos: Int) { risk(id: $id, waitForPosition: $pos) {
      suggestedStrategy response { suggested strategy justification overridden by } } }"""
    risk = gql(client, olga, q, id=rid, pos=done["position"])["risk"]
    assert risk["response"] == {"suggested": "avoid", "strategy": "transfer",
                                "justification": "insured with the carrier",
                                "overridden": True, "by": "olga"}


def test_overdue_actions_are_flagged_in_the_views(client: Any, token: Any) -> None:
    owner = token("otto", "member", departments=("late",))
    today = datetime.now(UTC).date()
    rid = identify(client, owner, department="late", owner="otto")["id"]
    assess(client, owner, rid, 3, 4)
    post(client, f"/risks/{rid}/choose-response", owner, {"strategy": "reduce"})
    for name, days in (("past", -3), ("past, done", -3), ("future", 3)):
        post(client, f"/risks/{rid}/add-action", owner,
             {"action": name, "owner": "otto", "due_date": str(today + timedelta(days=days))})
    actions = client.get(f"/risks/{rid}", headers=owner).json()["actions"]
    last = post(client, f"/risks/{rid}/update-action", owner,
                {"action_id": actions[1]["id"], "status": "done"})
    q = """query($pos: Int) { overdueActions(filter: {department: ["late"]},
      waitForPosition: $pos) { totalCount edges { node { action owner dueDate status overdue
      daysOverdue risk { title overdueActionCount } } } } }"""
    page = gql(client, owner, q, pos=last["position"])["overdueActions"]
    assert page["totalCount"] == 1
    node = page["edges"][0]["node"]
    assert (node["action"], node["overdue"], node["daysOverdue"]) == ("past", True, 3)
    assert node["risk"] == {"title": RISK["title"], "overdueActionCount": 1}
    q = """query($id: ID!) { risk(id: $id) { actions { action overdue } } }"""
    flags = {a["action"]: a["overdue"] for a in gql(client, owner, q, id=rid)["risk"]["actions"]}
    assert flags == {"past": True, "past, done": False, "future": False}
    assert register(client, owner, 0, department=["late"],
                    hasOverdueActions=True)["totalCount"] == 1
    assert register(client, owner, 0, department=["late"],
                    hasOverdueActions=False)["totalCount"] == 0


def test_emergency_plan_versions_are_kept(client: Any, people: dict) -> None:
    olga = people["olga"]
    rid = identify(client, olga)["id"]
    post(client, f"/risks/{rid}/set-emergency-plan", olga, {
        "trigger_conditions": "supplier misses two deliveries", "steps": ["call backup"],
        "responsible": ["olga"]})
    last = post(client, f"/risks/{rid}/set-emergency-plan", olga, {
        "trigger_conditions": "supplier misses one delivery",
        "steps": ["call backup", "notify customers"], "responsible": ["olga", "mia"]})
    q = """query($id: ID!, $pos: Int) { risk(id: $id, waitForPosition: $pos) {
      emergencyPlan { version triggerConditions steps responsible }
      emergencyPlans { version triggerConditions } } }"""
    risk = gql(client, olga, q, id=rid, pos=last["position"])["risk"]
    assert risk["emergencyPlan"] == {"version": 2,
                                     "triggerConditions": "supplier misses one delivery",
                                     "steps": ["call backup", "notify customers"],
                                     "responsible": ["olga", "mia"]}
    assert [p["version"] for p in risk["emergencyPlans"]] == [1, 2]
    gid = gql(client, olga, "query($id: ID!) { risk(id: $id) { id } }", id=rid)["risk"]["id"]
    node = gql(client, olga, "query($id: ID!) { node(id: $id) { ... on Risk { recordId"
               " emergencyPlan { version } } } }", id=gid)["node"]
    assert node == {"recordId": rid, "emergencyPlan": {"version": 2}}


# --- early warning ----------------------------------------------------------------------------

def test_readings_across_the_threshold_and_back_raise_one_warning_per_crossing(
        client: Any, token: Any, people: dict) -> None:
    owner = token("walt", "member", departments=("warn",))
    rid = identify(client, owner, department="warn", owner="walt")["id"]
    assess(client, owner, rid, 3, 3)
    post(client, f"/risks/{rid}/choose-response", owner, {"strategy": "reduce"})
    post(client, f"/risks/{rid}/start-monitoring", owner)
    indicator = {"name": "Days payable outstanding", "unit": "days", "threshold": "100",
                 "direction": "above"}
    assert refused(client, f"/risks/{rid}/define-indicator", owner, indicator,
                   403)["rule"] == "analyst_only"
    post(client, f"/risks/{rid}/define-indicator", people["ana"], indicator)
    iid = client.get(f"/risks/{rid}", headers=owner).json()["indicators"][0]["id"]
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    # inside, cross, stay out, back, cross, stay out, on the threshold (inside), cross
    values = ["90", "120", "130", "95", "110", "150", "100", "100.01"]
    raised, last = [], None
    for minute, value in enumerate(values):
        last = post(client, f"/risks/{rid}/record-reading", owner, {
            "indicator_id": iid, "value": value,
            "observed_at": (t0 + timedelta(minutes=minute)).isoformat()})
        raised += [value for e in last["events"] if e["type"] == "WarningRaised"]
    assert raised == ["120", "110", "100.01"]
    assert last is not None
    q = """query($pos: Int, $ack: Boolean!) { openWarnings(filter: {department: ["warn"]},
      includeAcknowledged: $ack, waitForPosition: $pos) { totalCount edges { node {
      id value threshold indicator state risk { title reassessmentDue } } } } }"""
    page = gql(client, owner, q, pos=last["position"], ack=False)["openWarnings"]
    assert page["totalCount"] == 3
    assert [e["node"]["value"] for e in page["edges"]] == ["100.01", "110", "120"]
    assert {e["node"]["state"] for e in page["edges"]} == {"raised"}
    assert register(client, owner, 0, department=["warn"],
                    hasOpenWarnings=True)["totalCount"] == 1

    # acknowledging makes a re-assessment due; the re-assessment answers the warning
    first = page["edges"][-1]["node"]["id"]
    ack = post(client, f"/risks/{rid}/acknowledge-warning", owner,
               {"warning_id": first, "note": "supplier called"})
    refused(client, f"/risks/{rid}/acknowledge-warning", owner, {"warning_id": first}, 409)
    page = gql(client, owner, q, pos=ack["position"], ack=False)["openWarnings"]
    assert page["totalCount"] == 2
    page = gql(client, owner, q, pos=ack["position"], ack=True)["openWarnings"]
    assert page["totalCount"] == 3
    assert page["edges"][-1]["node"]["state"] == "acknowledged"
    assert page["edges"][-1]["node"]["risk"]["reassessmentDue"] is True
    again = assess(client, owner, rid, 4, 3)
    assert again["status"] == "assessed"
    page = gql(client, owner, q, pos=again["position"], ack=True)["openWarnings"]
    assert page["totalCount"] == 2
    q = """query($id: ID!) { risk(id: $id) { status reassessmentDue openWarningCount
      warnings { state reassessmentN } assessments { n warningIds }
      indicators { breached readings { value outside } } } }"""
    risk = gql(client, owner, q, id=rid)["risk"]
    assert (risk["status"], risk["reassessmentDue"], risk["openWarningCount"]) == (
        "assessed", False, 2)
    assert risk["warnings"][0] == {"state": "reassessed", "reassessmentN": 2}
    assert risk["assessments"][1]["warningIds"] == [first]
    assert risk["indicators"][0]["breached"] is True
    assert [r["value"] for r in risk["indicators"][0]["readings"]] == values


# --- lifecycle --------------------------------------------------------------------------------

def test_lifecycle_from_identified_to_closed_and_reopened(client: Any, people: dict) -> None:
    olga, mia = people["olga"], people["mia"]
    rid = identify(client, olga)["id"]
    base = f"/risks/{rid}"
    assert assess(client, olga, rid, 4, 3)["status"] == "assessed"
    assert post(client, f"{base}/choose-response", olga,
                {"strategy": "reduce"})["status"] == "responding"
    assert post(client, f"{base}/start-monitoring", olga)["status"] == "monitoring"
    body = refused(client, f"{base}/close", olga, {"outcome": "materialised"}, 422)
    assert body["rule"] == "impact_note_required"
    closed = post(client, f"{base}/close", mia, {"outcome": "materialised",
                                                 "impact_note": "two weeks of delays"})
    assert closed["status"] == "closed"
    assert refused(client, f"{base}/reopen", olga, {"reason": " "}, 422)["rule"] == (
        "reason_required")
    reopened = post(client, f"{base}/reopen", olga, {"reason": "supplier failed again"})
    assert reopened["status"] == "assessed"
    closed = post(client, f"{base}/close", olga, {"outcome": "mitigated"})
    q = """query($id: ID!, $pos: Int) { risk(id: $id, waitForPosition: $pos) { status outcome
      closures { outcome impactNote fromStatus reopenedBy reopenReason } } }"""
    risk = gql(client, olga, q, id=rid, pos=closed["position"])["risk"]
    assert (risk["status"], risk["outcome"]) == ("closed", "mitigated")
    assert risk["closures"] == [
        {"outcome": "materialised", "impactNote": "two weeks of delays",
         "fromStatus": "monitoring", "reopenedBy": "olga", "reopenReason": "supplier failed again"},
        {"outcome": "mitigated", "impactNote": "", "fromStatus": "assessed", "reopenedBy": None,
         "reopenReason": None}]


@pytest.mark.parametrize(("given", "command", "body", "state"), [
    ([], "start-monitoring", {}, "identified"),
    ([], "choose-response", {"strategy": "reduce"}, "identified"),
    ([], "add-action", {"action": "x", "owner": "olga", "due_date": "2026-01-01"},
     "identified"),
    (["assess"], "reopen", {"reason": "why not"}, "assessed"),
    (["assess", "close"], "close", {"outcome": "accepted"}, "closed"),
    (["assess", "close"], "assess", {"likelihood": 1, "impact": 1, "rationale": "x"},
     "closed"),
])
def test_invalid_transitions_name_the_current_state(client: Any, people: dict, given: list,
                                                    command: str, body: dict,
                                                    state: str) -> None:
    olga = people["olga"]
    rid = identify(client, olga)["id"]
    if "assess" in given:
        assess(client, olga, rid, 2, 2)
    if "close" in given:
        post(client, f"/risks/{rid}/close", olga, {"outcome": "accepted"})
    problem = refused(client, f"/risks/{rid}/{command}", olga, body, 409)
    assert problem["current_state"] == state and f"'{state}'" in problem["detail"]


# --- the register and the heat map against a hand count ----------------------------------------

def test_heat_map_and_register_match_a_hand_count(client: Any, token: Any) -> None:
    hank = token("hank", "member", departments=("hm",))
    boss = token("hilda", "dept_manager", departments=("hm",))
    plan = [  # (category, owner, assessments (likelihood, impact) in order, close?)
        ("market", "hank", [(4, 5)], False),
        ("market", "hank", [(2, 2), (4, 5)], False),        # re-assessed into the same cell
        ("financial", "hilda", [(5, 5), (1, 3)], False),    # re-assessed out of critical
        ("technical", "hank", [(3, 3)], False),
        ("legal_compliance", "hilda", [(2, 4)], False),
        ("competition", "hank", [], False),                 # identified, not yet assessed
        ("product", "hank", [(5, 4)], True),                # closed: off the heat map
    ]
    cell_of: dict[str, tuple[int, int] | None] = {}   # each risk's latest assessment
    closed: set[str] = set()
    last = 0
    for category, owner, assessments, close in plan:
        made = identify(client, hank, department="hm", owner=owner, category=category,
                        title=f"{category} risk")
        rid, last = made["id"], made["position"]
        for likelihood, impact in assessments:
            last = assess(client, boss, rid, likelihood, impact)["position"]
        if close:
            last = post(client, f"/risks/{rid}/close", boss, {"outcome": "accepted"})["position"]
            closed.add(rid)
        cell_of[rid] = assessments[-1] if assessments else None
    # the hand count: open risks per cell of their latest assessment
    expected = Counter(cell for rid, cell in cell_of.items()
                       if cell is not None and rid not in closed)
    cells = heat_map(client, hank, last, department=["hm"])
    assert {k: c["count"] for k, c in cells.items() if c["count"]} == dict(expected)
    assert cells[(4, 5)]["count"] == 2 and cells[(4, 5)]["level"] == "critical"
    with_closed = heat_map(client, hank, department=["hm"], openOnly=False)
    assert with_closed[(5, 4)]["count"] == 1
    assert sum(c["count"] for c in heat_map(client, hank, department=["hm"],
                                            level=["critical"]).values()) == 2

    # the register: every risk of the department, highest score first, unassessed last
    everything = register(client, hank, last, department=["hm"])
    assert everything["totalCount"] == len(plan)
    scores = [e["node"]["score"] for e in everything["edges"]]
    assert scores == sorted(s for s in scores if s is not None)[::-1] + [None]
    levels = Counter(level_of(cell[0] * cell[1]) for cell in cell_of.values() if cell)
    for level, n in levels.items():
        assert register(client, hank, last, department=["hm"],
                        level=[level])["totalCount"] == n
    assert register(client, hank, last, department=["hm"], owner="hilda")["totalCount"] == 2
    assert register(client, hank, last, department=["hm"], category=["market"],
                    status=["assessed"])["totalCount"] == 2
    assert register(client, hank, last, department=["hm"],
                    status=["closed"])["totalCount"] == 1
    assert register(client, hank, last, department=["hm"],
                    openOnly=True)["totalCount"] == len(plan) - 1
    cell = register(client, hank, last, department=["hm"], likelihood=[4], impact=[5])
    assert cell["totalCount"] == cells[(4, 5)]["count"]


def test_register_pages_by_score_and_refuses_unknown_filter_values(
        client: Any, token: Any) -> None:
    pia = token("pia", "member", departments=("page",))
    last = 0
    for likelihood in range(1, 6):
        rid = identify(client, pia, department="page", owner="pia")["id"]
        last = assess(client, pia, rid, likelihood, 2)["position"]
    q = """query($after: String, $pos: Int) { risks(first: 2, after: $after,
      waitForPosition: $pos, filter: {department: ["page"]},
      orderBy: {field: SCORE, direction: ASC}) {
      totalCount edges { node { score } } pageInfo { hasNextPage endCursor } } }"""
    scores, after = [], None
    while True:
        page = gql(client, pia, q, after=after, pos=last)["risks"]
        scores += [e["node"]["score"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert scores == [2, 4, 6, 8, 10]
    r = client.post("/graphql", json={"query": '{ risks(filter: {level: ["High"]})'
                                               " { totalCount } }"}, headers=pia)
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_FILTER"


# --- projects ---------------------------------------------------------------------------------

def test_plan_review_shows_the_projects_risks_by_level(client: Any, people: dict) -> None:
    olga, mia, lena = people["olga"], people["mia"], people["lena"]
    pid = post(client, "/projects", olga, PROJECT, expect=201)["id"]
    base = f"/projects/{pid}"
    post(client, f"{base}/submit", olga)
    post(client, f"{base}/pass-preliminary-review", mia)
    post(client, f"{base}/approve", lena)
    post(client, f"{base}/appoint-lead", mia, {"user_id": "olga", "name": "Olga"})
    for title, (likelihood, impact) in (("low one", (1, 2)), ("critical one", (5, 5)),
                                        ("medium one", (3, 2))):
        rid = identify(client, olga, scope="project", linked_id=pid, title=title)["id"]
        assess(client, olga, rid, likelihood, impact)
    closed_id = identify(client, olga, scope="project", linked_id=pid, title="closed one")["id"]
    post(client, f"/risks/{closed_id}/close", olga, {"outcome": "accepted"})
    submitted = post(client, f"{base}/submit-plan", olga, {
        "milestones": [{"name": "Pilot", "due_date": "2026-06-30"}],
        "tasks": [], "resources": []})
    q = """query($id: ID!, $pos: Int) { project(id: $id, waitForPosition: $pos) { status
      risks { title level score }
      all: risks(openOnly: false) { title status } } }"""
    project = gql(client, mia, q, id=pid, pos=submitted["position"])["project"]
    assert project["status"] == "plan_review"
    assert project["risks"] == [
        {"title": "critical one", "level": "critical", "score": 25},
        {"title": "medium one", "level": "medium", "score": 6},
        {"title": "low one", "level": "low", "score": 2}]
    assert {r["title"] for r in project["all"]} == {"critical one", "medium one", "low one",
                                                    "closed one"}
    by_project = register(client, mia, 0, projectId=pid, openOnly=True)
    assert by_project["totalCount"] == 3


def test_a_page_of_projects_with_their_risks_costs_constant_sql(client: Any, token: Any,
                                                                people: dict) -> None:
    pat = token("pat", "member", departments=("sqlc",))
    for i in range(5):
        pid = post(client, "/projects", pat, {**PROJECT, "department": "sqlc",
                                              "name": f"Risky {i}"}, expect=201)["id"]
        for likelihood in (2, 4):
            rid = identify(client, pat, department="sqlc", owner="pat", scope="project",
                           linked_id=pid)["id"]
            last = assess(client, pat, rid, likelihood, 3)["position"]
    q = """query($n: Int, $pos: Int) { projects(first: $n, waitForPosition: $pos,
      filter: {department: ["sqlc"]}) { edges { node { name
      risks { title level actions { overdue } warnings { state } }
      closed: risks(openOnly: false) { title } } } } }"""
    counts = []
    for n in (1, 5):
        r = client.post("/graphql", json={"query": q, "variables": {"n": n, "pos": last}},
                        headers=pat)
        body = r.json()
        assert not body.get("errors"), body
        edges = body["data"]["projects"]["edges"]
        assert len(edges) == n and all(len(e["node"]["risks"]) == 2 for e in edges)
        counts.append(body["extensions"]["sqlStatements"])
    assert counts[0] == counts[1] == 4  # page, count, open risks, all risks


def test_a_page_of_projects_with_risks_cost_and_lead_costs_constant_sql(
        client: Any, token: Any) -> None:
    # The page the benchmark reads (bench/graphql_reads.py): nested risks, cost figures and
    # the lead of every project, for the same number of statements whatever the page size.
    pam = token("pam", "member", departments=("sqld",))
    last = 0
    for i in range(6):
        pid = post(client, "/projects", pam, {**PROJECT, "department": "sqld",
                                              "name": f"Led {i}"}, expect=201)["id"]
        rid = identify(client, pam, department="sqld", owner="pam", scope="project",
                       linked_id=pid)["id"]
        last = assess(client, pam, rid, 3, 4)["position"]
    q = """query($n: Int, $pos: Int) { projects(first: $n, waitForPosition: $pos,
      filter: {department: ["sqld"]}) { totalCount edges { node { name status
      lead { userId name } risks { title level score status }
      cost { budget actual remaining utilisationPercent actualCount } } } } }"""
    counts = []
    for n in (1, 3, 6):
        r = client.post("/graphql", json={"query": q, "variables": {"n": n, "pos": last}},
                        headers=pam)
        body = r.json()
        assert not body.get("errors"), body
        edges = body["data"]["projects"]["edges"]
        assert len(edges) == n and all(len(e["node"]["risks"]) == 1 for e in edges)
        assert all(e["node"]["cost"]["actualCount"] == 0 for e in edges)
        counts.append(body["extensions"]["sqlStatements"])
    assert counts == [4, 4, 4]  # page, count, risks of the page, costs of the page
