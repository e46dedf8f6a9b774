"""Project (項目): initiation, planning, execution, acceptance and closure (SPEC §2).

The proposer drafts and submits the initiation application (立項申請); a manager of the
department does the preliminary review (初審) and leadership approves (審批). A manager appoints
the project lead, who plans (策劃); a manager approves the plan, which is then filed with
leadership (備案). During execution the team reports progress and a manager evaluates; leadership
or a manager outside the team reviews acceptance (驗收) before closure (結項).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, NotRequired
from uuid import UUID, uuid4

from eventsourcing.domain import event
from typing_extensions import TypedDict

from domain.shared import (
    DEFAULT_CURRENCY,
    Actor,
    NotPermitted,
    Record,
    Role,
    ValidationFailed,
    command,
    copy_data,
    different_person,
    money,
    require,
    require_period,
    require_reason,
    require_text,
)


class ProjectStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    AWAITING_APPROVAL = "awaiting_approval"
    INITIATED = "initiated"
    PLANNING = "planning"
    PLAN_REVIEW = "plan_review"
    IN_EXECUTION = "in_execution"
    ACCEPTANCE_REVIEW = "acceptance_review"
    ACCEPTED = "accepted"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


S = ProjectStatus
FINAL_STATES = (S.CLOSED, S.CANCELLED, S.REJECTED)
OPEN_STATES = tuple(s for s in S if s not in FINAL_STATES)
# Once initiated, the project has a team; the lead can change until closure.
TEAM_STATES = (S.INITIATED, S.PLANNING, S.PLAN_REVIEW, S.IN_EXECUTION, S.ACCEPTANCE_REVIEW)
LEAD_STATES = (*TEAM_STATES, S.ACCEPTED)
# Roles that read but never act (SPEC §1): they pass no permission check, whatever else is true.
READ_ONLY_ROLES = (Role.AUDITOR, Role.ANALYST)
PROPOSER_ROLES = (Role.MEMBER, Role.DEPT_MANAGER, Role.DEPUTY_MANAGER)
LEAD_ROLE = "lead"
TASK_STATUSES = ("todo", "doing", "done", "blocked")
ACCEPTANCE_CRITERIA = ("objectives_met", "deliverable_quality", "cost_control",
                       "documentation_complete")


class MilestoneInput(TypedDict):
    name: str
    due_date: date
    budget: NotRequired[Decimal]


class TaskInput(TypedDict):
    name: str
    owner: str  # user id of a team member
    start_date: date
    due_date: date
    depends_on: NotRequired[list[str]]  # names of tasks in the same plan, or ids of current tasks
    milestone: NotRequired[str]  # milestone name


class ResourceInput(TypedDict):
    milestone: str  # milestone name
    people: list[str]
    amount: Decimal


def _refuse_read_only(actor: Actor) -> None:
    """Auditors issue no command; an analyst acts only through another role they hold."""
    if actor.has_role(Role.AUDITOR) or not set(actor.roles) - set(READ_ONLY_ROLES):
        raise NotPermitted("read-only roles issue no commands", rule="read_only_role")


def _permit(allowed: bool, message: str, rule: str) -> None:
    if not allowed:
        raise NotPermitted(message, rule=rule)


def _check_may_propose(actor: Actor, department: str) -> None:
    _permit(actor.acts_in(department, *PROPOSER_ROLES),
            f"only members and managers of '{department}' may propose its projects",
            "member_of_department")


def _currency(value: str) -> str:
    code = value.strip().upper()
    require(len(code) == 3 and code.isalpha(), "'currency' must be a three-letter code",
            field="currency")
    return code


class Project(Record):
    """A project from its initiation application to closure (SPEC §2)."""

    RECORD_TYPE = "project"

    # ----------------------------------------------------------------- initiation (立項)

    @classmethod
    @command
    def propose(cls, actor: Actor, *, department: str, name: str, background: str,
                objectives: str, scope: str, requested_budget: Decimal,
                expected_revenue: Decimal, start_date: date, end_date: date,
                currency: str = DEFAULT_CURRENCY, customer_id: UUID | None = None) -> Project:
        """Draft an initiation application; a member or manager of the department."""
        _refuse_read_only(actor)
        department = require_text(department, "department", max_length=64)
        _check_may_propose(actor, department)
        require_period(start_date, end_date)
        return cls(department=department, name=require_text(name, "name", max_length=200),
                   background=require_text(background, "background"),
                   objectives=require_text(objectives, "objectives"),
                   scope=require_text(scope, "scope"),
                   requested_budget=money(requested_budget, "requested_budget"),
                   expected_revenue=money(expected_revenue, "expected_revenue"),
                   currency=_currency(currency), start_date=start_date, end_date=end_date,
                   customer_id=customer_id, by=actor.user_id)

    @event("Proposed")
    def __init__(self, *, department: str, name: str, background: str, objectives: str,
                 scope: str, requested_budget: Decimal, expected_revenue: Decimal,
                 currency: str, start_date: date, end_date: date, customer_id: UUID | None,
                 by: str) -> None:
        """An initiation application was drafted."""
        self.department = department
        self.name = name
        self.background = background
        self.objectives = objectives
        self.scope = scope
        self.requested_budget = requested_budget
        self.expected_revenue = expected_revenue
        self.currency = currency
        self.start_date = start_date
        self.end_date = end_date
        self.customer_id = customer_id
        self.proposer = by
        self.status: str = S.DRAFT.value
        self.preliminary_reviewer: str | None = None
        self.approver: str | None = None
        self.returns: list[dict[str, Any]] = []
        self.reject_reason: str | None = None
        self.lead: dict[str, str] | None = None
        self.team: list[dict[str, str]] = []
        self.plans: list[dict[str, Any]] = []
        self.current_plan_version: int | None = None
        self.milestones: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.progress_reports: list[dict[str, Any]] = []
        self.percent_complete: int | None = None
        self.meetings: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.acceptance_report: str | None = None
        self.acceptance_reviews: list[dict[str, Any]] = []
        self.rectification_items: list[str] = []
        self.documents: list[dict[str, Any]] = []
        self.summary: str | None = None
        self.lessons_learned: str | None = None
        self.cancel_reason: str | None = None

    @command
    def edit_application(self, actor: Actor, *, department: str | None = None,
                         name: str | None = None, background: str | None = None,
                         objectives: str | None = None, scope: str | None = None,
                         requested_budget: Decimal | None = None,
                         expected_revenue: Decimal | None = None,
                         start_date: date | None = None, end_date: date | None = None,
                         currency: str | None = None,
                         customer_id: UUID | None = None) -> None:
        """Change fields of the draft application (None leaves a field as is); proposer only."""
        _refuse_read_only(actor)
        self.check_status("edit_application", S.DRAFT)
        self._check_proposer(actor)
        new: dict[str, Any] = {}
        if department is not None:
            new["department"] = require_text(department, "department", max_length=64)
            _check_may_propose(actor, new["department"])
        if name is not None:
            new["name"] = require_text(name, "name", max_length=200)
        for field, text in (("background", background), ("objectives", objectives),
                            ("scope", scope)):
            if text is not None:
                new[field] = require_text(text, field)
        for field, amount in (("requested_budget", requested_budget),
                              ("expected_revenue", expected_revenue)):
            if amount is not None:
                new[field] = money(amount, field)
        for field, value in (("start_date", start_date), ("end_date", end_date),
                             ("customer_id", customer_id)):
            if value is not None:
                new[field] = value
        if currency is not None:
            new["currency"] = _currency(currency)
        require_period(new.get("start_date", self.start_date), new.get("end_date", self.end_date))
        changes = {k: v for k, v in new.items() if getattr(self, k) != v}
        require(bool(changes), "the edit changes nothing", rule="no_changes")
        self._application_edited(changes=changes, by=actor.user_id)

    @event("ApplicationEdited")
    def _application_edited(self, *, changes: dict[str, Any], by: str) -> None:
        """Fields of the draft application changed (new values only; old ones are in history)."""
        for key, value in changes.items():
            setattr(self, key, value)

    @command
    def submit(self, actor: Actor) -> None:
        """Submit the application for preliminary review; proposer only."""
        _refuse_read_only(actor)
        self.check_status("submit", S.DRAFT)
        self._check_proposer(actor)
        self._submitted(by=actor.user_id)

    @event("Submitted")
    def _submitted(self, *, by: str) -> None:
        """The application went to the department manager for preliminary review."""
        self.status = S.SUBMITTED.value

    @command
    def pass_preliminary_review(self, actor: Actor) -> None:
        """Pass the preliminary review (初審); a manager of the department, not the proposer."""
        _refuse_read_only(actor)
        self.check_status("pass_preliminary_review", S.SUBMITTED)
        self._check_manager(actor)
        different_person(actor, self.proposer, rule="maker_checker",
                         message="the proposer cannot review their own application")
        self._preliminary_review_passed(by=actor.user_id)

    @event("PreliminaryReviewPassed")
    def _preliminary_review_passed(self, *, by: str) -> None:
        """The manager passed the application on to leadership."""
        self.preliminary_reviewer = by
        self.status = S.AWAITING_APPROVAL.value

    @command
    def return_application(self, actor: Actor, *, reason: str) -> None:
        """Send the application back to draft with a reason; a manager at preliminary review,
        leadership at approval."""
        _refuse_read_only(actor)
        self.check_status("return_application", S.SUBMITTED, S.AWAITING_APPROVAL)
        if self.status == S.SUBMITTED:
            self._check_manager(actor)
            different_person(actor, self.proposer, rule="maker_checker",
                             message="the proposer cannot review their own application")
        else:
            self._check_final_approver(actor)
        reason = require_reason(reason, "return the application")
        self._application_returned(stage=self.status, reason=reason, by=actor.user_id)

    @event("ApplicationReturned")
    def _application_returned(self, *, stage: str, reason: str, by: str) -> None:
        """The application went back to the proposer's draft; the review starts over."""
        self.returns.append({"stage": stage, "by": by, "reason": reason})
        self.preliminary_reviewer = None
        self.status = S.DRAFT.value

    @command
    def approve(self, actor: Actor) -> None:
        """Approve the project (立項審批); leadership, neither the proposer nor the reviewer."""
        _refuse_read_only(actor)
        self.check_status("approve", S.AWAITING_APPROVAL)
        self._check_final_approver(actor)
        self._approved(by=actor.user_id)

    @event("Approved")
    def _approved(self, *, by: str) -> None:
        """Leadership approved: the project is formally initiated."""
        self.approver = by
        self.status = S.INITIATED.value

    @command
    def reject(self, actor: Actor, *, reason: str) -> None:
        """Reject the application for good; leadership. (To ask for rework, return it instead:
        reject ends the application, return sends it back to draft.)"""
        _refuse_read_only(actor)
        self.check_status("reject", S.AWAITING_APPROVAL)
        self._check_final_approver(actor)
        reason = require_reason(reason, "reject the application")
        self._rejected(reason=reason, by=actor.user_id)

    @event("Rejected")
    def _rejected(self, *, reason: str, by: str) -> None:
        """Leadership rejected the application; the record is final."""
        self.reject_reason = reason
        self.status = S.REJECTED.value

    # ----------------------------------------------------------------- lead and team

    @command
    def appoint_lead(self, actor: Actor, *, user_id: str, name: str,
                     reason: str | None = None) -> None:
        """Appoint (or replace, with a reason) the project lead; a manager of the department."""
        _refuse_read_only(actor)
        self.check_status("appoint_lead", *LEAD_STATES)
        self._check_manager(actor)
        user_id = require_text(user_id, "user_id", max_length=200)
        name = require_text(name, "name", max_length=200)
        previous = self.lead["user_id"] if self.lead else None
        if previous is not None:
            require(previous != user_id, f"'{user_id}' is already the lead", field="user_id",
                    rule="already_lead")
            reason = require_reason(reason, "replace the project lead")
        self._lead_appointed(user_id=user_id, name=name, previous_lead=previous,
                             reason=(reason or "").strip() or None, by=actor.user_id)

    @event("LeadAppointed")
    def _lead_appointed(self, *, user_id: str, name: str, previous_lead: str | None,
                        reason: str | None, by: str) -> None:
        """A lead was appointed; they join the team as "lead", a replaced lead stays a member."""
        for member in self.team:
            if member["user_id"] == previous_lead:
                member["role"] = "member"
        self.team = [m for m in self.team if m["user_id"] != user_id]
        self.team.append({"user_id": user_id, "name": name, "role": LEAD_ROLE})
        self.lead = {"user_id": user_id, "name": name}
        if self.status == S.INITIATED:
            self.status = S.PLANNING.value

    @command
    def add_team_member(self, actor: Actor, *, user_id: str, name: str, role: str) -> None:
        """Add a member to the project team; a manager of the department or the lead."""
        _refuse_read_only(actor)
        self.check_status("add_team_member", *TEAM_STATES)
        self._check_manager_or_lead(actor)
        user_id = require_text(user_id, "user_id", max_length=200)
        role = require_text(role, "role", max_length=100)
        require(role != LEAD_ROLE, "the lead is appointed with appoint_lead", field="role",
                rule="use_appoint_lead")
        require(not self._in_team(user_id), f"'{user_id}' is already on the team",
                field="user_id", rule="already_team_member")
        self._team_member_added(user_id=user_id, name=require_text(name, "name", max_length=200),
                                role=role, by=actor.user_id)

    @event("TeamMemberAdded")
    def _team_member_added(self, *, user_id: str, name: str, role: str, by: str) -> None:
        """A person joined the project team with a role."""
        self.team.append({"user_id": user_id, "name": name, "role": role})

    @command
    def remove_team_member(self, actor: Actor, *, user_id: str, reason: str) -> None:
        """Remove a member (not the lead) from the team with a reason; a manager or the lead."""
        _refuse_read_only(actor)
        self.check_status("remove_team_member", *TEAM_STATES)
        self._check_manager_or_lead(actor)
        require(self._in_team(user_id), f"'{user_id}' is not on the team", field="user_id",
                rule="not_team_member")
        require(not (self.lead and self.lead["user_id"] == user_id),
                "the lead cannot be removed; appoint another lead first", field="user_id",
                rule="cannot_remove_lead")
        pending = self.plans[-1]["tasks"] if self.status == S.PLAN_REVIEW else []
        require(not any(t["owner"] == user_id and t["status"] != "done"
                        for t in [*self.tasks, *pending]),
                f"'{user_id}' owns open tasks; revise the plan to reassign them first",
                field="user_id", rule="owns_open_tasks")
        reason = require_reason(reason, "remove a team member")
        self._team_member_removed(user_id=user_id, reason=reason, by=actor.user_id)

    @event("TeamMemberRemoved")
    def _team_member_removed(self, *, user_id: str, reason: str, by: str) -> None:
        """A person left the project team."""
        self.team = [m for m in self.team if m["user_id"] != user_id]

    # ----------------------------------------------------------------- plan (策劃)

    @command
    def submit_plan(self, actor: Actor, *, milestones: list[MilestoneInput],
                    tasks: list[TaskInput], resources: list[ResourceInput],
                    summary: str = "") -> None:
        """Submit the project plan (milestones, tasks, resources) for review; the lead only."""
        _refuse_read_only(actor)
        self.check_status("submit_plan", S.PLANNING)
        self._check_lead(actor)
        plan = self._build_plan(milestones, tasks, resources)
        self._plan_submitted(plan_version=len(self.plans) + 1, **plan,
                             summary=summary.strip(), reason=None, by=actor.user_id)

    @command
    def revise_plan(self, actor: Actor, *, milestones: list[MilestoneInput],
                    tasks: list[TaskInput], resources: list[ResourceInput], reason: str,
                    summary: str = "") -> None:
        """Submit a revised plan (a new version) for review during execution; the lead only."""
        _refuse_read_only(actor)
        self.check_status("revise_plan", S.IN_EXECUTION)
        self._check_lead(actor)
        reason = require_reason(reason, "revise the plan")
        plan = self._build_plan(milestones, tasks, resources)
        self._plan_revision_submitted(plan_version=len(self.plans) + 1, **plan,
                                      summary=summary.strip(), reason=reason, by=actor.user_id)

    @event("PlanSubmitted")
    def _plan_submitted(self, *, plan_version: int, milestones: list[dict[str, Any]],
                        tasks: list[dict[str, Any]], resources: list[dict[str, Any]],
                        summary: str, reason: str | None, by: str) -> None:
        """The lead submitted a plan version for the manager's review."""
        self._add_plan(plan_version, milestones, tasks, resources, summary, reason, by)

    @event("PlanRevisionSubmitted")
    def _plan_revision_submitted(self, *, plan_version: int, milestones: list[dict[str, Any]],
                                 tasks: list[dict[str, Any]], resources: list[dict[str, Any]],
                                 summary: str, reason: str | None, by: str) -> None:
        """The lead submitted a revised plan version; the approved one stays in force meanwhile."""
        self._add_plan(plan_version, milestones, tasks, resources, summary, reason, by)

    @command
    def approve_plan(self, actor: Actor) -> None:
        """Approve the plan under review and file it with leadership (備案); a manager of the
        department other than the plan's submitter."""
        _refuse_read_only(actor)
        self.check_status("approve_plan", S.PLAN_REVIEW)
        self._check_manager(actor)
        plan = self.plans[-1]
        different_person(actor, plan["submitted_by"], rule="maker_checker",
                         message="the plan's submitter cannot approve it")
        self._plan_approved(plan_version=plan["version"], by=actor.user_id)
        self._plan_filed(plan_version=plan["version"], filed_with=Role.LEADERSHIP.value,
                         by=actor.user_id)

    @event("PlanApproved")
    def _plan_approved(self, *, plan_version: int, by: str) -> None:
        """The plan version is in force; tasks and milestones carried over keep their progress."""
        plan = self.plans[plan_version - 1]
        plan["status"] = "approved"
        plan["reviewed_by"] = by
        task_status = {t["name"]: t["status"] for t in self.tasks}
        completed_on = {m["name"]: m["completed_on"] for m in self.milestones}
        self.milestones = [{**copy_data(m), "completed_on": completed_on.get(m["name"])}
                           for m in plan["milestones"]]
        self.tasks = [{**copy_data(t), "status": task_status.get(t["name"], t["status"])}
                      for t in plan["tasks"]]
        self.resources = copy_data(plan["resources"])
        self.current_plan_version = plan_version
        self.status = S.IN_EXECUTION.value

    @event("PlanFiled")
    def _plan_filed(self, *, plan_version: int, filed_with: str, by: str) -> None:
        """The approved plan was filed with leadership for the record; no approval is needed."""
        self.plans[plan_version - 1]["filed_with"] = filed_with

    @command
    def return_plan(self, actor: Actor, *, reason: str) -> None:
        """Return the plan under review with a reason; a manager of the department other than
        its submitter."""
        _refuse_read_only(actor)
        self.check_status("return_plan", S.PLAN_REVIEW)
        self._check_manager(actor)
        plan = self.plans[-1]
        different_person(actor, plan["submitted_by"], rule="maker_checker",
                         message="the plan's submitter cannot review it")
        reason = require_reason(reason, "return the plan")
        self._plan_returned(plan_version=plan["version"], reason=reason, by=actor.user_id)

    @event("PlanReturned")
    def _plan_returned(self, *, plan_version: int, reason: str, by: str) -> None:
        """The plan version was returned: back to planning, or to execution under the plan in
        force when it was a revision."""
        plan = self.plans[plan_version - 1]
        plan["status"] = "returned"
        plan["reviewed_by"] = by
        plan["return_reason"] = reason
        self.returns.append({"stage": S.PLAN_REVIEW.value, "by": by, "reason": reason})
        self.status = (S.PLANNING if self.current_plan_version is None
                       else S.IN_EXECUTION).value

    # ----------------------------------------------------------------- execution

    @command
    def report_progress(self, actor: Actor, *, period: str, percent_complete: int,
                        work_done: str, problems: str = "", measures: str = "",
                        next_period_plan: str = "") -> None:
        """Report progress for a period; the lead or a team member."""
        _refuse_read_only(actor)
        self.check_status("report_progress", S.IN_EXECUTION)
        _permit(self._in_team(actor.user_id), "only the project team reports progress",
                "team_member_only")
        require(0 <= percent_complete <= 100, "'percent_complete' must be between 0 and 100",
                field="percent_complete", rule="range")
        self._progress_reported(report_id=str(uuid4()),
                                period=require_text(period, "period", max_length=100),
                                percent_complete=percent_complete,
                                work_done=require_text(work_done, "work_done"),
                                problems=problems.strip(), measures=measures.strip(),
                                next_period_plan=next_period_plan.strip(), by=actor.user_id)

    class ProgressReported(Record.Event):
        """A progress report was filed; the latest percentage is the project's.

        Version 2 added ``next_period_plan`` (下期計劃); version-1 events read as "".
        """

        class_version = 2
        report_id: str
        period: str
        percent_complete: int
        work_done: str
        problems: str
        measures: str
        next_period_plan: str
        by: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["next_period_plan"] = ""

    @event(ProgressReported)
    def _progress_reported(self, *, report_id: str, period: str, percent_complete: int,
                           work_done: str, problems: str, measures: str,
                           next_period_plan: str, by: str) -> None:
        self.progress_reports.append({
            "id": report_id, "period": period, "percent_complete": percent_complete,
            "work_done": work_done, "problems": problems, "measures": measures,
            "next_period_plan": next_period_plan, "by": by})
        self.percent_complete = percent_complete

    @command
    def record_meeting(self, actor: Actor, *, date: date, attendees: list[str],
                       decisions: str, minutes: str = "") -> None:
        """Record the minutes of a progress meeting; the lead or a manager of the department."""
        _refuse_read_only(actor)
        self.check_status("record_meeting", S.IN_EXECUTION)
        self._check_manager_or_lead(actor)
        people = [require_text(a, "attendees", max_length=200) for a in attendees]
        require(bool(people), "a meeting has attendees", field="attendees", rule="required")
        self._meeting_recorded(meeting_id=str(uuid4()), date=date, attendees=people,
                               decisions=require_text(decisions, "decisions"),
                               minutes=minutes.strip(), by=actor.user_id)

    @event("MeetingRecorded")
    def _meeting_recorded(self, *, meeting_id: str, date: date, attendees: list[str],
                          decisions: str, minutes: str, by: str) -> None:
        """Progress-meeting minutes were recorded."""
        self.meetings.append({"id": meeting_id, "date": date, "attendees": list(attendees),
                              "decisions": decisions, "minutes": minutes, "by": by})

    @command
    def update_task_status(self, actor: Actor, *, task_id: str,
                           status: Literal["todo", "doing", "done", "blocked"],
                           note: str = "") -> None:
        """Move a task to todo/doing/done/blocked; its owner, the lead or a manager."""
        _refuse_read_only(actor)
        self.check_status("update_task_status", S.IN_EXECUTION)
        task = self._task(task_id)
        _permit(actor.user_id == task["owner"] or self._is_lead(actor)
                or actor.manages(self.department),
                "only the task's owner, the lead or a manager may change its status",
                "task_owner_lead_or_manager")
        require(status in TASK_STATUSES, f"unknown task status '{status}'", field="status")
        require(status != task["status"], f"the task is already '{status}'", field="status",
                rule="status_unchanged")
        require(status != "blocked" or bool(note.strip()), "say what blocks the task",
                field="note", rule="note_required")
        if status == "done":
            open_deps = [t["name"] for t in self.tasks
                         if t["id"] in task["depends_on"] and t["status"] != "done"]
            require(not open_deps, f"tasks it depends on are not done: {', '.join(open_deps)}",
                    field="status", rule="dependencies_not_done")
        self._task_status_changed(task_id=task_id, status=status,
                                  previous_status=task["status"], note=note.strip(),
                                  by=actor.user_id)

    @event("TaskStatusChanged")
    def _task_status_changed(self, *, task_id: str, status: str, previous_status: str,
                             note: str, by: str) -> None:
        """A task of the plan in force changed status."""
        self._task(task_id)["status"] = status

    @command
    def complete_milestone(self, actor: Actor, *, milestone_id: str, completed_on: date) -> None:
        """Record the date a milestone was reached; the lead only."""
        _refuse_read_only(actor)
        self.check_status("complete_milestone", S.IN_EXECUTION)
        self._check_lead(actor)
        milestone = self._milestone(milestone_id)
        require(milestone["completed_on"] is None, "the milestone is already completed",
                field="milestone_id", rule="already_completed")
        self._milestone_completed(milestone_id=milestone_id, completed_on=completed_on,
                                  by=actor.user_id)

    @event("MilestoneCompleted")
    def _milestone_completed(self, *, milestone_id: str, completed_on: date, by: str) -> None:
        """A milestone was reached (on time when completed_on <= due_date)."""
        self._milestone(milestone_id)["completed_on"] = completed_on

    @command
    def evaluate(self, actor: Actor, *, period: str, schedule_note: str, quality_note: str,
                 quality_rating: int, actual_cost: Decimal,
                 verdict: Literal["on_track", "at_risk", "off_track"],
                 adjustments: str = "") -> None:
        """Record a periodic evaluation of schedule, quality and cost with a verdict; a manager
        of the department who is not the lead."""
        _refuse_read_only(actor)
        self.check_status("evaluate", S.IN_EXECUTION)
        self._check_manager(actor)
        _permit(not self._is_lead(actor), "the lead cannot evaluate their own project",
                "maker_checker")
        require(1 <= quality_rating <= 5, "'quality_rating' must be between 1 and 5",
                field="quality_rating", rule="range")
        require(verdict in ("on_track", "at_risk", "off_track"), f"unknown verdict '{verdict}'",
                field="verdict")
        require(verdict == "on_track" or bool(adjustments.strip()),
                "an at-risk or off-track verdict needs the required adjustments",
                field="adjustments", rule="adjustments_required")
        cost = money(actual_cost, "actual_cost")
        schedule = [{"milestone": m["name"], "due_date": m["due_date"],
                     "completed_on": m["completed_on"]} for m in self.milestones]
        self._evaluated(evaluation_id=str(uuid4()),
                        period=require_text(period, "period", max_length=100),
                        schedule=schedule,
                        schedule_note=require_text(schedule_note, "schedule_note"),
                        quality_note=require_text(quality_note, "quality_note"),
                        quality_rating=quality_rating, budget=self.requested_budget,
                        actual_cost=cost, cost_variance=cost - self.requested_budget,
                        verdict=verdict, adjustments=adjustments.strip(), by=actor.user_id)

    @event("Evaluated")
    def _evaluated(self, *, evaluation_id: str, period: str, schedule: list[dict[str, Any]],
                   schedule_note: str, quality_note: str, quality_rating: int, budget: Decimal,
                   actual_cost: Decimal, cost_variance: Decimal, verdict: str,
                   adjustments: str, by: str) -> None:
        """A manager evaluated the project (監控與評估): planned vs actual milestone dates,
        quality, budget vs actual cost, verdict."""
        self.evaluations.append({
            "id": evaluation_id, "period": period, "schedule": copy_data(schedule),
            "schedule_note": schedule_note, "quality_note": quality_note,
            "quality_rating": quality_rating, "budget": budget, "actual_cost": actual_cost,
            "cost_variance": cost_variance, "verdict": verdict, "adjustments": adjustments,
            "by": by})

    # ----------------------------------------------------------------- acceptance and closure

    @command
    def request_acceptance(self, actor: Actor, *, report: str) -> None:
        """Submit the acceptance application report (驗收申請); the lead only."""
        _refuse_read_only(actor)
        self.check_status("request_acceptance", S.IN_EXECUTION)
        self._check_lead(actor)
        self._acceptance_requested(report=require_text(report, "report"), by=actor.user_id)

    @event("AcceptanceRequested")
    def _acceptance_requested(self, *, report: str, by: str) -> None:
        """The lead asked for acceptance review."""
        self.acceptance_report = report
        self.status = S.ACCEPTANCE_REVIEW.value

    @command
    def review_acceptance(self, actor: Actor, *, objectives_met: bool,
                          deliverable_quality: bool, cost_control: bool,
                          documentation_complete: bool, findings: str = "",
                          rectification_items: list[str] | None = None,
                          objectives_met_note: str = "", deliverable_quality_note: str = "",
                          cost_control_note: str = "",
                          documentation_complete_note: str = "") -> None:
        """Record the acceptance review per criterion; it passes only if all four pass, and a
        failure needs rectification items. Leadership or a manager, from outside the team."""
        _refuse_read_only(actor)
        self.check_status("review_acceptance", S.ACCEPTANCE_REVIEW)
        _permit(actor.acts_in(self.department, Role.LEADERSHIP) or actor.manages(self.department),
                "acceptance is reviewed by leadership or a manager of the department",
                "leadership_or_manager")
        _permit(not self._in_team(actor.user_id),
                "the lead and team members cannot review their own project's acceptance",
                "maker_checker")
        items = [require_text(i, "rectification_items") for i in rectification_items or []]
        results = (objectives_met, deliverable_quality, cost_control, documentation_complete)
        notes = (objectives_met_note, deliverable_quality_note, cost_control_note,
                 documentation_complete_note)
        criteria = {name: {"passed": ok, "note": note.strip()}
                    for name, ok, note in zip(ACCEPTANCE_CRITERIA, results, notes, strict=True)}
        passed = all(results)
        require(passed or bool(items), "a failed acceptance needs rectification items",
                field="rectification_items", rule="rectification_items_required")
        record = self._acceptance_passed if passed else self._acceptance_failed
        record(review_id=str(uuid4()), criteria=criteria, findings=findings.strip(),
               rectification_items=items, by=actor.user_id)

    @event("AcceptancePassed")
    def _acceptance_passed(self, *, review_id: str, criteria: dict[str, Any], findings: str,
                           rectification_items: list[str], by: str) -> None:
        """Every acceptance criterion passed: the project is accepted."""
        self._add_acceptance_review(review_id, True, criteria, findings, rectification_items, by)
        self.status = S.ACCEPTED.value

    @event("AcceptanceFailed")
    def _acceptance_failed(self, *, review_id: str, criteria: dict[str, Any], findings: str,
                           rectification_items: list[str], by: str) -> None:
        """Acceptance failed: back to execution to work through the rectification items."""
        self._add_acceptance_review(review_id, False, criteria, findings, rectification_items,
                                    by)
        self.status = S.IN_EXECUTION.value

    @command
    def close(self, actor: Actor, *, summary: str, lessons_learned: str) -> None:
        """Close the accepted project with a summary and lessons learned (結項總結); the lead or
        a manager of the department."""
        _refuse_read_only(actor)
        self.check_status("close", S.ACCEPTED)
        self._check_manager_or_lead(actor)
        self._closed(summary=require_text(summary, "summary"),
                     lessons_learned=require_text(lessons_learned, "lessons_learned"),
                     by=actor.user_id)

    @event("Closed")
    def _closed(self, *, summary: str, lessons_learned: str, by: str) -> None:
        """The project was closed; the record is final."""
        self.summary = summary
        self.lessons_learned = lessons_learned
        self.status = S.CLOSED.value

    @command
    def cancel(self, actor: Actor, *, reason: str) -> None:
        """Cancel the project at any stage before closure, with a reason; leadership."""
        _refuse_read_only(actor)
        self.check_status("cancel", *OPEN_STATES)
        _permit(actor.acts_in(self.department, Role.LEADERSHIP),
                "only leadership cancels projects", "leadership_only")
        reason = require_reason(reason, "cancel the project")
        self._cancelled(previous_status=self.status, reason=reason, by=actor.user_id)

    @event("Cancelled")
    def _cancelled(self, *, previous_status: str, reason: str, by: str) -> None:
        """Leadership cancelled the project; the record is final."""
        self.cancel_reason = reason
        self.status = S.CANCELLED.value

    @command
    def attach_document(self, actor: Actor, *, name: str, uri: str, checksum: str) -> None:
        """Attach a document reference; the same name again adds a new version. The proposer,
        the lead, a team member or a manager of the department."""
        _refuse_read_only(actor)
        self.check_status("attach_document", *OPEN_STATES)
        _permit(actor.user_id == self.proposer or self._in_team(actor.user_id)
                or actor.manages(self.department),
                "only the proposer, the team or a manager may attach documents",
                "project_participant_only")
        name = require_text(name, "name", max_length=200)
        version = 1 + sum(1 for d in self.documents if d["name"] == name)
        self._document_attached(document_id=str(uuid4()), name=name, version=version,
                                uri=require_text(uri, "uri", max_length=2000),
                                checksum=require_text(checksum, "checksum", max_length=200),
                                by=actor.user_id)

    @event("DocumentAttached")
    def _document_attached(self, *, document_id: str, name: str, version: int, uri: str,
                           checksum: str, by: str) -> None:
        """A document (or a new version of one) was attached; earlier versions stay."""
        self.documents.append({"id": document_id, "name": name, "version": version, "uri": uri,
                               "checksum": checksum, "by": by})

    # ----------------------------------------------------------------- helpers

    def _is_lead(self, actor: Actor) -> bool:
        return self.lead is not None and self.lead["user_id"] == actor.user_id

    def _in_team(self, user_id: str) -> bool:
        return any(m["user_id"] == user_id for m in self.team)

    def _check_proposer(self, actor: Actor) -> None:
        _permit(actor.user_id == self.proposer, "only the proposer may do this", "proposer_only")

    def _check_manager(self, actor: Actor) -> None:
        _permit(actor.manages(self.department),
                f"only a manager of '{self.department}' may do this", "manager_of_department")

    def _check_lead(self, actor: Actor) -> None:
        _permit(self._is_lead(actor), "only the project lead may do this", "lead_only")

    def _check_manager_or_lead(self, actor: Actor) -> None:
        _permit(self._is_lead(actor) or actor.manages(self.department),
                f"only the lead or a manager of '{self.department}' may do this",
                "manager_or_lead")

    def _check_final_approver(self, actor: Actor) -> None:
        """Leadership decides at the approval stage, never on what they proposed or reviewed."""
        _permit(actor.acts_in(self.department, Role.LEADERSHIP),
                "only leadership decides on initiation", "leadership_only")
        different_person(actor, self.proposer, rule="maker_checker",
                         message="the proposer cannot decide on their own application")
        different_person(actor, self.preliminary_reviewer, rule="maker_checker",
                         message="the preliminary reviewer cannot also give final approval")

    def _task(self, task_id: str) -> dict[str, Any]:
        for task in self.tasks:
            if task["id"] == task_id:
                return task
        raise ValidationFailed(f"no task '{task_id}' in the plan in force", field="task_id",
                               rule="unknown_task")

    def _milestone(self, milestone_id: str) -> dict[str, Any]:
        for milestone in self.milestones:
            if milestone["id"] == milestone_id:
                return milestone
        raise ValidationFailed(f"no milestone '{milestone_id}' in the plan in force",
                               field="milestone_id", rule="unknown_milestone")

    def _build_plan(self, milestones: list[MilestoneInput], tasks: list[TaskInput],
                    resources: list[ResourceInput]) -> dict[str, list[dict[str, Any]]]:
        """Validate a plan and give its items ids: items named as in the plan in force keep
        their ids, so task and milestone references survive a revision."""
        require(bool(milestones), "a plan has at least one milestone", field="milestones",
                rule="milestones_required")
        known_milestones = {m["name"]: m["id"] for m in self.milestones}
        known_tasks = {t["name"]: t["id"] for t in self.tasks}

        plan_milestones: list[dict[str, Any]] = []
        for m in milestones:
            name = require_text(m["name"], "milestones.name", max_length=200)
            require(name not in (p["name"] for p in plan_milestones),
                    f"milestone '{name}' appears twice", field="milestones",
                    rule="duplicate_milestone_name")
            budget = m.get("budget")
            plan_milestones.append({
                "id": known_milestones.get(name) or str(uuid4()), "name": name,
                "due_date": m["due_date"],
                "budget": None if budget is None else money(budget, "milestones.budget")})
        milestone_ids = {m["name"]: m["id"] for m in plan_milestones}

        plan_tasks: list[dict[str, Any]] = []
        for t in tasks:
            name = require_text(t["name"], "tasks.name", max_length=200)
            require(name not in (p["name"] for p in plan_tasks), f"task '{name}' appears twice",
                    field="tasks", rule="duplicate_task_name")
            require(self._in_team(t["owner"]),
                    f"task '{name}': owner '{t['owner']}' is not on the team",
                    field="tasks.owner", rule="owner_not_in_team")
            require_period(t["start_date"], t["due_date"], "tasks.start_date", "tasks.due_date")
            milestone = t.get("milestone")
            require(milestone is None or milestone in milestone_ids,
                    f"task '{name}': no milestone '{milestone}' in the plan",
                    field="tasks.milestone", rule="unknown_milestone")
            plan_tasks.append({
                "id": known_tasks.get(name) or str(uuid4()), "name": name, "owner": t["owner"],
                "start_date": t["start_date"], "due_date": t["due_date"],
                "depends_on": list(t.get("depends_on", [])), "milestone": milestone,
                "milestone_id": milestone_ids.get(milestone) if milestone else None,
                "status": "todo"})
        _resolve_dependencies(plan_tasks)

        plan_resources: list[dict[str, Any]] = []
        for r in resources:
            require(r["milestone"] in milestone_ids,
                    f"resources: no milestone '{r['milestone']}' in the plan",
                    field="resources.milestone", rule="unknown_milestone")
            plan_resources.append({
                "milestone": r["milestone"], "milestone_id": milestone_ids[r["milestone"]],
                "people": [require_text(p, "resources.people", max_length=200)
                           for p in r["people"]],
                "amount": money(r["amount"], "resources.amount")})
        return {"milestones": plan_milestones, "tasks": plan_tasks, "resources": plan_resources}

    def _add_plan(self, version: int, milestones: list[dict[str, Any]],
                  tasks: list[dict[str, Any]], resources: list[dict[str, Any]], summary: str,
                  reason: str | None, by: str) -> None:
        self.plans.append({
            "version": version, "status": "submitted", "submitted_by": by,
            "milestones": copy_data(milestones), "tasks": copy_data(tasks),
            "resources": copy_data(resources), "summary": summary, "reason": reason,
            "reviewed_by": None, "return_reason": None, "filed_with": None})
        self.status = S.PLAN_REVIEW.value

    def _add_acceptance_review(self, review_id: str, passed: bool, criteria: dict[str, Any],
                               findings: str, rectification_items: list[str], by: str) -> None:
        self.acceptance_reviews.append({
            "id": review_id, "passed": passed, "criteria": copy_data(criteria),
            "findings": findings, "rectification_items": list(rectification_items), "by": by})
        self.rectification_items = list(rectification_items)


def _resolve_dependencies(tasks: list[dict[str, Any]]) -> None:
    """Turn dependency names (or ids) into task ids of the same plan; refuse unknown ones and
    cycles."""
    by_name = {t["name"]: t["id"] for t in tasks}
    ids = set(by_name.values())
    for task in tasks:
        resolved = []
        for ref in task["depends_on"]:
            dep = by_name.get(ref, ref)
            require(dep in ids, f"task '{task['name']}' depends on unknown task '{ref}'",
                    field="tasks.depends_on", rule="unknown_dependency")
            require(dep != task["id"], f"task '{task['name']}' depends on itself",
                    field="tasks.depends_on", rule="dependency_cycle")
            if dep not in resolved:
                resolved.append(dep)
        task["depends_on"] = resolved
    graph = {t["id"]: t["depends_on"] for t in tasks}
    state: dict[str, str] = {}  # "visiting" while on the current path, then "done"

    def visit(node: str) -> None:
        if state.get(node) == "done":
            return
        if state.get(node) == "visiting":
            raise ValidationFailed("task dependencies form a cycle", field="tasks.depends_on",
                                   rule="dependency_cycle")
        state[node] = "visiting"
        for child in graph[node]:
            visit(child)
        state[node] = "done"

    for node in graph:
        visit(node)
