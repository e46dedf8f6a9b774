"""Per-customer keys against PostgreSQL: stored in the events' own transaction, destroyed in the
erasure's, and never outlived by another process's cache (two event stores on one database
stand for two processes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from domain.customer import Customer, PersonalDataGone
from domain.shared import Actor
from service.application import CommandContext, Ledger
from service.bootstrap import bootstrap
from service.catalogue import commands_of
from service.store import EventStore, RecordConflict
from tests.conftest import make_settings

MEI = Actor("mei", "Mei", frozenset({"member"}), frozenset({"sales"}))
DORA = Actor("dora", "Dora", frozenset({"data_protection"}), frozenset())


def run(ledger: Ledger, actor: Actor, command: str, record_id: Any = None, **body: Any) -> Any:
    spec = next(s for s in commands_of(Customer) if s.name == command)
    return ledger.execute(spec, CommandContext(actor), spec.body_model(**body),
                          record_id=record_id)


def keys_of(store: EventStore, record_id: Any) -> list[dict[str, Any]]:
    return store.execute("SELECT key, erased_at FROM personal_data_keys WHERE record_id = %s",
                         (record_id,))


@pytest.fixture
def c(fresh_database: Any) -> Iterator[Any]:
    container = bootstrap(make_settings(snapshot_interval=2), fresh_database,
                          start_projector=False)
    yield container
    container.close()


@pytest.fixture
def other(c: Any) -> Iterator[EventStore]:
    """A second process's event store on the same database."""
    store = EventStore(c.database, pool_size=2, snapshot_interval=2, create_schema=False)
    yield store
    store.close()


def registered(c: Any) -> UUID:
    cid = UUID(run(c.ledger, MEI, "register", department="sales", kind="individual",
                   name="Zhang San").body["id"])
    run(c.ledger, MEI, "add_contact", cid, name="Li Si", phone="13800138000")
    return cid


def test_a_new_customers_key_is_stored_with_its_first_event(c: Any) -> None:
    cid = registered(c)

    [row] = keys_of(c.store, cid)
    assert len(row["key"]) == 32 and row["erased_at"] is None
    # created in the append transaction: the row exists exactly when the event does
    assert c.store.execute("SELECT count(*) AS n FROM personal_data_keys")[0]["n"] == 1


def test_a_failed_append_stores_no_key(c: Any) -> None:
    taken = UUID(run(c.ledger, MEI, "register", department="sales", kind="company",
                     name="Acme", credit_code="91310000MA1FL8XX0X").body["id"])
    assert keys_of(c.store, taken) == []  # a company's registration carries nothing personal
    person = Customer.register(MEI, department="sales", kind="individual", name="Wang Wu")
    assert isinstance(person, Customer)
    [registration] = person.collect_events()
    object.__setattr__(registration, "originator_id", taken)  # its version 1 is taken

    with pytest.raises(RecordConflict):
        c.store.append_and_wait([registration])  # sealed with a new key, then refused whole

    assert keys_of(c.store, taken) == []


def test_erasure_destroys_the_key_and_the_snapshots_in_its_own_transaction(c: Any) -> None:
    cid = registered(c)
    assert c.store.execute("SELECT count(*) AS n FROM snapshots WHERE originator_id = %s",
                           (cid,))[0]["n"] == 1

    result = run(c.ledger, DORA, "erase_personal_data", cid, reason="PIPL request")

    [row] = keys_of(c.store, cid)
    assert row["key"] is None and row["erased_at"] is not None
    assert c.store.execute("SELECT count(*) AS n FROM snapshots WHERE originator_id = %s",
                           (cid,))[0]["n"] == 0
    assert c.store.execute("SELECT erasure_position FROM personal_data_keys"
                           " WHERE record_id = %s", (cid,))[0]["erasure_position"] == \
        result.body["position"]
    fresh = EventStore(c.database, pool_size=1, create_schema=False)
    try:
        record: Any = fresh.get(cid)
    finally:
        fresh.close()
    assert record.personal_data_erased and record.name is None
    assert record.contacts[0]["phone"] is None


def test_another_process_never_serves_a_cached_customer_after_erasure(c: Any,
                                                                       other: EventStore
                                                                       ) -> None:
    cid = registered(c)
    cached: Any = other.get(cid)  # the other process has the customer and its key cached
    assert cached.contacts[0]["phone"] == "13800138000"
    other.personal.ttl = 0  # (the default TTL bounds how long it may lag: KEY_TTL_SECONDS)

    run(c.ledger, DORA, "erase_personal_data", cid, reason="PIPL request")

    record: Any = other.get(cid)
    assert record.personal_data_erased and record.contacts[0]["phone"] is None


def test_personal_data_sealed_with_a_stale_key_is_refused_at_append(c: Any,
                                                                    other: EventStore) -> None:
    cid = registered(c)
    stale: Any = other.get(cid)  # cached with its key
    run(c.ledger, DORA, "erase_personal_data", cid, reason="PIPL request")
    assert not other.personal.is_erased(cid)  # its key cache still says "not erased" …

    stale.add_contact(MEI, name="Late Comer", phone="13900139000")
    events = stale.collect_events()
    object.__setattr__(events[0], "originator_version", 4)  # … and it bypasses the domain

    with pytest.raises(RecordConflict):
        other.append_and_wait(events)
    assert other.personal.is_erased(cid)
    assert c.store.execute("SELECT count(*) AS n FROM stored_events WHERE originator_id = %s",
                           (cid,))[0]["n"] == 3


def test_the_domain_refuses_personal_data_for_an_erased_customer(c: Any) -> None:
    cid = registered(c)
    run(c.ledger, DORA, "erase_personal_data", cid, reason="PIPL request")

    with pytest.raises(PersonalDataGone):
        run(c.ledger, MEI, "add_contact", cid, name="Wang Wu")


def test_a_customer_without_personal_data_can_be_erased_and_then_holds_none(c: Any) -> None:
    cid = UUID(run(c.ledger, MEI, "register", department="sales", kind="company", name="Acme",
                   credit_code="91310000MA1FL8XX0Y").body["id"])

    run(c.ledger, DORA, "erase_personal_data", cid, reason="precaution")

    [row] = keys_of(c.store, cid)
    assert row["key"] is None and row["erased_at"] is not None
    with pytest.raises(PersonalDataGone):
        run(c.ledger, MEI, "add_contact", cid, name="Wang Wu")
