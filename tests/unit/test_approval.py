"""The approval step (domain/approval.py): maker–checker stages, written once (SPEC §1)."""

from __future__ import annotations

import pytest

from domain.approval import ApprovalChain, ApprovalStage
from domain.shared import Actor, InvalidTransition, NotPermitted, ValidationFailed

CHAIN = ApprovalChain((
    ApprovalStage("review", awaits="submitted", roles=("finance",)),
    ApprovalStage("approval", awaits="reviewed", roles=("leadership",)),
))


def person(user_id: str, *roles: str) -> Actor:
    return Actor(user_id, roles=frozenset(roles), departments=frozenset({"ops"}))


def state(status: str, submitted_by: str = "maker", approvals: list[dict[str, str]] | None = None
          ) -> dict[str, object]:
    return {"status": status, "department": "ops", "submitted_by": submitted_by,
            "approvals": approvals or []}


def test_a_stage_is_passed_by_its_role_while_it_is_pending() -> None:
    stage = CHAIN.check_pass("pass", "review", person("fin", "finance"), **state("submitted"))

    assert stage.name == "review"


def test_a_stage_is_not_passed_out_of_turn() -> None:
    with pytest.raises(InvalidTransition, match="'submitted'"):
        CHAIN.check_pass("approve", "approval", person("boss", "leadership"),
                         **state("submitted"))


def test_a_stage_needs_its_role() -> None:
    with pytest.raises(NotPermitted) as refused:
        CHAIN.check_pass("pass", "review", person("boss", "leadership"), **state("submitted"))

    assert refused.value.rule == "review_role"


def test_the_maker_cannot_check_their_own_item() -> None:
    with pytest.raises(NotPermitted) as refused:
        CHAIN.check_pass("pass", "review", person("maker", "finance"), **state("submitted"))

    assert refused.value.rule == "maker_checker"


def test_each_stage_needs_a_different_person() -> None:
    both = person("both", "finance", "leadership")
    passed = [{"stage": "review", "by": "both"}]

    with pytest.raises(NotPermitted) as refused:
        CHAIN.check_pass("approve", "approval", both, **state("reviewed", approvals=passed))

    assert refused.value.rule == "distinct_approvers"


def test_the_pending_stage_returns_with_a_reason() -> None:
    stage, reason = CHAIN.check_return("return", person("boss", "leadership"),
                                       reason=" too high ", **state("reviewed"))

    assert (stage.name, reason) == ("approval", "too high")


def test_a_return_needs_a_reason() -> None:
    with pytest.raises(ValidationFailed) as refused:
        CHAIN.check_return("return", person("fin", "finance"), reason="",
                           **state("submitted"))

    assert refused.value.rule == "reason_required"


def test_nothing_pending_nothing_to_return() -> None:
    with pytest.raises(InvalidTransition):
        CHAIN.check_return("return", person("fin", "finance"), reason="x", **state("draft"))
