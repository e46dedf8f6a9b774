"""The customer tables are rebuildable: a rebuild from the events gives the very same rows,
including the satisfaction and complaint facts the KPIs count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from domain.customer import Customer
from domain.service_request import ServiceRequest
from domain.shared import Actor, Record
from service.application import CommandContext
from service.catalogue import commands_of
from tests.conftest import make_settings

TABLES = {"customers": "id", "service_requests": "id",
          "service_request_satisfaction": "request_id, seq",
          "service_request_complaints": "request_id, seq"}
AGENT = Actor("cara", roles=frozenset({"customer_service"}), departments=frozenset({"care"}))
ENGINEER = Actor("eve", roles=frozenset({"member"}), departments=frozenset({"eng"}))


@pytest.fixture
def app(fresh_database: Any) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), fresh_database, start_projector=False)
    yield c
    c.close()


def run(app: Any, record_cls: type[Record], command: str, actor: Actor,
        record_id: UUID | None = None, **body: Any) -> UUID:
    spec = next(s for s in commands_of(record_cls) if s.name == command)
    result = app.ledger.execute(spec, CommandContext(actor=actor), spec.body_model(**body),
                                record_id)
    return UUID(result.body["id"])


def snapshot(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(app.database.conninfo) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall()
                for t, key in TABLES.items()}


def test_rebuilding_the_customer_tables_gives_the_same_rows(app: Any) -> None:
    cid = run(app, Customer, "register", AGENT, department="care", kind="company",
              name="Acme", credit_code="91310000MA1FL0000A", segment="gold")
    rid = run(app, ServiceRequest, "open", AGENT, customer_id=cid, department="care",
              channel="phone", category="inquiry", description="Help")
    run(app, ServiceRequest, "escalate", AGENT, rid, to_department="eng", note="complex")
    run(app, ServiceRequest, "record_result", ENGINEER, rid, result="done")
    run(app, ServiceRequest, "record_satisfaction", AGENT, rid, score=2)
    app.runner.catch_up()  # part of the history in one batch …
    run(app, ServiceRequest, "investigate_complaint", AGENT, rid, findings="late")
    run(app, ServiceRequest, "resolve_complaint", AGENT, rid, resolution="apologised")
    run(app, ServiceRequest, "record_satisfaction", AGENT, rid, score=4)
    app.runner.catch_up()  # … the rest in another
    before = snapshot(app)
    assert len(before["service_request_satisfaction"]) == 2
    [complaint] = before["service_request_complaints"]
    assert complaint[-1] is not None  # its resolution time arrived in the second batch

    app.runner.reset(["records"])
    assert all(not rows for rows in snapshot(app).values())
    app.runner.catch_up()
    assert snapshot(app) == before
