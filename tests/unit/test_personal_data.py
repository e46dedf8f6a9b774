"""The personal-data mapper without a database: sealing and opening ``personal`` attributes
and personal snapshot state, associated data that pins ciphertext to its event, erased keys."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent

from domain.customer import Customer
from domain.shared import Actor
from projections.codec import make_mapper
from service.personal_data import (
    ERASED_MARK,
    WITHHELD_MARK,
    PersonalDataErasedError,
    PersonalDataMapper,
    PersonalDataUnreadable,
    PersonalKeys,
    _Entry,
)

MEMBER = Actor("mei", roles=frozenset({"member"}), departments=frozenset({"sales"}))
DPO = Actor("dora", roles=frozenset({"data_protection"}))
SECRETS = (b"Zhang San", b"13800138000", b"zhang@example.cn", b"Li Si")


class MemoryKeys(PersonalKeys):
    """The key table as a dict; counts look-ups."""

    def __init__(self) -> None:
        super().__init__(lambda: None)  # type: ignore[arg-type, return-value]
        self.table: dict[UUID, bytes | None] = {}
        self.fetches = 0

    def _fetch(self, owners: Sequence[UUID]) -> None:
        self.fetches += 1
        for owner in owners:
            if owner in self.table:
                key = self.table[owner]
                self._put(owner, _Entry(key, key is None, time.monotonic()))
            else:
                self._put(owner, _Entry(None, False, time.monotonic()))

    def _store_now(self, owner: UUID) -> bytes:
        self.table.setdefault(owner, b"k" * 32)
        key = self.table[owner]
        assert key is not None
        self.forget([owner])
        return key

    def commit(self, events: Sequence[Any]) -> None:
        """What the writer's transaction and commit do for keys."""
        with self._lock:
            for owner, entry in self._cache.items():
                if entry.pending:
                    self.table[owner] = entry.key
        self.committed(events)

    def erase(self, owner: UUID) -> None:
        self.table[owner] = None
        self.forget([owner])


@pytest.fixture
def keys() -> MemoryKeys:
    return MemoryKeys()


@pytest.fixture
def mapper(keys: MemoryKeys) -> PersonalDataMapper:
    return PersonalDataMapper(make_mapper().transcoder, keys)


def customer_with_contact() -> tuple[Customer, list[Any]]:
    customer = Customer.register(MEMBER, department="sales", kind="individual",
                                 name="Zhang San")
    assert isinstance(customer, Customer)
    customer.add_contact(MEMBER, name="Li Si", phone="13800138000", email="zhang@example.cn")
    return customer, list(customer.collect_events())


def store(mapper: PersonalDataMapper, keys: MemoryKeys, events: list[Any]) -> list[StoredEvent]:
    stored = [mapper.to_stored_event(e) for e in events]
    keys.commit(events)
    return stored


def replay(events: list[Any]) -> Any:
    record = None
    for e in events:
        record = e.mutate(record)
    return record


def test_personal_attribute_is_stored_as_ciphertext_and_read_back(mapper, keys) -> None:
    customer, events = customer_with_contact()

    stored = store(mapper, keys, events)

    for s in stored:
        assert not [x for x in SECRETS if x in s.state]
        assert b'"_enc"' in s.state
    back = [mapper.to_domain_event(s) for s in stored]
    assert [b.personal for b in back] == [e.personal for e in events]
    assert replay(back).contacts == customer.contacts


def test_a_new_customers_key_is_pending_until_its_events_commit(mapper, keys) -> None:
    customer, events = customer_with_contact()

    mapper.to_stored_event(events[0])

    assert customer.id not in keys.table  # the writer inserts it with the events
    keys.commit(events)
    assert len(keys.table[customer.id] or b"") == 32


def test_events_without_personal_data_are_stored_exactly_as_before(mapper, keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)
    customer.record_feedback(MEMBER, subject="tea", text="fine")
    [feedback] = customer.collect_events()

    assert mapper.to_stored_event(feedback).state == \
        make_mapper().to_stored_event(feedback).state


def test_ciphertext_moved_to_another_event_does_not_decrypt(mapper, keys) -> None:
    _, events = customer_with_contact()
    registered, contact = store(mapper, keys, events)
    sealed = mapper.transcoder.decode(contact.state)["personal"]
    body = mapper.transcoder.decode(registered.state)
    body["personal"] = sealed  # the contact's ciphertext pasted into the registration

    with pytest.raises(PersonalDataUnreadable):
        mapper.to_domain_event(StoredEvent(registered.originator_id, 1, registered.topic,
                                           mapper.transcoder.encode(body)))
    with pytest.raises(PersonalDataUnreadable):  # same bytes, another version
        mapper.to_domain_event(StoredEvent(contact.originator_id, 3, contact.topic,
                                           contact.state))


def test_ciphertext_moved_to_another_customer_does_not_decrypt(mapper, keys) -> None:
    _, first = customer_with_contact()
    _, second = customer_with_contact()
    a = store(mapper, keys, first)[1]
    b = store(mapper, keys, second)[1]
    body = mapper.transcoder.decode(b.state)
    body["personal"] = mapper.transcoder.decode(a.state)["personal"]

    with pytest.raises(PersonalDataUnreadable):
        mapper.to_domain_event(StoredEvent(b.originator_id, 2, b.topic,
                                           mapper.transcoder.encode(body)))


def test_edited_ciphertext_does_not_decrypt(mapper, keys) -> None:
    _, events = customer_with_contact()
    contact = store(mapper, keys, events)[1]
    body = mapper.transcoder.decode(contact.state)
    raw = bytearray(body["personal"]["_enc"].encode())
    raw[20] = ord("A") if raw[20] != ord("A") else ord("B")
    body["personal"]["_enc"] = raw.decode()

    with pytest.raises(PersonalDataUnreadable):
        mapper.to_domain_event(StoredEvent(contact.originator_id, 2, contact.topic,
                                           mapper.transcoder.encode(body)))


def test_after_the_key_is_destroyed_events_read_as_erased_and_still_replay(mapper,
                                                                            keys) -> None:
    customer, events = customer_with_contact()
    stored = store(mapper, keys, events)

    keys.erase(customer.id)
    back = [mapper.to_domain_event(s) for s in stored]

    assert all(b.personal is None and getattr(b, ERASED_MARK) for b in back)
    copy = replay(back)
    assert copy.name is None and copy.kind == "individual"
    assert [copy.contacts[0][f] for f in ("name", "phone", "email")] == [None] * 3


def test_nothing_personal_is_sealed_under_an_erased_key(mapper, keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)
    keys.erase(customer.id)
    customer.add_contact(MEMBER, name="Wang Wu")  # (the domain refuses this after erasure)
    [late] = customer.collect_events()

    with pytest.raises(PersonalDataErasedError):
        mapper.to_stored_event(late)


def test_readers_that_never_show_personal_data_look_no_key_up(mapper, keys) -> None:
    _, events = customer_with_contact()
    stored = store(mapper, keys, events)
    keys.forget(keys.table)
    before = keys.fetches

    back = [mapper.to_domain_event(s, with_personal=False) for s in stored]

    assert all(b.personal is None and getattr(b, WITHHELD_MARK) for b in back)
    assert keys.fetches == before


def test_snapshots_keep_personal_state_sealed(mapper, keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)

    stored = mapper.to_stored_event(Snapshot.take(customer))

    assert not [x for x in SECRETS if x in stored.state]
    thawed = mapper.to_domain_event(stored).mutate(None)
    assert thawed.contacts == customer.contacts and thawed.name == "Zhang San"


def test_a_snapshot_after_erasure_keeps_everything_but_the_personal_fields(mapper,
                                                                           keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)
    stored = mapper.to_stored_event(Snapshot.take(customer))

    keys.erase(customer.id)
    thawed = mapper.to_domain_event(stored).mutate(None)

    assert thawed.name is None and thawed.contacts[0]["name"] is None
    assert thawed.contacts[0]["id"] == customer.contacts[0]["id"]
    assert thawed.contacts[0]["is_primary"] is True and thawed.status == customer.status


def test_snapshot_ciphertext_is_bound_to_its_version(mapper, keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)
    stored = mapper.to_stored_event(Snapshot.take(customer))

    with pytest.raises(PersonalDataUnreadable):
        mapper.to_domain_event(StoredEvent(stored.originator_id, 1, stored.topic,
                                           stored.state))


def test_an_erased_snapshot_state_needs_no_key(mapper, keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)
    customer.erase_personal_data(DPO, reason="PIPL art. 47 request")
    erasure = customer.collect_events()
    store(mapper, keys, erasure)
    keys.erase(customer.id)

    stored = mapper.to_stored_event(Snapshot.take(customer))

    assert b'"_personal"' not in stored.state
    assert mapper.to_domain_event(stored).mutate(None).personal_data_erased is True


def test_reading_the_erasure_event_invalidates_a_cached_key(mapper, keys) -> None:
    customer, events = customer_with_contact()
    stored = store(mapper, keys, events)
    customer.erase_personal_data(DPO, reason="request")
    erasure = mapper.to_stored_event(customer.collect_events()[0])
    mapper.to_domain_event(stored[1])  # the key is cached here …
    keys.table[customer.id] = None     # … and destroyed by another process

    mapper.to_domain_event(erasure)

    assert mapper.to_domain_event(stored[1]).personal is None


def test_personal_data_of_another_record_is_sealed_with_its_owners_key(mapper, keys) -> None:
    owner = uuid4()
    keys.table[owner] = b"o" * 32
    customer, events = customer_with_contact()
    event = events[1]
    object.__setattr__(event, "personal_owner", owner)

    stored = mapper.to_stored_event(event)

    assert mapper.transcoder.decode(stored.state)["personal"]["_owner"] == str(owner)
    keys.erase(owner)
    assert mapper.to_domain_event(stored).personal is None


def test_the_same_snapshot_seals_to_the_same_bytes_so_rebuilds_are_identical(mapper,
                                                                             keys) -> None:
    customer, events = customer_with_contact()
    store(mapper, keys, events)
    first = Snapshot.take(customer)

    again = Snapshot(originator_id=first.originator_id,  # type: ignore[call-arg]
                     originator_version=first.originator_version, timestamp=first.timestamp,
                     topic=first.topic, state=dict(first.state))

    assert mapper.to_stored_event(first).state == mapper.to_stored_event(again).state
    # events are sealed under a fresh random nonce each time
    assert mapper.to_stored_event(events[1]).state != mapper.to_stored_event(events[1]).state
