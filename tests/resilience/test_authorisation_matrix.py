"""The role × command authorisation matrix, exhaustively: 0 escalations, 0 wrongful denials.

For every command of ``service.catalogue.all_commands()`` and every single-role token — once
with the record's department and once with no department — the command is sent over HTTP
against a record set up in the state the command needs. The expected answer comes from
``EXPECTED`` below (derived from SPEC §1 and the domain code): an allowed role must get 2xx,
every other role 403 (and each 403 is logged in ``refused_commands``). A command added to the
catalogue without a row here fails the test. ``test_the_matrix_catches_an_escalation`` proves
the check can fail: with one domain permission check disabled it must report escalations.

Each record is set up by the people who would really do the earlier steps (proposer ``pat``,
manager ``mia``, leadership ``leo``, finance ``fin``, customer service ``cara``, analyst ``ana``,
lead ``lee``, team member ``tim``); the tested actor is a stranger (``zed``) unless the rule is
about who someone is (the proposer, the lead, a team member), in which case it is that person
holding only the role under test. Every record gets its own department (``d1``, ``d2`` …), so
budgets and indicator targets (unique per department) never collide.

Forged, expired, wrong-audience, unsigned and malformed tokens get 401 from every operation of
the OpenAPI document and from /graphql.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from domain.shared import Role
from service.catalogue import all_commands
from tests.resilience.scenarios import (
    LINES,
    PLAN,
    Target,
    World,
    adjustment_of,
    budget,
    customer,
    customer_with_contact,
    line_of,
    project,
    risk,
    service_request,
    target,
    webhook,
)
from tests.resilience.support import report

ROLES = tuple(r.value for r in Role)
M = frozenset({"dept_manager", "deputy_manager"})
NR = frozenset(ROLES) - {"auditor", "analyst"}  # every role that may act on a project
CARE = frozenset({"member", "customer_service"}) | M  # who looks after a customer
RISK_MANAGERS = M | {"leadership"}

# command → (allowed with the record's department, allowed with no department at all)
EXPECTED: dict[str, tuple[frozenset[str], frozenset[str]]] = {}


def expect(command: str, with_department: set[str] | frozenset[str],
           without: set[str] | frozenset[str] = frozenset()) -> None:
    EXPECTED[command] = (frozenset(with_department), frozenset(without))


LEAD = frozenset({"leadership"})
FIN = frozenset({"finance"})
ANALYST = frozenset({"analyst"})
# Project (SPEC §1, §2): proposer/lead/team commands depend on who you are, not your role.
expect("project.propose", {"member"} | M)
for _c in ("edit_application", "submit", "submit_plan", "revise_plan", "report_progress",
           "complete_milestone", "request_acceptance"):
    expect(f"project.{_c}", NR, NR)
for _c in ("pass_preliminary_review", "return_application", "appoint_lead", "add_team_member",
           "remove_team_member", "approve_plan", "return_plan", "record_meeting",
           "update_task_status", "evaluate", "close", "attach_document"):
    expect(f"project.{_c}", M)
for _c in ("approve", "reject", "cancel"):
    expect(f"project.{_c}", LEAD, LEAD)
expect("project.review_acceptance", LEAD | M, LEAD)
# Customer (SPEC §1, §3, §7): the owning department's people; erasure is company-wide.
for _c in ("register", "update_profile", "change_status", "add_contact", "update_contact",
           "remove_contact", "record_interaction", "record_feedback"):
    expect(f"customer.{_c}", CARE)
expect("customer.assign_owner", M)
expect("customer.erase_personal_data", {"leadership", "data_protection"},
       {"leadership", "data_protection"})
# Service request (SPEC §3): intake is customer service's (members may open); the escalated
# department works it; complaints are customer service's or the escalated managers'.
expect("service_request.open", {"customer_service", "member"})
for _c in ("acknowledge", "resolve_directly", "escalate", "record_satisfaction",
           "reopen_complaint"):
    expect(f"service_request.{_c}", {"customer_service"})
for _c in ("record_progress", "record_result"):
    expect(f"service_request.{_c}", {"member"} | M)
for _c in ("investigate_complaint", "resolve_complaint"):
    expect(f"service_request.{_c}", {"customer_service"} | M)
# Risk (SPEC §1, §4): identification by the department or leadership; the response by the
# owner, a manager or leadership; indicators are the analysts'.
expect("risk.identify", {"member"} | RISK_MANAGERS, LEAD)
for _c in ("assess", "choose_response", "add_action", "update_action", "set_emergency_plan",
           "acknowledge_warning", "start_monitoring", "close", "reopen"):
    expect(f"risk.{_c}", RISK_MANAGERS, LEAD)
expect("risk.define_indicator", ANALYST, ANALYST)
expect("risk.record_reading", {"member", "analyst"} | RISK_MANAGERS, {"analyst", "leadership"})
# Budget (SPEC §1, §5): managers compile and request; finance reviews; leadership approves.
for _c in ("compile", "revise_draft", "add_line", "remove_line", "submit", "start_execution",
           "request_adjustment"):
    expect(f"budget.{_c}", M)
for _c in ("pass_finance_review", "return_for_revision", "close_year",
           "pass_adjustment_finance_review", "return_adjustment"):
    expect(f"budget.{_c}", FIN, FIN)
for _c in ("approve", "approve_adjustment"):
    expect(f"budget.{_c}", LEAD, LEAD)
expect("budget.issue", LEAD | FIN, LEAD | FIN)
expect("budget.record_actual", {"member", "finance"} | M, FIN)
# Indicator targets (SPEC §6): analysts only. Webhooks: leadership only (README).
for _c in ("define", "revise", "withdraw"):
    expect(f"indicator_target.{_c}", ANALYST, ANALYST)
for _c in ("register", "update", "disable", "enable", "rotate_secret", "replay_dead_letters"):
    expect(f"webhook.{_c}", LEAD, LEAD)


def _project(state: str, command: str, body: dict[str, Any] | None = None,
             user: str = "zed") -> Callable[[World, str], Target]:
    def setup(w: World, d: str) -> Target:
        pid = project(w, d, state)
        b = dict(body or {})
        if "task_id" in b:
            b["task_id"] = w.state("projects", pid)["tasks"][0]["id"]
        if "milestone_id" in b:
            b["milestone_id"] = w.state("projects", pid)["milestones"][0]["id"]
        return Target(f"/projects/{pid}/{command}", b, user)
    return setup


def _with_member(w: World, d: str) -> Target:
    pid = project(w, d, "planning")
    w.do("mia", "dept_manager", d, f"/projects/{pid}/add-team-member",
         {"user_id": "tom", "name": "Tom", "role": "qa"})
    return Target(f"/projects/{pid}/remove-team-member", {"user_id": "tom", "reason": "moved"})


REVISED = {**PLAN, "reason": "slip", "milestones": [{"name": "M1", "due_date": "2026-08-31"}]}
SCENARIOS: dict[str, Callable[[World, str], Target]] = {
    "project.propose": lambda w, d: Target("/projects", {
        "department": d, "name": "P", "background": "b", "objectives": "o", "scope": "s",
        "requested_budget": "1.00", "expected_revenue": "0.00", "start_date": "2026-01-01",
        "end_date": "2026-12-31"}),
    "project.edit_application": _project("draft", "edit-application", {"name": "Q"}, "pat"),
    "project.submit": _project("draft", "submit", {}, "pat"),
    "project.pass_preliminary_review": _project("submitted", "pass-preliminary-review"),
    "project.return_application": _project("submitted", "return-application",
                                           {"reason": "incomplete"}),
    "project.approve": _project("awaiting_approval", "approve"),
    "project.reject": _project("awaiting_approval", "reject", {"reason": "no budget"}),
    "project.appoint_lead": _project("initiated", "appoint-lead",
                                     {"user_id": "lee", "name": "Lee"}),
    "project.add_team_member": _project("planning", "add-team-member",
                                        {"user_id": "tom", "name": "Tom", "role": "qa"}),
    "project.remove_team_member": lambda w, d: _with_member(w, d),
    "project.submit_plan": _project("planning", "submit-plan", {
        **PLAN, "tasks": [{**PLAN["tasks"][0], "owner": "lee"}]}, "lee"),
    "project.revise_plan": _project("in_execution", "revise-plan", REVISED, "lee"),
    "project.approve_plan": _project("plan_review", "approve-plan"),
    "project.return_plan": _project("plan_review", "return-plan", {"reason": "thin"}),
    "project.report_progress": _project("in_execution", "report-progress", {
        "period": "2026-02", "percent_complete": 10, "work_done": "w"}, "tim"),
    "project.record_meeting": _project("in_execution", "record-meeting", {
        "date": "2026-02-10", "attendees": ["tim"], "decisions": "go"}),
    "project.update_task_status": _project("in_execution", "update-task-status",
                                           {"task_id": "?", "status": "doing"}),
    "project.complete_milestone": _project("in_execution", "complete-milestone",
                                           {"milestone_id": "?", "completed_on": "2026-06-01"},
                                           "lee"),
    "project.evaluate": _project("in_execution", "evaluate", {
        "period": "Q1", "schedule_note": "s", "quality_note": "q", "quality_rating": 4,
        "actual_cost": "1.00", "verdict": "on_track"}),
    "project.request_acceptance": _project("in_execution", "request-acceptance",
                                           {"report": "done"}, "lee"),
    "project.review_acceptance": _project("acceptance_review", "review-acceptance", {
        "objectives_met": True, "deliverable_quality": True, "cost_control": True,
        "documentation_complete": True}),
    "project.close": _project("accepted", "close", {"summary": "s", "lessons_learned": "l"}),
    "project.cancel": _project("draft", "cancel", {"reason": "stop"}),
    "project.attach_document": _project("draft", "attach-document", {
        "name": "spec", "uri": "https://docs.example.com/spec", "checksum": "sha256:1"}),
}


def _customer(command: str, body: dict[str, Any],
              contact: bool = False) -> Callable[[World, str], Target]:
    def setup(w: World, d: str) -> Target:
        if contact:
            cid, contact_id = customer_with_contact(w, d)
            if "contact_id" in body:
                return Target(f"/customers/{cid}/{command}", {**body, "contact_id": contact_id})
            return Target(f"/customers/{cid}/{command}", body)
        return Target(f"/customers/{customer(w, d)}/{command}", body)
    return setup


SCENARIOS.update({
    "customer.register": lambda w, d: Target("/customers", {
        "department": d, "kind": "company", "name": "Acme",
        "credit_code": uuid.uuid4().hex[:18].upper()}),
    "customer.update_profile": _customer("update-profile", {"industry": "retail"}),
    "customer.assign_owner": _customer("assign-owner", {"account_owner": "cara"}),
    "customer.change_status": _customer("change-status", {"to": "active", "reason": "won"}),
    "customer.add_contact": _customer("add-contact", {"name": "Eve", "phone": "+86 10 1234"}),
    "customer.update_contact": _customer("update-contact", {"phone": "+86 10 5678",
                                                           "contact_id": "?"}, True),
    "customer.remove_contact": _customer("remove-contact", {"reason": "left", "contact_id": "?"},
                                        True),
    "customer.erase_personal_data": _customer("erase-personal-data", {"reason": "request"},
                                              True),
    "customer.record_interaction": _customer("record-interaction", {
        "date": "2026-02-01", "channel": "phone", "summary": "call"}),
    "customer.record_feedback": _customer("record-feedback", {"subject": "s", "text": "t"}),
})


def _request(state: str, command: str, body: dict[str, Any]) -> Callable[[World, str], Target]:
    def setup(w: World, d: str) -> Target:
        b = {k: (d if v == "$d" else v) for k, v in body.items()}
        return Target(f"/service-requests/{service_request(w, d, state)}/{command}", b)
    return setup


def _open_request(w: World, d: str) -> Target:
    return Target("/service-requests", {"customer_id": customer(w, d), "department": d,
                                        "channel": "email", "category": "complaint",
                                        "description": "broken"})


SCENARIOS.update({
    "service_request.open": _open_request,
    "service_request.acknowledge": _request("open", "acknowledge", {"note": "on it"}),
    "service_request.resolve_directly": _request("open", "resolve-directly",
                                                 {"resolution": "answered"}),
    "service_request.escalate": _request("open", "escalate", {"to_department": "$d",
                                                              "note": "complex"}),
    "service_request.record_progress": _request("escalated", "record-progress", {"note": "n"}),
    "service_request.record_result": _request("escalated", "record-result", {"result": "r"}),
    "service_request.record_satisfaction": _request("resolved", "record-satisfaction",
                                                    {"score": 4}),
    "service_request.reopen_complaint": _request("closed", "reopen-complaint",
                                                 {"reason": "again"}),
    "service_request.investigate_complaint": _request("complaint", "investigate-complaint",
                                                      {"findings": "f"}),
    "service_request.resolve_complaint": _request("complaint_findings", "resolve-complaint",
                                                  {"resolution": "refund"}),
})


def _risk(state: str, command: str, body: dict[str, Any]) -> Callable[[World, str], Target]:
    def setup(w: World, d: str) -> Target:
        rid = risk(w, d, state)
        b = dict(body)
        if "action_id" in b:
            b["action_id"] = w.state("risks", rid)["actions"][0]["id"]
        if "indicator_id" in b:
            b["indicator_id"] = w.state("risks", rid)["indicators"][0]["id"]
        if "warning_id" in b:
            b["warning_id"] = w.state("risks", rid)["warnings"][0]["id"]
        return Target(f"/risks/{rid}/{command}", b)
    return setup


SCENARIOS.update({
    "risk.identify": lambda w, d: Target("/risks", {
        "title": "R", "description": "r", "category": "technical", "scope": "department",
        "department": d, "owner": "olga"}),
    "risk.assess": _risk("identified", "assess", {"likelihood": 2, "impact": 4,
                                                  "rationale": "r"}),
    "risk.choose_response": _risk("assessed", "choose-response", {"strategy": "reduce"}),
    "risk.add_action": _risk("responding", "add-action", {"action": "a", "owner": "olga",
                                                          "due_date": "2026-10-01"}),
    "risk.update_action": _risk("action", "update-action", {"action_id": "?",
                                                            "status": "in_progress"}),
    "risk.set_emergency_plan": _risk("identified", "set-emergency-plan", {
        "trigger_conditions": "t", "steps": ["s"], "responsible": ["olga"]}),
    "risk.define_indicator": _risk("identified", "define-indicator", {
        "name": "j", "unit": "u", "threshold": "5", "direction": "below"}),
    "risk.record_reading": _risk("indicator", "record-reading", {
        "indicator_id": "?", "value": "5", "observed_at": "2026-01-02T00:00:00Z"}),
    "risk.acknowledge_warning": _risk("warning", "acknowledge-warning", {"warning_id": "?"}),
    "risk.start_monitoring": _risk("responding", "start-monitoring", {}),
    "risk.close": _risk("identified", "close", {"outcome": "mitigated"}),
    "risk.reopen": _risk("closed", "reopen", {"reason": "back"}),
})


def _budget(state: str, command: str, body: dict[str, Any]) -> Callable[[World, str], Target]:
    def setup(w: World, d: str) -> Target:
        bid = budget(w, d, state)
        b = dict(body)
        if "line_id" in b:
            b["line_id"] = line_of(w, bid)
        if "adjustment_id" in b:
            b["adjustment_id"] = adjustment_of(w, bid)
        return Target(f"/budgets/{bid}/{command}", b)
    return setup


SCENARIOS.update({
    "budget.compile": lambda w, d: Target("/budgets", {"department": d, "fiscal_year": 2027,
                                                       "lines": LINES}),
    "budget.revise_draft": _budget("draft", "revise-draft", {"lines": [
        {**LINES[0], "amount": "900.00"}]}),
    "budget.add_line": _budget("draft", "add-line", {"kind": "expense", "category": "travel",
                                                     "name": "Trips", "amount": "10.00"}),
    "budget.remove_line": _budget("draft", "remove-line", {"line_id": "?", "reason": "cut"}),
    "budget.submit": _budget("draft", "submit", {}),
    "budget.pass_finance_review": _budget("submitted", "pass-finance-review", {}),
    "budget.return_for_revision": _budget("submitted", "return-for-revision",
                                          {"reason": "redo"}),
    "budget.approve": _budget("finance_reviewed", "approve", {}),
    "budget.issue": _budget("approved", "issue", {}),
    "budget.start_execution": _budget("issued", "start-execution", {}),
    "budget.close_year": _budget("in_execution", "close-year", {}),
    "budget.record_actual": _budget("in_execution", "record-actual", {
        "line_id": "?", "amount": "1.00", "date": "2026-03-01", "reference": "INV-1"}),
    "budget.request_adjustment": _budget("in_execution", "request-adjustment", {
        "changes": [{"kind": "cost", "category": "travel", "name": "New", "amount": "5.00"}],
        "reason": "more"}),
    "budget.pass_adjustment_finance_review": _budget(
        "adjustment", "pass-adjustment-finance-review", {"adjustment_id": "?"}),
    "budget.return_adjustment": _budget("adjustment", "return-adjustment",
                                        {"adjustment_id": "?", "reason": "no"}),
    "budget.approve_adjustment": _budget("adjustment_reviewed", "approve-adjustment",
                                         {"adjustment_id": "?"}),
    "indicator_target.define": lambda w, d: Target("/indicator-targets", {
        "department": d, "indicator": "complaint_rate", "target": "5.00"}),
    "indicator_target.revise": lambda w, d: Target(
        f"/indicator-targets/{target(w, d)}/revise", {"target": "4.50"}),
    "indicator_target.withdraw": lambda w, d: Target(
        f"/indicator-targets/{target(w, d)}/withdraw", {"reason": "obsolete"}),
    "webhook.register": lambda w, d: Target("/webhooks", {
        "name": "h2", "url": "https://hooks.example.com/x"}),
    "webhook.update": lambda w, d: Target(f"/webhooks/{webhook(w, d)}/update",
                                          {"name": "renamed"}),
    "webhook.disable": lambda w, d: Target(f"/webhooks/{webhook(w, d)}/disable",
                                           {"reason": "maintenance"}),
    "webhook.enable": lambda w, d: Target(f"/webhooks/{webhook(w, d, True)}/enable", {}),
    "webhook.rotate_secret": lambda w, d: Target(f"/webhooks/{webhook(w, d)}/rotate-secret",
                                                 {}),
    "webhook.replay_dead_letters": lambda w, d: Target(
        f"/webhooks/{webhook(w, d)}/replay-dead-letters", {}),
})


# -- the matrix -------------------------------------------------------------------------------

@dataclass
class Outcome:
    calls: int = 0
    escalations: list[str] | None = None
    denials: list[str] | None = None
    statuses: Counter[int] | None = None

    def __post_init__(self) -> None:
        self.escalations, self.denials, self.statuses = [], [], Counter()


def run_matrix(w: World, commands: list[str], workers: int = 8) -> Outcome:
    """Runs the commands' cells, commands in parallel (each on its own records)."""
    out = Outcome()
    with ThreadPoolExecutor(workers) as pool:
        for part in pool.map(lambda c: run_command(w, c), commands):
            assert out.escalations is not None and out.denials is not None
            assert out.statuses is not None and part.statuses is not None
            out.calls += part.calls
            out.escalations += part.escalations or []
            out.denials += part.denials or []
            out.statuses.update(part.statuses)
    return out


def run_command(w: World, command: str) -> Outcome:
    out = Outcome()
    assert out.escalations is not None and out.denials is not None and out.statuses is not None
    with_dept, without = EXPECTED[command]
    # (role, with the record's department?) → allowed?
    cells = [((role, True), role in with_dept) for role in ROLES]
    cells += [((role, False), role in without) for role in ROLES]
    cells.append((("", True), False))  # a token holding no role at all
    d = w.department()
    first = SCENARIOS[command](w, d)
    denied = [cell for cell, ok in cells if not ok]
    allowed = [cell for cell, ok in cells if ok]
    for role, in_dept in denied:  # refusals change nothing: one record serves them all
        status, text = call(w, first, d, role, in_dept)
        out.calls += 1
        out.statuses[status] += 1
        if status != 403:
            out.escalations.append(f"{command} by {role or 'no role'}"
                                   f"{'' if in_dept else ' (no department)'}: {status} "
                                   f"{text[:160]}")
    for i, (role, in_dept) in enumerate(allowed):  # each success needs a fresh record
        if i == 0:
            t, dept = first, d
        else:
            dept = w.department()
            t = SCENARIOS[command](w, dept)
        status, text = call(w, t, dept, role, in_dept)
        out.calls += 1
        out.statuses[status] += 1
        if status not in (200, 201):
            out.denials.append(f"{command} by {role}{'' if in_dept else ' (no department)'}"
                               f": {status} {text[:160]}")
    return out


def call(w: World, t: Target, dept: str, role: str, in_dept: bool) -> tuple[int, str]:
    headers = w.headers(t.user, [role] if role else [], [dept] if in_dept else [])
    response = w.client.post(t.path, json=t.body, headers=headers)
    return int(response.status_code), response.text


@pytest.fixture(scope="module")
def world(container: Any) -> Iterator[World]:
    from fastapi.testclient import TestClient

    from service.main import create_app

    with TestClient(create_app(container=container), raise_server_exceptions=False) as client:
        yield World(client, container.settings)


def refused_403(container: Any) -> int:
    rows = container.store.execute("SELECT count(*) AS n FROM refused_commands"
                                   " WHERE status = 403")
    return int(rows[0]["n"])


def test_every_command_has_an_expectation_and_a_scenario() -> None:
    names = {s.full_name for s in all_commands()}
    assert names - EXPECTED.keys() == set(), "add these commands to EXPECTED"
    assert names - SCENARIOS.keys() == set(), "add these commands to SCENARIOS"
    assert EXPECTED.keys() - names == set(), "EXPECTED names commands that no longer exist"
    for command, (with_dept, without) in EXPECTED.items():
        assert "auditor" not in with_dept | without, f"{command}: auditors issue no command"
        assert without <= with_dept, f"{command}: a department never takes a permission away"


@pytest.mark.slow
def test_role_by_command_matrix_has_no_escalation(world: World, container: Any) -> None:
    started = time.monotonic()
    before = refused_403(container)
    commands = [s.full_name for s in all_commands()]
    out = run_matrix(world, commands)
    assert out.escalations is not None and out.denials is not None and out.statuses is not None
    elapsed = time.monotonic() - started
    report("authorisation matrix", commands=len(commands), roles=len(ROLES),
           cells=out.calls, allowed=out.statuses[200] + out.statuses[201],
           refused_403=out.statuses[403], escalations=len(out.escalations),
           wrongful_denials=len(out.denials), setup_commands=world.setup_commands,
           seconds=round(elapsed, 1))
    assert out.escalations == [], "\n".join(out.escalations)
    assert out.denials == [], "\n".join(out.denials)
    assert refused_403(container) - before == out.statuses[403]  # every refusal is logged


def test_the_matrix_catches_an_escalation(world: World, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    """A test that cannot fail is a defect: disable one domain check, the matrix must see it."""
    from domain.project import Project

    monkeypatch.setattr(Project, "_check_manager", lambda self, actor: None)
    out = run_matrix(world, ["project.pass_preliminary_review"])
    assert out.escalations, "the matrix did not notice a disabled permission check"


# -- tokens that must never get in --------------------------------------------------------------

def bad_tokens(settings: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "ann", "name": "Ann", "roles": ["leadership", "auditor"],
              "departments": ["ops"], "aud": settings.jwt_audience, "iat": now,
              "exp": now + 600}
    secret = settings.jwt_secret.get_secret_value()
    good = jwt.encode(claims, secret, algorithm="HS256")
    return {
        "forged": jwt.encode(claims, "not-the-secret-0123456789-0123456789", algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - 60, "iat": now - 3600}, secret,
                              algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, secret,
                                     algorithm="HS256"),
        "unsigned": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "no subject": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, secret,
                                 algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


PUBLIC = {("/healthz", "get"), ("/readyz", "get"), ("/console", "get")}


def operations(app: Any) -> list[tuple[str, str]]:
    doc = app.openapi()
    ops = []
    for path, item in doc["paths"].items():
        for method in item:
            if (path, method) in PUBLIC:
                continue
            concrete = path.replace("{record_id}", str(uuid.uuid4()))
            concrete = concrete.replace("{type}", "project").replace("{id}", str(uuid.uuid4()))
            ops.append((method.upper(), concrete))
    return ops


def test_forged_expired_and_wrong_audience_tokens_get_401_everywhere(world: World) -> None:
    ops = operations(world.client.app)
    assert len(ops) > 90
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    for name, token in bad_tokens(world.settings).items():
        for method, path in ops:
            r = world.client.request(method, path, json={} if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {token}"})
            statuses[r.status_code] += 1
            if r.status_code != 401:
                wrong.append(f"{name} {method} {path}: {r.status_code}")
        r = world.client.post("/graphql", json={"query": "{ projects { edges { node { id } } } }"},
                              headers={"Authorization": f"Bearer {token}"})
        statuses[r.status_code] += 1
        if r.status_code != 401:
            wrong.append(f"{name} POST /graphql: {r.status_code}")
    for method, path in ops:  # and no token at all
        r = world.client.request(method, path, json={} if method == "POST" else None)
        statuses[r.status_code] += 1
        if r.status_code != 401:
            wrong.append(f"no token {method} {path}: {r.status_code}")
    report("bad tokens", operations=len(ops) + 1, tokens=len(bad_tokens(world.settings)) + 1,
           statuses=dict(statuses))
    assert wrong == [], "\n".join(wrong[:40])

