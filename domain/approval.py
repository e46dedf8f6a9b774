"""The approval step (submit → review stages → approved, or returned with a reason), written once.

SPEC §1 maker–checker: nobody reviews or approves what they submitted, and each approval stage
of one item is decided by a different person. Budgets and budget adjustments use it today;
nothing in it is specific to them, so projects (or any record with a review chain) may adopt it.

The chain only *checks*: the aggregate keeps ``submitted_by`` and ``approvals`` (a list of
``{"stage": name, "by": user_id}``) in its own state and emits its own events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.shared import Actor, InvalidTransition, NotPermitted, different_person, require_reason


@dataclass(frozen=True)
class ApprovalStage:
    """One checker stage, pending while the item's status is ``awaits``, decided by ``roles``."""

    name: str
    awaits: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalChain:
    """Maker–checker stages of one kind of item, in order.

    Whoever decides a stage — pass or return — holds the stage's role for the department, did
    not submit the item, and passed no earlier stage of the same round.
    """

    stages: tuple[ApprovalStage, ...]

    def stage(self, name: str) -> ApprovalStage:
        return {s.name: s for s in self.stages}[name]

    def check_pass(self, command: str, stage_name: str, actor: Actor, *, status: str,
                   department: str, submitted_by: str | None,
                   approvals: Sequence[Mapping[str, str]]) -> ApprovalStage:
        """The stage ``stage_name`` may be passed by ``actor`` now; raises otherwise."""
        stage = self.stage(stage_name)
        if status != stage.awaits:
            raise InvalidTransition(command, status, [stage.awaits])
        self._check_checker(stage, actor, department, submitted_by, approvals)
        return stage

    def check_return(self, command: str, actor: Actor, *, status: str, department: str,
                     submitted_by: str | None, approvals: Sequence[Mapping[str, str]],
                     reason: str | None) -> tuple[ApprovalStage, str]:
        """The pending stage may return the item with ``reason``: (that stage, the reason)."""
        stage = next((s for s in self.stages if s.awaits == status), None)
        if stage is None:
            raise InvalidTransition(command, status, [s.awaits for s in self.stages])
        self._check_checker(stage, actor, department, submitted_by, approvals)
        return stage, require_reason(reason, "return it")

    @staticmethod
    def _check_checker(stage: ApprovalStage, actor: Actor, department: str,
                       submitted_by: str | None, approvals: Sequence[Mapping[str, str]]) -> None:
        if not actor.acts_in(department, *stage.roles):
            raise NotPermitted(f"the {stage.name} stage is decided by {' or '.join(stage.roles)}",
                               rule=f"{stage.name}_role")
        different_person(actor, submitted_by, rule="maker_checker",
                         message="nobody reviews or approves what they submitted")
        for passed in approvals:
            different_person(actor, passed["by"], rule="distinct_approvers",
                             message=f"{actor.user_id} already passed the {passed['stage']} "
                                     "stage; each stage needs a different person")
