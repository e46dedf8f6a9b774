"""Service request (業務受理): a customer's request from intake to the customer's satisfaction.

Flow (SPEC §3): customer service takes the request in (``open``), acknowledges it, resolves a
simple one directly or escalates a complex one to a department; the department records progress
and a result; customer service records the customer's satisfaction (1–5). A score of 2 or less,
or a customer who says they are not satisfied, starts the complaint process: investigation,
resolution, satisfaction asked again; a complaint can be reopened.

```
open ──resolve_directly──▶ resolved ──satisfaction ≥ 3──▶ closed
  │                           ▲    └──satisfaction ≤ 2──▶ complaint_investigation
  └──escalate──▶ escalated ───┘ record_result                │ resolve_complaint
                 (progress, re-escalate)                      ▼
                                 closed ◀──satisfaction ≥ 3── complaint_resolved
      complaint_resolved ──satisfaction ≤ 2 / reopen──▶ complaint_investigation ◀──reopen── closed
```

Times kept for the SLA views (targets and breaches are computed there): ``opened_at`` is the
Opened event's timestamp; ``first_response_at`` is set by the first of acknowledge,
resolve_directly or escalate; ``resolved_at`` by the first resolution; ``closed_at`` by closing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, get_args
from uuid import UUID, uuid4

from eventsourcing.domain import event

from domain.shared import (
    Actor,
    DomainError,
    NotPermitted,
    Record,
    Role,
    command,
    require,
    require_reason,
    require_text,
)


class ServiceRequestStatus(StrEnum):
    OPEN = "open"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    COMPLAINT_INVESTIGATION = "complaint_investigation"
    COMPLAINT_RESOLVED = "complaint_resolved"


Channel = Literal["phone", "email", "online_chat", "visit", "other"]
Category = Literal["inquiry", "application", "complaint", "suggestion"]
Priority = Literal["low", "normal", "high", "urgent"]

# A score at or below this opens (or reopens) a complaint (SPEC §3: "not satisfied (≤ 2)").
UNSATISFIED_SCORE = 2
# The escalated department's people who work the request (SPEC §1: managers "handle escalated
# service requests"; members report progress).
DEPARTMENT_WORKER_ROLES = (Role.MEMBER, Role.DEPT_MANAGER, Role.DEPUTY_MANAGER)
# SPEC §1: members may also open service requests; customer service is the usual intake.
INTAKE_ROLES = (Role.CUSTOMER_SERVICE, Role.MEMBER)

Status = ServiceRequestStatus


def _now() -> datetime:
    return datetime.now(UTC)


def _one_of(value: str, allowed: Any, field: str) -> str:
    require(value in get_args(allowed), f"'{field}' must be one of {', '.join(get_args(allowed))}",
            field=field)
    return value


class ServiceRequest(Record):
    """One customer request, owned by the intake department; refers to its customer by id.

    The customer's existence is the service layer's concern (aggregates refer to each other by id
    only). ``department`` is the intake department, ``escalated_to`` the department working it.
    """

    RECORD_TYPE = "service_request"

    @event("Opened")
    def __init__(self, *, customer_id: UUID, department: str, channel: str, category: str,
                 description: str, priority: str, opened_by: str) -> None:
        self.customer_id = customer_id
        self.department = department
        self.channel = channel
        self.category = category
        self.description = description
        self.priority = priority
        self.opened_by = opened_by
        self.status: str = Status.OPEN.value
        # The Opened event's own timestamp: deterministic on replay.
        self.opened_at: datetime = self.created_on
        self.first_response_at: datetime | None = None
        self.acknowledgements: list[dict[str, Any]] = []
        self.escalated_to: str | None = None
        self.assignee: str | None = None
        self.escalations: list[dict[str, Any]] = []
        self.progress: list[dict[str, Any]] = []
        self.resolution: str | None = None
        self.resolved_via: str | None = None
        self.resolved_by: str | None = None
        self.resolved_at: datetime | None = None
        self.satisfaction_scores: list[dict[str, Any]] = []
        self.complaints: list[dict[str, Any]] = []
        self.complaint_count = 0
        self.closed_at: datetime | None = None

    # -- intake and triage ------------------------------------------------------------------

    @classmethod
    @command
    def open(cls, actor: Actor, *, customer_id: UUID, department: str, channel: Channel,
             category: Category, description: str, priority: Priority = "normal"
             ) -> ServiceRequest:
        """Takes in a customer's request; customer service (or a member) of the intake department may."""  # noqa: E501
        department = require_text(department, "department", max_length=64)
        _refuse_auditor(actor)
        if not actor.acts_in(department, *INTAKE_ROLES):
            raise NotPermitted(
                f"only customer service or members of department '{department}' may open a "
                "service request there", rule="service_request_intake")
        require(isinstance(customer_id, UUID), "'customer_id' must be a UUID",
                field="customer_id")
        return cls(customer_id=customer_id, department=department,
                   channel=_one_of(channel, Channel, "channel"),
                   category=_one_of(category, Category, "category"),
                   description=require_text(description, "description"),
                   priority=_one_of(priority, Priority, "priority"), opened_by=actor.user_id)

    @command
    def acknowledge(self, actor: Actor, *, note: str) -> None:
        """Records that the customer was answered while the request is open; the intake department's customer service may."""  # noqa: E501
        self.check_status("acknowledge", Status.OPEN)
        self._check_customer_service(actor, "acknowledge")
        self._acknowledged(note=require_text(note, "note"), by=actor.user_id, at=_now())

    @event("Acknowledged")
    def _acknowledged(self, note: str, by: str, at: datetime) -> None:
        self._responded(at)
        self.acknowledgements.append({"note": note, "by": by, "at": at})

    @command
    def resolve_directly(self, actor: Actor, *, resolution: str) -> None:
        """Resolves a simple request at intake; the intake department's customer service may."""
        self.check_status("resolve_directly", Status.OPEN)
        self._check_customer_service(actor, "resolve")
        self._resolved_directly(resolution=require_text(resolution, "resolution"),
                                by=actor.user_id, at=_now())

    @event("ResolvedDirectly")
    def _resolved_directly(self, resolution: str, by: str, at: datetime) -> None:
        self._responded(at)
        self._resolve(resolution, "direct", by, at)

    @command
    def escalate(self, actor: Actor, *, to_department: str, note: str,
                 assignee: str | None = None) -> None:
        """Hands a complex request to a department (optionally a named assignee), or re-routes it; the intake department's customer service may."""  # noqa: E501
        self.check_status("escalate", Status.OPEN, Status.ESCALATED)
        self._check_customer_service(actor, "escalate")
        department = require_text(to_department, "to_department", max_length=64)
        person = (assignee or "").strip() or None
        require(person is None or len(person) <= 128, "'assignee' is too long", field="assignee")
        require((department, person) != (self.escalated_to, self.assignee),
                f"the request is already with '{department}'", field="to_department",
                rule="no_change")
        self._escalated(escalation_id=str(uuid4()), to_department=department, assignee=person,
                        note=require_text(note, "note"), by=actor.user_id, at=_now())

    @event("Escalated")
    def _escalated(self, escalation_id: str, to_department: str, assignee: str | None,
                   note: str, by: str, at: datetime) -> None:
        self._responded(at)
        self.status = Status.ESCALATED.value
        self.escalated_to = to_department
        self.assignee = assignee
        self.escalations.append({"id": escalation_id, "to_department": to_department,
                                 "assignee": assignee, "note": note, "by": by, "at": at})

    # -- department work ----------------------------------------------------------------------

    @command
    def record_progress(self, actor: Actor, *, note: str) -> None:
        """Records a progress update on an escalated request; members and managers of the escalated department may."""  # noqa: E501
        self.check_status("record_progress", Status.ESCALATED)
        self._check_department_worker(actor, "record progress")
        self._progress_recorded(progress_id=str(uuid4()), note=require_text(note, "note"),
                                by=actor.user_id, at=_now())

    @event("ProgressRecorded")
    def _progress_recorded(self, progress_id: str, note: str, by: str, at: datetime) -> None:
        self.progress.append({"id": progress_id, "note": note, "by": by, "at": at})

    @command
    def record_result(self, actor: Actor, *, result: str) -> None:
        """Records the department's result, resolving the request; members and managers of the escalated department may."""  # noqa: E501
        self.check_status("record_result", Status.ESCALATED)
        self._check_department_worker(actor, "record the result")
        self._result_recorded(result=require_text(result, "result"), by=actor.user_id,
                              at=_now())

    @event("ResultRecorded")
    def _result_recorded(self, result: str, by: str, at: datetime) -> None:
        self._resolve(result, "department", by, at)

    # -- satisfaction and complaints --------------------------------------------------------

    @command
    def record_satisfaction(self, actor: Actor, *, score: int, unsatisfied: bool = False,
                            note: str = "") -> None:
        """Records the customer's satisfaction (1–5): ≤ 2 or unsatisfied opens or reopens a complaint, otherwise closes; the intake department's customer service may."""  # noqa: E501
        self.check_status("record_satisfaction", Status.RESOLVED, Status.COMPLAINT_RESOLVED)
        self._check_customer_service(actor, "record satisfaction for")
        require(isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5,
                "'score' is a whole number from 1 to 5", field="score", rule="score_range")
        text = (note or "").strip()
        require(len(text) <= 10_000, "'note' is too long", field="note")
        at = _now()
        self._satisfaction_recorded(score=score, unsatisfied=bool(unsatisfied), note=text,
                                    by=actor.user_id, at=at)
        if score > UNSATISFIED_SCORE and not unsatisfied:
            self._closed(by=actor.user_id, at=at)
            return
        why = f"satisfaction {score}" + (" and the customer is not satisfied" if unsatisfied
                                         else "")
        if self.status == Status.RESOLVED:
            self._complaint_opened(complaint_id=str(uuid4()), trigger="satisfaction",
                                   reason=why, by=actor.user_id, at=at)
        else:
            self._complaint_reopened(complaint_id=str(uuid4()), trigger="satisfaction",
                                     reason=why, by=actor.user_id, at=at)

    @event("SatisfactionRecorded")
    def _satisfaction_recorded(self, score: int, unsatisfied: bool, note: str, by: str,
                               at: datetime) -> None:
        self.satisfaction_scores.append({"score": score, "unsatisfied": unsatisfied,
                                         "note": note, "by": by, "at": at})

    @event("Closed")
    def _closed(self, by: str, at: datetime) -> None:
        self.status = Status.CLOSED.value
        self.closed_at = at

    @event("ComplaintOpened")
    def _complaint_opened(self, complaint_id: str, trigger: str, reason: str, by: str,
                          at: datetime) -> None:
        self._start_complaint(complaint_id, trigger, reason, by, at)

    @command
    def reopen_complaint(self, actor: Actor, *, reason: str) -> None:
        """Reopens the complaint process on a closed or complaint-resolved request, with a reason; the intake department's customer service may."""  # noqa: E501
        self.check_status("reopen_complaint", Status.CLOSED, Status.COMPLAINT_RESOLVED)
        self._check_customer_service(actor, "reopen a complaint on")
        text = require_reason(reason, "reopen a complaint")
        self._complaint_reopened(complaint_id=str(uuid4()), trigger="reopen", reason=text,
                                 by=actor.user_id, at=_now())

    @event("ComplaintReopened")
    def _complaint_reopened(self, complaint_id: str, trigger: str, reason: str, by: str,
                            at: datetime) -> None:
        self._start_complaint(complaint_id, trigger, reason, by, at)

    @command
    def investigate_complaint(self, actor: Actor, *, findings: str) -> None:
        """Records investigation findings on the open complaint; the intake department's customer service or the escalated department's managers may."""  # noqa: E501
        self.check_status("investigate_complaint", Status.COMPLAINT_INVESTIGATION)
        self._check_complaint_handler(actor, "investigate")
        self._complaint_investigated(finding_id=str(uuid4()),
                                     findings=require_text(findings, "findings"),
                                     by=actor.user_id, at=_now())

    @event("ComplaintInvestigated")
    def _complaint_investigated(self, finding_id: str, findings: str, by: str,
                                at: datetime) -> None:
        self.complaints[-1]["findings"].append({"id": finding_id, "text": findings, "by": by,
                                                "at": at})

    @command
    def resolve_complaint(self, actor: Actor, *, resolution: str) -> None:
        """Resolves the investigated complaint; the intake department's customer service or the escalated department's managers may."""  # noqa: E501
        self.check_status("resolve_complaint", Status.COMPLAINT_INVESTIGATION)
        self._check_complaint_handler(actor, "resolve")
        if not self.complaints[-1]["findings"]:
            raise DomainError("a complaint is resolved only after its investigation findings "
                              "are recorded", rule="complaint_findings_required")
        self._complaint_resolved(resolution=require_text(resolution, "resolution"),
                                 by=actor.user_id, at=_now())

    @event("ComplaintResolved")
    def _complaint_resolved(self, resolution: str, by: str, at: datetime) -> None:
        self.status = Status.COMPLAINT_RESOLVED.value
        self.complaints[-1].update(resolution=resolution, resolved_by=by, resolved_at=at)

    # -- helpers (state assignment shared by event bodies; guards) ------------------------------

    def _responded(self, at: datetime) -> None:
        if self.first_response_at is None:
            self.first_response_at = at

    def _resolve(self, resolution: str, via: str, by: str, at: datetime) -> None:
        self.status = Status.RESOLVED.value
        self.resolution = resolution
        self.resolved_via = via
        self.resolved_by = by
        self.resolved_at = at

    def _start_complaint(self, complaint_id: str, trigger: str, reason: str, by: str,
                         at: datetime) -> None:
        self.status = Status.COMPLAINT_INVESTIGATION.value
        self.closed_at = None
        self.complaint_count += 1
        self.complaints.append({"id": complaint_id, "trigger": trigger, "reason": reason,
                                "opened_by": by, "opened_at": at, "findings": [],
                                "resolution": None, "resolved_by": None, "resolved_at": None})

    def _check_customer_service(self, actor: Actor, what: str) -> None:
        _refuse_auditor(actor)
        if not actor.acts_in(self.department, Role.CUSTOMER_SERVICE):
            raise NotPermitted(
                f"only customer service of department '{self.department}' may {what} this "
                "service request", rule="intake_customer_service_only")

    def _check_department_worker(self, actor: Actor, what: str) -> None:
        _refuse_auditor(actor)
        if self.escalated_to is None or not actor.acts_in(self.escalated_to,
                                                         *DEPARTMENT_WORKER_ROLES):
            raise NotPermitted(
                f"only members and managers of the escalated department '{self.escalated_to}' "
                f"may {what}", rule="escalated_department_only")

    def _check_complaint_handler(self, actor: Actor, what: str) -> None:
        _refuse_auditor(actor)
        if actor.acts_in(self.department, Role.CUSTOMER_SERVICE):
            return
        if self.escalated_to is not None and actor.manages(self.escalated_to):
            return
        raise NotPermitted(
            f"only customer service of department '{self.department}' or managers of the "
            f"escalated department may {what} the complaint", rule="complaint_handler_only")


def _refuse_auditor(actor: Actor) -> None:
    # Contract §5: an auditor issues no command, even when also holding an operational role.
    if actor.has_role(Role.AUDITOR):
        raise NotPermitted("auditors read the record but issue no command",
                           rule="auditor_read_only")
