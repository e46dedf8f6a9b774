"""Budget (SPEC §5): given commands, when one command, then events, state or a refusal."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from domain.budget import Budget, LineInput, OverspendBlocked, line_figures
from domain.shared import Actor, Duplicate, InvalidTransition, NotPermitted, ValidationFailed


def person(user_id: str, *roles: str, departments: tuple[str, ...] = ("ops",)) -> Actor:
    return Actor(user_id, roles=frozenset(roles), departments=frozenset(departments))


MANAGER = person("mgr", "dept_manager")
DEPUTY = person("dep", "deputy_manager")
MEMBER = person("mem", "member")
FINANCE = person("fin", "finance", departments=())
FINANCE_2 = person("fin2", "finance", departments=())
LEADER = person("lead", "leadership", departments=())
LEADER_2 = person("lead2", "leadership", departments=())
FINANCE_AND_LEADER = person("both", "finance", "leadership", departments=())
AUDITOR = person("aud", "auditor")
ANALYST = person("ana", "analyst")
SALES_MANAGER = person("smgr", "dept_manager", departments=("sales",))

D = Decimal
MONTHLY_1200 = [D("100")] * 12


def travel(amount: str = "1000", **extra: Any) -> LineInput:
    return {"kind": "expense", "category": "travel", "name": "Travel", "amount": D(amount),
            **extra}  # type: ignore[typeddict-item]


def compiled(*lines: LineInput, policy: str = "warn") -> Budget:
    budget = Budget.compile(MANAGER, department="ops", fiscal_year=2025,
                            lines=list(lines) or [travel()],
                            overspend_policy=policy)  # type: ignore[arg-type]
    return budget


def submitted(*lines: LineInput, policy: str = "warn") -> Budget:
    budget = compiled(*lines, policy=policy)
    budget.submit(MANAGER)
    return budget


def approved(*lines: LineInput, policy: str = "warn") -> Budget:
    budget = submitted(*lines, policy=policy)
    budget.pass_finance_review(FINANCE)
    budget.approve(LEADER)
    return budget


def in_execution(*lines: LineInput, policy: str = "warn") -> Budget:
    budget = approved(*lines, policy=policy)
    budget.issue(LEADER)
    budget.start_execution(MANAGER)
    return budget


def spend(budget: Budget, amount: str, actor: Actor = MEMBER, line: int = 0,
          **extra: Any) -> None:
    budget.record_actual(actor, line_id=budget.lines[line]["id"], amount=D(amount),
                         date=date(2025, 3, 1), reference="INV-1", **extra)


def actuals(budget: Budget) -> list[dict[str, Any]]:
    """The actuals recorded on ``budget`` by its pending events (the budget keeps totals)."""
    return [e.actual for e in budget.pending_events if type(e).__name__ == "ActualRecorded"]


def names(budget: Budget) -> list[str]:
    return [type(e).__name__ for e in budget.collect_events()]


def with_open_adjustment(budget: Budget, amount: str = "2000") -> str:
    line = budget.lines[0]
    budget.request_adjustment(MANAGER, reason="more travel", changes=[
        {"line_id": line["id"], "kind": "expense", "category": "travel", "name": "Travel",
         "amount": D(amount)}])
    adjustment_id: str = budget.adjustments[-1]["id"]
    return adjustment_id


# --- Compilation ---

def test_department_manager_compiles_a_draft_with_monthly_allocation() -> None:
    budget = Budget.compile(DEPUTY, department="ops", fiscal_year=2025,
                            lines=[travel("1200", monthly=MONTHLY_1200)])

    assert names(budget) == ["Compiled"]
    assert budget.status == "draft"
    assert budget.currency == "CNY"
    assert budget.lines[0]["monthly"] == [D("100.00")] * 12
    assert budget.lines[0]["amount"] == D("1200.00")


def test_monthly_allocation_must_sum_to_the_line_amount() -> None:
    with pytest.raises(ValidationFailed) as refused:
        compiled(travel("1000"), travel("1200", monthly=[D("100")] * 11 + [D("99")]))

    assert refused.value.field == "lines[1].monthly"


def test_monthly_allocation_needs_twelve_months() -> None:
    with pytest.raises(ValidationFailed) as refused:
        compiled(travel("1100", monthly=[D("100")] * 11))

    assert refused.value.field == "lines[0].monthly"


def test_budget_id_is_derived_from_department_and_fiscal_year() -> None:
    first = compiled()
    second = compiled()

    assert first.id == second.id == Budget.id_for("ops", 2025)
    assert Budget.id_for("ops", 2026) != first.id
    assert Budget.id_for("sales", 2025) != first.id


def test_category_must_be_in_the_configured_list() -> None:
    with pytest.raises(ValidationFailed) as refused:
        compiled(travel(category="yachts"))

    assert refused.value.field == "lines[0].category"


def test_float_amounts_are_refused() -> None:
    line = {"kind": "expense", "category": "travel", "name": "Travel", "amount": 1000.0}

    with pytest.raises(ValidationFailed, match="float") as refused:
        compiled(line)  # type: ignore[arg-type]

    assert refused.value.field == "lines[0].amount"


def test_float_actuals_are_refused() -> None:
    budget = in_execution()

    with pytest.raises(ValidationFailed, match="float"):
        budget.record_actual(MEMBER, line_id=budget.lines[0]["id"], amount=12.5,  # type: ignore[arg-type]
                             date=date(2025, 3, 1), reference="INV-1")


def test_only_managers_of_the_department_compile_its_budget() -> None:
    for actor in (MEMBER, SALES_MANAGER, FINANCE, LEADER, AUDITOR, ANALYST):
        with pytest.raises(NotPermitted):
            Budget.compile(actor, department="ops", fiscal_year=2025, lines=[travel()])


def test_lines_are_edited_in_draft_with_stable_ids() -> None:
    budget = compiled(travel(), travel("500", name="Extra"))
    budget.collect_events()
    kept = budget.lines[0]["id"]

    budget.add_line(MANAGER, kind="cost", category="materials", name="Paper", amount=D("80"))
    budget.remove_line(MANAGER, line_id=budget.lines[1]["id"], reason="not needed")

    assert names(budget) == ["LineAdded", "LineRemoved"]
    assert [line["name"] for line in budget.lines] == ["Travel", "Paper"]
    assert budget.lines[0]["id"] == kept


def test_removing_a_draft_line_needs_a_reason() -> None:
    budget = compiled()

    with pytest.raises(ValidationFailed) as refused:
        budget.remove_line(MANAGER, line_id=budget.lines[0]["id"], reason=" ")

    assert refused.value.rule == "reason_required"


def test_revise_draft_replaces_the_lines() -> None:
    budget = compiled()
    budget.collect_events()

    budget.revise_draft(MANAGER, lines=[travel("300", name="Less travel")])

    assert names(budget) == ["LinesRevised"]
    assert [(line["name"], line["amount"]) for line in budget.lines] == [
        ("Less travel", D("300.00"))]


def test_lines_cannot_be_edited_once_submitted() -> None:
    budget = submitted()

    with pytest.raises(InvalidTransition, match="'submitted'"):
        budget.add_line(MANAGER, kind="cost", category="other", name="X", amount=D("1"))


# --- Approval workflow ---

def test_full_workflow_from_draft_to_closed() -> None:
    budget = compiled()
    budget.collect_events()

    budget.submit(MANAGER)
    budget.pass_finance_review(FINANCE)
    budget.approve(LEADER)
    budget.issue(FINANCE)
    budget.start_execution(DEPUTY)
    budget.close_year(FINANCE_2, reason="year end")

    assert names(budget) == ["Submitted", "FinanceReviewPassed", "Approved", "Issued",
                             "ExecutionStarted", "YearClosed"]
    assert budget.status == "closed"
    assert budget.submitted_by == "mgr"
    assert budget.approvals == [{"stage": "finance_review", "by": "fin"},
                                {"stage": "leadership_approval", "by": "lead"}]
    assert budget.versions[0]["version_no"] == 1


def test_submitter_cannot_review_own_budget() -> None:
    manager_in_finance = person("mf", "dept_manager", "finance")
    budget = compiled()
    budget.submit(manager_in_finance)

    with pytest.raises(NotPermitted) as refused:
        budget.pass_finance_review(manager_in_finance)

    assert refused.value.rule == "maker_checker"


def test_submitter_cannot_approve_own_budget() -> None:
    manager_in_leadership = person("ml", "dept_manager", "leadership")
    budget = compiled()
    budget.submit(manager_in_leadership)
    budget.pass_finance_review(FINANCE)

    with pytest.raises(NotPermitted) as refused:
        budget.approve(manager_in_leadership)

    assert refused.value.rule == "maker_checker"


def test_finance_reviewer_cannot_also_approve() -> None:
    budget = submitted()
    budget.pass_finance_review(FINANCE_AND_LEADER)

    with pytest.raises(NotPermitted) as refused:
        budget.approve(FINANCE_AND_LEADER)

    assert refused.value.rule == "distinct_approvers"


def test_only_finance_passes_the_finance_review() -> None:
    budget = submitted()

    for actor in (LEADER, DEPUTY, AUDITOR, ANALYST):
        with pytest.raises(NotPermitted):
            budget.pass_finance_review(actor)


def test_only_leadership_approves() -> None:
    budget = submitted()
    budget.pass_finance_review(FINANCE)

    for actor in (FINANCE_2, DEPUTY, AUDITOR, ANALYST):
        with pytest.raises(NotPermitted):
            budget.approve(actor)


def test_approval_before_finance_review_names_the_state() -> None:
    budget = submitted()

    with pytest.raises(InvalidTransition, match="'submitted'") as refused:
        budget.approve(LEADER)

    assert refused.value.current_state == "submitted"


def test_finance_returns_a_budget_to_draft_with_a_reason() -> None:
    budget = submitted()
    budget.collect_events()

    budget.return_for_revision(FINANCE, reason="travel too high")

    assert names(budget) == ["ReturnedForRevision"]
    assert budget.status == "draft"
    assert budget.returns == [{"stage": "finance_review", "by": "fin",
                               "reason": "travel too high"}]


def test_leadership_returns_a_reviewed_budget_and_the_next_round_starts_fresh() -> None:
    budget = submitted()
    budget.pass_finance_review(FINANCE)
    budget.return_for_revision(LEADER, reason="rebalance")

    budget.submit(MANAGER)

    assert budget.status == "submitted"
    assert budget.approvals == []
    assert budget.returns[0]["stage"] == "leadership_approval"


def test_returning_needs_a_reason() -> None:
    budget = submitted()

    with pytest.raises(ValidationFailed) as refused:
        budget.return_for_revision(FINANCE, reason="")

    assert refused.value.rule == "reason_required"


def test_auditor_can_issue_no_budget_command() -> None:
    budget = submitted()

    with pytest.raises(NotPermitted):
        budget.return_for_revision(AUDITOR, reason="looks odd")
    with pytest.raises(NotPermitted):
        Budget.compile(AUDITOR, department="ops", fiscal_year=2026, lines=[travel()])


def test_only_department_managers_submit() -> None:
    budget = compiled()

    for actor in (MEMBER, SALES_MANAGER, FINANCE, AUDITOR):
        with pytest.raises(NotPermitted):
            budget.submit(actor)


def test_issue_requires_approval_and_leadership_or_finance() -> None:
    reviewed = submitted()
    reviewed.pass_finance_review(FINANCE)
    with pytest.raises(InvalidTransition, match="'finance_reviewed'"):
        reviewed.issue(LEADER)

    budget = approved()
    for actor in (MANAGER, AUDITOR, ANALYST):
        with pytest.raises(NotPermitted):
            budget.issue(actor)


def test_only_finance_closes_the_year() -> None:
    budget = in_execution()

    for actor in (MANAGER, LEADER, AUDITOR):
        with pytest.raises(NotPermitted):
            budget.close_year(actor)


def test_closed_budget_takes_no_actuals() -> None:
    budget = in_execution()
    budget.close_year(FINANCE)

    with pytest.raises(InvalidTransition, match="'closed'"):
        spend(budget, "10")


# --- Actuals and control ---

def test_actuals_update_the_line_figures() -> None:
    budget = in_execution()
    project_id = uuid4()
    budget.collect_events()

    spend(budget, "250.50", project_id=project_id)

    [actual] = actuals(budget)
    assert names(budget) == ["ActualRecorded"]
    assert (actual["kind"], actual["project_id"], actual["overspent"]) == (
        "expense", project_id, False)
    assert line_figures(budget.lines[0], budget.line_actuals) == {
        "budget": D("1000.00"), "actual": D("250.50"), "remaining": D("749.50"),
        "utilisation": D("25.05")}


def test_actuals_may_be_recorded_once_issued_without_changing_status() -> None:
    budget = approved()
    budget.issue(LEADER)

    spend(budget, "10", actor=FINANCE)

    assert budget.status == "issued"


def test_actuals_are_refused_before_issue() -> None:
    budget = approved()

    with pytest.raises(InvalidTransition, match="'approved'"):
        spend(budget, "10")


def test_only_department_people_or_finance_record_actuals() -> None:
    budget = in_execution()

    for actor in (person("other", "member", departments=("sales",)), LEADER, AUDITOR, ANALYST):
        with pytest.raises(NotPermitted):
            spend(budget, "10", actor=actor)


def test_actual_date_must_fall_in_the_fiscal_year() -> None:
    budget = in_execution()

    with pytest.raises(ValidationFailed) as refused:
        budget.record_actual(MEMBER, line_id=budget.lines[0]["id"], amount=D("1"),
                             date=date(2024, 12, 31), reference="INV-1")

    assert refused.value.field == "date"


def test_warning_fires_once_when_utilisation_crosses_80_percent() -> None:
    budget = in_execution()
    spend(budget, "700")
    budget.collect_events()

    spend(budget, "100")
    spend(budget, "50")

    events = budget.collect_events()
    assert [type(e).__name__ for e in events] == [
        "ActualRecorded", "BudgetWarningRaised", "ActualRecorded"]
    warning = events[1]
    assert (warning.threshold, warning.utilisation, warning.actual,  # type: ignore[attr-defined]
            warning.amount) == (80, D("80.00"), D("800.00"), D("1000.00"))  # type: ignore[attr-defined]


def test_warning_fires_once_when_utilisation_reaches_100_percent() -> None:
    budget = in_execution()
    spend(budget, "900")
    budget.collect_events()

    spend(budget, "100")
    spend(budget, "1")

    events = budget.collect_events()
    assert [type(e).__name__ for e in events] == [
        "ActualRecorded", "BudgetWarningRaised", "ActualRecorded"]
    assert events[1].threshold == 100  # type: ignore[attr-defined]
    assert budget.warned_thresholds == {budget.lines[0]["id"]: [80, 100]}


def test_one_actual_crossing_both_thresholds_raises_both_warnings() -> None:
    budget = in_execution()
    budget.collect_events()

    spend(budget, "1000")

    assert names(budget) == ["ActualRecorded", "BudgetWarningRaised", "BudgetWarningRaised"]


def test_revenue_lines_raise_no_warnings_and_are_never_overspent() -> None:
    budget = in_execution({"kind": "revenue", "category": "other", "name": "Fees",
                           "amount": D("100")}, policy="block")
    budget.collect_events()

    spend(budget, "150")

    [actual] = actuals(budget)
    assert names(budget) == ["ActualRecorded"]
    assert (actual["kind"], actual["overspent"]) == ("revenue", False)


def test_warn_policy_records_and_flags_an_overspend() -> None:
    budget = in_execution(policy="warn")
    spend(budget, "990")

    spend(budget, "20")

    assert actuals(budget)[-1]["overspent"] is True
    assert line_figures(budget.lines[0], budget.line_actuals)["remaining"] == D("-10.00")


def test_block_policy_refuses_an_overspend_naming_line_and_remaining() -> None:
    budget = in_execution(policy="block")
    spend(budget, "990")
    budget.collect_events()

    with pytest.raises(OverspendBlocked) as refused:
        spend(budget, "20")

    assert refused.value.status == 422
    assert refused.value.rule == "overspend_blocked"
    assert "Travel" in refused.value.message
    assert "10.00" in refused.value.message
    assert names(budget) == []


def test_leadership_overrides_the_block_with_a_reason() -> None:
    budget = in_execution(policy="block")
    spend(budget, "990")

    spend(budget, "20", actor=LEADER, override_reason="urgent client visit")

    actual = actuals(budget)[-1]
    assert (actual["overspent"], actual["override_by"], actual["override_reason"]) == (
        True, "lead", "urgent client visit")


def test_non_leadership_override_is_refused() -> None:
    budget = in_execution(policy="block")

    with pytest.raises(NotPermitted) as refused:
        spend(budget, "2000", actor=MANAGER, override_reason="please")

    assert refused.value.rule == "override_requires_leadership"


# --- Adjustments ---

def test_adjustment_flow_applies_a_new_version_and_keeps_the_original() -> None:
    budget = in_execution()
    spend(budget, "900")
    original = [dict(line) for line in budget.lines]
    adjustment_id = with_open_adjustment(budget, amount="2000")
    budget.collect_events()

    budget.pass_adjustment_finance_review(FINANCE, adjustment_id=adjustment_id)
    budget.approve_adjustment(LEADER, adjustment_id=adjustment_id)

    assert names(budget) == ["AdjustmentFinanceReviewPassed", "AdjustmentApproved"]
    assert budget.version_no == 2
    assert budget.lines[0]["id"] == original[0]["id"]
    assert budget.lines[0]["amount"] == D("2000.00")
    assert budget.versions[0]["lines"] == original
    assert [v["version_no"] for v in budget.versions] == [1, 2]
    assert budget.adjustments[0]["status"] == "approved"
    assert line_figures(budget.lines[0], budget.line_actuals)["actual"] == D("900.00")


def test_adjustment_can_add_and_remove_lines() -> None:
    budget = in_execution(travel(), travel("300", name="Unused"))
    unused = budget.lines[1]
    budget.request_adjustment(MANAGER, reason="restructure", changes=[
        {"line_id": unused["id"], "kind": "expense", "category": "travel", "name": "Unused",
         "amount": D("0"), "remove": True},
        {"kind": "cost", "category": "materials", "name": "Kits", "amount": D("300")}])
    adjustment_id = budget.adjustments[0]["id"]
    budget.pass_adjustment_finance_review(FINANCE, adjustment_id=adjustment_id)

    budget.approve_adjustment(LEADER, adjustment_id=adjustment_id)

    assert [line["name"] for line in budget.lines] == ["Travel", "Kits"]


def test_a_line_with_actuals_cannot_be_removed() -> None:
    budget = in_execution()
    spend(budget, "10")
    line = budget.lines[0]

    with pytest.raises(ValidationFailed) as refused:
        budget.request_adjustment(MANAGER, reason="drop it", changes=[
            {"line_id": line["id"], "kind": "expense", "category": "travel", "name": "Travel",
             "amount": D("0"), "remove": True}])

    assert (refused.value.field, refused.value.rule) == ("changes[0].remove",
                                                         "line_has_actuals")


def test_removal_is_refused_at_approval_when_actuals_arrived_meanwhile() -> None:
    budget = in_execution(travel(), travel("300", name="Spare"))
    spare = budget.lines[1]
    budget.request_adjustment(MANAGER, reason="drop spare", changes=[
        {"line_id": spare["id"], "kind": "expense", "category": "travel", "name": "Spare",
         "amount": D("0"), "remove": True}])
    adjustment_id = budget.adjustments[0]["id"]
    budget.pass_adjustment_finance_review(FINANCE, adjustment_id=adjustment_id)
    spend(budget, "10", line=1)

    with pytest.raises(ValidationFailed) as refused:
        budget.approve_adjustment(LEADER, adjustment_id=adjustment_id)

    assert refused.value.rule == "line_has_actuals"
    assert budget.version_no == 1


def test_only_one_adjustment_is_open_at_a_time() -> None:
    budget = in_execution()
    with_open_adjustment(budget)

    with pytest.raises(Duplicate):
        with_open_adjustment(budget, amount="3000")


def test_adjustment_needs_a_reason() -> None:
    budget = in_execution()

    with pytest.raises(ValidationFailed) as refused:
        budget.request_adjustment(MANAGER, reason="", changes=[travel("10")])  # type: ignore[list-item]

    assert refused.value.rule == "reason_required"


def test_adjustments_only_on_issued_budgets() -> None:
    budget = approved()

    with pytest.raises(InvalidTransition, match="'approved'"):
        with_open_adjustment(budget)


def test_requester_cannot_review_own_adjustment() -> None:
    manager_in_finance = person("mf", "dept_manager", "finance")
    budget = in_execution()
    budget.request_adjustment(manager_in_finance, reason="more", changes=[travel("10")])  # type: ignore[list-item]

    with pytest.raises(NotPermitted) as refused:
        budget.pass_adjustment_finance_review(manager_in_finance,
                                              adjustment_id=budget.adjustments[0]["id"])

    assert refused.value.rule == "maker_checker"


def test_adjustment_finance_reviewer_cannot_approve_it() -> None:
    budget = in_execution()
    adjustment_id = with_open_adjustment(budget)
    budget.pass_adjustment_finance_review(FINANCE_AND_LEADER, adjustment_id=adjustment_id)

    with pytest.raises(NotPermitted) as refused:
        budget.approve_adjustment(FINANCE_AND_LEADER, adjustment_id=adjustment_id)

    assert refused.value.rule == "distinct_approvers"


def test_returned_adjustment_is_kept_and_frees_the_slot() -> None:
    budget = in_execution()
    adjustment_id = with_open_adjustment(budget)
    budget.collect_events()

    budget.return_adjustment(FINANCE, adjustment_id=adjustment_id, reason="justify it")

    assert names(budget) == ["AdjustmentReturned"]
    assert budget.adjustments[0]["status"] == "returned"
    assert budget.adjustments[0]["returns"] == [
        {"stage": "finance_review", "by": "fin", "reason": "justify it"}]
    with_open_adjustment(budget)
    assert [a["status"] for a in budget.adjustments] == ["returned", "submitted"]


def test_returning_an_adjustment_needs_a_reason() -> None:
    budget = in_execution()
    adjustment_id = with_open_adjustment(budget)

    with pytest.raises(ValidationFailed):
        budget.return_adjustment(FINANCE, adjustment_id=adjustment_id, reason="  ")


def test_approving_an_unreviewed_adjustment_names_its_state() -> None:
    budget = in_execution()
    adjustment_id = with_open_adjustment(budget)

    with pytest.raises(InvalidTransition, match="'submitted'"):
        budget.approve_adjustment(LEADER, adjustment_id=adjustment_id)


def test_raising_a_line_re_arms_its_warnings() -> None:
    budget = in_execution()
    spend(budget, "850")
    adjustment_id = with_open_adjustment(budget, amount="2000")
    budget.pass_adjustment_finance_review(FINANCE, adjustment_id=adjustment_id)
    budget.approve_adjustment(LEADER, adjustment_id=adjustment_id)
    assert budget.warned_thresholds == {}
    budget.collect_events()

    spend(budget, "750")

    assert names(budget) == ["ActualRecorded", "BudgetWarningRaised"]


def test_lowering_a_line_past_a_threshold_raises_the_warning() -> None:
    budget = in_execution()
    spend(budget, "500")
    adjustment_id = with_open_adjustment(budget, amount="600")
    budget.pass_adjustment_finance_review(FINANCE, adjustment_id=adjustment_id)
    budget.collect_events()

    budget.approve_adjustment(LEADER_2, adjustment_id=adjustment_id)

    assert names(budget) == ["AdjustmentApproved", "BudgetWarningRaised"]


def test_year_cannot_close_with_an_open_adjustment() -> None:
    budget = in_execution()
    with_open_adjustment(budget)

    with pytest.raises(ValidationFailed) as refused:
        budget.close_year(FINANCE)

    assert refused.value.rule == "open_adjustment"


# --- Replay ---

def test_replaying_the_events_rebuilds_equal_state() -> None:
    budget = in_execution(travel("1200", monthly=MONTHLY_1200), policy="block")
    events = list(budget.collect_events())
    spend(budget, "1000", project_id=uuid4())
    adjustment_id = with_open_adjustment(budget, amount="900")
    budget.pass_adjustment_finance_review(FINANCE, adjustment_id=adjustment_id)
    budget.approve_adjustment(LEADER, adjustment_id=adjustment_id)
    spend(budget, "50", actor=LEADER, override_reason="contract signed")
    events += budget.collect_events()

    copy = None
    for e in events:
        copy = e.mutate(copy)

    def state(b: Any) -> dict[str, Any]:
        return {k: v for k, v in vars(b).items() if k != "_pending_events"}

    assert state(copy) == state(budget)


# --- Configurable categories ---

def test_configured_categories_replace_the_default_list() -> None:
    from domain import budget as module

    module.configure_categories(["personnel", "it_services"])
    try:
        budget = compiled(travel(category="it_services"))
        with pytest.raises(ValidationFailed) as refused:
            compiled(travel(category="travel"))
    finally:
        module.configure_categories(module.DEFAULT_CATEGORIES)

    assert budget.lines[0]["category"] == "it_services"
    assert refused.value.rule == "unknown_category"


def test_the_category_list_cannot_be_empty() -> None:
    from domain import budget as module

    with pytest.raises(ValueError):
        module.configure_categories([" "])

    assert module.categories() == module.DEFAULT_CATEGORIES


def test_a_blocked_actual_names_the_line_and_its_remaining_amount() -> None:
    budget = in_execution(travel("1000"), policy="block")
    spend(budget, "900")

    with pytest.raises(OverspendBlocked) as refused:
        spend(budget, "100.01")

    assert "'Travel'" in refused.value.message and "remaining 100.00 CNY" in refused.value.message
    assert refused.value.status == 422


def test_the_budget_keeps_each_lines_running_actual() -> None:
    budget = in_execution(travel(), travel("300", name="Taxis"))
    taxis = budget.lines[1]["id"]
    spend(budget, "100")
    spend(budget, "0.50", line=1)
    spend(budget, "200")

    assert budget.line_actuals == {budget.lines[0]["id"]: D("300.00"), taxis: D("0.50")}


def test_a_version_1_snapshot_reads_as_the_totals_of_its_actuals() -> None:
    """Budgets of class version 1 held every actual; their snapshots are upcast to totals."""
    from eventsourcing.domain import Snapshot

    budget = in_execution(travel(), travel("300", name="Taxis"))
    spend(budget, "100")
    spend(budget, "50")
    snapshot = Snapshot.take(budget)
    line, taxis = (x["id"] for x in budget.lines)
    state = {k: v for k, v in snapshot.state.items() if k not in ("line_actuals", "class_version")}
    state["actuals"] = [{"id": "a", "line_id": line, "amount": D("100.00")},
                        {"id": "b", "line_id": taxis, "amount": D("0.00")},
                        {"id": "c", "line_id": line, "amount": D("50.00")}]
    old = Snapshot(originator_id=snapshot.originator_id,
                   originator_version=snapshot.originator_version,
                   timestamp=snapshot.timestamp, topic=snapshot.topic, state=state)

    restored = old.mutate(None)

    assert restored.line_actuals == {line: D("150.00"), taxis: D("0.00")}
    assert not hasattr(restored, "actuals")
    with pytest.raises(ValidationFailed) as refused:  # taxis had an actual, of 0.00
        restored.request_adjustment(MANAGER, reason="restructure",
                                    changes=[{"line_id": taxis, "remove": True}])
    assert refused.value.rule == "line_has_actuals"
