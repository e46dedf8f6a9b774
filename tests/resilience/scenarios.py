"""Records of every type in every state, set up through the REST API by the people who would
really do each step (shared by the authorisation matrix and the projector-kill test).

Setup people: proposer ``pat`` (member), manager ``mia``, leadership ``leo``, finance ``fin``,
customer service ``cara``, analyst ``ana``, project lead ``lee``, team member ``tim``, risk owner
``olga``. Each record gets its own department when the caller passes a fresh one.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from service.auth import issue_token


@dataclass
class Target:
    path: str
    body: dict[str, Any]
    user: str = "zed"


class World:
    def __init__(self, client: Any, settings: Any):
        self.client = client
        self.settings = settings
        self.departments = itertools.count(1)
        self._setup_commands = itertools.count()

    @property
    def setup_commands(self) -> int:
        return int(repr(self._setup_commands)[6:-1])  # count(n) → n, without advancing it

    def department(self) -> str:
        return f"d{next(self.departments)}"

    def headers(self, user: str, roles: list[str], departments: list[str]) -> dict[str, str]:
        token = issue_token(self.settings, user, roles=roles, departments=departments)
        return {"Authorization": f"Bearer {token}"}

    def do(self, user: str, role: str, dept: str, path: str, body: dict[str, Any] | None = None,
           ) -> dict[str, Any]:
        response = self.client.post(path, json=body or {},
                                    headers=self.headers(user, [role], [dept]))
        assert response.status_code in (200, 201), (path, user, role, response.text)
        next(self._setup_commands)
        return dict(response.json())

    def state(self, plural: str, record_id: str) -> dict[str, Any]:
        response = self.client.get(f"/{plural}/{record_id}",
                                   headers=self.headers("audrey", ["auditor"], []))
        assert response.status_code == 200, response.text
        return dict(response.json())


PLAN = {"milestones": [{"name": "M1", "due_date": "2026-06-30"}],
        "tasks": [{"name": "T1", "owner": "tim", "start_date": "2026-02-01",
                   "due_date": "2026-03-01", "milestone": "M1"}],
        "resources": []}
PROJECT_STATES = ("draft", "submitted", "awaiting_approval", "initiated", "planning",
                  "plan_review", "in_execution", "acceptance_review", "accepted")


def project(w: World, d: str, upto: str) -> str:
    body = {"department": d, "name": "P", "background": "b", "objectives": "o", "scope": "s",
            "requested_budget": "100.00", "expected_revenue": "0.00",
            "start_date": "2026-01-01", "end_date": "2026-12-31"}
    pid = str(w.do("pat", "member", d, "/projects", body)["id"])
    steps: list[tuple[str, str, str, dict[str, Any]]] = [
        ("submitted", "pat", "member", {"_": "submit"}),
        ("awaiting_approval", "mia", "dept_manager", {"_": "pass-preliminary-review"}),
        ("initiated", "leo", "leadership", {"_": "approve"}),
        ("planning", "mia", "dept_manager", {"_": "appoint-lead", "user_id": "lee",
                                             "name": "Lee"}),
        ("plan_review", "lee", "member", {"_": "submit-plan", **PLAN}),
        ("in_execution", "mia", "dept_manager", {"_": "approve-plan"}),
        ("acceptance_review", "lee", "member", {"_": "request-acceptance", "report": "done"}),
        ("accepted", "leo", "leadership", {"_": "review-acceptance", "objectives_met": True,
                                           "deliverable_quality": True, "cost_control": True,
                                           "documentation_complete": True}),
    ]
    for state, user, role, body in steps:
        if PROJECT_STATES.index(state) > PROJECT_STATES.index(upto):
            break
        body = dict(body)
        if state == "plan_review":  # the team member the plan's task belongs to
            w.do("mia", "dept_manager", d, f"/projects/{pid}/add-team-member",
                 {"user_id": "tim", "name": "Tim", "role": "developer"})
        w.do(user, role, d, f"/projects/{pid}/{body.pop('_')}", body)
    return pid


def customer(w: World, d: str) -> str:
    body = {"department": d, "kind": "company", "name": "Acme",
            "credit_code": uuid.uuid4().hex[:18].upper()}
    return str(w.do("cara", "customer_service", d, "/customers", body)["id"])


def customer_with_contact(w: World, d: str) -> tuple[str, str]:
    cid = customer(w, d)
    w.do("cara", "customer_service", d, f"/customers/{cid}/add-contact",
         {"name": "Bob", "email": "bob@example.com"})
    return cid, str(w.state("customers", cid)["contacts"][0]["id"])


def service_request(w: World, d: str, upto: str) -> str:
    cid = customer(w, d)
    rid = str(w.do("cara", "customer_service", d, "/service-requests",
                   {"customer_id": cid, "department": d, "channel": "phone",
                    "category": "inquiry", "description": "help"})["id"])
    base = f"/service-requests/{rid}"
    if upto in ("resolved", "closed"):
        w.do("cara", "customer_service", d, f"{base}/resolve-directly", {"resolution": "done"})
        if upto == "closed":
            w.do("cara", "customer_service", d, f"{base}/record-satisfaction", {"score": 5})
    elif upto in ("escalated", "complaint", "complaint_findings"):
        w.do("cara", "customer_service", d, f"{base}/escalate", {"to_department": d,
                                                                 "note": "complex"})
        if upto != "escalated":
            w.do("pat", "member", d, f"{base}/record-result", {"result": "fixed"})
            w.do("cara", "customer_service", d, f"{base}/record-satisfaction", {"score": 1})
            if upto == "complaint_findings":
                w.do("cara", "customer_service", d, f"{base}/investigate-complaint",
                     {"findings": "late"})
    return rid


def risk(w: World, d: str, upto: str = "identified") -> str:
    rid = str(w.do("pat", "member", d, "/risks",
                   {"title": "R", "description": "r", "category": "market",
                    "scope": "department", "department": d, "owner": "olga"})["id"])
    base = f"/risks/{rid}"
    if upto in ("assessed", "responding", "action"):
        w.do("mia", "dept_manager", d, f"{base}/assess",
             {"likelihood": 3, "impact": 3, "rationale": "r"})
    if upto in ("responding", "action"):
        w.do("mia", "dept_manager", d, f"{base}/choose-response", {"strategy": "reduce"})
    if upto == "action":
        w.do("mia", "dept_manager", d, f"{base}/add-action",
             {"action": "a", "owner": "olga", "due_date": "2026-09-01"})
    if upto in ("indicator", "warning"):
        w.do("ana", "analyst", d, f"{base}/define-indicator",
             {"name": "i", "unit": "u", "threshold": "10", "direction": "above"})
    if upto == "warning":
        indicator = w.state("risks", rid)["indicators"][0]["id"]
        w.do("mia", "dept_manager", d, f"{base}/record-reading",
             {"indicator_id": indicator, "value": "20", "observed_at": "2026-01-05T00:00:00Z"})
    if upto == "closed":
        w.do("mia", "dept_manager", d, f"{base}/close", {"outcome": "mitigated"})
    return rid


LINES = [{"kind": "cost", "category": "personnel", "name": "Staff", "amount": "1000.00"}]
BUDGET_STATES = ("draft", "submitted", "finance_reviewed", "approved", "issued", "in_execution",
                 "adjustment", "adjustment_reviewed")


def budget(w: World, d: str, upto: str) -> str:
    bid = str(w.do("mia", "dept_manager", d, "/budgets",
                   {"department": d, "fiscal_year": 2026, "lines": LINES})["id"])
    steps = [("submitted", "mia", "dept_manager", "submit", {}),
             ("finance_reviewed", "fin", "finance", "pass-finance-review", {}),
             ("approved", "leo", "leadership", "approve", {}),
             ("issued", "leo", "leadership", "issue", {}),
             ("in_execution", "mia", "dept_manager", "start-execution", {}),
             ("adjustment", "mia", "dept_manager", "request-adjustment",
              {"changes": [{"kind": "cost", "category": "travel", "name": "Trips",
                            "amount": "5.00"}], "reason": "travel"}),
             ("adjustment_reviewed", "fin", "finance", "pass-adjustment-finance-review", None)]
    for state, user, role, command, body in steps:
        if BUDGET_STATES.index(state) > BUDGET_STATES.index(upto):
            break
        if body is None:
            body = {"adjustment_id": adjustment_of(w, bid)}
        w.do(user, role, d, f"/budgets/{bid}/{command}", body)
    return bid


def adjustment_of(w: World, bid: str) -> str:
    return str(w.state("budgets", bid)["adjustments"][-1]["id"])


def line_of(w: World, bid: str) -> str:
    return str(w.state("budgets", bid)["lines"][0]["id"])


def target(w: World, d: str) -> str:
    return str(w.do("ana", "analyst", d, "/indicator-targets",
                    {"department": d, "indicator": "satisfaction", "target": "4.00"})["id"])


def webhook(w: World, d: str, disabled: bool = False) -> str:
    wid = str(w.do("leo", "leadership", d, "/webhooks",
                   {"name": "hook", "url": "https://hooks.example.com/in"})["id"])
    if disabled:
        w.do("leo", "leadership", d, f"/webhooks/{wid}/disable", {"reason": "pause"})
    return wid


def populate(w: World, departments: int, workers: int = 8) -> None:
    """A varied history: per department a closed-out project, a complaint, a risk with a
    warning, a budget in execution with actuals (warnings at 80 % and 100 %) and an open
    adjustment, an indicator target, and a customer with contacts and interactions."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> None:
        d = w.department()
        pid = project(w, d, "accepted")
        w.do("mia", "dept_manager", d, f"/projects/{pid}/close",
             {"summary": "s", "lessons_learned": "l"})
        project(w, d, "in_execution")
        service_request(w, d, "complaint_findings")
        risk(w, d, "warning")
        bid = budget(w, d, "in_execution")
        line = line_of(w, bid)
        for amount in ("500.00", "350.00", "200.00"):
            w.do("pat", "member", d, f"/budgets/{bid}/record-actual",
                 {"line_id": line, "amount": amount, "date": "2026-03-01", "reference": "INV"})
        target(w, d)
        cid, _ = customer_with_contact(w, d)
        for day in range(1, 6):
            w.do("cara", "customer_service", d, f"/customers/{cid}/record-interaction",
                 {"date": f"2026-02-0{day}", "channel": "phone", "summary": "call"})

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(departments)))
