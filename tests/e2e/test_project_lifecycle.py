"""A project from application to closure over HTTP, by four people, then read in GraphQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

PROJECT = {
    "department": "ops", "name": "Customer portal", "background": "Too many phone requests",
    "objectives": "Self-service for 60% of requests", "scope": "Portal and intake workflow",
    "requested_budget": "120000.00", "expected_revenue": "300000.50",
    "start_date": "2026-01-05", "end_date": "2026-12-20",
}

GQL_PROJECT = """
query($id: ID!, $pos: Int) {
  project(id: $id, waitForPosition: $pos) {
    id recordId name status department requestedBudget proposer approver
    lead { userId name } team { userId role }
    milestones { id name dueDate completedOn } tasks { id name owner status }
    progressReports { percentComplete } evaluations { verdict actualCost }
    acceptanceReviews { passed } summary lessonsLearned version
  }
}"""


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {
        "ann": token("ann", "member"),                 # proposer
        "mark": token("mark", "dept_manager"),         # department manager
        "lena": token("lena", "leadership"),           # leadership
        "leo": token("leo", "member"),                 # the project lead to be
        "audrey": token("audrey", "auditor"),
    }


def post(client: Any, path: str, who: dict[str, str], body: dict[str, Any] | None = None,
         expect: int = 200, **headers: str) -> dict[str, Any]:
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    r = client.post(path, json=body or {}, headers={**who, **extra})
    assert r.status_code == expect, r.text
    return r.json()


def gql(client: Any, who: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    r = client.post("/graphql", json={"query": query, "variables": variables}, headers=who)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body.get("errors"), body
    return body["data"]


def test_a_project_goes_from_application_to_closure(client: Any, people: dict) -> None:
    ann, mark, lena, leo = people["ann"], people["mark"], people["lena"], people["leo"]
    created = post(client, "/projects", ann, PROJECT, expect=201)
    pid = created["id"]
    assert created["version"] == 1 and created["status"] == "draft"
    base = f"/projects/{pid}"
    post(client, f"{base}/submit", ann, {"comment": "ready for review"})
    post(client, f"{base}/pass-preliminary-review", mark)
    post(client, f"{base}/approve", lena, {"comment": "fits the annual plan"})
    post(client, f"{base}/appoint-lead", mark, {"user_id": "leo", "name": "Leo"})
    post(client, f"{base}/add-team-member", mark, {"user_id": "tom", "name": "Tom",
                                                   "role": "developer"})
    post(client, f"{base}/submit-plan", leo, {
        "milestones": [{"name": "Pilot", "due_date": "2026-06-30", "budget": "50000.00"}],
        "tasks": [{"name": "Build intake form", "owner": "tom", "start_date": "2026-02-01",
                   "due_date": "2026-04-30", "milestone": "Pilot"}],
        "resources": [{"milestone": "Pilot", "people": ["tom"], "amount": "50000.00"}]})
    post(client, f"{base}/approve-plan", mark)
    state = client.get(base, headers=leo).json()
    task_id, milestone_id = state["tasks"][0]["id"], state["milestones"][0]["id"]
    post(client, f"{base}/update-task-status", leo, {"task_id": task_id, "status": "done"})
    post(client, f"{base}/complete-milestone", leo, {"milestone_id": milestone_id,
                                                     "completed_on": "2026-06-28"})
    post(client, f"{base}/report-progress", leo, {"period": "2026-06", "percent_complete": 100,
                                                  "work_done": "Pilot live"})
    post(client, f"{base}/evaluate", mark, {
        "period": "2026-H1", "schedule_note": "on time", "quality_note": "good",
        "quality_rating": 4, "actual_cost": "48000.00", "verdict": "on_track"})
    post(client, f"{base}/request-acceptance", leo, {"report": "All objectives met"})
    post(client, f"{base}/review-acceptance", lena, {
        "objectives_met": True, "deliverable_quality": True, "cost_control": True,
        "documentation_complete": True})
    closed = post(client, f"{base}/close", leo, {"summary": "Delivered",
                                                "lessons_learned": "Pilot early"})
    assert closed["status"] == "closed"

    data = gql(client, people["audrey"], GQL_PROJECT, id=pid, pos=closed["position"])
    p = data["project"]
    assert p["status"] == "closed" and p["recordId"] == pid
    assert p["requestedBudget"] == "120000.00"
    assert p["proposer"] == "ann" and p["approver"] == "lena"
    assert p["lead"] == {"userId": "leo", "name": "Leo"}
    assert {m["userId"] for m in p["team"]} == {"leo", "tom"}
    assert p["tasks"][0]["status"] == "done"
    assert p["milestones"][0]["completedOn"] == "2026-06-28"
    assert p["evaluations"][0] == {"verdict": "on_track", "actualCost": "48000.00"}
    assert p["acceptanceReviews"] == [{"passed": True}]
    assert p["version"] == closed["version"]
    # node(id) answers the same record by its global id
    node = gql(client, people["audrey"], "query($id: ID!) { node(id: $id) { id ... on Project"
               " { name } } }", id=p["id"])
    assert node["node"]["name"] == "Customer portal"


def test_proposer_cannot_review_their_own_application(client: Any, people: dict) -> None:
    mark = people["mark"]
    pid = post(client, "/projects", mark, PROJECT, expect=201)["id"]
    post(client, f"/projects/{pid}/submit", mark)
    r = client.post(f"/projects/{pid}/pass-preliminary-review", json={}, headers=mark)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["rule"] == "maker_checker"


def test_preliminary_reviewer_cannot_also_approve(client: Any, token: Any) -> None:
    boss = token("boss", "dept_manager", "leadership")
    ann = token("ann", "member")
    pid = post(client, "/projects", ann, PROJECT, expect=201)["id"]
    post(client, f"/projects/{pid}/submit", ann)
    post(client, f"/projects/{pid}/pass-preliminary-review", boss)
    r = client.post(f"/projects/{pid}/approve", json={}, headers=boss)
    assert r.status_code == 403 and r.json()["rule"] == "maker_checker"


def test_auditor_cannot_write_and_refusals_are_logged(client: Any, people: dict,
                                                      container: Any) -> None:
    r = client.post("/projects", json=PROJECT, headers=people["audrey"])
    assert r.status_code == 403
    rows = container.store.execute(
        "SELECT command, status, rule FROM refused_commands WHERE actor_id = 'audrey'")
    assert {"command": "project.propose", "status": 403, "rule": r.json()["rule"]} in rows


def test_invalid_transition_names_the_current_state(client: Any, people: dict) -> None:
    pid = post(client, "/projects", people["ann"], PROJECT, expect=201)["id"]
    r = client.post(f"/projects/{pid}/approve", json={}, headers=people["lena"])
    assert r.status_code == 409
    body = r.json()
    assert body["current_state"] == "draft" and "draft" in body["detail"]


def test_stale_if_match_is_refused_with_412(client: Any, people: dict) -> None:
    ann = people["ann"]
    pid = post(client, "/projects", ann, PROJECT, expect=201)["id"]
    etag = client.get(f"/projects/{pid}", headers=ann).headers["ETag"]
    assert etag == '"1"'
    post(client, f"/projects/{pid}/edit-application", ann, {"name": "Renamed"}, If_Match=etag)
    r = client.post(f"/projects/{pid}/edit-application", json={"name": "Again"},
                    headers={**ann, "If-Match": etag})
    assert r.status_code == 412 and r.json()["current_version"] == 2


def test_idempotent_retry_returns_the_first_answer_and_appends_nothing(
        client: Any, people: dict) -> None:
    ann = people["ann"]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/projects", json=PROJECT, headers={**ann, **key})
    again = client.post("/projects", json=PROJECT, headers={**ann, **key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    pid = first.json()["id"]
    submit_key = {"Idempotency-Key": str(uuid.uuid4())}
    one = post(client, f"/projects/{pid}/submit", ann, **submit_key)
    two = post(client, f"/projects/{pid}/submit", ann, **submit_key)
    assert one == two
    assert client.get(f"/projects/{pid}", headers=ann).json()["version"] == 2
    other = client.post("/projects", json={**PROJECT, "name": "Other"}, headers={**ann, **key})
    assert other.status_code == 422 and other.json()["rule"] == "idempotency_key_reused"


def test_errors_are_problem_json_naming_the_field(client: Any, people: dict) -> None:
    ann = people["ann"]
    r = client.post("/projects", json={**PROJECT, "requested_budget": 12.5}, headers=ann)
    assert r.status_code == 422 and "requested_budget" in r.json()["detail"]
    r = client.post("/projects", json={**PROJECT, "start_date": "not-a-date"}, headers=ann)
    assert r.status_code == 422 and r.json()["field"] == "start_date"
    r = client.post("/projects", json={k: v for k, v in PROJECT.items() if k != "name"},
                    headers=ann)
    assert r.status_code == 422 and r.json()["field"] == "name"
    r = client.get(f"/projects/{uuid.uuid4()}", headers=ann)
    assert r.status_code == 404 and r.json()["rule"] == "not_found"
    r = client.post("/projects", json=PROJECT)
    assert r.status_code == 401
    r = client.post("/projects", json=PROJECT, headers={"Authorization": "Bearer forged.x.y"})
    assert r.status_code == 401


def test_projects_list_pages_with_filters(client: Any, people: dict) -> None:
    ann = people["ann"]
    made = [post(client, "/projects", ann, {**PROJECT, "name": f"Paging {i}"}, expect=201)
            for i in range(5)]
    q = """query($after: String, $pos: Int) {
      projects(first: 2, after: $after, waitForPosition: $pos,
               filter: {nameContains: "Paging", status: ["draft"]},
               orderBy: {field: NAME, direction: ASC}) {
        totalCount edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }"""
    names, after = [], None
    pos = made[-1]["position"]
    while True:
        page = gql(client, ann, q, after=after, pos=pos)["projects"]
        assert page["totalCount"] == 5
        names += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert names == [f"Paging {i}" for i in range(5)]


def test_sql_statements_do_not_grow_with_page_size(client: Any, people: dict) -> None:
    ann = people["ann"]
    for i in range(6):
        post(client, "/projects", ann, {**PROJECT, "name": f"Count {i}"}, expect=201)
    q = """query($n: Int) { projects(first: $n) { edges { node { name team { userId }
           milestones { name } tasks { name } lead { name } } } } }"""
    counts = []
    for n in (1, 5):
        r = client.post("/graphql", json={"query": q, "variables": {"n": n}}, headers=ann)
        counts.append(r.json()["extensions"]["sqlStatements"])
    assert counts[0] == counts[1]


def test_every_event_carries_its_metadata(client: Any, people: dict, container: Any) -> None:
    r = client.post("/projects", json=PROJECT, headers={
        **people["ann"], "X-Correlation-ID": "corr-42", "Idempotency-Key": "meta-1"})
    assert r.headers["X-Correlation-ID"] == "corr-42"
    pid = r.json()["id"]
    post(client, f"/projects/{pid}/submit", people["ann"], {"comment": "please review"},
         X_Correlation_ID="corr-42", X_Causation_ID="cause-1")
    events = list(container.store.events.get(uuid.UUID(pid)))
    first, second = events[0].meta, events[1].meta
    assert first["actor"] == {"user_id": "ann", "name": "Ann", "roles": ["member"],
                              "departments": ["ops"]}
    assert first["correlation_id"] == "corr-42" and first["idempotency_key"] == "meta-1"
    assert len(first["trace_id"]) == 32 and first["request_id"] and first["schema"] == 1
    assert second["comment"] == "please review" and second["causation_id"] == "cause-1"
    assert second["command"] == "project.submit"


def test_health_and_readiness(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
