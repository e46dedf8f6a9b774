"""Risk (風險): identification, assessment, response, emergency plan and early warning (SPEC §4).

Lifecycle: identified → assessed → responding → monitoring → closed; a closed risk can be
reopened. The policy's rules (score levels, suggested strategy, threshold crossing, overdue
actions) are pure module-level functions so views and tests use the very same reading.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID, uuid4

from eventsourcing.domain import event

from domain.shared import (
    Actor,
    Duplicate,
    InvalidTransition,
    NotPermitted,
    Record,
    Role,
    ValidationFailed,
    command,
    money,
    require,
    require_reason,
    require_text,
)

Category = Literal["market", "customer", "product", "operational", "financial",
                   "legal_compliance", "technical", "competition", "data_security"]
Scope = Literal["company", "department", "project", "customer", "budget"]
Level = Literal["low", "medium", "high", "critical"]
Strategy = Literal["avoid", "reduce", "transfer", "accept"]
ActionStatus = Literal["open", "in_progress", "done", "cancelled"]
Direction = Literal["above", "below"]
Outcome = Literal["mitigated", "accepted", "materialised"]

LINKED_SCOPES = frozenset({"project", "customer", "budget"})
FINISHED_ACTION_STATUSES = frozenset({"done", "cancelled"})


class RiskStatus(StrEnum):
    IDENTIFIED = "identified"
    ASSESSED = "assessed"
    RESPONDING = "responding"
    MONITORING = "monitoring"
    CLOSED = "closed"


OPEN_STATUSES = tuple(s.value for s in RiskStatus if s is not RiskStatus.CLOSED)
ASSESSED_STATUSES = (RiskStatus.ASSESSED.value, RiskStatus.RESPONDING.value,
                     RiskStatus.MONITORING.value)
RESPONSE_STATUSES = (RiskStatus.RESPONDING.value, RiskStatus.MONITORING.value)

# Who may do what (SPEC §1): identification is department work, the response is the owner's and
# the managers', indicators are the analysts'. Leadership acts company-wide.
IDENTIFIERS = (Role.MEMBER, Role.DEPT_MANAGER, Role.DEPUTY_MANAGER, Role.LEADERSHIP)
MANAGERS = (Role.DEPT_MANAGER, Role.DEPUTY_MANAGER, Role.LEADERSHIP)
READERS_IN = (Role.MEMBER, Role.DEPT_MANAGER, Role.DEPUTY_MANAGER, Role.LEADERSHIP, Role.ANALYST)


# --- the policy's rules, pure ------------------------------------------------------------------

def score_level(score: int) -> Level:
    """Level of a score (likelihood × impact): low 1–4, medium 5–9, high 10–16, critical 17–25."""
    if not 1 <= score <= 25:
        raise ValueError(f"a risk score is between 1 and 25, not {score}")
    if score <= 4:
        return "low"
    if score <= 9:
        return "medium"
    if score <= 16:
        return "high"
    return "critical"


def suggest_strategy(likelihood: int, impact: int) -> Strategy:
    """The response strategy the policy suggests for a likelihood and an impact (1–5 each)."""
    if not (1 <= likelihood <= 5 and 1 <= impact <= 5):
        raise ValueError(f"likelihood and impact are 1–5, not {likelihood} and {impact}")
    if likelihood >= 4 and impact >= 4:
        return "avoid"
    if likelihood >= 4 and impact == 3:
        return "reduce"
    if likelihood <= 2 and impact >= 4:
        return "transfer"
    if likelihood <= 2 and impact <= 2:
        return "accept"
    return "reduce"


def crosses(direction: str, value: Decimal, threshold: Decimal) -> bool:
    """True when a reading lies beyond its indicator's threshold (strictly)."""
    return value > threshold if direction == "above" else value < threshold


def overdue_actions(risk_actions: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """Action items past their due date and neither done nor cancelled."""
    def due(item: dict[str, Any]) -> date:
        value = item["due_date"]
        return date.fromisoformat(value) if isinstance(value, str) else value

    return [a for a in risk_actions
            if a["status"] not in FINISHED_ACTION_STATUSES and due(a) < today]


# --- input checks ------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def _choice(value: str, allowed: Any, field: str) -> str:
    options = get_args(allowed)
    require(value in options, f"'{field}' must be one of {', '.join(options)}", field=field,
            rule="invalid_choice")
    return value


def _scale(value: int, field: str) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5,
            f"'{field}' is rated 1 to 5", field=field, rule="out_of_range")
    return value


def _decimal(value: Any, field: str) -> Decimal:
    """An exact measurement: Decimal (or a decimal string/int), never a float."""
    if isinstance(value, float | bool):
        raise ValidationFailed(f"'{field}' must be a decimal, not a {type(value).__name__}",
                               field=field)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"'{field}' is not a decimal number", field=field) from None
    require(number.is_finite(), f"'{field}' is not a finite number", field=field)
    return number


def _utc(moment: datetime, field: str) -> datetime:
    require(isinstance(moment, datetime) and moment.tzinfo is not None,
            f"'{field}' needs a time zone", field=field, rule="timezone_required")
    return moment.astimezone(UTC)


def _names(values: list[str], field: str) -> list[str]:
    cleaned = [(v or "").strip() for v in values]
    require(bool(cleaned) and all(cleaned), f"'{field}' needs at least one non-empty entry",
            field=field, rule="required")
    return cleaned


def _refuse_auditor(actor: Actor) -> None:
    if actor.has_role(Role.AUDITOR):
        raise NotPermitted("auditors read the record but issue no command",
                           rule="auditor_read_only")


def _find(items: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    return next(i for i in items if i["id"] == item_id)


class Risk(Record):
    """One identified risk, its assessments, response, emergency plan and early warnings."""

    RECORD_TYPE: ClassVar[str] = "risk"

    # --- identification ------------------------------------------------------------------------

    @classmethod
    @command
    def identify(cls, actor: Actor, *, title: str, description: str, category: Category,
                 scope: Scope, department: str, owner: str, owner_name: str = "",
                 linked_id: UUID | None = None) -> Risk:
        """Identify a risk; a member or manager of the owning department, or leadership."""
        _refuse_auditor(actor)
        department = require_text(department, "department", max_length=64)
        if not actor.acts_in(department, *IDENTIFIERS):
            raise NotPermitted(f"only members and managers of '{department}' or leadership "
                               "identify its risks", rule="member_or_manager_of_department")
        _choice(category, Category, "category")
        _choice(scope, Scope, "scope")
        if scope in LINKED_SCOPES:
            require(linked_id is not None, f"a {scope} risk names the {scope} in 'linked_id'",
                    field="linked_id", rule="linked_id_required")
        else:
            require(linked_id is None, f"a {scope} risk links no record",
                    field="linked_id", rule="linked_id_forbidden")
        return cls(title=require_text(title, "title", max_length=200),
                   description=require_text(description, "description"),
                   category=category, scope=scope, linked_id=linked_id, department=department,
                   owner=require_text(owner, "owner", max_length=200),
                   owner_name=(owner_name or "").strip(), identified_by=actor.user_id)

    @event("Identified")
    def __init__(self, *, title: str, description: str, category: str, scope: str,
                 linked_id: UUID | None, department: str, owner: str, owner_name: str,
                 identified_by: str) -> None:
        self.title = title
        self.description = description
        self.category = category
        self.scope = scope
        self.linked_id = linked_id
        self.project_id = linked_id if scope == "project" else None
        self.department = department
        self.owner = owner
        self.owner_name = owner_name
        self.identified_by = identified_by
        self.status: str = RiskStatus.IDENTIFIED.value
        self.likelihood: int | None = None
        self.impact: int | None = None
        self.score: int | None = None
        self.level: str | None = None
        self.financial_exposure: Decimal | None = None
        self.assessments: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None
        self.responses: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.emergency_plan: dict[str, Any] | None = None
        self.emergency_plans: list[dict[str, Any]] = []
        self.indicators: list[dict[str, Any]] = []
        self.readings: dict[str, list[dict[str, Any]]] = {}
        self.warnings: list[dict[str, Any]] = []
        self.reassessment_due = False
        self.outcome: str | None = None
        self.impact_note = ""
        self.closed_at: datetime | None = None
        self.closures: list[dict[str, Any]] = []

    # --- permissions ---------------------------------------------------------------------------

    def _check_owner_or_manager(self, actor: Actor, what: str) -> None:
        _refuse_auditor(actor)
        if actor.user_id != self.owner and not actor.acts_in(self.department, *MANAGERS):
            raise NotPermitted(f"only the risk owner, a manager of '{self.department}' or "
                               f"leadership may {what}", rule="owner_or_manager")

    # --- assessment ----------------------------------------------------------------------------

    @command
    def assess(self, actor: Actor, *, likelihood: int, impact: int, rationale: str,
               financial_exposure: Decimal | None = None) -> None:
        """Assess or re-assess likelihood and impact; the owner, a manager or leadership."""
        self._check_owner_or_manager(actor, "assess the risk")
        self.check_status("assess", RiskStatus.IDENTIFIED, *ASSESSED_STATUSES)
        score = _scale(likelihood, "likelihood") * _scale(impact, "impact")
        exposure = (None if financial_exposure is None
                    else money(financial_exposure, "financial_exposure"))
        answered: list[str] = []
        status = self.status
        if self.reassessment_due:
            # A re-assessment prompted by a warning puts the response up for a new decision.
            answered = [w["id"] for w in self.warnings
                        if w["acknowledged_at"] is not None and w["reassessment_n"] is None]
            status = RiskStatus.ASSESSED.value
        elif self.status == RiskStatus.IDENTIFIED:
            status = RiskStatus.ASSESSED.value
        self._assessed(n=len(self.assessments) + 1, likelihood=likelihood, impact=impact,
                       score=score, level=score_level(score), financial_exposure=exposure,
                       rationale=require_text(rationale, "rationale"), warning_ids=answered,
                       status=status, by=actor.user_id, at=_now())

    @event("Assessed")
    def _assessed(self, n: int, likelihood: int, impact: int, score: int, level: str,
                  financial_exposure: Decimal | None, rationale: str, warning_ids: list[str],
                  status: str, by: str, at: datetime) -> None:
        self.assessments.append({
            "n": n, "likelihood": likelihood, "impact": impact, "score": score, "level": level,
            "financial_exposure": financial_exposure, "rationale": rationale,
            "warning_ids": list(warning_ids), "by": by, "at": at})
        self.likelihood, self.impact, self.score, self.level = likelihood, impact, score, level
        self.financial_exposure = financial_exposure
        for warning in self.warnings:
            if warning["id"] in warning_ids:
                warning["reassessment_n"] = n
        self.reassessment_due = False
        self.status = status

    # --- response ------------------------------------------------------------------------------

    @command
    def choose_response(self, actor: Actor, *, strategy: Strategy,
                        justification: str = "") -> None:
        """Choose the response strategy (overriding the suggestion needs a justification); owner."""
        self._check_owner_or_manager(actor, "choose the response")
        self.check_status("choose_response", *ASSESSED_STATUSES)
        _choice(strategy, Strategy, "strategy")
        assert self.likelihood is not None and self.impact is not None  # every assessed risk
        suggested = suggest_strategy(self.likelihood, self.impact)
        text = (justification or "").strip()
        if strategy != suggested and not text:
            raise ValidationFailed(f"choosing '{strategy}' instead of the suggested "
                                   f"'{suggested}' needs a justification",
                                   field="justification", rule="justification_required")
        status = (RiskStatus.RESPONDING.value if self.status == RiskStatus.ASSESSED
                  else self.status)
        self._response_chosen(suggested=suggested, strategy=strategy, justification=text,
                              overridden=strategy != suggested, status=status,
                              by=actor.user_id, at=_now())

    @event("ResponseChosen")
    def _response_chosen(self, suggested: str, strategy: str, justification: str,
                         overridden: bool, status: str, by: str, at: datetime) -> None:
        self.response = {"suggested": suggested, "strategy": strategy,
                         "justification": justification, "overridden": overridden,
                         "assessment_n": len(self.assessments), "by": by, "at": at}
        self.responses.append(dict(self.response))
        self.status = status

    @command
    def add_action(self, actor: Actor, *, action: str, owner: str, due_date: date) -> None:
        """Add an action item to the response; the owner, a manager or leadership."""
        self._check_owner_or_manager(actor, "add response actions")
        self.check_status("add_action", *RESPONSE_STATUSES)
        require(isinstance(due_date, date) and not isinstance(due_date, datetime),
                "'due_date' is a date", field="due_date")
        self._action_added(action_id=str(uuid4()), action=require_text(action, "action"),
                           owner=require_text(owner, "owner", max_length=200),
                           due_date=due_date, by=actor.user_id, at=_now())

    @event("ActionAdded")
    def _action_added(self, action_id: str, action: str, owner: str, due_date: date, by: str,
                      at: datetime) -> None:
        self.actions.append({"id": action_id, "action": action, "owner": owner,
                             "due_date": due_date, "status": "open", "percent": 0,
                             "added_by": by, "added_at": at, "updates": []})

    @command
    def update_action(self, actor: Actor, *, action_id: UUID, status: ActionStatus,
                      progress_note: str = "", percent: int | None = None) -> None:
        """Report an action item's progress; its owner, the risk owner, a manager or leadership."""
        _refuse_auditor(actor)
        item = next((a for a in self.actions if a["id"] == str(action_id)), None)
        if item is None or actor.user_id != item["owner"]:
            self._check_owner_or_manager(actor, "update response actions")
        self.check_status("update_action", *RESPONSE_STATUSES)
        require(item is not None, f"no action item {action_id} on this risk",
                field="action_id", rule="not_found")
        assert item is not None
        if item["status"] in FINISHED_ACTION_STATUSES:
            raise InvalidTransition("update_action", item["status"], ("open", "in_progress"))
        _choice(status, ActionStatus, "status")
        note = (progress_note or "").strip()
        if status == "cancelled":
            require(bool(note), "a progress note is required to cancel an action",
                    field="progress_note", rule="reason_required")
        if percent is not None:
            require(isinstance(percent, int) and not isinstance(percent, bool)
                    and 0 <= percent <= 100, "'percent' is 0 to 100", field="percent",
                    rule="out_of_range")
        if status == "done":
            require(percent in (None, 100), "a done action is 100 percent done",
                    field="percent", rule="out_of_range")
            percent = 100
        self._action_updated(action_id=item["id"], status=status,
                             percent=item["percent"] if percent is None else percent,
                             note=note, by=actor.user_id, at=_now())

    @event("ActionUpdated")
    def _action_updated(self, action_id: str, status: str, percent: int, note: str, by: str,
                        at: datetime) -> None:
        item = _find(self.actions, action_id)
        item["status"], item["percent"] = status, percent
        item["updates"].append({"status": status, "percent": percent, "note": note, "by": by,
                                "at": at})

    # --- emergency plan ------------------------------------------------------------------------

    @command
    def set_emergency_plan(self, actor: Actor, *, trigger_conditions: str, steps: list[str],
                           responsible: list[str]) -> None:
        """Set a new version of the emergency plan; the owner, a manager or leadership."""
        self._check_owner_or_manager(actor, "set the emergency plan")
        self.check_status("set_emergency_plan", *OPEN_STATUSES)
        self._emergency_plan_set(version=len(self.emergency_plans) + 1,
                                 trigger_conditions=require_text(trigger_conditions,
                                                                 "trigger_conditions"),
                                 steps=_names(steps, "steps"),
                                 responsible=_names(responsible, "responsible"),
                                 by=actor.user_id, at=_now())

    @event("EmergencyPlanSet")
    def _emergency_plan_set(self, version: int, trigger_conditions: str, steps: list[str],
                            responsible: list[str], by: str, at: datetime) -> None:
        plan = {"version": version, "trigger_conditions": trigger_conditions,
                "steps": list(steps), "responsible": list(responsible), "by": by, "at": at}
        self.emergency_plans.append(plan)
        self.emergency_plan = {**plan, "steps": list(steps), "responsible": list(responsible)}

    # --- early warning -------------------------------------------------------------------------

    @command
    def define_indicator(self, actor: Actor, *, name: str, unit: str, threshold: Decimal,
                         direction: Direction) -> None:
        """Define a warning indicator with its threshold; analysts only."""
        _refuse_auditor(actor)
        if not actor.has_role(Role.ANALYST):
            raise NotPermitted("only analysts define warning indicators", rule="analyst_only")
        self.check_status("define_indicator", *OPEN_STATUSES)
        name = require_text(name, "name", max_length=200)
        if any(i["name"].casefold() == name.casefold() for i in self.indicators):
            raise Duplicate(f"this risk already has an indicator '{name}'", field="name",
                            rule="duplicate_indicator")
        self._indicator_defined(indicator_id=str(uuid4()), name=name,
                                unit=(unit or "").strip(),
                                threshold=_decimal(threshold, "threshold"),
                                direction=_choice(direction, Direction, "direction"),
                                by=actor.user_id, at=_now())

    @event("IndicatorDefined")
    def _indicator_defined(self, indicator_id: str, name: str, unit: str, threshold: Decimal,
                           direction: str, by: str, at: datetime) -> None:
        self.indicators.append({"id": indicator_id, "name": name, "unit": unit,
                                "threshold": threshold, "direction": direction,
                                "breached": False, "last_observed_at": None,
                                "defined_by": by, "defined_at": at})
        self.readings[indicator_id] = []

    @command
    def record_reading(self, actor: Actor, *, indicator_id: UUID, value: Decimal,
                       observed_at: datetime) -> None:
        """Record an indicator reading (a crossing raises a warning); owner, department, analyst."""
        _refuse_auditor(actor)
        if actor.user_id != self.owner and not actor.acts_in(self.department, *READERS_IN):
            raise NotPermitted(f"only the risk owner, people of '{self.department}', "
                               "leadership or analysts record readings",
                               rule="owner_member_or_analyst")
        self.check_status("record_reading", *OPEN_STATUSES)
        indicator = next((i for i in self.indicators if i["id"] == str(indicator_id)), None)
        require(indicator is not None, f"no indicator {indicator_id} on this risk",
                field="indicator_id", rule="not_found")
        assert indicator is not None
        value = _decimal(value, "value")
        observed_at = _utc(observed_at, "observed_at")
        outside = crosses(indicator["direction"], value, indicator["threshold"])
        # A back-filled reading older than the latest one is kept but does not move the alarm.
        last = indicator["last_observed_at"]
        late = last is not None and observed_at < last
        now = _now()
        self._reading_recorded(indicator_id=indicator["id"], reading_id=str(uuid4()),
                               value=value, observed_at=observed_at, outside=outside, late=late,
                               by=actor.user_id, at=now)
        if late or outside == indicator["breached"]:
            return
        if outside:
            self._warning_raised(warning_id=str(uuid4()), indicator_id=indicator["id"],
                                 indicator=indicator["name"], value=value,
                                 threshold=indicator["threshold"],
                                 direction=indicator["direction"], observed_at=observed_at,
                                 raised_at=now)
        else:
            self._indicator_normalised(indicator_id=indicator["id"], value=value,
                                       observed_at=observed_at)

    @event("ReadingRecorded")
    def _reading_recorded(self, indicator_id: str, reading_id: str, value: Decimal,
                          observed_at: datetime, outside: bool, late: bool, by: str,
                          at: datetime) -> None:
        self.readings[indicator_id].append({"id": reading_id, "value": value,
                                            "observed_at": observed_at, "outside": outside,
                                            "late": late, "by": by, "at": at})
        if not late:
            _find(self.indicators, indicator_id)["last_observed_at"] = observed_at

    @event("WarningRaised")
    def _warning_raised(self, warning_id: str, indicator_id: str, indicator: str,
                        value: Decimal, threshold: Decimal, direction: str,
                        observed_at: datetime, raised_at: datetime) -> None:
        _find(self.indicators, indicator_id)["breached"] = True
        self.warnings.append({"id": warning_id, "indicator_id": indicator_id,
                              "indicator": indicator, "value": value, "threshold": threshold,
                              "direction": direction, "observed_at": observed_at,
                              "raised_at": raised_at, "acknowledged_by": None,
                              "acknowledged_at": None, "note": "", "reassessment_n": None})

    @event("IndicatorNormalised")
    def _indicator_normalised(self, indicator_id: str, value: Decimal,
                              observed_at: datetime) -> None:
        _find(self.indicators, indicator_id)["breached"] = False

    @command
    def acknowledge_warning(self, actor: Actor, *, warning_id: UUID, note: str = "") -> None:
        """Acknowledge a warning, which makes a re-assessment due; the owner or a manager."""
        self._check_owner_or_manager(actor, "acknowledge warnings")
        self.check_status("acknowledge_warning", *OPEN_STATUSES)
        warning = next((w for w in self.warnings if w["id"] == str(warning_id)), None)
        require(warning is not None, f"no warning {warning_id} on this risk",
                field="warning_id", rule="not_found")
        assert warning is not None
        if warning["acknowledged_at"] is not None:
            raise InvalidTransition("acknowledge_warning", "acknowledged", ("raised",))
        self._warning_acknowledged(warning_id=warning["id"], note=(note or "").strip(),
                                   by=actor.user_id, at=_now())

    @event("WarningAcknowledged")
    def _warning_acknowledged(self, warning_id: str, note: str, by: str, at: datetime) -> None:
        warning = _find(self.warnings, warning_id)
        warning["acknowledged_by"], warning["acknowledged_at"] = by, at
        warning["note"] = note
        self.reassessment_due = True

    # --- lifecycle -----------------------------------------------------------------------------

    @command
    def start_monitoring(self, actor: Actor) -> None:
        """Move a risk whose response is chosen into monitoring; the owner or a manager."""
        self._check_owner_or_manager(actor, "start monitoring")
        self.check_status("start_monitoring", RiskStatus.RESPONDING)
        self._monitoring_started(by=actor.user_id, at=_now())

    @event("MonitoringStarted")
    def _monitoring_started(self, by: str, at: datetime) -> None:
        self.status = RiskStatus.MONITORING.value

    @command
    def close(self, actor: Actor, *, outcome: Outcome, impact_note: str = "") -> None:
        """Close the risk as mitigated, accepted or materialised (with an impact note)."""
        self._check_owner_or_manager(actor, "close the risk")
        self.check_status("close", *OPEN_STATUSES)
        _choice(outcome, Outcome, "outcome")
        note = (impact_note or "").strip()
        if outcome == "materialised":
            require(bool(note), "a materialised risk is closed with an impact note",
                    field="impact_note", rule="impact_note_required")
        self._closed(outcome=outcome, impact_note=note, from_status=self.status,
                     by=actor.user_id, at=_now())

    @event("Closed")
    def _closed(self, outcome: str, impact_note: str, from_status: str, by: str,
                at: datetime) -> None:
        self.closures.append({"outcome": outcome, "impact_note": impact_note,
                              "from_status": from_status, "by": by, "at": at,
                              "reopened_by": None, "reopened_at": None, "reopen_reason": None})
        self.outcome, self.impact_note, self.closed_at = outcome, impact_note, at
        self.status = RiskStatus.CLOSED.value

    @command
    def reopen(self, actor: Actor, *, reason: str) -> None:
        """Reopen a closed risk (back to assessed, or identified if never assessed)."""
        self._check_owner_or_manager(actor, "reopen the risk")
        self.check_status("reopen", RiskStatus.CLOSED)
        status = RiskStatus.ASSESSED if self.assessments else RiskStatus.IDENTIFIED
        self._reopened(reason=require_reason(reason, "reopen a risk"), status=status.value,
                       by=actor.user_id, at=_now())

    @event("Reopened")
    def _reopened(self, reason: str, status: str, by: str, at: datetime) -> None:
        self.closures[-1].update(reopened_by=by, reopened_at=at, reopen_reason=reason)
        self.outcome, self.impact_note, self.closed_at = None, "", None
        self.status = status
