"""The public event format: names, stable ids, and personal data never published."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain.customer import Customer
from domain.project import Project
from domain.shared import Actor
from service.streams.cloudevents import (
    UnknownEventType,
    catalogue,
    event_id,
    public_payload,
    to_cloudevent,
)

ANN = Actor("ann", roles=frozenset({"member", "customer_service"}),
            departments=frozenset({"ops"}))


def a_proposal() -> Project:
    return Project.propose(ANN, department="ops", name="P", background="b", objectives="o",
                           scope="s", requested_budget=Decimal("10.50"),
                           expected_revenue=Decimal("20.00"), start_date=date(2026, 1, 1),
                           end_date=date(2026, 12, 31))


def test_a_project_event_becomes_a_cloudevent_with_its_type_version_and_position() -> None:
    project = a_proposal()
    event = project.collect_events()[0]
    object.__setattr__(event, "meta", {"actor": {"user_id": "ann", "name": "Ann"},
                                       "department": "ops", "comment": "private note",
                                       "trace_id": "a" * 32, "span_id": "b" * 16})
    published = catalogue().of(event)
    assert published is not None

    ce = to_cloudevent(42, event, published, "/opsledger")

    assert ce["type"] == "opsledger.project.proposed.v1"
    assert ce["subject"] == str(project.id) and ce["position"] == 42
    assert ce["id"] == event_id(project.id, 1)
    assert ce["traceparent"] == f"00-{'a' * 32}-{'b' * 16}-01"
    assert ce["actorid"] == "ann" and "private note" not in str(ce) and "Ann" not in str(ce)
    assert ce["data"]["requested_budget"] == "10.50"
    assert ce["data"]["start_date"] == "2026-01-01"


def test_the_event_id_is_the_same_for_the_same_record_version_only() -> None:
    project = a_proposal()
    assert event_id(project.id, 1) == event_id(str(project.id), 1)
    assert event_id(project.id, 1) != event_id(project.id, 2)


def test_personal_data_is_published_as_redacted_only() -> None:
    customer = Customer.register(ANN, department="ops", kind="individual", name="Zhang Wei")
    event = customer.collect_events()[0]
    published = catalogue().of(event)
    assert published is not None

    data = public_payload(event, published)

    assert data["personal"] == {"redacted": True}
    assert "Zhang Wei" not in str(data)


def test_internal_record_types_are_not_published() -> None:
    assert "unique_key" not in catalogue().record_types
    assert "webhook" not in catalogue().record_types


@pytest.mark.parametrize("name", ["project.approved", "opsledger.project.approved",
                                  "opsledger.project.approved.v1", " Project.Approved "])
def test_an_event_type_may_be_named_short_or_in_full(name: str) -> None:
    assert catalogue().parse_type(name).ce_type == "opsledger.project.approved.v1"


def test_an_unpublished_or_outdated_type_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        catalogue().parse_type("unique_key.claimed")
    with pytest.raises(UnknownEventType):
        catalogue().parse_type("opsledger.project.progress_reported.v1")
