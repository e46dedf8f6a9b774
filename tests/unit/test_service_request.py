"""Service requests: intake, triage, department work, satisfaction and complaints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from domain.service_request import ServiceRequest
from domain.shared import Actor, DomainError, InvalidTransition, NotPermitted, ValidationFailed

CUSTOMER_ID = uuid4()


def person(user_id: str, *roles: str, departments: tuple[str, ...]) -> Actor:
    return Actor(user_id=user_id, roles=frozenset(roles), departments=frozenset(departments))


AGENT = person("cai", "customer_service", departments=("cs",))
OTHER_AGENT = person("chen", "customer_service", departments=("north",))
CS_MEMBER = person("mo", "member", departments=("cs",))
WORKER = person("wu", "member", departments=("ops",))
OPS_MANAGER = person("wang", "dept_manager", departments=("ops",))
OPS_DEPUTY = person("zhao", "deputy_manager", departments=("ops",))
OUTSIDER = person("otto", "member", departments=("sales",))
READ_ONLY = [person("ana", "analyst", departments=("cs", "ops")),
             person("fei", "finance", departments=("cs", "ops")),
             person("lin", "leadership", departments=("cs", "ops"))]
# An auditor who also holds every operational role everywhere still issues no command.
AUDITOR = person("audrey", "auditor", "customer_service", "member", "dept_manager",
                 departments=("cs", "ops"))


def opened(actor: Actor = AGENT, **fields: Any) -> ServiceRequest:
    values: dict[str, Any] = {"customer_id": CUSTOMER_ID, "department": "cs",
                              "channel": "phone", "category": "application",
                              "description": "needs a new delivery slot", "priority": "high"}
    return ServiceRequest.open(actor, **(values | fields))


def escalated() -> ServiceRequest:
    request = opened()
    request.escalate(AGENT, to_department="ops", note="needs scheduling", assignee="wu")
    return request


def resolved_by_department() -> ServiceRequest:
    request = escalated()
    request.record_result(WORKER, result="slot booked")
    return request


def in_complaint() -> ServiceRequest:
    request = resolved_by_department()
    request.record_satisfaction(AGENT, score=2)
    return request


def complaint_resolved() -> ServiceRequest:
    request = in_complaint()
    request.investigate_complaint(AGENT, findings="driver came late")
    request.resolve_complaint(AGENT, resolution="refunded the fee")
    return request


def closed() -> ServiceRequest:
    request = resolved_by_department()
    request.record_satisfaction(AGENT, score=4)
    return request


def given(request: ServiceRequest) -> ServiceRequest:
    request.collect_events()
    return request


def event_names(request: ServiceRequest) -> list[str]:
    return [type(e).__name__ for e in request.collect_events()]


def state(record: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k != "_pending_events"}


# -- intake --------------------------------------------------------------------------------------

def test_customer_service_opens_request_stamped_with_event_time():
    request = opened()

    [event] = request.collect_events()
    assert type(event).__name__ == "Opened"
    assert (request.status, request.department, request.customer_id) == ("open", "cs",
                                                                         CUSTOMER_ID)
    assert (request.priority, request.opened_by) == ("high", "cai")
    assert request.opened_at == event.timestamp
    assert request.first_response_at is None and request.complaint_count == 0


def test_member_of_intake_department_may_open_request():
    assert opened(CS_MEMBER).opened_by == "mo"


@pytest.mark.parametrize("actor", [*READ_ONLY, OTHER_AGENT, OPS_MANAGER],
                         ids=lambda a: a.user_id)
def test_only_intake_department_opens_requests(actor):
    with pytest.raises(NotPermitted) as refused:
        opened(actor)
    assert refused.value.rule == "service_request_intake"


@pytest.mark.parametrize(("field", "value"), [("channel", "fax"), ("category", "praise"),
                                              ("priority", "asap"), ("description", " ")])
def test_intake_fields_are_validated(field, value):
    with pytest.raises(ValidationFailed) as refused:
        opened(**{field: value})
    assert refused.value.field == field


# -- triage --------------------------------------------------------------------------------------

def test_simple_request_resolved_directly_at_intake():
    request = given(opened())

    request.resolve_directly(AGENT, resolution="explained the tariff")

    assert event_names(request) == ["ResolvedDirectly"]
    assert (request.status, request.resolution, request.resolved_via) == (
        "resolved", "explained the tariff", "direct")
    assert request.first_response_at == request.resolved_at
    assert request.resolved_at is not None and request.resolved_at >= request.opened_at


def test_first_response_is_the_first_acknowledgement():
    request = opened()
    request.acknowledge(AGENT, note="called back")
    first = request.first_response_at
    given(request)

    request.acknowledge(AGENT, note="called again")
    request.escalate(AGENT, to_department="ops", note="complex")

    assert event_names(request) == ["Acknowledged", "Escalated"]
    assert first is not None and request.first_response_at == first
    assert len(request.acknowledgements) == 2


def test_escalation_to_department_with_assignee():
    request = given(opened())

    request.escalate(AGENT, to_department="ops", note="needs scheduling", assignee="wu")

    assert event_names(request) == ["Escalated"]
    assert (request.status, request.escalated_to, request.assignee) == ("escalated", "ops",
                                                                        "wu")
    assert request.first_response_at == request.escalations[0]["at"]


def test_escalated_request_can_be_rerouted_to_another_department():
    request = given(escalated())

    request.escalate(AGENT, to_department="it", note="it is a system fault")

    assert event_names(request) == ["Escalated"]
    assert (request.escalated_to, request.assignee) == ("it", None)
    assert len(request.escalations) == 2


@pytest.mark.parametrize("command", [
    lambda r, a: r.acknowledge(a, note="hi"),
    lambda r, a: r.resolve_directly(a, resolution="done"),
    lambda r, a: r.escalate(a, to_department="ops", note="complex"),
], ids=["acknowledge", "resolve_directly", "escalate"])
@pytest.mark.parametrize("actor", [*READ_ONLY, OTHER_AGENT, CS_MEMBER, OPS_MANAGER],
                         ids=lambda a: a.user_id)
def test_only_intake_customer_service_triages(command: Callable[..., None], actor: Actor):
    request = given(opened())

    with pytest.raises(NotPermitted) as refused:
        command(request, actor)
    assert refused.value.rule == "intake_customer_service_only"


# -- department work --------------------------------------------------------------------------

@pytest.mark.parametrize("worker", [WORKER, OPS_MANAGER, OPS_DEPUTY], ids=lambda a: a.user_id)
def test_escalated_department_records_progress_and_result(worker):
    request = given(escalated())

    request.record_progress(worker, note="checking the fleet plan")
    request.record_result(worker, result="slot booked for Friday")

    assert event_names(request) == ["ProgressRecorded", "ResultRecorded"]
    assert request.progress[0]["note"] == "checking the fleet plan"
    assert (request.status, request.resolution, request.resolved_via, request.resolved_by) == (
        "resolved", "slot booked for Friday", "department", worker.user_id)
    assert request.resolved_at is not None


@pytest.mark.parametrize("actor", [*READ_ONLY, AGENT, OUTSIDER], ids=lambda a: a.user_id)
def test_only_escalated_department_works_the_request(actor):
    request = given(escalated())

    for attempt in (lambda: request.record_progress(actor, note="x"),
                    lambda: request.record_result(actor, result="x")):
        with pytest.raises(NotPermitted) as refused:
            attempt()
        assert refused.value.rule == "escalated_department_only"


def test_result_cannot_be_recorded_before_escalation():
    request = given(opened())

    with pytest.raises(InvalidTransition) as refused:
        request.record_result(WORKER, result="done")
    assert refused.value.current_state == "open"


# -- satisfaction ---------------------------------------------------------------------------------

def test_satisfied_customer_closes_the_request():
    request = given(resolved_by_department())

    request.record_satisfaction(AGENT, score=4, note="happy")

    assert event_names(request) == ["SatisfactionRecorded", "Closed"]
    assert request.status == "closed" and request.closed_at is not None
    assert [(s["score"], s["by"]) for s in request.satisfaction_scores] == [(4, "cai")]


def test_low_satisfaction_opens_a_complaint():
    request = given(resolved_by_department())

    request.record_satisfaction(AGENT, score=2)

    assert event_names(request) == ["SatisfactionRecorded", "ComplaintOpened"]
    assert (request.status, request.complaint_count) == ("complaint_investigation", 1)
    assert request.complaints[0]["trigger"] == "satisfaction" and request.closed_at is None


def test_customer_saying_unsatisfied_opens_a_complaint_despite_a_fair_score():
    request = given(resolved_by_department())

    request.record_satisfaction(AGENT, score=4, unsatisfied=True)

    assert event_names(request) == ["SatisfactionRecorded", "ComplaintOpened"]
    assert request.status == "complaint_investigation"


@pytest.mark.parametrize("score", [0, 6, True])
def test_satisfaction_score_is_one_to_five(score):
    request = given(resolved_by_department())

    with pytest.raises(ValidationFailed) as refused:
        request.record_satisfaction(AGENT, score=score)
    assert refused.value.rule == "score_range"


@pytest.mark.parametrize("actor", [*READ_ONLY, OTHER_AGENT, CS_MEMBER, WORKER, OPS_MANAGER],
                         ids=lambda a: a.user_id)
def test_only_intake_customer_service_records_satisfaction(actor):
    request = given(resolved_by_department())

    with pytest.raises(NotPermitted) as refused:
        request.record_satisfaction(actor, score=5)
    assert refused.value.rule == "intake_customer_service_only"


@pytest.mark.parametrize(("build", "state_name"), [(opened, "open"), (escalated, "escalated"),
                                                   (closed, "closed"),
                                                   (in_complaint, "complaint_investigation")])
def test_satisfaction_only_after_resolution_names_the_state(build, state_name):
    request = given(build())

    with pytest.raises(InvalidTransition) as refused:
        request.record_satisfaction(AGENT, score=5)
    assert refused.value.current_state == state_name
    assert f"'{state_name}'" in str(refused.value)


# -- complaints ----------------------------------------------------------------------------------

def test_complaint_investigated_resolved_then_satisfied_closes():
    request = given(in_complaint())

    request.investigate_complaint(AGENT, findings="driver came late")
    request.resolve_complaint(AGENT, resolution="refunded the fee")
    request.record_satisfaction(AGENT, score=5)

    assert event_names(request) == ["ComplaintInvestigated", "ComplaintResolved",
                                    "SatisfactionRecorded", "Closed"]
    assert request.status == "closed" and request.complaint_count == 1
    [complaint] = request.complaints
    assert complaint["findings"][0]["text"] == "driver came late"
    assert (complaint["resolution"], complaint["resolved_by"]) == ("refunded the fee", "cai")
    assert [s["score"] for s in request.satisfaction_scores] == [2, 5]


def test_low_satisfaction_after_complaint_resolution_reopens_it():
    request = given(complaint_resolved())

    request.record_satisfaction(AGENT, score=1)

    assert event_names(request) == ["SatisfactionRecorded", "ComplaintReopened"]
    assert (request.status, request.complaint_count) == ("complaint_investigation", 2)
    assert request.complaints[-1]["findings"] == []


def test_customer_service_reopens_closed_request_as_complaint_with_reason():
    request = given(closed())

    request.reopen_complaint(AGENT, reason="customer called back: slot was missed")

    assert event_names(request) == ["ComplaintReopened"]
    assert (request.status, request.complaint_count, request.closed_at) == (
        "complaint_investigation", 1, None)
    assert request.complaints[0]["trigger"] == "reopen"


def test_reopen_needs_reason():
    request = given(closed())

    with pytest.raises(ValidationFailed) as refused:
        request.reopen_complaint(AGENT, reason="")
    assert refused.value.rule == "reason_required"


def test_complaint_cannot_be_resolved_before_findings():
    request = given(in_complaint())

    with pytest.raises(DomainError) as refused:
        request.resolve_complaint(AGENT, resolution="sorry")
    assert refused.value.rule == "complaint_findings_required"


@pytest.mark.parametrize("handler", [OPS_MANAGER, OPS_DEPUTY], ids=lambda a: a.user_id)
def test_escalated_department_manager_handles_complaint(handler):
    request = given(in_complaint())

    request.investigate_complaint(handler, findings="missed handover")
    request.resolve_complaint(handler, resolution="new procedure")

    assert event_names(request) == ["ComplaintInvestigated", "ComplaintResolved"]
    assert request.complaints[0]["resolved_by"] == handler.user_id


@pytest.mark.parametrize("actor", [*READ_ONLY, WORKER, OTHER_AGENT, CS_MEMBER],
                         ids=lambda a: a.user_id)
def test_only_customer_service_or_escalated_managers_handle_complaints(actor):
    request = given(in_complaint())

    for attempt in (lambda: request.investigate_complaint(actor, findings="x"),
                    lambda: request.resolve_complaint(actor, resolution="x")):
        with pytest.raises(NotPermitted) as refused:
            attempt()
        assert refused.value.rule == "complaint_handler_only"


@pytest.mark.parametrize("actor", [*READ_ONLY, OTHER_AGENT, OPS_MANAGER],
                         ids=lambda a: a.user_id)
def test_only_intake_customer_service_reopens_complaints(actor):
    request = given(closed())

    with pytest.raises(NotPermitted) as refused:
        request.reopen_complaint(actor, reason="called back")
    assert refused.value.rule == "intake_customer_service_only"


@pytest.mark.parametrize(("build", "attempt", "state_name"), [
    (opened, lambda r: r.reopen_complaint(AGENT, reason="x"), "open"),
    (in_complaint, lambda r: r.reopen_complaint(AGENT, reason="x"), "complaint_investigation"),
    (closed, lambda r: r.resolve_complaint(AGENT, resolution="x"), "closed"),
    (closed, lambda r: r.investigate_complaint(AGENT, findings="x"), "closed"),
    (resolved_by_department, lambda r: r.escalate(AGENT, to_department="it", note="x"),
     "resolved"),
    (complaint_resolved, lambda r: r.acknowledge(AGENT, note="x"), "complaint_resolved"),
], ids=["reopen-open", "reopen-investigating", "resolve-closed", "investigate-closed",
        "escalate-resolved", "acknowledge-complaint-resolved"])
def test_invalid_transitions_name_the_state(build, attempt, state_name):
    request = given(build())

    with pytest.raises(InvalidTransition) as refused:
        attempt(request)
    assert refused.value.current_state == state_name


@pytest.mark.parametrize(("build", "attempt"), [
    (None, lambda r: opened(AUDITOR)),
    (opened, lambda r: r.acknowledge(AUDITOR, note="x")),
    (opened, lambda r: r.resolve_directly(AUDITOR, resolution="x")),
    (opened, lambda r: r.escalate(AUDITOR, to_department="ops", note="x")),
    (escalated, lambda r: r.record_progress(AUDITOR, note="x")),
    (escalated, lambda r: r.record_result(AUDITOR, result="x")),
    (resolved_by_department, lambda r: r.record_satisfaction(AUDITOR, score=5)),
    (in_complaint, lambda r: r.investigate_complaint(AUDITOR, findings="x")),
    (in_complaint, lambda r: r.resolve_complaint(AUDITOR, resolution="x")),
    (closed, lambda r: r.reopen_complaint(AUDITOR, reason="x")),
], ids=["open", "acknowledge", "resolve_directly", "escalate", "record_progress",
        "record_result", "record_satisfaction", "investigate_complaint", "resolve_complaint",
        "reopen_complaint"])
def test_auditor_issues_no_command_even_with_operational_roles(build, attempt):
    request = given(build()) if build else None

    with pytest.raises(NotPermitted) as refused:
        attempt(request)
    assert refused.value.rule == "auditor_read_only"


# -- replay -------------------------------------------------------------------------------------

def test_replaying_events_rebuilds_equal_state():
    request = opened()
    request.acknowledge(AGENT, note="called back")
    request.escalate(AGENT, to_department="ops", note="complex", assignee="wu")
    request.record_progress(WORKER, note="on it")
    request.record_result(OPS_MANAGER, result="fixed")
    request.record_satisfaction(AGENT, score=1, note="too slow")
    request.investigate_complaint(OPS_MANAGER, findings="queue backlog")
    request.resolve_complaint(AGENT, resolution="priority lane")
    request.record_satisfaction(AGENT, score=4)
    request.reopen_complaint(AGENT, reason="problem recurred")

    copy = None
    for e in request.collect_events():
        copy = e.mutate(copy)

    assert state(copy) == state(request)
