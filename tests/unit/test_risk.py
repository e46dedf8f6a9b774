"""Risk (SPEC §4): given commands, when one command, then events, state or a refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.risk import Risk, overdue_actions, score_level, suggest_strategy
from domain.shared import Actor, InvalidTransition, NotPermitted, ValidationFailed


def person(user_id: str, *roles: str, departments: tuple[str, ...] = ()) -> Actor:
    return Actor(user_id=user_id, name=user_id, roles=frozenset(roles),
                 departments=frozenset(departments))


OWNER = person("owner", "member", departments=("ops",))
MEMBER = person("member", "member", departments=("ops",))
MANAGER = person("manager", "dept_manager", departments=("ops",))
DEPUTY = person("deputy", "deputy_manager", departments=("ops",))
OTHER_MANAGER = person("other-manager", "dept_manager", departments=("sales",))
OTHER_MEMBER = person("other-member", "member", departments=("sales",))
LEADER = person("leader", "leadership")
ANALYST = person("analyst", "analyst")
AUDITOR = person("auditor", "auditor")
FINANCE = person("finance", "finance", departments=("ops",))
FINANCE_MEMBER = person("finance-member", "finance", "member", departments=("ops",))
SERVICE = person("service", "customer_service", departments=("ops",))
AUDITING_MANAGER = person("auditing-manager", "auditor", "dept_manager", departments=("ops",))

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


# --- helpers: build "given" state by calling commands -----------------------------------------

def identified(actor: Actor = OWNER, **overrides: Any) -> Risk:
    fields: dict[str, Any] = dict(title="Key supplier insolvency",
                                  description="Our only packaging supplier is in distress",
                                  category="operational", scope="department", department="ops",
                                  owner=OWNER.user_id, owner_name="Olive Owner")
    fields.update(overrides)
    return Risk.identify(actor, **fields)


def assessed(likelihood: int = 3, impact: int = 3) -> Risk:
    risk = identified()
    risk.assess(OWNER, likelihood=likelihood, impact=impact, rationale="first look")
    return risk


def responding(likelihood: int = 3, impact: int = 3) -> Risk:
    risk = assessed(likelihood, impact)
    risk.choose_response(OWNER, strategy=suggest_strategy(likelihood, impact))
    return risk


def monitoring() -> Risk:
    risk = responding()
    risk.start_monitoring(OWNER)
    return risk


def closed(**assessment: int) -> Risk:
    risk = assessed(**assessment)
    risk.close(OWNER, outcome="mitigated")
    return risk


def with_indicator(direction: str = "above", threshold: str = "100") -> tuple[Risk, UUID]:
    risk = monitoring()
    risk.define_indicator(ANALYST, name="Days payable outstanding", unit="days",
                          threshold=Decimal(threshold), direction=direction)
    return risk, UUID(risk.indicators[-1]["id"])


def read(risk: Risk, indicator_id: UUID, value: str, minutes: int, actor: Actor = MEMBER) -> None:
    risk.record_reading(actor, indicator_id=indicator_id, value=Decimal(value),
                        observed_at=T0 + timedelta(minutes=minutes))


def with_warning() -> tuple[Risk, UUID]:
    risk, indicator_id = with_indicator()
    read(risk, indicator_id, "120", 1)
    return risk, UUID(risk.warnings[-1]["id"])


def names(risk: Risk) -> list[str]:
    return [type(e).__name__ for e in risk.collect_events()]


# --- the policy's tables ----------------------------------------------------------------------

SUGGESTED = {  # likelihood -> impact 1..5, as SPEC §4 states the rule
    1: ["accept", "accept", "reduce", "transfer", "transfer"],
    2: ["accept", "accept", "reduce", "transfer", "transfer"],
    3: ["reduce", "reduce", "reduce", "reduce", "reduce"],
    4: ["reduce", "reduce", "reduce", "avoid", "avoid"],
    5: ["reduce", "reduce", "reduce", "avoid", "avoid"],
}


@pytest.mark.parametrize("likelihood", range(1, 6))
@pytest.mark.parametrize("impact", range(1, 6))
def test_suggested_strategy_follows_the_policy_in_every_cell(likelihood: int,
                                                             impact: int) -> None:
    assert suggest_strategy(likelihood, impact) == SUGGESTED[likelihood][impact - 1]


@pytest.mark.parametrize(("score", "level"), [
    (1, "low"), (4, "low"), (5, "medium"), (9, "medium"), (10, "high"), (16, "high"),
    (17, "critical"), (25, "critical")])
def test_score_level_boundaries(score: int, level: str) -> None:
    assert score_level(score) == level


@pytest.mark.parametrize("likelihood", range(1, 6))
@pytest.mark.parametrize("impact", range(1, 6))
def test_assessment_scores_likelihood_times_impact_in_every_cell(likelihood: int,
                                                                 impact: int) -> None:
    risk = assessed(likelihood, impact)
    assert (risk.score, risk.level) == (likelihood * impact, score_level(likelihood * impact))


@pytest.mark.parametrize("score", [0, 26])
def test_score_level_refuses_scores_off_the_grid(score: int) -> None:
    with pytest.raises(ValueError):
        score_level(score)


# --- identification ---------------------------------------------------------------------------

def test_member_identifies_a_risk_in_their_department() -> None:
    risk = identified(MEMBER)
    assert names(risk) == ["Identified"]
    assert (risk.status, risk.identified_by, risk.department, risk.owner) == (
        "identified", "member", "ops", "owner")


@pytest.mark.parametrize("actor", [MANAGER, DEPUTY, LEADER, FINANCE_MEMBER])
def test_managers_leadership_and_members_in_scope_may_identify(actor: Actor) -> None:
    assert identified(actor).identified_by == actor.user_id


@pytest.mark.parametrize("actor", [OTHER_MEMBER, OTHER_MANAGER, ANALYST, AUDITOR, FINANCE,
                                   SERVICE, AUDITING_MANAGER])
def test_others_cannot_identify_a_departments_risk(actor: Actor) -> None:
    with pytest.raises(NotPermitted):
        identified(actor)


def test_project_risk_links_the_project() -> None:
    project = uuid4()
    risk = identified(scope="project", linked_id=project)
    assert (risk.linked_id, risk.project_id) == (project, project)


@pytest.mark.parametrize("scope", ["project", "customer", "budget"])
def test_linked_scope_needs_linked_id(scope: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        identified(scope=scope)
    assert refused.value.rule == "linked_id_required"


@pytest.mark.parametrize("scope", ["company", "department"])
def test_company_or_department_scope_links_nothing(scope: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        identified(scope=scope, linked_id=uuid4())
    assert refused.value.rule == "linked_id_forbidden"


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        identified(category="weather")


# --- assessment -------------------------------------------------------------------------------

def test_first_assessment_moves_identified_to_assessed() -> None:
    risk = identified()
    risk.collect_events()
    risk.assess(OWNER, likelihood=4, impact=5, rationale="supplier in arrears",
                financial_exposure=Decimal("250000.00"))
    assert names(risk) == ["Assessed"]
    assert (risk.status, risk.score, risk.level, risk.financial_exposure) == (
        "assessed", 20, "critical", Decimal("250000.00"))


def test_every_reassessment_is_kept() -> None:
    risk = monitoring()
    risk.collect_events()
    risk.assess(MANAGER, likelihood=5, impact=2, rationale="second supplier found")
    assert names(risk) == ["Assessed"]
    assert [(a["n"], a["score"], a["by"]) for a in risk.assessments] == [
        (1, 9, "owner"), (2, 10, "manager")]
    assert (risk.likelihood, risk.impact, risk.level, risk.status) == (5, 2, "high",
                                                                       "monitoring")


@pytest.mark.parametrize(("likelihood", "impact"), [(0, 3), (3, 6), (True, 3)])
def test_likelihood_and_impact_are_rated_one_to_five(likelihood: int, impact: int) -> None:
    risk = identified()
    with pytest.raises(ValidationFailed) as refused:
        risk.assess(OWNER, likelihood=likelihood, impact=impact, rationale="x")
    assert refused.value.rule == "out_of_range"


def test_financial_exposure_is_money_not_float() -> None:
    risk = identified()
    with pytest.raises(ValidationFailed):
        risk.assess(OWNER, likelihood=2, impact=2, rationale="x",
                    financial_exposure=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("actor", [OWNER, MANAGER, DEPUTY, LEADER])
def test_owner_managers_and_leadership_may_assess(actor: Actor) -> None:
    risk = identified()
    risk.assess(actor, likelihood=2, impact=2, rationale="x")
    assert risk.assessments[-1]["by"] == actor.user_id


@pytest.mark.parametrize("actor", [MEMBER, OTHER_MANAGER, ANALYST, AUDITOR, FINANCE, SERVICE,
                                   AUDITING_MANAGER])
def test_others_cannot_assess(actor: Actor) -> None:
    risk = identified()
    with pytest.raises(NotPermitted):
        risk.assess(actor, likelihood=2, impact=2, rationale="x")


# --- response ---------------------------------------------------------------------------------

def test_choosing_the_suggested_strategy_needs_no_justification() -> None:
    risk = assessed(likelihood=5, impact=5)
    risk.collect_events()
    risk.choose_response(OWNER, strategy="avoid")
    assert names(risk) == ["ResponseChosen"]
    assert risk.status == "responding"
    assert risk.response is not None
    assert (risk.response["suggested"], risk.response["strategy"],
            risk.response["overridden"]) == ("avoid", "avoid", False)


def test_overriding_the_suggestion_needs_a_justification() -> None:
    risk = assessed(likelihood=5, impact=5)
    with pytest.raises(ValidationFailed) as refused:
        risk.choose_response(OWNER, strategy="accept", justification="  ")
    assert (refused.value.rule, refused.value.field) == ("justification_required",
                                                         "justification")


def test_override_with_justification_is_recorded() -> None:
    risk = assessed(likelihood=5, impact=5)
    risk.collect_events()
    risk.choose_response(MANAGER, strategy="transfer", justification="insured since May")
    assert names(risk) == ["ResponseChosen"]
    assert risk.response is not None
    assert (risk.response["suggested"], risk.response["strategy"],
            risk.response["justification"], risk.response["overridden"]) == (
        "avoid", "transfer", "insured since May", True)


def test_action_items_are_added_and_their_progress_tracked() -> None:
    risk = responding()
    risk.add_action(OWNER, action="Qualify a second supplier", owner="member",
                    due_date=date(2025, 4, 30))
    action_id = UUID(risk.actions[0]["id"])
    risk.collect_events()
    risk.update_action(MEMBER, action_id=action_id, status="in_progress",
                       progress_note="two quotes in", percent=40)
    assert names(risk) == ["ActionUpdated"]
    action = risk.actions[0]
    assert (action["status"], action["percent"], action["updates"][-1]["note"]) == (
        "in_progress", 40, "two quotes in")


def test_done_action_is_finished_and_cannot_be_updated_again() -> None:
    risk = responding()
    risk.add_action(OWNER, action="Sign contract", owner="member", due_date=date(2025, 4, 30))
    action_id = UUID(risk.actions[0]["id"])
    risk.update_action(OWNER, action_id=action_id, status="done")
    assert risk.actions[0]["percent"] == 100
    with pytest.raises(InvalidTransition) as refused:
        risk.update_action(OWNER, action_id=action_id, status="open")
    assert refused.value.current_state == "done"


def test_cancelling_an_action_needs_a_note() -> None:
    risk = responding()
    risk.add_action(OWNER, action="Sign contract", owner="member", due_date=date(2025, 4, 30))
    with pytest.raises(ValidationFailed) as refused:
        risk.update_action(OWNER, action_id=UUID(risk.actions[0]["id"]), status="cancelled")
    assert refused.value.rule == "reason_required"


def test_someone_elses_action_cannot_be_updated_by_a_plain_member() -> None:
    risk = responding()
    risk.add_action(OWNER, action="Sign contract", owner="deputy", due_date=date(2025, 4, 30))
    with pytest.raises(NotPermitted):
        risk.update_action(MEMBER, action_id=UUID(risk.actions[0]["id"]), status="in_progress")


def test_overdue_actions_are_past_due_and_unfinished() -> None:
    actions: list[dict[str, Any]] = [
        {"id": "a", "due_date": date(2025, 3, 1), "status": "open"},
        {"id": "b", "due_date": date(2025, 3, 1), "status": "done"},
        {"id": "c", "due_date": "2025-03-01", "status": "in_progress"},
        {"id": "d", "due_date": date(2025, 3, 2), "status": "open"},
        {"id": "e", "due_date": date(2025, 2, 1), "status": "cancelled"}]
    assert [a["id"] for a in overdue_actions(actions, date(2025, 3, 2))] == ["a", "c"]


def test_actions_wait_for_a_chosen_response() -> None:
    risk = assessed()
    with pytest.raises(InvalidTransition) as refused:
        risk.add_action(OWNER, action="x", owner="member", due_date=date(2025, 4, 30))
    assert refused.value.current_state == "assessed"


# --- emergency plan ---------------------------------------------------------------------------

def test_emergency_plan_versions_are_kept() -> None:
    risk = responding()
    risk.set_emergency_plan(OWNER, trigger_conditions="supplier stops delivering",
                            steps=["call backup"], responsible=["member"])
    risk.collect_events()
    risk.set_emergency_plan(MANAGER, trigger_conditions="supplier stops delivering",
                            steps=["call backup", "inform customers"],
                            responsible=["member", "manager"])
    assert names(risk) == ["EmergencyPlanSet"]
    assert [p["version"] for p in risk.emergency_plans] == [1, 2]
    assert risk.emergency_plan is not None
    assert (risk.emergency_plan["version"], risk.emergency_plan["steps"]) == (
        2, ["call backup", "inform customers"])


def test_emergency_plan_needs_steps() -> None:
    risk = responding()
    with pytest.raises(ValidationFailed):
        risk.set_emergency_plan(OWNER, trigger_conditions="x", steps=[], responsible=["a"])


# --- early warning ----------------------------------------------------------------------------

def test_only_analysts_define_indicators() -> None:
    risk = monitoring()
    for actor in (OWNER, MANAGER, LEADER, AUDITOR):
        with pytest.raises(NotPermitted) as refused:
            risk.define_indicator(actor, name="DPO", unit="days", threshold=Decimal("90"),
                                  direction="above")
        assert refused.value.rule in ("analyst_only", "auditor_read_only")


def test_crossing_above_back_and_again_raises_exactly_two_warnings() -> None:
    risk, indicator_id = with_indicator("above", "100")
    risk.collect_events()
    events: list[str] = []
    for minute, value in enumerate(["90", "100", "101", "150", "99", "120", "130"]):
        read(risk, indicator_id, value, minute)
        events += names(risk)
    assert events.count("WarningRaised") == 2
    assert events.count("IndicatorNormalised") == 1
    assert events.count("ReadingRecorded") == 7
    assert [w["value"] for w in risk.warnings] == [Decimal("101"), Decimal("120")]
    assert len(risk.readings[str(indicator_id)]) == 7


def test_crossing_below_raises_a_warning_once() -> None:
    risk, indicator_id = with_indicator("below", "1.5")
    read(risk, indicator_id, "1.5", 0)
    risk.collect_events()
    read(risk, indicator_id, "1.4", 1)
    assert names(risk) == ["ReadingRecorded", "WarningRaised"]
    read(risk, indicator_id, "1.0", 2)
    assert names(risk) == ["ReadingRecorded"]
    read(risk, indicator_id, "1.6", 3)
    assert names(risk) == ["ReadingRecorded", "IndicatorNormalised"]


def test_backfilled_older_reading_does_not_move_the_alarm() -> None:
    risk, indicator_id = with_indicator("above", "100")
    read(risk, indicator_id, "90", 10)
    risk.collect_events()
    read(risk, indicator_id, "500", 5)
    assert names(risk) == ["ReadingRecorded"]
    assert risk.readings[str(indicator_id)][-1]["late"] is True


@pytest.mark.parametrize("actor", [OWNER, MEMBER, ANALYST, MANAGER])
def test_owner_department_and_analysts_record_readings(actor: Actor) -> None:
    risk, indicator_id = with_indicator()
    read(risk, indicator_id, "1", 0, actor=actor)
    assert risk.readings[str(indicator_id)][-1]["by"] == actor.user_id


@pytest.mark.parametrize("actor", [OTHER_MEMBER, AUDITOR, FINANCE, SERVICE])
def test_outsiders_cannot_record_readings(actor: Actor) -> None:
    risk, indicator_id = with_indicator()
    with pytest.raises(NotPermitted):
        read(risk, indicator_id, "1", 0, actor=actor)


def test_reading_needs_a_time_zone() -> None:
    risk, indicator_id = with_indicator()
    with pytest.raises(ValidationFailed) as refused:
        risk.record_reading(MEMBER, indicator_id=indicator_id, value=Decimal("1"),
                            observed_at=datetime(2025, 3, 1, 9, 0))
    assert refused.value.rule == "timezone_required"


def test_acknowledging_a_warning_makes_a_reassessment_due() -> None:
    risk, warning_id = with_warning()
    risk.collect_events()
    risk.acknowledge_warning(OWNER, warning_id=warning_id, note="calling the supplier")
    assert names(risk) == ["WarningAcknowledged"]
    assert risk.reassessment_due is True
    assert (risk.warnings[0]["acknowledged_by"], risk.warnings[0]["note"]) == (
        "owner", "calling the supplier")


def test_reassessment_after_a_warning_links_it_and_reopens_the_response_decision() -> None:
    risk, warning_id = with_warning()
    risk.acknowledge_warning(MANAGER, warning_id=warning_id)
    risk.collect_events()
    risk.assess(OWNER, likelihood=5, impact=4, rationale="arrears confirmed")
    assert names(risk) == ["Assessed"]
    assert risk.reassessment_due is False
    assert risk.warnings[0]["reassessment_n"] == 2
    assert risk.assessments[-1]["warning_ids"] == [str(warning_id)]
    assert risk.status == "assessed"


def test_a_warning_is_acknowledged_once() -> None:
    risk, warning_id = with_warning()
    risk.acknowledge_warning(OWNER, warning_id=warning_id)
    with pytest.raises(InvalidTransition) as refused:
        risk.acknowledge_warning(MANAGER, warning_id=warning_id)
    assert refused.value.current_state == "acknowledged"


@pytest.mark.parametrize("actor", [MEMBER, ANALYST, OTHER_MANAGER, AUDITOR])
def test_only_owner_or_managers_acknowledge_warnings(actor: Actor) -> None:
    risk, warning_id = with_warning()
    with pytest.raises(NotPermitted) as refused:
        risk.acknowledge_warning(actor, warning_id=warning_id)
    assert refused.value.rule in ("owner_or_manager", "auditor_read_only")


# --- lifecycle --------------------------------------------------------------------------------

def test_full_lifecycle_to_mitigated() -> None:
    risk = responding()
    risk.start_monitoring(OWNER)
    risk.close(OWNER, outcome="mitigated")
    assert names(risk)[-2:] == ["MonitoringStarted", "Closed"]
    assert (risk.status, risk.outcome) == ("closed", "mitigated")


def test_materialised_needs_an_impact_note() -> None:
    risk = monitoring()
    with pytest.raises(ValidationFailed) as refused:
        risk.close(OWNER, outcome="materialised")
    assert refused.value.rule == "impact_note_required"


def test_materialised_with_impact_note_closes() -> None:
    risk = monitoring()
    risk.collect_events()
    risk.close(MANAGER, outcome="materialised", impact_note="two weeks of lost output")
    assert names(risk) == ["Closed"]
    assert (risk.outcome, risk.impact_note) == ("materialised", "two weeks of lost output")


def test_reopen_returns_an_assessed_risk_to_assessed() -> None:
    risk = closed()
    risk.collect_events()
    risk.reopen(OWNER, reason="supplier in distress again")
    assert names(risk) == ["Reopened"]
    assert (risk.status, risk.outcome) == ("assessed", None)
    assert risk.closures[-1]["reopen_reason"] == "supplier in distress again"


def test_reopen_returns_a_never_assessed_risk_to_identified() -> None:
    risk = identified()
    risk.close(OWNER, outcome="accepted")
    risk.reopen(MANAGER, reason="raised again")
    assert risk.status == "identified"


def test_reopen_needs_a_reason() -> None:
    risk = closed()
    with pytest.raises(ValidationFailed) as refused:
        risk.reopen(OWNER, reason=" ")
    assert refused.value.rule == "reason_required"


@pytest.mark.parametrize(("given", "when", "state"), [
    (identified, lambda r: r.choose_response(OWNER, strategy="reduce"), "identified"),
    (identified, lambda r: r.start_monitoring(OWNER), "identified"),
    (assessed, lambda r: r.start_monitoring(OWNER), "assessed"),
    (monitoring, lambda r: r.start_monitoring(OWNER), "monitoring"),
    (monitoring, lambda r: r.reopen(OWNER, reason="x"), "monitoring"),
    (closed, lambda r: r.assess(OWNER, likelihood=1, impact=1, rationale="x"), "closed"),
    (closed, lambda r: r.close(OWNER, outcome="accepted"), "closed"),
    (closed, lambda r: r.set_emergency_plan(OWNER, trigger_conditions="x", steps=["a"],
                                            responsible=["b"]), "closed"),
])
def test_invalid_transitions_name_the_current_state(given: Any, when: Any, state: str) -> None:
    risk = given()
    with pytest.raises(InvalidTransition) as refused:
        when(risk)
    assert refused.value.current_state == state
    assert f"'{state}'" in str(refused.value)


@pytest.mark.parametrize("actor", [OTHER_MANAGER, MEMBER, AUDITOR, FINANCE, SERVICE, ANALYST])
def test_others_cannot_close_a_risk(actor: Actor) -> None:
    risk = monitoring()
    with pytest.raises(NotPermitted) as refused:
        risk.close(actor, outcome="mitigated")
    assert refused.value.rule in ("owner_or_manager", "auditor_read_only")


def test_leadership_acts_company_wide() -> None:
    risk = responding()
    risk.start_monitoring(LEADER)
    assert risk.status == "monitoring"


# --- replay -----------------------------------------------------------------------------------

def test_replaying_the_events_rebuilds_equal_state() -> None:
    risk = identified(scope="project", linked_id=uuid4())
    events = list(risk.collect_events())
    risk.assess(OWNER, likelihood=4, impact=4, rationale="x", financial_exposure=Decimal("10"))
    risk.choose_response(OWNER, strategy="reduce", justification="cheaper")
    risk.add_action(OWNER, action="Dual sourcing", owner="member", due_date=date(2025, 5, 1))
    risk.update_action(MEMBER, action_id=UUID(risk.actions[0]["id"]), status="in_progress",
                       percent=10)
    risk.set_emergency_plan(OWNER, trigger_conditions="t", steps=["s"], responsible=["r"])
    risk.start_monitoring(OWNER)
    risk.define_indicator(ANALYST, name="DPO", unit="days", threshold=Decimal("90"),
                          direction="above")
    indicator_id = UUID(risk.indicators[0]["id"])
    for minute, value in enumerate(["80", "95", "85", "99"]):
        read(risk, indicator_id, value, minute)
    risk.acknowledge_warning(OWNER, warning_id=UUID(risk.warnings[0]["id"]))
    risk.assess(OWNER, likelihood=5, impact=4, rationale="worse")
    risk.close(OWNER, outcome="materialised", impact_note="late deliveries")
    risk.reopen(OWNER, reason="new supplier issue")
    events += risk.collect_events()

    copy = None
    for e in events:
        copy = e.mutate(copy)

    def state(r: Any) -> dict[str, Any]:
        return {k: v for k, v in vars(r).items() if k != "_pending_events"}

    assert state(copy) == state(risk)
