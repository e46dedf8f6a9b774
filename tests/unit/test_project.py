"""Project workflow (SPEC §2): given commands, when one command, then events, state or refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain.project import MilestoneInput, Project, ProjectStatus, ResourceInput, TaskInput
from domain.shared import Actor, InvalidTransition, NotPermitted, ValidationFailed


def person(user_id: str, *roles: str, departments: tuple[str, ...] = ("ops",)) -> Actor:
    return Actor(user_id, user_id.title(), frozenset(roles), frozenset(departments))


PROPOSER = person("pat", "member")
MANAGER = person("mo", "dept_manager")
DEPUTY = person("dee", "deputy_manager")
LEADER = person("lin", "leadership", departments=())
LEAD = person("lee", "member")
TEAMMATE = person("tom", "member")
OUTSIDER = person("oscar", "member", departments=("sales",))
SALES_MANAGER = person("sam", "dept_manager", departments=("sales",))
AUDITOR = person("audrey", "auditor", departments=())
ANALYST = person("ann", "analyst", departments=())

APPLICATION: dict[str, Any] = {
    "department": "ops", "name": "Ticket triage bot", "background": "Queue keeps growing",
    "objectives": "Halve first-response time", "scope": "Intake channel and routing rules",
    "requested_budget": Decimal("120000"), "expected_revenue": Decimal("30000.50"),
    "start_date": date(2026, 1, 1), "end_date": date(2026, 12, 31),
}
MILESTONES: list[MilestoneInput] = [
    {"name": "Design", "due_date": date(2026, 3, 31), "budget": Decimal("20000")},
    {"name": "Launch", "due_date": date(2026, 6, 30)},
]
TASKS: list[TaskInput] = [
    {"name": "Write spec", "owner": "lee", "start_date": date(2026, 1, 5),
     "due_date": date(2026, 2, 1), "milestone": "Design"},
    {"name": "Build", "owner": "tom", "start_date": date(2026, 2, 1),
     "due_date": date(2026, 6, 1), "depends_on": ["Write spec"], "milestone": "Launch"},
]
RESOURCES: list[ResourceInput] = [
    {"milestone": "Design", "people": ["lee"], "amount": Decimal("18000")},
    {"milestone": "Launch", "people": ["lee", "tom"], "amount": Decimal("90000")},
]
PLAN: dict[str, Any] = {"milestones": MILESTONES, "tasks": TASKS, "resources": RESOURCES,
                        "summary": "Two phases"}
ALL_PASS = {"objectives_met": True, "deliverable_quality": True, "cost_control": True,
            "documentation_complete": True}


# ---------------------------------------------------------------- givens (each builds on the last)

def draft(proposer: Actor = PROPOSER) -> Project:
    return Project.propose(proposer, **APPLICATION)


def submitted(proposer: Actor = PROPOSER) -> Project:
    project = draft(proposer)
    project.submit(proposer)
    return project


def awaiting_approval(reviewer: Actor = MANAGER) -> Project:
    project = submitted()
    project.pass_preliminary_review(reviewer)
    return project


def initiated() -> Project:
    project = awaiting_approval()
    project.approve(LEADER)
    return project


def planning(lead: Actor = LEAD) -> Project:
    project = initiated()
    project.appoint_lead(MANAGER, user_id=lead.user_id, name=lead.name)
    project.add_team_member(MANAGER, user_id=TEAMMATE.user_id, name="Tom", role="engineer")
    return project


def plan_review(lead: Actor = LEAD) -> Project:
    project = planning(lead)
    tasks = [{**t, "owner": lead.user_id} if t["owner"] == "lee" else t for t in TASKS]
    project.submit_plan(lead, **{**PLAN, "tasks": tasks})
    return project


def in_execution(lead: Actor = LEAD) -> Project:
    project = plan_review(lead)
    project.approve_plan(MANAGER if lead != MANAGER else DEPUTY)
    return project


def acceptance_review(lead: Actor = LEAD) -> Project:
    project = in_execution(lead)
    project.request_acceptance(lead, report="All objectives delivered")
    return project


def accepted() -> Project:
    project = acceptance_review()
    project.review_acceptance(LEADER, **ALL_PASS)
    return project


def closed() -> Project:
    project = accepted()
    project.close(MANAGER, summary="Delivered", lessons_learned="Start routing rules earlier")
    return project


def given(build: Callable[[], Project]) -> Project:
    project = build()
    project.collect_events()
    return project


def event_names(project: Project) -> list[str]:
    return [type(e).__name__ for e in project.collect_events()]


def task_id(project: Project, name: str) -> str:
    return next(t["id"] for t in project.tasks if t["name"] == name)


def refused(rule: str, call: Callable[[], object]) -> None:
    with pytest.raises(NotPermitted) as refusal:
        call()
    assert refusal.value.rule == rule


def invalid(rule: str, call: Callable[[], object]) -> None:
    with pytest.raises(ValidationFailed) as failure:
        call()
    assert failure.value.rule == rule


# ---------------------------------------------------------------- the whole workflow

def test_project_runs_from_proposal_to_closure_with_four_people() -> None:
    project = Project.propose(PROPOSER, **APPLICATION)
    project.submit(PROPOSER)
    project.pass_preliminary_review(MANAGER)
    project.approve(LEADER)
    project.appoint_lead(MANAGER, user_id=LEAD.user_id, name="Lee")
    only_lead_tasks = [{**t, "owner": LEAD.user_id} for t in TASKS]
    project.submit_plan(LEAD, milestones=MILESTONES, tasks=only_lead_tasks, resources=RESOURCES)
    project.approve_plan(MANAGER)
    project.report_progress(LEAD, period="2026-Q1", percent_complete=40, work_done="Spec done")
    project.record_meeting(LEAD, date=date(2026, 3, 1), attendees=["lee", "mo"],
                           decisions="Keep scope")
    project.update_task_status(LEAD, task_id=task_id(project, "Write spec"), status="done")
    project.complete_milestone(LEAD, milestone_id=project.milestones[0]["id"],
                               completed_on=date(2026, 3, 30))
    project.evaluate(MANAGER, period="2026-Q1", schedule_note="On plan", quality_note="Good",
                     quality_rating=4, actual_cost=Decimal("25000"), verdict="on_track")
    project.request_acceptance(LEAD, report="Objectives met")
    project.review_acceptance(LEADER, **ALL_PASS, findings="Fine work")
    project.close(MANAGER, summary="Delivered", lessons_learned="Plan routing earlier")

    assert event_names(project) == [
        "Proposed", "Submitted", "PreliminaryReviewPassed", "Approved", "LeadAppointed",
        "PlanSubmitted", "PlanApproved", "PlanFiled", "ProgressReported", "MeetingRecorded",
        "TaskStatusChanged", "MilestoneCompleted", "Evaluated", "AcceptanceRequested",
        "AcceptancePassed", "Closed"]
    assert project.status == ProjectStatus.CLOSED
    assert (project.proposer, project.preliminary_reviewer, project.approver) == (
        "pat", "mo", "lin")
    assert project.lead == {"user_id": "lee", "name": "Lee"}
    assert project.current_plan_version == 1
    assert project.percent_complete == 40
    assert project.summary == "Delivered"
    assert project.lessons_learned == "Plan routing earlier"


# ---------------------------------------------------------------- initiation application

def test_proposal_is_a_draft_recording_the_proposer_and_exact_money() -> None:
    project = draft()

    assert event_names(project) == ["Proposed"]
    assert project.status == "draft"
    assert project.proposer == "pat"
    assert project.department == "ops"
    assert project.requested_budget == Decimal("120000.00")
    assert project.currency == "CNY"
    assert project.customer_id is None


@pytest.mark.parametrize("proposer", [DEPUTY, MANAGER])
def test_managers_of_the_department_may_propose(proposer: Actor) -> None:
    assert draft(proposer).proposer == proposer.user_id


def test_member_of_another_department_cannot_propose() -> None:
    refused("member_of_department", lambda: Project.propose(OUTSIDER, **APPLICATION))


def test_leadership_alone_cannot_propose() -> None:
    refused("member_of_department", lambda: Project.propose(LEADER, **APPLICATION))


def test_auditor_who_is_also_a_member_cannot_propose() -> None:
    refused("read_only_role",
            lambda: Project.propose(person("ada", "member", "auditor"), **APPLICATION))


def test_proposal_ending_before_it_starts_is_refused() -> None:
    invalid("date_order", lambda: Project.propose(
        PROPOSER, **{**APPLICATION, "end_date": date(2025, 12, 31)}))


def test_money_with_more_than_two_places_is_refused() -> None:
    invalid("validation", lambda: Project.propose(
        PROPOSER, **{**APPLICATION, "requested_budget": Decimal("1.005")}))


def test_proposer_edits_the_draft_application() -> None:
    project = given(draft)

    project.edit_application(PROPOSER, name="Triage bot v2", requested_budget=Decimal("99000"))

    events = project.collect_events()
    assert [type(e).__name__ for e in events] == ["ApplicationEdited"]
    assert events[0].changes == {"name": "Triage bot v2",  # type: ignore[attr-defined]
                                 "requested_budget": Decimal("99000.00")}
    assert project.name == "Triage bot v2"
    assert project.objectives == APPLICATION["objectives"]


def test_only_the_proposer_edits_the_application() -> None:
    refused("proposer_only", lambda: given(draft).edit_application(MANAGER, name="Mine"))


def test_application_cannot_be_edited_once_submitted() -> None:
    with pytest.raises(InvalidTransition, match="submitted"):
        given(submitted).edit_application(PROPOSER, name="Late change")


def test_edit_that_changes_nothing_is_refused() -> None:
    invalid("no_changes", lambda: given(draft).edit_application(
        PROPOSER, name=APPLICATION["name"]))


def test_only_the_proposer_submits() -> None:
    refused("proposer_only", lambda: given(draft).submit(TEAMMATE))


# ---------------------------------------------------------------- preliminary review and approval

def test_manager_passes_preliminary_review() -> None:
    project = given(submitted)

    project.pass_preliminary_review(DEPUTY)

    assert event_names(project) == ["PreliminaryReviewPassed"]
    assert project.status == "awaiting_approval"
    assert project.preliminary_reviewer == "dee"


def test_proposer_cannot_pass_preliminary_review_of_own_application() -> None:
    project = given(lambda: submitted(MANAGER))
    refused("maker_checker", lambda: project.pass_preliminary_review(MANAGER))


def test_manager_of_another_department_cannot_pass_preliminary_review() -> None:
    refused("manager_of_department",
            lambda: given(submitted).pass_preliminary_review(SALES_MANAGER))


def test_leadership_approves_and_the_project_is_initiated() -> None:
    project = given(awaiting_approval)

    project.approve(LEADER)

    assert event_names(project) == ["Approved"]
    assert project.status == "initiated"
    assert project.approver == "lin"


def test_proposer_cannot_approve_own_project() -> None:
    boss = person("bea", "member", "leadership")
    project = submitted(boss)
    project.pass_preliminary_review(MANAGER)
    refused("maker_checker", lambda: project.approve(boss))


def test_preliminary_reviewer_cannot_also_approve() -> None:
    manager_and_leader = person("max", "dept_manager", "leadership")
    project = given(lambda: awaiting_approval(manager_and_leader))
    refused("maker_checker", lambda: project.approve(manager_and_leader))


def test_manager_cannot_give_final_approval() -> None:
    refused("leadership_only", lambda: given(awaiting_approval).approve(DEPUTY))


def test_manager_returns_submitted_application_to_draft() -> None:
    project = given(submitted)

    project.return_application(MANAGER, reason="Budget lacks a breakdown")

    assert event_names(project) == ["ApplicationReturned"]
    assert project.status == "draft"
    assert project.returns == [
        {"stage": "submitted", "by": "mo", "reason": "Budget lacks a breakdown"}]


def test_leadership_returns_application_awaiting_approval_and_review_starts_over() -> None:
    project = given(awaiting_approval)

    project.return_application(LEADER, reason="Align with annual goals")

    assert project.status == "draft"
    assert project.returns[-1]["stage"] == "awaiting_approval"
    assert project.preliminary_reviewer is None


def test_returned_application_can_be_resubmitted() -> None:
    project = given(submitted)
    project.return_application(MANAGER, reason="Add scope")
    project.edit_application(PROPOSER, scope="Intake, routing and reporting")
    project.submit(PROPOSER)
    project.pass_preliminary_review(MANAGER)
    project.approve(LEADER)

    assert project.status == "initiated"


def test_manager_cannot_return_application_at_the_approval_stage() -> None:
    refused("leadership_only",
            lambda: given(awaiting_approval).return_application(MANAGER, reason="No"))


def test_member_cannot_return_application() -> None:
    refused("manager_of_department",
            lambda: given(submitted).return_application(TEAMMATE, reason="No"))


def test_leadership_rejects_application_for_good() -> None:
    project = given(awaiting_approval)

    project.reject(LEADER, reason="Not a priority this year")

    assert event_names(project) == ["Rejected"]
    assert project.status == "rejected"
    assert project.reject_reason == "Not a priority this year"
    with pytest.raises(InvalidTransition, match="rejected"):
        project.submit(PROPOSER)


@pytest.mark.parametrize("reason", ["", "   "])
@pytest.mark.parametrize("decide", [
    lambda p, reason: p.reject(LEADER, reason=reason),
    lambda p, reason: p.return_application(LEADER, reason=reason),
], ids=["reject", "return"])
def test_rejecting_or_returning_needs_a_reason(decide: Callable[..., None], reason: str) -> None:
    invalid("reason_required", lambda: decide(given(awaiting_approval), reason))


# ---------------------------------------------------------------- read-only roles

COMMANDS_BY_STATE: list[tuple[Callable[[], Project], Callable[[Project, Actor], object]]] = [
    (draft, lambda p, a: p.submit(a)),
    (draft, lambda p, a: p.edit_application(a, name="x")),
    (submitted, lambda p, a: p.pass_preliminary_review(a)),
    (submitted, lambda p, a: p.return_application(a, reason="x")),
    (awaiting_approval, lambda p, a: p.approve(a)),
    (awaiting_approval, lambda p, a: p.reject(a, reason="x")),
    (initiated, lambda p, a: p.appoint_lead(a, user_id=a.user_id, name="x")),
    (planning, lambda p, a: p.add_team_member(a, user_id="z", name="z", role="qa")),
    (planning, lambda p, a: p.submit_plan(a, **PLAN)),
    (plan_review, lambda p, a: p.approve_plan(a)),
    (in_execution, lambda p, a: p.report_progress(a, period="p", percent_complete=1,
                                                  work_done="x")),
    (in_execution, lambda p, a: p.evaluate(a, period="p", schedule_note="s", quality_note="q",
                                           quality_rating=3, actual_cost=Decimal(1),
                                           verdict="on_track")),
    (acceptance_review, lambda p, a: p.review_acceptance(a, **ALL_PASS)),
    (accepted, lambda p, a: p.close(a, summary="s", lessons_learned="l")),
    (in_execution, lambda p, a: p.cancel(a, reason="x")),
    (in_execution, lambda p, a: p.attach_document(a, name="n", uri="u", checksum="c")),
]


@pytest.mark.parametrize("reader", [AUDITOR, ANALYST], ids=["auditor", "analyst"])
@pytest.mark.parametrize(("build", "call"), COMMANDS_BY_STATE)
def test_auditor_and_analyst_can_issue_no_command(
        reader: Actor, build: Callable[[], Project],
        call: Callable[[Project, Actor], object]) -> None:
    project = given(build)
    refused("read_only_role", lambda: call(project, reader))
    assert project.collect_events() == []


def test_analyst_cannot_propose() -> None:
    refused("read_only_role", lambda: Project.propose(ANALYST, **APPLICATION))


# ---------------------------------------------------------------- invalid transitions

@pytest.mark.parametrize(("build", "state", "call"), [
    (draft, "draft", lambda p: p.approve(LEADER)),
    (submitted, "submitted", lambda p: p.submit(PROPOSER)),
    (awaiting_approval, "awaiting_approval", lambda p: p.pass_preliminary_review(MANAGER)),
    (awaiting_approval, "awaiting_approval",
     lambda p: p.appoint_lead(MANAGER, user_id="lee", name="Lee")),
    (initiated, "initiated", lambda p: p.submit_plan(LEAD, **PLAN)),
    (planning, "planning", lambda p: p.approve_plan(MANAGER)),
    (plan_review, "plan_review", lambda p: p.report_progress(
        LEAD, period="p", percent_complete=1, work_done="w")),
    (plan_review, "plan_review", lambda p: p.revise_plan(LEAD, **PLAN, reason="r")),
    (planning, "planning", lambda p: p.request_acceptance(LEAD, report="r")),
    (in_execution, "in_execution", lambda p: p.review_acceptance(LEADER, **ALL_PASS)),
    (in_execution, "in_execution", lambda p: p.close(MANAGER, summary="s", lessons_learned="l")),
    (closed, "closed", lambda p: p.cancel(LEADER, reason="r")),
    (closed, "closed", lambda p: p.attach_document(MANAGER, name="n", uri="u", checksum="c")),
])
def test_invalid_transition_names_the_current_state(
        build: Callable[[], Project], state: str, call: Callable[[Project], object]) -> None:
    project = given(build)
    with pytest.raises(InvalidTransition) as refusal:
        call(project)
    assert refusal.value.current_state == state
    assert f"'{state}'" in str(refusal.value)


# ---------------------------------------------------------------- lead and team

def test_appointing_the_lead_starts_planning_and_puts_the_lead_on_the_team() -> None:
    project = given(initiated)

    project.appoint_lead(MANAGER, user_id="lee", name="Lee")

    assert event_names(project) == ["LeadAppointed"]
    assert project.status == "planning"
    assert project.lead == {"user_id": "lee", "name": "Lee"}
    assert project.team == [{"user_id": "lee", "name": "Lee", "role": "lead"}]


def test_only_a_manager_of_the_department_appoints_the_lead() -> None:
    refused("manager_of_department",
            lambda: given(initiated).appoint_lead(LEADER, user_id="lee", name="Lee"))


def test_replacing_the_lead_needs_a_reason() -> None:
    invalid("reason_required",
            lambda: given(in_execution).appoint_lead(MANAGER, user_id="tom", name="Tom"))


def test_replaced_lead_stays_on_the_team_as_a_member() -> None:
    project = given(in_execution)

    project.appoint_lead(MANAGER, user_id="tom", name="Tom", reason="Lee moved to sales")

    assert project.status == "in_execution"
    assert project.lead == {"user_id": "tom", "name": "Tom"}
    roles = {m["user_id"]: m["role"] for m in project.team}
    assert roles == {"lee": "member", "tom": "lead"}


def test_lead_adds_a_team_member() -> None:
    project = given(planning)

    project.add_team_member(LEAD, user_id="una", name="Una", role="analyst")

    assert event_names(project) == ["TeamMemberAdded"]
    assert {"user_id": "una", "name": "Una", "role": "analyst"} in project.team


def test_team_member_cannot_add_members() -> None:
    refused("manager_or_lead", lambda: given(planning).add_team_member(
        TEAMMATE, user_id="una", name="Una", role="qa"))


def test_the_same_person_cannot_join_the_team_twice() -> None:
    invalid("already_team_member", lambda: given(planning).add_team_member(
        MANAGER, user_id="tom", name="Tom", role="qa"))


def test_removing_a_team_member_needs_a_reason() -> None:
    invalid("reason_required",
            lambda: given(planning).remove_team_member(MANAGER, user_id="tom", reason=" "))


def test_manager_removes_a_team_member_with_a_reason() -> None:
    project = given(planning)

    project.remove_team_member(MANAGER, user_id="tom", reason="Reassigned")

    assert event_names(project) == ["TeamMemberRemoved"]
    assert [m["user_id"] for m in project.team] == ["lee"]


def test_the_lead_cannot_be_removed() -> None:
    invalid("cannot_remove_lead", lambda: given(planning).remove_team_member(
        MANAGER, user_id="lee", reason="x"))


def test_member_owning_open_tasks_cannot_be_removed() -> None:
    invalid("owns_open_tasks", lambda: given(in_execution).remove_team_member(
        MANAGER, user_id="tom", reason="Leaving"))


# ---------------------------------------------------------------- plan

def test_lead_submits_plan_version_one_for_review() -> None:
    project = given(planning)

    project.submit_plan(LEAD, **PLAN)

    assert event_names(project) == ["PlanSubmitted"]
    assert project.status == "plan_review"
    plan = project.plans[0]
    assert (plan["version"], plan["status"], plan["submitted_by"]) == (1, "submitted", "lee")
    spec, build = plan["tasks"]
    assert spec["status"] == build["status"] == "todo"
    assert build["depends_on"] == [spec["id"]]
    assert build["milestone_id"] == plan["milestones"][1]["id"]
    assert project.current_plan_version is None
    assert project.tasks == []


def test_only_the_lead_submits_the_plan() -> None:
    refused("lead_only", lambda: given(planning).submit_plan(MANAGER, **PLAN))


@pytest.mark.parametrize(("change", "rule"), [
    ({"milestones": []}, "milestones_required"),
    ({"tasks": [{**TASKS[0], "owner": "oscar"}]}, "owner_not_in_team"),
    ({"tasks": [{**TASKS[0], "due_date": date(2026, 1, 1)}]}, "date_order"),
    ({"tasks": [{**TASKS[0], "milestone": "Moon landing"}]}, "unknown_milestone"),
    ({"resources": [{**RESOURCES[0], "milestone": "Moon landing"}]}, "unknown_milestone"),
    ({"tasks": [{**TASKS[0], "depends_on": ["Nothing"]}]}, "unknown_dependency"),
    ({"tasks": [{**TASKS[0], "depends_on": ["Build"]}, TASKS[1]]}, "dependency_cycle"),
    ({"tasks": [TASKS[0], TASKS[0]]}, "duplicate_task_name"),
], ids=["no_milestone", "owner_outside_team", "due_before_start", "task_milestone",
        "resource_milestone", "unknown_dependency", "cycle", "duplicate_task"])
def test_invalid_plan_is_refused(change: dict[str, Any], rule: str) -> None:
    invalid(rule, lambda: given(planning).submit_plan(LEAD, **{**PLAN, **change}))


def test_manager_approves_the_plan_and_files_it_with_leadership() -> None:
    project = given(plan_review)

    project.approve_plan(MANAGER)

    assert event_names(project) == ["PlanApproved", "PlanFiled"]
    assert project.status == "in_execution"
    assert project.current_plan_version == 1
    assert project.plans[0]["status"] == "approved"
    assert project.plans[0]["filed_with"] == "leadership"
    assert [m["name"] for m in project.milestones] == ["Design", "Launch"]
    assert project.milestones[0]["completed_on"] is None
    assert [t["status"] for t in project.tasks] == ["todo", "todo"]
    assert project.resources[1]["amount"] == Decimal("90000.00")


def test_plan_submitter_cannot_approve_own_plan() -> None:
    managing_lead = person("dora", "deputy_manager")
    project = given(lambda: plan_review(managing_lead))
    refused("maker_checker", lambda: project.approve_plan(managing_lead))


def test_returned_first_plan_goes_back_to_planning() -> None:
    project = given(plan_review)

    project.return_plan(MANAGER, reason="Milestones too coarse")

    assert event_names(project) == ["PlanReturned"]
    assert project.status == "planning"
    assert project.plans[0]["status"] == "returned"
    assert project.returns[-1] == {"stage": "plan_review", "by": "mo",
                                   "reason": "Milestones too coarse"}


def test_returning_the_plan_needs_a_reason() -> None:
    invalid("reason_required", lambda: given(plan_review).return_plan(MANAGER, reason=""))


def revised(project: Project) -> Project:
    tasks = [*TASKS, {"name": "Pilot", "owner": "tom", "start_date": date(2026, 6, 1),
                      "due_date": date(2026, 7, 1), "depends_on": ["Build"]}]
    project.revise_plan(LEAD, milestones=MILESTONES, tasks=tasks, resources=RESOURCES,
                        reason="Add a pilot phase")
    return project


def test_plan_revision_is_a_new_version_reviewed_again() -> None:
    project = given(in_execution)

    revised(project)

    assert event_names(project) == ["PlanRevisionSubmitted"]
    assert project.status == "plan_review"
    assert [(p["version"], p["status"]) for p in project.plans] == [
        (1, "approved"), (2, "submitted")]
    assert project.plans[1]["reason"] == "Add a pilot phase"
    assert project.current_plan_version == 1


def test_approved_revision_replaces_the_plan_in_force_and_keeps_task_progress() -> None:
    project = given(in_execution)
    spec_id = task_id(project, "Write spec")
    project.update_task_status(LEAD, task_id=spec_id, status="done")
    revised(project)

    project.approve_plan(MANAGER)

    assert project.current_plan_version == 2
    statuses = {t["name"]: t["status"] for t in project.tasks}
    assert statuses == {"Write spec": "done", "Build": "todo", "Pilot": "todo"}
    assert task_id(project, "Write spec") == spec_id
    assert project.plans[0]["tasks"][0]["status"] == "todo"  # the history is not rewritten


def test_returned_revision_leaves_the_approved_plan_in_force() -> None:
    project = given(lambda: revised(in_execution()))

    project.return_plan(MANAGER, reason="Pilot not funded")

    assert project.status == "in_execution"
    assert project.current_plan_version == 1
    assert project.plans[1]["status"] == "returned"
    assert [t["name"] for t in project.tasks] == ["Write spec", "Build"]


def test_plan_revision_needs_a_reason() -> None:
    invalid("reason_required",
            lambda: given(in_execution).revise_plan(LEAD, **PLAN, reason=""))


# ---------------------------------------------------------------- execution and evaluation

def test_team_member_reports_progress_and_the_latest_percentage_counts() -> None:
    project = given(in_execution)
    project.report_progress(LEAD, period="2026-01", percent_complete=10, work_done="Kick-off")

    project.report_progress(TEAMMATE, period="2026-02", percent_complete=25,
                            work_done="Prototype", problems="Slow API", measures="Caching")

    assert project.percent_complete == 25
    assert [r["by"] for r in project.progress_reports] == ["lee", "tom"]


def test_someone_outside_the_team_cannot_report_progress() -> None:
    refused("team_member_only", lambda: given(in_execution).report_progress(
        MANAGER, period="p", percent_complete=5, work_done="w"))


@pytest.mark.parametrize("percent", [-1, 101])
def test_percent_complete_stays_between_0_and_100(percent: int) -> None:
    invalid("range", lambda: given(in_execution).report_progress(
        LEAD, period="p", percent_complete=percent, work_done="w"))


def test_lead_records_meeting_minutes() -> None:
    project = given(in_execution)

    project.record_meeting(LEAD, date=date(2026, 2, 3), attendees=["lee", "tom"],
                           decisions="Ship the pilot", minutes="Short")

    assert event_names(project) == ["MeetingRecorded"]
    assert project.meetings[0]["date"] == date(2026, 2, 3)
    assert project.meetings[0]["attendees"] == ["lee", "tom"]


def test_team_member_cannot_record_meetings() -> None:
    refused("manager_or_lead", lambda: given(in_execution).record_meeting(
        TEAMMATE, date=date(2026, 2, 3), attendees=["tom"], decisions="d"))


def test_task_owner_moves_their_task() -> None:
    project = given(in_execution)

    project.update_task_status(TEAMMATE, task_id=task_id(project, "Build"), status="doing")

    assert event_names(project) == ["TaskStatusChanged"]
    assert {t["name"]: t["status"] for t in project.tasks}["Build"] == "doing"


def test_team_member_cannot_move_someone_elses_task() -> None:
    project = given(in_execution)
    refused("task_owner_lead_or_manager", lambda: project.update_task_status(
        TEAMMATE, task_id=task_id(project, "Write spec"), status="doing"))


def test_task_cannot_be_done_before_its_dependencies() -> None:
    project = given(in_execution)
    invalid("dependencies_not_done", lambda: project.update_task_status(
        TEAMMATE, task_id=task_id(project, "Build"), status="done"))


def test_blocking_a_task_needs_a_note() -> None:
    project = given(in_execution)
    invalid("note_required", lambda: project.update_task_status(
        LEAD, task_id=task_id(project, "Build"), status="blocked"))


def test_lead_records_when_a_milestone_was_reached() -> None:
    project = given(in_execution)

    project.complete_milestone(LEAD, milestone_id=project.milestones[0]["id"],
                               completed_on=date(2026, 4, 2))

    assert event_names(project) == ["MilestoneCompleted"]
    assert project.milestones[0]["completed_on"] == date(2026, 4, 2)


def test_only_the_lead_completes_milestones() -> None:
    project = given(in_execution)
    refused("lead_only", lambda: project.complete_milestone(
        MANAGER, milestone_id=project.milestones[0]["id"], completed_on=date(2026, 4, 2)))


def test_manager_evaluates_schedule_quality_and_cost() -> None:
    project = given(in_execution)
    project.complete_milestone(LEAD, milestone_id=project.milestones[0]["id"],
                               completed_on=date(2026, 4, 2))

    project.evaluate(MANAGER, period="2026-Q1", schedule_note="Design a bit late",
                     quality_note="Solid", quality_rating=4, actual_cost=Decimal("130000"),
                     verdict="at_risk", adjustments="Trim launch scope")

    assert event_names(project) == ["MilestoneCompleted", "Evaluated"]
    evaluation = project.evaluations[0]
    assert evaluation["schedule"] == [
        {"milestone": "Design", "due_date": date(2026, 3, 31), "completed_on": date(2026, 4, 2)},
        {"milestone": "Launch", "due_date": date(2026, 6, 30), "completed_on": None}]
    assert evaluation["cost_variance"] == Decimal("10000.00")
    assert (evaluation["verdict"], evaluation["by"]) == ("at_risk", "mo")


def test_lead_cannot_evaluate_own_project() -> None:
    managing_lead = person("dora", "deputy_manager")
    refused("maker_checker", lambda: given(lambda: in_execution(managing_lead)).evaluate(
        managing_lead, period="p", schedule_note="s", quality_note="q", quality_rating=5,
        actual_cost=Decimal(0), verdict="on_track"))


def test_off_track_verdict_needs_adjustments() -> None:
    invalid("adjustments_required", lambda: given(in_execution).evaluate(
        MANAGER, period="p", schedule_note="s", quality_note="q", quality_rating=2,
        actual_cost=Decimal(0), verdict="off_track"))


@pytest.mark.parametrize("rating", [0, 6])
def test_quality_rating_is_one_to_five(rating: int) -> None:
    invalid("range", lambda: given(in_execution).evaluate(
        MANAGER, period="p", schedule_note="s", quality_note="q", quality_rating=rating,
        actual_cost=Decimal(0), verdict="on_track"))


# ---------------------------------------------------------------- acceptance and closure

def test_only_the_lead_requests_acceptance() -> None:
    refused("lead_only", lambda: given(in_execution).request_acceptance(MANAGER, report="r"))


def test_acceptance_passes_only_when_every_criterion_passes() -> None:
    project = given(acceptance_review)

    project.review_acceptance(MANAGER, **ALL_PASS, cost_control_note="Under budget")

    assert event_names(project) == ["AcceptancePassed"]
    assert project.status == "accepted"
    review = project.acceptance_reviews[0]
    assert review["passed"] is True
    assert review["criteria"]["cost_control"] == {"passed": True, "note": "Under budget"}


def test_failed_acceptance_returns_to_execution_with_rectification_items() -> None:
    project = given(acceptance_review)

    project.review_acceptance(LEADER, **{**ALL_PASS, "documentation_complete": False},
                              findings="Runbook missing",
                              rectification_items=["Write the runbook"])

    assert event_names(project) == ["AcceptanceFailed"]
    assert project.status == "in_execution"
    assert project.rectification_items == ["Write the runbook"]
    assert project.acceptance_reviews[0]["passed"] is False
    project.request_acceptance(LEAD, report="Runbook written")
    project.review_acceptance(LEADER, **ALL_PASS)
    assert project.status == "accepted"
    assert project.rectification_items == []


def test_failed_acceptance_needs_rectification_items() -> None:
    invalid("rectification_items_required", lambda: given(acceptance_review).review_acceptance(
        LEADER, **{**ALL_PASS, "objectives_met": False}))


def test_lead_cannot_review_acceptance() -> None:
    managing_lead = person("dora", "deputy_manager")
    project = given(lambda: acceptance_review(managing_lead))
    refused("maker_checker", lambda: project.review_acceptance(managing_lead, **ALL_PASS))


def test_team_member_cannot_review_acceptance() -> None:
    project = in_execution()
    project.add_team_member(MANAGER, user_id=DEPUTY.user_id, name="Dee", role="adviser")
    project.request_acceptance(LEAD, report="Done")
    refused("maker_checker", lambda: project.review_acceptance(DEPUTY, **ALL_PASS))


def test_plain_member_cannot_review_acceptance() -> None:
    refused("leadership_or_manager",
            lambda: given(acceptance_review).review_acceptance(OUTSIDER, **ALL_PASS))


def test_closing_needs_a_summary() -> None:
    invalid("required", lambda: given(accepted).close(LEAD, summary=" ", lessons_learned="l"))


# ---------------------------------------------------------------- cancellation

@pytest.mark.parametrize("build", [draft, submitted, awaiting_approval, initiated, planning,
                                   plan_review, in_execution, acceptance_review, accepted])
def test_leadership_cancels_before_closure(build: Callable[[], Project]) -> None:
    project = given(build)

    project.cancel(LEADER, reason="Strategy changed")

    events = project.collect_events()
    assert [type(e).__name__ for e in events] == ["Cancelled"]
    assert events[0].previous_status == build.__name__  # type: ignore[attr-defined]
    assert project.status == "cancelled"
    assert project.cancel_reason == "Strategy changed"


def test_only_leadership_cancels() -> None:
    refused("leadership_only", lambda: given(in_execution).cancel(MANAGER, reason="x"))


def test_cancelling_needs_a_reason() -> None:
    invalid("reason_required", lambda: given(planning).cancel(LEADER, reason=""))


# ---------------------------------------------------------------- documents

def test_attaching_a_document_again_adds_a_new_version() -> None:
    project = given(in_execution)
    project.attach_document(PROPOSER, name="charter.pdf", uri="s3://a/1", checksum="sha256:1")

    project.attach_document(TEAMMATE, name="charter.pdf", uri="s3://a/2", checksum="sha256:2")

    assert [(d["name"], d["version"], d["uri"]) for d in project.documents] == [
        ("charter.pdf", 1, "s3://a/1"), ("charter.pdf", 2, "s3://a/2")]


def test_outsider_cannot_attach_documents() -> None:
    refused("project_participant_only", lambda: given(in_execution).attach_document(
        OUTSIDER, name="n", uri="u", checksum="c"))


# ---------------------------------------------------------------- replay

def state(project: Project) -> dict[str, Any]:
    return {k: v for k, v in vars(project).items() if k != "_pending_events"}


def test_replaying_the_events_rebuilds_equal_state() -> None:
    project = in_execution()
    project.update_task_status(LEAD, task_id=task_id(project, "Write spec"), status="done")
    revised(project)
    project.approve_plan(MANAGER)
    project.complete_milestone(LEAD, milestone_id=project.milestones[0]["id"],
                               completed_on=date(2026, 3, 30))
    project.attach_document(LEAD, name="spec", uri="s3://spec", checksum="sha256:0")
    project.request_acceptance(LEAD, report="Done")
    project.review_acceptance(LEADER, **{**ALL_PASS, "cost_control": False},
                              rectification_items=["Explain overspend"])
    project.report_progress(LEAD, period="p", percent_complete=95, work_done="w")
    all_events = project.collect_events()

    copy = None
    for e in all_events:
        copy = e.mutate(copy)

    assert isinstance(copy, Project)
    assert state(copy) == state(project)
    assert copy.version == len(all_events)


def test_later_commands_do_not_alter_recorded_events() -> None:
    project = in_execution()
    project.update_task_status(LEAD, task_id=task_id(project, "Write spec"), status="doing")
    submitted_plan = next(e for e in project.collect_events()
                          if type(e).__name__ == "PlanSubmitted")

    assert [t["status"] for t in submitted_plan.tasks] == [  # type: ignore[attr-defined]
        "todo", "todo"]
