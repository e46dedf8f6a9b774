"""Customer profile: registration, uniqueness key, status, contacts (personal data), activity."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from domain.customer import CREDIT_CODE_NAMESPACE, Customer, CustomerStatus, PersonalDataGone
from domain.shared import (
    Actor,
    InvalidTransition,
    NotPermitted,
    UniqueKey,
    ValidationFailed,
)

CODE = "91310000MA1FL8XX0X"
OTHER_CODE = "91110108MA01ABCD1E"


def person(user_id: str, *roles: str, departments: tuple[str, ...] = ("sales",)) -> Actor:
    return Actor(user_id=user_id, roles=frozenset(roles), departments=frozenset(departments))


MEMBER = person("mei", "member")
AGENT = person("cai", "customer_service")
MANAGER = person("wang", "dept_manager")
DEPUTY = person("zhao", "deputy_manager")
OUTSIDER = person("otto", "member", departments=("ops",))
READ_ONLY = [person("ana", "analyst"), person("fei", "finance"), person("lin", "leadership")]
# An auditor who also holds every operational role in the department still issues no command.
AUDITOR = person("audrey", "auditor", "member", "customer_service", "dept_manager")


def company(actor: Actor = MEMBER, code: str = CODE, **fields: Any) -> Customer:
    customer, _claim = Customer.register(actor, department="sales", kind="company",
                                         name="Acme Trading Co.", credit_code=code, **fields)
    return customer


def individual(**fields: Any) -> Customer:
    customer = Customer.register(MEMBER, department="sales", kind="individual",
                                 name="Zhang San", **fields)
    assert isinstance(customer, Customer)
    return customer


def given(customer: Customer) -> Customer:
    customer.collect_events()
    return customer


def event_names(customer: Customer) -> list[str]:
    return [type(e).__name__ for e in customer.collect_events()]


def replay(events: list[Any]) -> Any:
    copy = None
    for e in events:
        copy = e.mutate(copy)
    return copy


def state(record: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k != "_pending_events"}


def strings_outside_personal(value: Any, key: str = "") -> list[str]:
    """Every string in an event's attributes, except those under a ``personal`` key."""
    if key == "personal":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_outside_personal(v, k)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_outside_personal(v)]
    return []


# -- registration and uniqueness -----------------------------------------------------------

def test_member_registers_company_as_prospect_with_credit_code_claim():
    customer, claim = Customer.register(MEMBER, department="sales", kind="company",
                                        name="Acme Trading Co.", credit_code=CODE,
                                        industry="logistics", segment="key account")

    assert event_names(customer) == ["Registered"]
    assert (customer.status, customer.department, customer.name) == ("prospect", "sales",
                                                                      "Acme Trading Co.")
    assert customer.credit_code == CODE and customer.registered_by == "mei"
    assert isinstance(claim, UniqueKey)
    assert claim.id == UniqueKey.id_for(CREDIT_CODE_NAMESPACE, CODE)
    assert [type(e).__name__ for e in claim.collect_events()] == ["Claimed"]


def test_same_credit_code_claims_same_key_so_duplicates_collide():
    _, first = Customer.register(MEMBER, department="sales", kind="company", name="Acme",
                                 credit_code=CODE)
    _, second = Customer.register(AGENT, department="sales", kind="company", name="ACME Ltd",
                                  credit_code=CODE.lower())
    _, other = Customer.register(MEMBER, department="sales", kind="company", name="Beta",
                                 credit_code=OTHER_CODE)

    assert first.id == second.id
    assert first.id != other.id


def test_individual_needs_no_credit_code_and_claims_no_key():
    customer = Customer.register(MEMBER, department="sales", kind="individual",
                                 name="Zhang San")

    assert isinstance(customer, Customer)
    assert customer.credit_code is None and customer.kind == "individual"


def test_individual_cannot_carry_credit_code():
    with pytest.raises(ValidationFailed) as refused:
        Customer.register(MEMBER, department="sales", kind="individual", name="Zhang San",
                          credit_code=CODE)
    assert refused.value.rule == "credit_code_not_applicable"


def test_company_requires_credit_code():
    with pytest.raises(ValidationFailed) as refused:
        Customer.register(MEMBER, department="sales", kind="company", name="Acme")
    assert refused.value.field == "credit_code"


@pytest.mark.parametrize("code", ["91310000MA1FL8XX0", "91310000MA1FL8XX0X1", "9131000-MA1FL8XX0X"])
def test_credit_code_is_eighteen_upper_case_letters_and_digits(code):
    with pytest.raises(ValidationFailed) as refused:
        company(code=code)
    assert refused.value.rule == "credit_code_format"


def test_member_cannot_name_account_owner_at_registration():
    with pytest.raises(NotPermitted) as refused:
        company(account_owner="mei")
    assert refused.value.rule == "account_owner_assigned_by_manager"


def test_manager_names_account_owner_at_registration():
    assert company(MANAGER, account_owner="mei").account_owner == "mei"


@pytest.mark.parametrize("actor", [*READ_ONLY, OUTSIDER], ids=lambda a: a.user_id)
def test_outside_roles_and_departments_cannot_register(actor):
    with pytest.raises(NotPermitted) as refused:
        company(actor)
    assert refused.value.rule == "customer_department_scope"


# -- profile and owner -------------------------------------------------------------------------

def test_update_profile_records_only_changed_fields():
    customer = given(company(industry="logistics"))

    customer.update_profile(AGENT, industry="logistics", needs="cold-chain capacity",
                            segment="")

    events: list[Any] = list(customer.collect_events())
    assert [type(e).__name__ for e in events] == ["ProfileUpdated"]
    assert events[0].changes == {"needs": "cold-chain capacity"}
    assert customer.needs == "cold-chain capacity"


def test_update_profile_without_change_is_refused():
    customer = given(company(industry="logistics"))

    with pytest.raises(ValidationFailed) as refused:
        customer.update_profile(MEMBER, industry="logistics")
    assert refused.value.rule == "no_change"


def test_manager_assigns_account_owner():
    customer = given(company())

    customer.assign_owner(DEPUTY, account_owner="mei")

    assert event_names(customer) == ["OwnerAssigned"]
    assert customer.account_owner == "mei"


@pytest.mark.parametrize("actor", [MEMBER, AGENT, *READ_ONLY], ids=lambda a: a.user_id)
def test_only_a_manager_changes_account_owner(actor):
    customer = given(company())

    with pytest.raises(NotPermitted) as refused:
        customer.assign_owner(actor, account_owner="mei")
    assert refused.value.rule == "account_owner_assigned_by_manager"


# -- status -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    ["active"], ["lost"], ["active", "dormant"], ["active", "lost"],
    ["active", "dormant", "active"], ["active", "dormant", "lost"], ["lost", "active"],
])
def test_allowed_status_changes_with_reason(path):
    customer = given(company())

    for target in path:
        customer.change_status(MEMBER, to=CustomerStatus(target), reason=f"now {target}")

    assert event_names(customer) == ["StatusChanged"] * len(path)
    assert customer.status == path[-1]
    assert [h["reason"] for h in customer.status_history] == [f"now {t}" for t in path]


def test_status_change_needs_reason():
    customer = given(company())

    with pytest.raises(ValidationFailed) as refused:
        customer.change_status(MEMBER, to=CustomerStatus.ACTIVE, reason="  ")
    assert refused.value.rule == "reason_required"


@pytest.mark.parametrize(("path", "target"), [
    ([], "dormant"), ([], "prospect"), (["active"], "active"), (["active"], "prospect"),
    (["lost"], "dormant"),
])
def test_invalid_status_change_names_current_state(path, target):
    customer = company()
    for step in path:
        customer.change_status(MEMBER, to=CustomerStatus(step), reason="step")
    given(customer)
    current = customer.status

    with pytest.raises(InvalidTransition) as refused:
        customer.change_status(MEMBER, to=CustomerStatus(target), reason="try")
    assert refused.value.current_state == current
    assert f"'{current}'" in str(refused.value)


@pytest.mark.parametrize("actor", [*READ_ONLY, OUTSIDER], ids=lambda a: a.user_id)
def test_outside_roles_and_departments_cannot_change_status(actor):
    customer = given(company())

    with pytest.raises(NotPermitted) as refused:
        customer.change_status(actor, to=CustomerStatus.ACTIVE, reason="signed")
    assert refused.value.rule == "customer_department_scope"


# -- contacts and personal data ------------------------------------------------------------------

def test_first_contact_becomes_primary():
    customer = given(company())

    customer.add_contact(MEMBER, name="Li Si", phone="+86 138 0013 8000",
                         email="li.si@acme.example", title="Purchasing manager")

    assert event_names(customer) == ["ContactAdded"]
    [contact] = customer.contacts
    assert contact["is_primary"] is True
    assert (contact["name"], contact["phone"], contact["email"], contact["title"]) == (
        "Li Si", "+86 138 0013 8000", "li.si@acme.example", "Purchasing manager")


def test_new_primary_contact_demotes_the_previous_one():
    customer = company()
    customer.add_contact(MEMBER, name="Li Si")
    given(customer)

    customer.add_contact(MEMBER, name="Wu Liu", is_primary=True)

    assert [(c["name"], c["is_primary"]) for c in customer.contacts] == [
        ("Li Si", False), ("Wu Liu", True)]


def test_update_contact_changes_given_fields_only():
    customer = company()
    customer.add_contact(MEMBER, name="Li Si", phone="010-12345678")
    contact_id = customer.contacts[0]["id"]
    given(customer)

    customer.update_contact(AGENT, contact_id=contact_id, email="li@acme.example", phone="")

    assert event_names(customer) == ["ContactUpdated"]
    assert customer.contacts[0] | {"id": None} == {
        "id": None, "name": "Li Si", "phone": None, "email": "li@acme.example", "title": None,
        "is_primary": True}


def test_update_unknown_contact_is_refused():
    customer = given(company())

    with pytest.raises(ValidationFailed) as refused:
        customer.update_contact(MEMBER, contact_id="00000000-0000-0000-0000-000000000000",
                                name="Nobody")
    assert refused.value.rule == "not_found"


@pytest.mark.parametrize(("field", "value"), [("email", "not-an-email"), ("phone", "call me")])
def test_contact_details_are_validated(field, value):
    customer = given(company())

    with pytest.raises(ValidationFailed) as refused:
        customer.add_contact(MEMBER, name="Li Si", **{field: value})
    assert refused.value.field == field


def test_remove_contact_needs_reason():
    customer = company()
    customer.add_contact(MEMBER, name="Li Si")
    contact_id = customer.contacts[0]["id"]
    given(customer)

    with pytest.raises(ValidationFailed):
        customer.remove_contact(MEMBER, contact_id=contact_id, reason="")
    customer.remove_contact(MEMBER, contact_id=contact_id, reason="left the company")

    assert event_names(customer) == ["ContactRemoved"]
    assert customer.contacts == []


def test_personal_fields_travel_only_inside_personal():
    customer = individual()
    customer.add_contact(MEMBER, name="Zhang San", phone="13800138000",
                         email="zhang.san@example.cn", title="Owner")
    contact_id = customer.contacts[0]["id"]
    customer.update_contact(MEMBER, contact_id=contact_id, name="Zhang Sanfeng",
                            phone="13900139000", email="zsf@example.cn", title="Founder")
    customer.update_profile(MEMBER, name="Zhang Sanfeng", needs="wealth planning")
    personal = {"Zhang San", "13800138000", "zhang.san@example.cn", "Owner", "Zhang Sanfeng",
                "13900139000", "zsf@example.cn", "Founder"}

    events: list[Any] = list(customer.collect_events())

    for e in events:
        leaked = personal & set(strings_outside_personal(vars(e)))
        assert not leaked, f"{type(e).__name__} carries {leaked} outside 'personal'"
    assert events[0].name is None and events[0].personal == {"name": "Zhang San"}
    assert customer.name == "Zhang Sanfeng"


def test_company_name_is_not_personal():
    customer = company()

    [registered] = list[Any](customer.collect_events())

    assert registered.name == "Acme Trading Co." and registered.personal == {}


def test_erased_personal_data_still_replays_with_empty_fields():
    customer = individual()
    customer.add_contact(MEMBER, name="Zhang San", phone="13800138000")
    events = customer.collect_events()
    erased = [type(e)(**(vars(e) | {"personal": {}})) if hasattr(e, "personal") else e
              for e in events]

    copy = replay(erased)

    assert copy.name is None
    assert copy.contacts[0] | {"id": None} == {"id": None, "name": None, "phone": None,
                                               "email": None, "title": None,
                                               "is_primary": True}


@pytest.mark.parametrize("actor", [*READ_ONLY, OUTSIDER], ids=lambda a: a.user_id)
def test_outside_roles_and_departments_cannot_touch_contacts(actor):
    customer = company()
    customer.add_contact(MEMBER, name="Li Si")
    contact_id = customer.contacts[0]["id"]
    given(customer)

    for attempt in (lambda: customer.add_contact(actor, name="X"),
                    lambda: customer.update_contact(actor, contact_id=contact_id, name="X"),
                    lambda: customer.remove_contact(actor, contact_id=contact_id, reason="x")):
        with pytest.raises(NotPermitted) as refused:
            attempt()
        assert refused.value.rule == "customer_department_scope"


# -- interactions and feedback -------------------------------------------------------------------

def test_member_records_interaction_with_follow_up():
    customer = given(company())

    customer.record_interaction(MEMBER, date=date(2025, 3, 3), channel="visit",
                                summary="site visit", follow_up_date=date(2025, 3, 10))

    assert event_names(customer) == ["InteractionRecorded"]
    [interaction] = customer.interactions
    assert interaction["channel"] == "visit" and interaction["by"] == "mei"
    assert interaction["follow_up_date"] == date(2025, 3, 10) and interaction["id"]


def test_follow_up_cannot_precede_interaction():
    customer = given(company())

    with pytest.raises(ValidationFailed) as refused:
        customer.record_interaction(MEMBER, date=date(2025, 3, 3), channel="phone",
                                    summary="call", follow_up_date=date(2025, 3, 1))
    assert refused.value.rule == "date_order"


def test_unknown_interaction_channel_is_refused():
    customer = given(company())

    with pytest.raises(ValidationFailed):
        customer.record_interaction(MEMBER, date=date(2025, 3, 3), channel="fax",
                                    summary="fax")


def test_customer_service_records_feedback_with_rating():
    customer = given(company())

    customer.record_feedback(AGENT, subject="delivery", rating=4, text="on time")

    assert event_names(customer) == ["FeedbackRecorded"]
    assert customer.feedback[0]["rating"] == 4 and customer.feedback[0]["by"] == "cai"


@pytest.mark.parametrize("rating", [0, 6, True])
def test_feedback_rating_is_one_to_five(rating):
    customer = given(company())

    with pytest.raises(ValidationFailed) as refused:
        customer.record_feedback(AGENT, subject="delivery", rating=rating, text="meh")
    assert refused.value.rule == "rating_range"


@pytest.mark.parametrize("actor", [*READ_ONLY, OUTSIDER], ids=lambda a: a.user_id)
def test_outside_roles_and_departments_cannot_record_activity(actor):
    customer = given(company())

    with pytest.raises(NotPermitted):
        customer.record_interaction(actor, date=date(2025, 3, 3), channel="phone", summary="x")
    with pytest.raises(NotPermitted):
        customer.record_feedback(actor, subject="x", text="x")
    with pytest.raises(NotPermitted):
        customer.update_profile(actor, industry="x")


def test_auditor_issues_no_customer_command_even_with_operational_roles():
    customer = company()
    customer.add_contact(MEMBER, name="Li Si")
    contact_id = customer.contacts[0]["id"]
    given(customer)
    attempts = [
        lambda: company(AUDITOR),
        lambda: customer.update_profile(AUDITOR, industry="x"),
        lambda: customer.assign_owner(AUDITOR, account_owner="audrey"),
        lambda: customer.change_status(AUDITOR, to=CustomerStatus.ACTIVE, reason="x"),
        lambda: customer.add_contact(AUDITOR, name="X"),
        lambda: customer.update_contact(AUDITOR, contact_id=contact_id, name="X"),
        lambda: customer.remove_contact(AUDITOR, contact_id=contact_id, reason="x"),
        lambda: customer.record_interaction(AUDITOR, date=date(2025, 3, 3), channel="phone",
                                            summary="x"),
        lambda: customer.record_feedback(AUDITOR, subject="x", text="x"),
    ]

    for attempt in attempts:
        with pytest.raises(NotPermitted) as refused:
            attempt()
        assert refused.value.rule == "auditor_read_only"
    assert event_names(customer) == []


# -- replay -------------------------------------------------------------------------------------

def test_replaying_events_rebuilds_equal_state():
    customer = company()
    customer.add_contact(MEMBER, name="Li Si", phone="13800138000")
    customer.add_contact(MEMBER, name="Wu Liu", is_primary=True)
    customer.update_contact(MEMBER, contact_id=customer.contacts[0]["id"], title="CFO")
    customer.remove_contact(MEMBER, contact_id=customer.contacts[1]["id"], reason="left")
    customer.update_profile(MEMBER, name="Acme Group", needs="more trucks")
    customer.assign_owner(MANAGER, account_owner="mei")
    customer.change_status(MEMBER, to=CustomerStatus.ACTIVE, reason="contract signed")
    customer.record_interaction(MEMBER, date=date(2025, 1, 2), channel="meeting", summary="QBR")
    customer.record_feedback(AGENT, subject="invoice", text="late", rating=2)

    copy = replay(list(customer.collect_events()))

    assert state(copy) == state(customer)


# -- personal data erasure (PIPL art. 47 / GDPR art. 17) ----------------------------------------

DPO = person("dora", "data_protection", departments=())
LEADER = person("lin", "leadership", departments=())


def erasable() -> Customer:
    customer = individual()
    customer.add_contact(MEMBER, name="Li Si", phone="13800138000", email="li.si@example.cn",
                         title="CFO")
    customer.add_contact(MEMBER, name="Wu Liu")
    return given(customer)


@pytest.mark.parametrize("actor", [DPO, LEADER], ids=lambda a: a.user_id)
def test_data_protection_or_leadership_erase_personal_data_in_any_status(actor):
    customer = erasable()
    customer.change_status(MEMBER, to=CustomerStatus.LOST, reason="left")
    given(customer)

    customer.erase_personal_data(actor, reason="PIPL art. 47 request")

    assert event_names(customer) == ["PersonalDataErased"]
    assert customer.personal_data_erased is True and customer.personal_data_erased_at
    assert customer.name is None and customer.kind == "individual"
    assert [[c[f] for f in ("name", "phone", "email", "title")] for c in customer.contacts] \
        == [[None] * 4] * 2
    assert [c["is_primary"] for c in customer.contacts] == [True, False]


@pytest.mark.parametrize("actor", [MEMBER, MANAGER, AGENT, person("ana", "analyst"),
                                   person("fei", "finance"), AUDITOR,
                                   person("aud", "auditor", "data_protection")],
                         ids=lambda a: a.user_id)
def test_only_data_protection_or_leadership_may_erase(actor):
    customer = erasable()

    with pytest.raises(NotPermitted):
        customer.erase_personal_data(actor, reason="asked")
    assert event_names(customer) == []


def test_erasure_needs_a_reason():
    customer = erasable()

    with pytest.raises(ValidationFailed) as refused:
        customer.erase_personal_data(DPO, reason="  ")
    assert refused.value.field == "reason"


def test_erasure_cannot_be_repeated():
    customer = erasable()
    customer.erase_personal_data(DPO, reason="request")
    given(customer)

    with pytest.raises(PersonalDataGone) as refused:
        customer.erase_personal_data(LEADER, reason="again")
    assert refused.value.rule == "personal_data_already_erased"


def test_nothing_personal_can_be_added_after_erasure_but_the_record_lives_on():
    customer = erasable()
    contact_id = customer.contacts[0]["id"]
    customer.erase_personal_data(DPO, reason="request")
    given(customer)

    for attempt in (lambda: customer.add_contact(MEMBER, name="New Person"),
                    lambda: customer.update_contact(MEMBER, contact_id=contact_id,
                                                    phone="13900139000"),
                    lambda: customer.update_profile(MEMBER, name="Zhang San again")):
        with pytest.raises(PersonalDataGone) as refused:
            attempt()
        assert refused.value.rule == "personal_data_erased"
    customer.update_contact(MEMBER, contact_id=customer.contacts[1]["id"], is_primary=True)
    customer.remove_contact(MEMBER, contact_id=contact_id, reason="left")
    customer.record_interaction(MEMBER, date=date(2025, 3, 3), channel="phone", summary="x")
    assert event_names(customer) == ["ContactUpdated", "ContactRemoved", "InteractionRecorded"]


def test_erasure_replays_and_erased_events_replay_to_the_same_state():
    customer = individual()
    customer.add_contact(MEMBER, name="Li Si", phone="13800138000")
    customer.erase_personal_data(DPO, reason="request")
    events = list(customer.collect_events())
    # what the store reads once the key is destroyed: personal attributes gone
    erased = [type(e)(**(vars(e) | {"personal": None})) if hasattr(e, "personal") else e
              for e in events]

    assert state(replay(events)) == state(customer) == state(replay(erased))


def test_split_and_join_personal_state_round_trip():
    customer = erasable()
    snapshot_state = {k: v for k, v in vars(customer).items() if k != "_pending_events"}

    public, personal = Customer.split_personal_state(snapshot_state)

    assert not {"Zhang San", "Li Si", "13800138000", "li.si@example.cn", "CFO", "Wu Liu"} & \
        set(strings_outside_personal(public))
    assert public["contacts"][0]["id"] == customer.contacts[0]["id"]
    assert Customer.join_personal_state(public, personal) == snapshot_state
    assert Customer.join_personal_state(public, None) == public
    assert customer.contacts[0]["name"] == "Li Si"  # the aggregate is untouched
