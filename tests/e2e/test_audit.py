"""Auditors over HTTP and GraphQL (SPEC §7 "Audit"): a closed project's history (who approved it,
when and why), its plan before the last revision, diffs of budget versions, the global log with
refusals and its CSV / JSON Lines exports, who may read, and the log of personal-data reads."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

PROJECT = {
    "department": "ops", "name": "Audit portal", "background": "Paper audits",
    "objectives": "Digital trail", "scope": "Portal", "requested_budget": "80000.00",
    "expected_revenue": "0.00", "start_date": "2026-01-05", "end_date": "2026-12-20",
}
PLAN_V1 = {
    "milestones": [{"name": "Pilot", "due_date": "2026-06-30", "budget": "30000.00"}],
    "tasks": [{"name": "Build intake", "owner": "tom", "start_date": "2026-02-01",
               "due_date": "2026-04-30", "milestone": "Pilot"}],
    "resources": [{"milestone": "Pilot", "people": ["tom"], "amount": "30000.00"}],
}
PLAN_V2 = {
    "milestones": [{"name": "Pilot", "due_date": "2026-08-31", "budget": "45000.00"},
                   {"name": "Rollout", "due_date": "2026-11-30", "budget": "20000.00"}],
    "tasks": [{"name": "Build intake", "owner": "tom", "start_date": "2026-02-01",
               "due_date": "2026-07-31", "milestone": "Pilot"},
              {"name": "Train staff", "owner": "tom", "start_date": "2026-09-01",
               "due_date": "2026-11-15", "milestone": "Rollout"}],
    "resources": [{"milestone": "Pilot", "people": ["tom"], "amount": "45000.00"},
                  {"milestone": "Rollout", "people": ["tom"], "amount": "20000.00"}],
    "reason": "Supplier delay: pilot moves to August, rollout added",
}
BUDGET_LINES = [
    {"kind": "expense", "category": "travel", "name": "Travel", "amount": "12000.00"},
    {"kind": "cost", "category": "materials", "name": "Materials", "amount": "5000.00"},
]


def post(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None = None,
         expect: int = 200) -> dict[str, Any]:
    r = client.post(path, json=body or {}, headers=who)
    assert r.status_code == expect, r.text
    return r.json()


def get(client: Any, path: str, who: dict[str, str], expect: int = 200, **params: Any) -> Any:
    r = client.get(path, headers=who, params=params)
    assert r.status_code == expect, r.text
    return r.json()


def gql(client: Any, who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": query, "variables": variables}, headers=who)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        "ann": token("ann", "member"),
        "mark": token("mark", "dept_manager"),
        "lena": token("lena", "leadership"),
        "leo": token("leo", "member"),
        "fay": token("fay", "finance"),
        "audrey": token("audrey", "auditor"),
        "sam": token("sam", "dept_manager", departments=("sales",)),
        "cara": token("cara", "customer_service"),
    }


@pytest.fixture(scope="module")
def closed_project(client: Any, people: dict) -> dict[str, Any]:
    """A project from application to closure with one plan revision, timed at each step."""
    ann, mark, lena, leo = people["ann"], people["mark"], people["lena"], people["leo"]
    pid = post(client, "/projects", ann, PROJECT, expect=201)["id"]
    base = f"/projects/{pid}"
    post(client, f"{base}/submit", ann, {"comment": "ready for review"})
    post(client, f"{base}/pass-preliminary-review", mark)
    approved = post(client, f"{base}/approve", lena, {"comment": "fits the annual plan"})
    post(client, f"{base}/appoint-lead", mark, {"user_id": "leo", "name": "Leo"})
    post(client, f"{base}/add-team-member", mark, {"user_id": "tom", "name": "Tom",
                                                   "role": "developer"})
    post(client, f"{base}/submit-plan", leo, PLAN_V1)
    post(client, f"{base}/approve-plan", mark)
    task_id = get(client, base, leo)["tasks"][0]["id"]
    post(client, f"{base}/update-task-status", leo, {"task_id": task_id, "status": "doing"})
    before_revision = post(client, f"{base}/update-task-status", leo,
                           {"task_id": task_id, "status": "done"})
    time.sleep(0.01)
    moment_before_revision = datetime.now(UTC)
    time.sleep(0.01)
    post(client, f"{base}/revise-plan", leo, PLAN_V2)
    post(client, f"{base}/approve-plan", mark, {"comment": "delay accepted"})
    post(client, f"{base}/request-acceptance", leo, {"report": "All objectives met"})
    post(client, f"{base}/review-acceptance", lena, {
        "objectives_met": True, "deliverable_quality": True, "cost_control": True,
        "documentation_complete": True})
    closed = post(client, f"{base}/close", leo, {"summary": "Delivered",
                                                "lessons_learned": "Pilot early"})
    return {"id": pid, "approved": approved, "before_revision": before_revision,
            "moment_before_revision": moment_before_revision, "closed": closed,
            "task_id": task_id}


def test_history_names_who_approved_a_closed_project_when_and_why(
        client: Any, people: dict, closed_project: dict) -> None:
    pid = closed_project["id"]
    h = get(client, f"/audit/records/project/{pid}/history", people["audrey"])
    assert h["current_version"] == closed_project["closed"]["version"]
    assert [e["version"] for e in h["entries"]] == list(range(1, h["current_version"] + 1))
    first = h["entries"][0]
    assert first["event_type"] == "Proposed" and first["actor"]["user_id"] == "ann"
    assert first["state"]["name"] == "Audit portal"  # the full initial state
    assert {"path": "requested_budget", "kind": "added", "old": None,
            "new": "80000.00"} in first["changes"]
    approved = next(e for e in h["entries"] if e["event_type"] == "Approved")
    assert approved["actor"] == {"user_id": "lena", "name": "Lena", "roles": ["leadership"],
                                 "departments": ["ops"]}
    assert approved["comment"] == "fits the annual plan"
    assert approved["position"] == closed_project["approved"]["position"]
    assert datetime.fromisoformat(approved["at"]).utcoffset() == timedelta(0)
    assert approved["correlation_id"] and approved["request_id"]
    assert {"path": "status", "kind": "changed", "old": "awaiting_approval",
            "new": "initiated"} in approved["changes"]
    assert {"path": "approver", "kind": "added", "old": None, "new": "lena"} in approved["changes"]
    # nested lines are matched by id: a task's status change reads tasks[<id>].status
    task_id = closed_project["task_id"]
    done = [e for e in h["entries"] if e["event_type"] == "TaskStatusChanged"][-1]
    assert done["changes"] == [{"path": f"tasks[{task_id}].status", "kind": "changed",
                                "old": "doing", "new": "done"}]
    revised = next(e for e in h["entries"] if e["event_type"] == "PlanRevisionSubmitted")
    assert revised["reason"] == PLAN_V2["reason"]
    # pages: from_version / limit / next_from_version
    page = get(client, f"/audit/records/projects/{pid}/history", people["audrey"],
               from_version=3, limit=2)
    assert [e["version"] for e in page["entries"]] == [3, 4]
    assert page["next_from_version"] == 5 and page["entries"][0]["state"] is None
    assert page["entries"][0]["changes"] == h["entries"][2]["changes"]


def test_plan_as_it_stood_before_the_last_revision(client: Any, people: dict,
                                                   closed_project: dict) -> None:
    pid, audrey = closed_project["id"], people["audrey"]
    path = f"/audit/records/project/{pid}/as-of"
    by_version = get(client, path, audrey, version=closed_project["before_revision"]["version"])
    by_time = get(client, path, audrey,
                  at=closed_project["moment_before_revision"].isoformat())
    assert by_version == by_time
    assert by_version["version"] == closed_project["before_revision"]["version"]
    assert by_version["status"] == "in_execution" and len(by_version["plans"]) == 1
    assert [m["due_date"] for m in by_version["milestones"]] == ["2026-06-30"]
    assert [t["status"] for t in by_version["tasks"]] == ["done"]
    now = get(client, path, audrey)
    assert now == get(client, f"/projects/{pid}", audrey)  # one shape: the record view
    assert [m["name"] for m in now["milestones"]] == ["Pilot", "Rollout"]
    # GraphQL answers the same
    data = gql(client, audrey, """query($id: ID!, $v: Int) {
        recordAsOf(recordType: "project", id: $id, version: $v) }""",
               id=pid, v=by_version["version"])["data"]
    assert data["recordAsOf"] == by_version
    r = client.get(path, headers=audrey, params={"at": "2020-01-01T00:00:00Z"})
    assert r.status_code == 404 and "did not exist yet" in r.json()["detail"]
    r = client.get(path, headers=audrey, params={"version": 999})
    assert r.status_code == 404 and "no version 999" in r.json()["detail"]


def test_diff_between_two_budget_versions(client: Any, people: dict, token: Any) -> None:
    mgr = token("bea", "dept_manager", departments=("audit-fin",))
    bid = post(client, "/budgets", mgr, {"department": "audit-fin", "fiscal_year": 2027,
                                         "lines": BUDGET_LINES}, expect=201)["id"]
    post(client, f"/budgets/{bid}/add-line", mgr, {"kind": "expense", "category": "other",
                                                   "name": "Fees", "amount": "900.00"})
    lines = get(client, f"/budgets/{bid}", mgr)["lines"]
    travel = next(line for line in lines if line["name"] == "Travel")
    post(client, f"/budgets/{bid}/remove-line", mgr,
         {"line_id": travel["id"], "reason": "no travel this year"})
    d = get(client, f"/audit/records/budget/{bid}/diff", people["audrey"], **{"from": 1, "to": 3})
    paths = {c["path"]: c for c in d["changes"]}
    assert paths[f"lines[{travel['id']}]"]["kind"] == "removed"
    assert paths[f"lines[{travel['id']}]"]["old"]["amount"] == "12000.00"
    fees = next(c for c in d["changes"] if c["kind"] == "added" and c["path"].startswith("lines["))
    assert fees["new"]["name"] == "Fees" and fees["new"]["amount"] == "900.00"
    assert [e["event_type"] for e in d["events"]] == ["LineAdded", "LineRemoved"]
    # the reverse diff reads the other way round
    back = get(client, f"/audit/records/budget/{bid}/diff", people["audrey"],
               **{"from": 3, "to": 1})
    assert {c["path"]: (c["new"], c["old"]) for c in back["changes"]} == \
        {c["path"]: (c["old"], c["new"]) for c in d["changes"]}
    data = gql(client, people["audrey"], """query($id: ID!) {
        recordDiff(recordType: "budget", id: $id, fromVersion: 1, toVersion: 3) {
          changes { path kind old new } events { eventType } } }""", id=bid)["data"]
    assert data["recordDiff"]["changes"] == d["changes"]


def test_audit_log_lists_what_one_user_did_in_a_period_including_refusals(
        client: Any, people: dict, token: Any) -> None:
    zed = token("zed", "member")
    start = datetime.now(UTC)
    pid = post(client, "/projects", zed, {**PROJECT, "name": "Zed's idea"}, expect=201)["id"]
    post(client, f"/projects/{pid}/submit", zed, {"comment": "please look"})
    r = client.post(f"/projects/{pid}/pass-preliminary-review", json={}, headers=zed)
    assert r.status_code == 403  # refused: logged too
    end = datetime.now(UTC)
    params: dict[str, Any] = {"actor": "zed", "since": start.isoformat(),
                              "until": end.isoformat()}
    page = get(client, "/audit/log", people["audrey"], **params)
    kinds = [(i["kind"], i["event_type"] or i["command"]) for i in page["items"]]
    assert kinds == [("event", "Proposed"), ("event", "Submitted"),
                     ("refusal", "project.pass_preliminary_review")]
    submitted, refusal = page["items"][1], page["items"][2]
    assert submitted["comment"] == "please look" and submitted["actor_roles"] == ["member"]
    assert refusal["status"] == 403 and refusal["record_id"] == pid
    assert refusal["department"] == "ops"
    # a time range that ends before they acted finds nothing
    assert get(client, "/audit/log", people["audrey"], actor="zed",
               until=(start - timedelta(seconds=1)).isoformat())["items"] == []
    # keyset pages: one at a time, the same entries in the same order
    seen, after = [], None
    while True:
        extra: dict[str, Any] = {"after": after} if after else {}
        p = get(client, "/audit/log", people["audrey"], limit=1, **params, **extra)
        seen += p["items"]
        after = p["next_cursor"]
        if after is None:
            break
    assert [i["cursor"] for i in seen] == [i["cursor"] for i in page["items"]]
    newest = get(client, "/audit/log", people["audrey"], newest_first=True, **params)["items"]
    assert [i["cursor"] for i in newest] == [i["cursor"] for i in reversed(page["items"])]
    # filters: event type, record, kind
    only = get(client, "/audit/log", people["audrey"], event_type="Submitted", **params)
    assert [i["event_type"] for i in only["items"]] == ["Submitted"]
    refusals = get(client, "/audit/log", people["audrey"], kind="refusals", record_id=pid)
    assert [i["rule"] for i in refusals["items"]] == [refusal["rule"]]
    # GraphQL connection
    data = gql(client, people["audrey"], """query($f: AuditLogFilter) {
        auditLog(filter: $f, first: 2) { totalCount edges { node { kind eventType command
          actorId comment } } pageInfo { hasNextPage endCursor } } }""",
               f={"actor": "zed", "since": start.isoformat(), "until": end.isoformat()})
    log = data["data"]["auditLog"]
    assert log["totalCount"] == 3 and log["pageInfo"]["hasNextPage"]
    assert [e["node"]["eventType"] for e in log["edges"]] == ["Proposed", "Submitted"]


def test_audit_log_exports_as_csv_and_json_lines(client: Any, people: dict,
                                                 closed_project: dict) -> None:
    params = {"record_id": closed_project["id"]}
    r = client.get("/audit/log/export", headers=people["audrey"],
                   params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == closed_project["closed"]["version"]
    approved = next(row for row in rows if row["event_type"] == "Approved")
    assert approved["actor_id"] == "lena" and approved["comment"] == "fits the annual plan"
    assert approved["actor_roles"] == "leadership"
    r = client.get("/audit/log/export", headers=people["audrey"],
                   params={**params, "format": "jsonl"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["version"] for x in lines] == list(range(1, len(rows) + 1))
    assert [x["position"] for x in lines] == [int(row["position"]) for row in rows]


def test_a_member_may_not_read_the_audit_trail(client: Any, people: dict,
                                               closed_project: dict) -> None:
    pid, ann = closed_project["id"], people["ann"]
    for path in (f"/audit/records/project/{pid}/history", f"/audit/records/project/{pid}/as-of",
                 "/audit/log", "/audit/log/export", "/audit/reads"):
        r = client.get(path, headers=ann)
        assert r.status_code == 403, path
        assert r.json()["rule"] == "audit_access"
    body = gql(client, ann, '{ auditLog { edges { node { kind } } } }')
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert client.get("/audit/log").status_code == 401


def test_a_manager_audits_only_their_own_departments(client: Any, people: dict,
                                                     closed_project: dict) -> None:
    sam, mark = people["sam"], people["mark"]  # sam manages sales, mark ops
    pid = closed_project["id"]
    r = client.get(f"/audit/records/project/{pid}/history", headers=sam)
    assert r.status_code == 403 and "ops" in r.json()["detail"]
    assert get(client, f"/audit/records/project/{pid}/history", mark)["record_id"] == pid
    sales = post(client, "/projects", sam, {**PROJECT, "department": "sales",
                                            "name": "Sales idea"}, expect=201)
    items = get(client, "/audit/log", sam, limit=1000)["items"]
    assert items and {i["department"] for i in items} == {"sales"}
    assert sales["id"] in {i["record_id"] for i in items}
    assert get(client, "/audit/reads", sam, expect=403)["rule"] == "audit_access"


def test_every_read_of_a_customers_trail_is_logged(client: Any, people: dict,
                                                  container: Any) -> None:
    cara, audrey = people["cara"], people["audrey"]
    cid = post(client, "/customers", cara, {"department": "ops", "kind": "individual",
                                            "name": "Wang Fang"}, expect=201)["id"]
    post(client, f"/customers/{cid}/add-contact", cara,
         {"name": "Wang Fang", "phone": "+86 138 0000 0000", "email": "wf@example.com"})
    h = get(client, f"/audit/records/customer/{cid}/history", audrey)
    assert h["entries"][1]["changes"][0]["new"]["email"] == "wf@example.com"
    get(client, f"/audit/records/customer/{cid}/as-of", audrey, version=1)
    get(client, f"/audit/records/customer/{cid}/diff", people["mark"], **{"from": 1, "to": 2})
    gql(client, audrey, """query($id: ID!) { recordHistory(recordType: "customer", id: $id) {
        currentVersion } }""", id=cid)
    rows = container.store.execute(
        "SELECT actor_id, what, via FROM audit_reads WHERE record_id = %s ORDER BY id", (cid,))
    assert rows == [
        {"actor_id": "audrey", "what": "history versions 1-2", "via": "rest"},
        {"actor_id": "audrey", "what": "state as of version 1", "via": "rest"},
        {"actor_id": "mark", "what": "diff versions 1-2", "via": "rest"},
        {"actor_id": "audrey", "what": "history versions 1-2", "via": "graphql"},
    ]
    listed = get(client, "/audit/reads", audrey, record_id=cid)
    assert [r["actor_id"] for r in listed] == ["audrey", "mark", "audrey", "audrey"]
    # reads of records without personal data are not logged
    before = container.store.execute("SELECT count(*) AS n FROM audit_reads")[0]["n"]
    pid = post(client, "/projects", people["ann"], PROJECT, expect=201)["id"]
    get(client, f"/audit/records/project/{pid}/history", audrey)
    assert container.store.execute("SELECT count(*) AS n FROM audit_reads")[0]["n"] == before


def test_the_portfolio_as_of_a_past_moment(client: Any, people: dict, token: Any) -> None:
    boss = token("ola", "member", departments=("asof",))
    made = [post(client, "/projects", boss, {**PROJECT, "department": "asof",
                                             "name": f"As-of {i}"}, expect=201)
            for i in range(3)]
    post(client, f"/projects/{made[0]['id']}/submit", boss)
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    post(client, f"/projects/{made[1]['id']}/submit", boss)
    post(client, "/projects", boss, {**PROJECT, "department": "asof", "name": "As-of 3"},
         expect=201)
    q = """query($at: DateTime, $after: String) {
      projects(asOf: $at, first: 2, after: $after, filter: {department: ["asof"]},
               orderBy: {field: NAME, direction: ASC}) {
        totalCount edges { node { name status version } }
        pageInfo { hasNextPage endCursor } } }"""
    first = gql(client, people["audrey"], q, at=moment.isoformat())["data"]["projects"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    rest = gql(client, people["audrey"], q, at=moment.isoformat(),
               after=first["pageInfo"]["endCursor"])["data"]["projects"]
    nodes = [e["node"] for e in first["edges"] + rest["edges"]]
    assert nodes == [{"name": "As-of 0", "status": "submitted", "version": 2},
                     {"name": "As-of 1", "status": "draft", "version": 1},
                     {"name": "As-of 2", "status": "draft", "version": 1}]
    denied = gql(client, boss, q, at=moment.isoformat())
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_every_record_of_a_type_as_of_a_moment_matches_a_hand_count_of_the_events(
        client: Any, token: Any, container: Any) -> None:
    """The building block of views as of a past date (e.g. the risk heat map)."""
    from domain.shared import Actor
    from service.audit import ReadContext, auditor_of
    from service.audit.access import AuditAccessDenied

    owner = token("hana", "dept_manager", departments=("heat",))
    risk = {"title": "Supplier fails", "description": "single source", "category": "operational",
            "scope": "department", "department": "heat", "owner": "hana"}

    def assess(rid: str, likelihood: int, impact: int) -> None:
        post(client, f"/risks/{rid}/assess", owner, {"likelihood": likelihood,
                                                     "impact": impact, "rationale": "review"})

    a, b, c = (post(client, "/risks", owner, risk, expect=201)["id"] for _ in range(3))
    assess(a, 4, 4)
    assess(b, 4, 4)
    assess(c, 2, 3)
    time.sleep(0.01)
    quarter_end = datetime.now(UTC)
    time.sleep(0.01)
    assess(b, 1, 2)                                         # after the moment: not counted
    post(client, "/risks", owner, risk, expect=201)         # created after: not there
    audit = auditor_of(container)
    auditor = ReadContext(Actor("audrey", roles=frozenset({"auditor"})))
    records = [r for r in audit.views_as_of(auditor, "risk", quarter_end)
               if r.doc["department"] == "heat"]
    cells: dict[tuple[int, int], int] = {}
    for r in records:
        key = (r.doc["likelihood"], r.doc["impact"])
        cells[key] = cells.get(key, 0) + 1
    assert cells == {(4, 4): 2, (2, 3): 1}                  # the hand count
    assert {r.version for r in records} == {2}
    # a manager of another department sees none of them; a member may not ask
    other = ReadContext(Actor("sam", roles=frozenset({"dept_manager"}),
                              departments=frozenset({"sales"})))
    assert not [r for r in audit.views_as_of(other, "risk", quarter_end)
                if r.doc["department"] == "heat"]
    with pytest.raises(AuditAccessDenied):
        audit.views_as_of(ReadContext(Actor("ann", roles=frozenset({"member"}))), "risk",
                          quarter_end)
