"""Department annual budget (預算): compile, review, approve, issue (下達), execute, adjust, close.

SPEC §5. One budget per department and fiscal year: its id is derived from both, so a second
budget for the same pair collides on the event store's (id, version) constraint.

Decisions the SPEC leaves open, made here:
- Actuals may be recorded while the budget is ``issued`` or ``in_execution``; recording one does
  not change the status (the department starts execution explicitly).
- Budget control (warnings, overspend flag/block) applies to ``cost`` and ``expense`` lines.
  Revenue lines track budget/actual/remaining/utilisation too, but earning more than planned is
  neither a warning nor an overspend.
- A warning fires once per threshold per line. When an approved adjustment brings a line's
  utilisation back below a threshold, that threshold re-arms (it fires again if crossed again);
  when an adjustment lowers a line so that a threshold is crossed, the warning fires then.
- ``close_year`` is refused while an adjustment is still open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Literal, NotRequired
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import event
from typing_extensions import TypedDict

from domain.approval import ApprovalChain, ApprovalStage
from domain.shared import (
    DEFAULT_CURRENCY,
    MONEY_PLACES,
    Actor,
    DomainError,
    Duplicate,
    NotPermitted,
    Record,
    Role,
    ValidationFailed,
    command,
    copy_data,
    money,
    require,
    require_reason,
    require_text,
)

BUDGET_ID_NAMESPACE = UUID("369675a8-e891-4562-9ca5-876bdc7ea918")

# The policy document's categories. SPEC §5 calls the list configurable: the service sets it
# from its settings (``OPSLEDGER_BUDGET_CATEGORIES``) at start-up with ``configure_categories``.
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "personnel", "materials", "marketing", "management_admin", "travel", "other",
)
_categories: tuple[str, ...] = DEFAULT_CATEGORIES
LINE_KINDS: tuple[str, ...] = ("revenue", "cost", "expense")
WARNING_THRESHOLDS: tuple[int, ...] = (80, 100)
MONTHS = 12
ZERO = Decimal("0.00")

LineKind = Literal["revenue", "cost", "expense"]
OverspendPolicy = Literal["warn", "block"]


def configure_categories(names: Iterable[str]) -> None:
    """Sets the categories new and changed lines may use (called by the composition root).

    Only commands check a category; events are never re-validated, so lines recorded under a
    category later dropped from the list stay readable and replay unchanged.
    """
    global _categories
    cleaned = tuple(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not cleaned:
        raise ValueError("the budget category list must not be empty")
    _categories = cleaned


def categories() -> tuple[str, ...]:
    """The categories a budget line may use now."""
    return _categories


# --- Inputs, statuses, errors ----------------------------------------------------------------


class BudgetStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    FINANCE_REVIEWED = "finance_reviewed"
    APPROVED = "approved"
    ISSUED = "issued"
    IN_EXECUTION = "in_execution"
    CLOSED = "closed"


class AdjustmentStatus(StrEnum):
    SUBMITTED = "submitted"
    FINANCE_REVIEWED = "finance_reviewed"
    APPROVED = "approved"  # and applied as a new budget version
    RETURNED = "returned"


OPEN_ADJUSTMENT = (AdjustmentStatus.SUBMITTED, AdjustmentStatus.FINANCE_REVIEWED)

# Budgets and their adjustments go through the same two stages (SPEC §5), checked by the one
# approval step of domain/approval.py; the stage statuses are spelled alike in BudgetStatus
# and AdjustmentStatus.
BUDGET_APPROVAL = ApprovalChain((
    ApprovalStage("finance_review", awaits=BudgetStatus.SUBMITTED, roles=(Role.FINANCE,)),
    ApprovalStage("leadership_approval", awaits=BudgetStatus.FINANCE_REVIEWED,
                  roles=(Role.LEADERSHIP,)),
))
LIVE = (BudgetStatus.ISSUED, BudgetStatus.IN_EXECUTION)


class LineInput(TypedDict):
    """A budget line as the department compiles it; ``monthly`` has 12 amounts summing to it."""

    kind: LineKind
    category: str
    name: str
    amount: Decimal
    monthly: NotRequired[list[Decimal]]


class LineChange(TypedDict):
    """One change in an adjustment: no ``line_id`` adds a line; with it, replaces or removes it."""

    line_id: NotRequired[str]
    kind: LineKind
    category: str
    name: str
    amount: Decimal
    monthly: NotRequired[list[Decimal]]
    remove: NotRequired[bool]


class OverspendBlocked(DomainError):
    """Under the ``block`` policy an actual may not take a line past its budget."""

    status = 422
    rule = "overspend_blocked"


# --- Pure figures (also used by the views) ---------------------------------------------------


def utilisation(actual: Decimal, amount: Decimal) -> Decimal | None:
    """Actual as a percentage of the budget, 2 places; None for a zero budget."""
    if amount == 0:
        return None
    return (actual * 100 / amount).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


class LineFigures(TypedDict):
    budget: Decimal
    actual: Decimal
    remaining: Decimal
    utilisation: Decimal | None


def line_figures(line: Mapping[str, Any], line_actuals: Mapping[str, Decimal]) -> LineFigures:
    """Budget, actual, remaining and utilisation % of one line, from the budget's running
    actual per line (``Budget.line_actuals``)."""
    amount: Decimal = line["amount"]
    actual = line_actuals.get(line["id"], ZERO)
    return {"budget": amount, "actual": actual, "remaining": amount - actual,
            "utilisation": utilisation(actual, amount)}


def sum_by_line(actuals: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """Each line's actual: the sum of the amounts recorded on it (a line with an actual is a
    key, whatever the sum)."""
    totals: dict[str, Decimal] = {}
    for a in actuals:
        totals[a["line_id"]] = totals.get(a["line_id"], ZERO) + a["amount"]
    return totals


def is_controlled(line: Mapping[str, Any]) -> bool:
    """Cost and expense lines are under budget control; revenue lines are not."""
    return bool(line["kind"] != "revenue")


def crossed(actual: Decimal, amount: Decimal, threshold: int) -> bool:
    if amount == 0:
        return actual > 0
    return actual * 100 >= amount * threshold


def _validated_line(raw: Mapping[str, Any], at: str, line_id: str) -> dict[str, Any]:
    """A line input checked and normalised; ``at`` prefixes field names ("lines[0].")."""
    kind = raw.get("kind")
    require(kind in LINE_KINDS, f"'{at}kind' must be one of {', '.join(LINE_KINDS)}",
            field=f"{at}kind")
    category = raw.get("category")
    require(category in _categories,
            f"'{at}category' must be one of {', '.join(_categories)}",
            field=f"{at}category", rule="unknown_category")
    name = require_text(raw.get("name"), f"{at}name", max_length=200)
    amount = money(raw.get("amount"), f"{at}amount")
    monthly = raw.get("monthly")
    if monthly is not None:
        field = f"{at}monthly"
        require(isinstance(monthly, list) and len(monthly) == MONTHS,
                f"'{field}' must have {MONTHS} amounts", field=field)
        monthly = [money(m, f"{field}[{i}]") for i, m in enumerate(monthly)]
        total = sum(monthly, Decimal("0.00"))
        require(total == amount, f"'{field}' sums to {total}, not the line amount {amount}",
                field=field, rule="monthly_sum")
    return {"id": line_id, "kind": kind, "category": category, "name": name, "amount": amount,
            "monthly": monthly}


class Budget(Record):
    """A department's annual budget: lines, approval, actuals under control, adjustments.

    The budget holds each line's running actual (``line_actuals``), not the actuals themselves:
    they are its ``ActualRecorded`` events, and the ``budget_actuals`` view. (Version 1 held
    every actual of the year, so its state, snapshots and every command on it grew with the
    year; ``upcast_v1_v2`` turns such a snapshot into the totals.)"""

    RECORD_TYPE = "budget"
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["line_actuals"] = sum_by_line(state.pop("actuals", None) or [])

    @staticmethod
    def id_for(department: str, fiscal_year: int) -> UUID:
        return uuid5(BUDGET_ID_NAMESPACE, f"{department}:{fiscal_year}")

    class Compiled(Record.Created):
        """A department compiled the draft of its annual budget."""

        department: str
        fiscal_year: int
        currency: str
        overspend_policy: str
        lines: list[dict[str, Any]]
        by: str

    def __init__(self, department: str, fiscal_year: int, currency: str,
                 overspend_policy: str, lines: list[dict[str, Any]], by: str) -> None:
        self.department = department
        self.fiscal_year = fiscal_year
        self.currency = currency
        self.overspend_policy = overspend_policy
        self.status = BudgetStatus.DRAFT.value
        self.compiled_by = by
        self.lines: list[dict[str, Any]] = copy_data(lines)
        self.submitted_by: str | None = None
        self.approvals: list[dict[str, str]] = []
        self.returns: list[dict[str, str]] = []
        self.issued_by: str | None = None
        self.execution_started_by: str | None = None
        self.closed_by: str | None = None
        self.close_reason = ""
        # Each line's actual so far, by line id; a line is a key once an actual names it.
        self.line_actuals: dict[str, Decimal] = {}
        self.warned_thresholds: dict[str, list[int]] = {}
        self.version_no = 1
        self.versions: list[dict[str, Any]] = []
        self.adjustments: list[dict[str, Any]] = []

    # --- Compilation (draft) ---

    @classmethod
    @command
    def compile(cls, actor: Actor, *, department: str, fiscal_year: int,
                lines: list[LineInput], currency: str = DEFAULT_CURRENCY,
                overspend_policy: OverspendPolicy = "warn") -> Budget:
        """Compile the department's budget draft for a fiscal year (its dept/deputy manager)."""
        department = require_text(department, "department", max_length=50)
        if not actor.manages(department):
            raise NotPermitted(f"only a manager of '{department}' compiles its budget",
                               rule="compile_budget")
        require(isinstance(fiscal_year, int) and 2000 <= fiscal_year <= 2100,
                "'fiscal_year' must be a year between 2000 and 2100", field="fiscal_year")
        currency = (currency or "").strip().upper()
        require(len(currency) == 3 and currency.isalpha(),
                "'currency' must be a 3-letter ISO code", field="currency")
        require(overspend_policy in ("warn", "block"),
                "'overspend_policy' must be warn or block", field="overspend_policy")
        return cls._create(
            cls.Compiled, id=cls.id_for(department, fiscal_year), department=department,
            fiscal_year=fiscal_year, currency=currency, overspend_policy=overspend_policy,
            lines=cls._validated_lines(lines), by=actor.user_id)

    @command
    def revise_draft(self, actor: Actor, *, lines: list[LineInput]) -> None:
        """Replace the draft's lines (a manager of the department)."""
        self._check_draft_editor("revise_draft", actor)
        self._lines_revised(lines=self._validated_lines(lines), by=actor.user_id)

    @command
    def add_line(self, actor: Actor, *, kind: LineKind, category: str, name: str,
                 amount: Decimal, monthly: list[Decimal] | None = None) -> None:
        """Add a line to the draft (a manager of the department)."""
        self._check_draft_editor("add_line", actor)
        raw = {"kind": kind, "category": category, "name": name, "amount": amount,
               "monthly": monthly}
        self._line_added(line=_validated_line(raw, "", str(uuid4())), by=actor.user_id)

    @command
    def remove_line(self, actor: Actor, *, line_id: str, reason: str) -> None:
        """Remove a line from the draft, with a reason (a manager of the department)."""
        self._check_draft_editor("remove_line", actor)
        self._line(line_id)
        reason = require_reason(reason, "remove a line")
        self._line_removed(line_id=line_id, reason=reason, by=actor.user_id)

    # --- Approval ---

    @command
    def submit(self, actor: Actor) -> None:
        """Submit the draft for finance review (a manager of the department)."""
        self.check_status("submit", BudgetStatus.DRAFT)
        self._check_manager("submit", actor)
        require(bool(self.lines), "a budget needs at least one line", field="lines",
                rule="required")
        self._submitted(by=actor.user_id)

    @command
    def pass_finance_review(self, actor: Actor) -> None:
        """Pass the finance review (finance; not the submitter)."""
        BUDGET_APPROVAL.check_pass("pass_finance_review", "finance_review", actor,
                                   **self._approval_state())
        self._finance_review_passed(by=actor.user_id)

    @command
    def approve(self, actor: Actor) -> None:
        """Approve the reviewed budget (leadership; not the submitter nor the finance reviewer)."""
        BUDGET_APPROVAL.check_pass("approve", "leadership_approval", actor,
                                   **self._approval_state())
        self._approved(lines=copy_data(self.lines), by=actor.user_id)

    @command
    def return_for_revision(self, actor: Actor, *, reason: str) -> None:
        """Return the budget to draft with a reason (the pending stage: finance or leadership)."""
        stage, reason = BUDGET_APPROVAL.check_return("return_for_revision", actor,
                                                     reason=reason, **self._approval_state())
        self._returned_for_revision(stage=stage.name, reason=reason, by=actor.user_id)

    @command
    def issue(self, actor: Actor) -> None:
        """Issue (下達) the approved budget to the department (leadership or finance)."""
        self.check_status("issue", BudgetStatus.APPROVED)
        if not actor.acts_in(self.department, Role.LEADERSHIP, Role.FINANCE):
            raise NotPermitted("only leadership or finance issue a budget", rule="issue_budget")
        self._issued(by=actor.user_id)

    @command
    def start_execution(self, actor: Actor) -> None:
        """Start executing the issued budget (a manager of the department)."""
        self.check_status("start_execution", BudgetStatus.ISSUED)
        self._check_manager("start_execution", actor)
        self._execution_started(by=actor.user_id)

    @command
    def close_year(self, actor: Actor, *, reason: str = "") -> None:
        """Close the budget at year end (finance)."""
        self.check_status("close_year", *LIVE)
        if not actor.acts_in(self.department, Role.FINANCE):
            raise NotPermitted("only finance closes a budget year", rule="close_budget")
        require(self._open_adjustment() is None,
                "an adjustment is still open: approve or return it first",
                field="adjustments", rule="open_adjustment")
        self._year_closed(reason=(reason or "").strip(), by=actor.user_id)

    # --- Execution and control ---

    @command
    def record_actual(self, actor: Actor, *, line_id: str, amount: Decimal, date: dt.date,
                      reference: str, project_id: UUID | None = None,
                      override_reason: str | None = None) -> None:
        """Record an actual on a line (dept members/managers or finance; leadership overrides)."""
        self.check_status("record_actual", *LIVE)
        override = (override_reason or "").strip() or None
        if override and not actor.has_role(Role.LEADERSHIP):
            raise NotPermitted("only leadership may override budget control",
                               rule="override_requires_leadership")
        recorders = (Role.MEMBER, Role.DEPT_MANAGER, Role.DEPUTY_MANAGER, Role.FINANCE)
        if not (actor.acts_in(self.department, *recorders) or override):
            raise NotPermitted(f"only members or managers of '{self.department}' or finance "
                               "record actuals", rule="record_actual")
        line = self._line(line_id)
        amount = money(amount, "amount")
        require(amount > 0, "'amount' must be positive", field="amount")
        require(isinstance(date, dt.date) and date.year == self.fiscal_year,
                f"'date' must fall in fiscal year {self.fiscal_year}", field="date",
                rule="outside_fiscal_year")
        reference = require_text(reference, "reference", max_length=200)
        figures = line_figures(line, self.line_actuals)
        after = figures["actual"] + amount
        overspent = is_controlled(line) and after > line["amount"]
        if overspent and self.overspend_policy == "block" and not override:
            raise OverspendBlocked(
                f"actual of {amount} {self.currency} would exceed budget line '{line['name']}' "
                f"({line_id}): remaining {figures['remaining']} {self.currency}; leadership "
                "may override with a reason", field="amount")
        self._actual_recorded(actual={
            "id": str(uuid4()), "line_id": line_id,
            "kind": "revenue" if line["kind"] == "revenue" else "expense",
            "amount": amount, "date": date, "reference": reference, "project_id": project_id,
            "recorded_by": actor.user_id, "overspent": overspent,
            "override_by": actor.user_id if override else None, "override_reason": override,
        })
        self._raise_warnings(line, after)

    # --- Adjustments ---

    @command
    def request_adjustment(self, actor: Actor, *, changes: list[LineChange],
                           reason: str) -> None:
        """Request changes to the issued budget's lines, with a reason (a department manager)."""
        self.check_status("request_adjustment", *LIVE)
        self._check_manager("request_adjustment", actor)
        if self._open_adjustment() is not None:
            raise Duplicate("an adjustment is already open for this budget",
                            rule="one_open_adjustment")
        reason = require_reason(reason, "request a budget adjustment")
        require(bool(changes), "an adjustment needs at least one change", field="changes",
                rule="required")
        normalised = self._validated_changes(changes)
        self._adjusted_lines(normalised)  # refuses what could not be applied now
        self._adjustment_requested(adjustment={
            "id": str(uuid4()), "status": AdjustmentStatus.SUBMITTED.value,
            "requested_by": actor.user_id, "reason": reason, "changes": normalised,
            "approvals": [], "returns": [], "version_no": None,
        })

    @command
    def pass_adjustment_finance_review(self, actor: Actor, *, adjustment_id: str) -> None:
        """Pass the finance review of an adjustment (finance; not the requester)."""
        self.check_status("pass_adjustment_finance_review", *LIVE)
        adjustment = self._adjustment(adjustment_id)
        BUDGET_APPROVAL.check_pass("pass_adjustment_finance_review", "finance_review", actor,
                                   **self._adjustment_approval_state(adjustment))
        self._adjustment_finance_review_passed(adjustment_id=adjustment_id, by=actor.user_id)

    @command
    def return_adjustment(self, actor: Actor, *, adjustment_id: str, reason: str) -> None:
        """Return an adjustment with a reason (the pending stage: finance or leadership)."""
        self.check_status("return_adjustment", *LIVE)
        adjustment = self._adjustment(adjustment_id)
        stage, reason = BUDGET_APPROVAL.check_return(
            "return_adjustment", actor, reason=reason,
            **self._adjustment_approval_state(adjustment))
        self._adjustment_returned(adjustment_id=adjustment_id, stage=stage.name, reason=reason,
                                  by=actor.user_id)

    @command
    def approve_adjustment(self, actor: Actor, *, adjustment_id: str) -> None:
        """Approve and apply an adjustment as a new version (leadership; not requester/reviewer)."""
        self.check_status("approve_adjustment", *LIVE)
        adjustment = self._adjustment(adjustment_id)
        BUDGET_APPROVAL.check_pass("approve_adjustment", "leadership_approval", actor,
                                   **self._adjustment_approval_state(adjustment))
        lines = self._adjusted_lines(adjustment["changes"])
        # Thresholds re-arm when the new amount brings utilisation back below them.
        warned = {}
        for line in lines:
            actual = line_figures(line, self.line_actuals)["actual"]
            kept = [t for t in self.warned_thresholds.get(line["id"], [])
                    if crossed(actual, line["amount"], t)]
            if kept:
                warned[line["id"]] = kept
        self._adjustment_approved(adjustment_id=adjustment_id, version_no=self.version_no + 1,
                                  lines=lines, warned_thresholds=warned, by=actor.user_id)
        for line in self.lines:
            self._raise_warnings(line, line_figures(line, self.line_actuals)["actual"])

    # --- Checks and computations used by the commands ---

    def _check_manager(self, command: str, actor: Actor) -> None:
        if not actor.manages(self.department):
            raise NotPermitted(f"only a manager of '{self.department}' may {command}",
                               rule="department_manager_only")

    def _check_draft_editor(self, command: str, actor: Actor) -> None:
        self.check_status(command, BudgetStatus.DRAFT)
        self._check_manager(command, actor)

    @staticmethod
    def _validated_lines(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [_validated_line(raw, f"lines[{i}].", str(uuid4())) for i, raw in enumerate(lines)]

    def _line(self, line_id: str) -> dict[str, Any]:
        for line in self.lines:
            if line["id"] == line_id:
                return line
        raise ValidationFailed(f"budget has no line '{line_id}'", field="line_id",
                               rule="unknown_line")

    def _approval_state(self) -> dict[str, Any]:
        return {"status": self.status, "department": self.department,
                "submitted_by": self.submitted_by, "approvals": self.approvals}

    def _adjustment_approval_state(self, adjustment: Mapping[str, Any]) -> dict[str, Any]:
        return {"status": adjustment["status"], "department": self.department,
                "submitted_by": adjustment["requested_by"], "approvals": adjustment["approvals"]}

    def _adjustment(self, adjustment_id: str) -> dict[str, Any]:
        for adjustment in self.adjustments:
            if adjustment["id"] == adjustment_id:
                return adjustment
        raise ValidationFailed(f"budget has no adjustment '{adjustment_id}'",
                               field="adjustment_id", rule="unknown_adjustment")

    def _open_adjustment(self) -> dict[str, Any] | None:
        return next((a for a in self.adjustments if a["status"] in OPEN_ADJUSTMENT), None)

    def _validated_changes(self, changes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each change as {"action": add|change|remove, "line_id", and the line's fields}."""
        normalised: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, raw in enumerate(changes):
            at = f"changes[{i}]."
            line_id = raw.get("line_id")
            if line_id is None:
                require(not raw.get("remove"), f"'{at}remove' needs a 'line_id'",
                        field=f"{at}line_id", rule="required")
                action, line = "add", _validated_line(raw, at, str(uuid4()))
            else:
                require(any(line["id"] == line_id for line in self.lines),
                        f"budget has no line '{line_id}'", field=f"{at}line_id",
                        rule="unknown_line")
                require(line_id not in seen, f"line '{line_id}' is changed twice",
                        field=f"{at}line_id", rule="duplicate_change")
                seen.add(line_id)
                if raw.get("remove"):
                    # A removal records the line as it stands, not as the request spelled it.
                    action, line = "remove", copy_data(self._line(line_id))
                else:
                    action, line = "change", _validated_line(raw, at, line_id)
            line_fields = {k: v for k, v in line.items() if k != "id"}
            normalised.append({"action": action, "line_id": line["id"], **line_fields})
        return normalised

    def _adjusted_lines(self, changes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The lines after applying ``changes``; refuses changes that would orphan actuals."""
        lines = copy_data(self.lines)
        for i, change in enumerate(changes):
            at = f"changes[{i}]."
            line_id = change["line_id"]
            line = {"id": line_id,
                    **{k: v for k, v in change.items() if k not in ("action", "line_id")}}
            if change["action"] == "add":
                lines.append(line)
                continue
            current = self._line(line_id)
            has_actuals = line_id in self.line_actuals
            if change["action"] == "remove":
                require(not has_actuals,
                        f"line '{current['name']}' has actuals and cannot be removed",
                        field=f"{at}remove", rule="line_has_actuals")
                lines = [x for x in lines if x["id"] != line_id]
            else:
                require(not has_actuals or line["kind"] == current["kind"],
                        f"line '{current['name']}' has actuals: its kind cannot change",
                        field=f"{at}kind", rule="line_has_actuals")
                lines = [line if x["id"] == line_id else x for x in lines]
        return lines

    def _raise_warnings(self, line: Mapping[str, Any], actual: Decimal) -> None:
        if not is_controlled(line):
            return
        warned = self.warned_thresholds.get(line["id"], [])
        for threshold in WARNING_THRESHOLDS:
            if threshold not in warned and crossed(actual, line["amount"], threshold):
                self._budget_warning_raised(
                    line_id=line["id"], threshold=threshold,
                    utilisation=utilisation(actual, line["amount"]), actual=actual,
                    amount=line["amount"])

    # --- Events: they only assign state ---

    @event("LinesRevised")
    def _lines_revised(self, lines: list[dict[str, Any]], by: str) -> None:
        self.lines = copy_data(lines)

    @event("LineAdded")
    def _line_added(self, line: dict[str, Any], by: str) -> None:
        self.lines = [*self.lines, copy_data(line)]

    @event("LineRemoved")
    def _line_removed(self, line_id: str, reason: str, by: str) -> None:
        self.lines = [line for line in self.lines if line["id"] != line_id]

    @event("Submitted")
    def _submitted(self, by: str) -> None:
        self.status = BudgetStatus.SUBMITTED.value
        self.submitted_by = by
        self.approvals = []

    @event("FinanceReviewPassed")
    def _finance_review_passed(self, by: str) -> None:
        self.status = BudgetStatus.FINANCE_REVIEWED.value
        self.approvals = [*self.approvals, {"stage": "finance_review", "by": by}]

    @event("Approved")
    def _approved(self, lines: list[dict[str, Any]], by: str) -> None:
        """Carries the approved lines: the approval binds this version (version 1)."""
        self.status = BudgetStatus.APPROVED.value
        self.approvals = [*self.approvals, {"stage": "leadership_approval", "by": by}]
        self.versions = [{"version_no": self.version_no, "lines": copy_data(lines),
                          "adjustment_id": None, "approved_by": by}]

    @event("ReturnedForRevision")
    def _returned_for_revision(self, stage: str, reason: str, by: str) -> None:
        self.status = BudgetStatus.DRAFT.value
        self.approvals = []
        self.returns = [*self.returns, {"stage": stage, "by": by, "reason": reason}]

    @event("Issued")
    def _issued(self, by: str) -> None:
        self.status = BudgetStatus.ISSUED.value
        self.issued_by = by

    @event("ExecutionStarted")
    def _execution_started(self, by: str) -> None:
        self.status = BudgetStatus.IN_EXECUTION.value
        self.execution_started_by = by

    @event("YearClosed")
    def _year_closed(self, reason: str, by: str) -> None:
        self.status = BudgetStatus.CLOSED.value
        self.closed_by = by
        self.close_reason = reason

    @event("ActualRecorded")
    def _actual_recorded(self, actual: dict[str, Any]) -> None:
        line_id = actual["line_id"]
        # A new dict, never changed in place: a projection may still be encoding the last one.
        self.line_actuals = {**self.line_actuals,
                             line_id: self.line_actuals.get(line_id, ZERO) + actual["amount"]}

    @event("BudgetWarningRaised")
    def _budget_warning_raised(self, line_id: str, threshold: int, utilisation: Decimal | None,
                               actual: Decimal, amount: Decimal) -> None:
        """A line's utilisation crossed 80 % or 100 % (once per threshold until re-armed)."""
        warned = {**self.warned_thresholds}
        warned[line_id] = [*warned.get(line_id, []), threshold]
        self.warned_thresholds = warned

    @event("AdjustmentRequested")
    def _adjustment_requested(self, adjustment: dict[str, Any]) -> None:
        self.adjustments = [*self.adjustments, copy_data(adjustment)]

    @event("AdjustmentFinanceReviewPassed")
    def _adjustment_finance_review_passed(self, adjustment_id: str, by: str) -> None:
        self._update_adjustment(adjustment_id, status=AdjustmentStatus.FINANCE_REVIEWED.value,
                                approval={"stage": "finance_review", "by": by})

    @event("AdjustmentReturned")
    def _adjustment_returned(self, adjustment_id: str, stage: str, reason: str, by: str) -> None:
        self._update_adjustment(adjustment_id, status=AdjustmentStatus.RETURNED.value,
                                returned={"stage": stage, "by": by, "reason": reason})

    @event("AdjustmentApproved")
    def _adjustment_approved(self, adjustment_id: str, version_no: int,
                             lines: list[dict[str, Any]], warned_thresholds: dict[str, list[int]],
                             by: str) -> None:
        """Applies the adjustment: its lines become the new budget version."""
        self._update_adjustment(adjustment_id, status=AdjustmentStatus.APPROVED.value,
                                approval={"stage": "leadership_approval", "by": by},
                                version_no=version_no)
        self.version_no = version_no
        self.lines = copy_data(lines)
        self.versions = [*self.versions, {"version_no": version_no, "lines": copy_data(lines),
                                          "adjustment_id": adjustment_id, "approved_by": by}]
        self.warned_thresholds = copy_data(warned_thresholds)

    def _update_adjustment(self, adjustment_id: str, *, status: str,
                           approval: dict[str, str] | None = None,
                           returned: dict[str, str] | None = None,
                           version_no: int | None = None) -> None:
        updated = []
        for adjustment in self.adjustments:
            if adjustment["id"] == adjustment_id:
                adjustment = {**adjustment, "status": status}
                if approval:
                    adjustment["approvals"] = [*adjustment["approvals"], approval]
                if returned:
                    adjustment["returns"] = [*adjustment["returns"], returned]
                if version_no is not None:
                    adjustment["version_no"] = version_no
            updated.append(adjustment)
        self.adjustments = updated
