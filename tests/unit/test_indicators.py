"""Indicator targets (SPEC §6): given commands, when one command, then events, state or refusal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.indicators import IndicatorTarget, off_target
from domain.shared import Actor, InvalidTransition, NotPermitted, ValidationFailed

ANALYST = Actor("ana", roles=frozenset({"analyst"}))
ANALYST_2 = Actor("ann2", roles=frozenset({"analyst"}))
MANAGER = Actor("mgr", roles=frozenset({"dept_manager"}), departments=frozenset({"ops"}))
AUDITING_ANALYST = Actor("aud", roles=frozenset({"analyst", "auditor"}))


def defined(**extra: Any) -> IndicatorTarget:
    fields: dict[str, Any] = {"department": "ops", "indicator": "satisfaction",
                              "target": Decimal("4.2"), **extra}
    return IndicatorTarget.define(ANALYST, **fields)


def names(record: IndicatorTarget) -> list[str]:
    return [type(e).__name__ for e in record.collect_events()]


def test_analyst_sets_a_target_with_the_indicators_default_direction() -> None:
    target = defined()

    assert names(target) == ["Defined"]
    assert (target.target, target.direction, target.unit) == (Decimal("4.20"), "higher", "score")
    assert target.id == IndicatorTarget.id_for("ops", "satisfaction")


def test_target_id_is_one_per_department_and_indicator() -> None:
    assert defined().id == defined(target=Decimal("3")).id
    assert defined().id != defined(department="sales").id
    assert defined().id != defined(indicator="complaint_rate").id


def test_setting_the_target_again_is_a_new_event_on_the_same_record() -> None:
    target = defined()
    target.collect_events()

    target.revise(ANALYST_2, target=Decimal("4.5"), direction="higher")

    assert names(target) == ["Revised"]
    assert (target.target, target.set_by) == (Decimal("4.50"), "ann2")


def test_only_analysts_set_targets() -> None:
    for actor in (MANAGER, AUDITING_ANALYST):
        with pytest.raises(NotPermitted) as refused:
            IndicatorTarget.define(actor, department="ops", indicator="satisfaction",
                                   target=Decimal("4"))
        assert refused.value.rule == "indicator_target_analyst"


def test_unknown_indicators_and_float_targets_are_refused() -> None:
    with pytest.raises(ValidationFailed) as unknown:
        defined(indicator="happiness")
    with pytest.raises(ValidationFailed, match="float"):
        defined(target=4.2)
    with pytest.raises(ValidationFailed):
        defined(target=Decimal("4.255"))

    assert unknown.value.rule == "unknown_indicator"


def test_withdrawing_needs_a_reason_and_a_revision_reactivates() -> None:
    target = defined()
    with pytest.raises(ValidationFailed):
        target.withdraw(ANALYST, reason="")
    target.withdraw(ANALYST, reason="indicator retired")
    with pytest.raises(InvalidTransition):
        target.withdraw(ANALYST, reason="again")

    target.revise(ANALYST, target=Decimal("4"))

    assert target.status == "active" and target.withdraw_reason is None


def test_off_target_follows_the_better_direction() -> None:
    assert off_target(Decimal("3.9"), Decimal("4"), "higher") is True
    assert off_target(Decimal("4"), Decimal("4"), "higher") is False
    assert off_target(Decimal("12"), Decimal("10"), "lower") is True
    assert off_target(None, Decimal("10"), "lower") is None


def test_replaying_the_events_rebuilds_the_target() -> None:
    target = defined()
    target.revise(ANALYST, target=Decimal("4.4"))
    target.withdraw(ANALYST, reason="retired")
    events = target.collect_events()

    copy = None
    for e in events:
        copy = e.mutate(copy)

    strip = lambda r: {k: v for k, v in vars(r).items() if k != "_pending_events"}  # noqa: E731
    assert strip(copy) == strip(target)
