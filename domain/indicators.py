"""Operations indicators (運營指標, SPEC §6): the indicator catalogue and analysts' targets.

The indicators themselves are read-only views computed from other records' events; what is
recorded here is the one thing people decide — a target per department and indicator, and
whether higher or lower is better. One target record per department and indicator: its id is
derived from both, so setting it again is a new event on the same record (``revise``), and a
second ``define`` for the pair collides (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.shared import (
    Actor,
    NotPermitted,
    Record,
    Role,
    ValidationFailed,
    command,
    require,
    require_reason,
    require_text,
)

TARGET_ID_NAMESPACE = UUID("0d6f9c52-7a43-4f0e-9b53-8f2b1c7e4a90")
TARGET_PLACES = Decimal("0.01")

Direction = Literal["higher", "lower"]
IndicatorName = Literal[
    "satisfaction", "complaint_rate", "first_response_hours", "handling_hours",
    "on_time_milestone_rate", "budget_utilisation", "open_high_risks",
]


@dataclass(frozen=True)
class Indicator:
    """One indicator of SPEC §6: its unit and which direction is better by default."""

    name: str
    unit: str
    better: Direction
    description: str


INDICATORS: dict[str, Indicator] = {i.name: i for i in (
    Indicator("satisfaction", "score", "higher",
              "average customer satisfaction (1–5) of the scores recorded in the month"),
    Indicator("complaint_rate", "percent", "lower",
              "complaint processes opened in the month (an unsatisfied customer), per 100 "
              "requests opened in the month"),
    Indicator("first_response_hours", "hours", "lower",
              "median hours from opening to first response, of first responses in the month"),
    Indicator("handling_hours", "hours", "lower",
              "median hours from opening to first resolution, of those in the month"),
    Indicator("on_time_milestone_rate", "percent", "higher",
              "milestones due in the month completed by their due date, per 100 milestones "
              "due (open ones count once their due date has passed)"),
    Indicator("budget_utilisation", "percent", "lower",
              "cost and expense actuals up to the month's end against the year's "
              "cost and expense budget"),
    Indicator("open_high_risks", "count", "lower",
              "risks at level high or critical open at the month's end"),
)}


class TargetStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


def off_target(value: Decimal | None, target: Decimal | None, direction: str) -> bool | None:
    """True when ``value`` misses ``target`` in the better ``direction``; None if either is
    unknown."""
    if value is None or target is None:
        return None
    return value < target if direction == "higher" else value > target


def _target_value(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValidationFailed("'target' must be a decimal string, not a float", field="target")
    try:
        target = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed("'target' is not a decimal number", field="target") from None
    require(target.is_finite() and target >= 0, "'target' must be a number ≥ 0",
            field="target")
    require(target == target.quantize(TARGET_PLACES),
            "'target' has more than two decimal places", field="target")
    return target.quantize(TARGET_PLACES)


def _check_analyst(actor: Actor, department: str) -> None:
    # SPEC §1: analysts "define warning indicators and thresholds" — the one command the
    # read-only analyst role issues. Auditors issue none, whatever else they hold.
    if actor.has_role(Role.AUDITOR) or not actor.acts_in(department, Role.ANALYST):
        raise NotPermitted("only analysts set indicator targets", rule="indicator_target_analyst")


class IndicatorTarget(Record):
    """An analyst's target for one operations indicator of one department."""

    RECORD_TYPE = "indicator_target"

    @staticmethod
    def id_for(department: str, indicator: str) -> UUID:
        return uuid5(TARGET_ID_NAMESPACE, f"{department}:{indicator}")

    class Defined(Record.Created):
        """An analyst set the department's first target for an indicator."""

        department: str
        indicator: str
        target: Decimal
        direction: str
        by: str

    def __init__(self, department: str, indicator: str, target: Decimal, direction: str,
                 by: str) -> None:
        self.department = department
        self.indicator = indicator
        self.unit = INDICATORS[indicator].unit
        self.target = target
        self.direction = direction
        self.status = TargetStatus.ACTIVE.value
        self.set_by = by
        self.withdraw_reason: str | None = None

    @classmethod
    @command
    def define(cls, actor: Actor, *, department: str, indicator: IndicatorName, target: Decimal,
               direction: Direction | None = None) -> IndicatorTarget:
        """Set a department's target for an indicator (analysts); direction defaults to the
        indicator's."""
        department = require_text(department, "department", max_length=50)
        _check_analyst(actor, department)
        require(indicator in INDICATORS, f"'indicator' must be one of {', '.join(INDICATORS)}",
                field="indicator", rule="unknown_indicator")
        return cls._create(cls.Defined, id=cls.id_for(department, indicator),
                           department=department, indicator=indicator,
                           target=_target_value(target),
                           direction=cls._direction(indicator, direction), by=actor.user_id)

    @command
    def revise(self, actor: Actor, *, target: Decimal, direction: Direction | None = None) -> None:
        """Set the target (and direction) again, re-activating a withdrawn one (analysts)."""
        _check_analyst(actor, self.department)
        self._revised(target=_target_value(target),
                      direction=self._direction(self.indicator, direction or self.direction),
                      by=actor.user_id)

    @command
    def withdraw(self, actor: Actor, *, reason: str) -> None:
        """Withdraw the target, with a reason: the indicator is no longer flagged (analysts)."""
        self.check_status("withdraw", TargetStatus.ACTIVE)
        _check_analyst(actor, self.department)
        self._withdrawn(reason=require_reason(reason, "withdraw a target"), by=actor.user_id)

    @staticmethod
    def _direction(indicator: str, direction: str | None) -> str:
        chosen = direction or INDICATORS[indicator].better
        require(chosen in ("higher", "lower"), "'direction' must be higher or lower",
                field="direction")
        return chosen

    @event("Revised")
    def _revised(self, target: Decimal, direction: str, by: str) -> None:
        """An analyst set the target again (it is active from now on)."""
        self.target = target
        self.direction = direction
        self.status = TargetStatus.ACTIVE.value
        self.set_by = by
        self.withdraw_reason = None

    @event("Withdrawn")
    def _withdrawn(self, reason: str, by: str) -> None:
        """An analyst withdrew the target: the indicator is no longer flagged."""
        self.status = TargetStatus.WITHDRAWN.value
        self.set_by = by
        self.withdraw_reason = reason
