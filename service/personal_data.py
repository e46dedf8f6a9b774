"""Personal data: encrypted per customer with AES-256-GCM, erased by destroying the key.

SPEC §7, PIPL art. 47 / GDPR art. 17; the design is in ``docs/personal-data.md``. In short:

* Every event that carries personal data carries it only in its ``personal`` attribute (see
  ``domain/customer.py``). ``PersonalDataMapper`` stores that attribute as an envelope
  ``{"_enc": base64(nonce ‖ ciphertext ‖ tag), "_owner": "<customer id>", "_v": 1}`` sealed with
  the owner's key (the customer: the event's record, or ``personal_owner`` when another record's
  event carries a customer's data). The associated data binds the ciphertext to its record id,
  version and owner, so it cannot be moved to another event. The stored bytes — and so the
  Merkle leaf — hold ciphertext only.
* Snapshots of a record type with personal state (``split_personal_state`` /
  ``join_personal_state`` on the aggregate class: customers) keep the personal part sealed the
  same way under ``"_personal"`` inside the snapshot state; that covers the library's
  ``snapshots`` table and the projection's ``record_state.state``.
* Keys live in ``personal_data_keys`` (one row per customer). A new customer's key is inserted
  by the event writer in the transaction that stores the customer's first encrypted event, so
  no event is ever committed under a key that was not. Erasure (the ``PersonalDataErased``
  event) sets the key to NULL and deletes the customer's snapshots in the transaction that
  stores the event; afterwards the fields decrypt to ``None`` and the event is marked
  ``personal_erased``.
* Keys are cached per process (LRU, ``KEY_TTL_SECONDS``): a process that did not perform an
  erasure stops using the key at the latest ``KEY_TTL_SECONDS`` later, at once when it reads the
  erasure event. The writer re-checks erasure in the append transaction, so no event is ever
  stored under an erased key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeGuard, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
    find_id_convertor,
)
from eventsourcing.utils import get_topic, resolve_topic

from domain.shared import DomainError

log = logging.getLogger(__name__)

KEYS_TABLE = "personal_data_keys"
SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (
    record_id  uuid PRIMARY KEY,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    erased_by  text,
    reason     text,
    erasure_position bigint,
    CONSTRAINT {KEYS_TABLE}_key_or_erased CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
"""

PERSONAL = "personal"            # the event attribute that carries personal data
OWNER = "personal_owner"         # names the customer when another record's event carries it
ERASURE_EVENT = "PersonalDataErased"
ERASED_MARK = "personal_erased"  # set on events whose personal data was erased
WITHHELD_MARK = "personal_withheld"  # set on events decoded without their personal data
SNAPSHOT_FIELD = "_personal"     # the sealed personal part inside a snapshot's state
KEY_TTL_SECONDS = 10.0
KEY_CACHE_SIZE = 10_000
PENDING_MAX_AGE = 3600.0  # a key never committed within this long belonged to a failed command
_AAD_PREFIX = b"opsledger/personal/v1\x00"
_pack_q = struct.Struct(">Q").pack


class PersonalDataErasedError(DomainError):
    """Personal data was to be stored for a customer whose personal data is erased (the domain
    refuses first; this is the store's own guard, e.g. against a stale cache elsewhere)."""

    status = 409
    rule = "personal_data_erased"


class PersonalDataUnreadable(ValueError):
    """Ciphertext that does not authenticate: edited, or moved from another event or record."""


def is_envelope(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and "_enc" in value


def owner_of(event_state: dict[str, Any], originator_id: UUID) -> UUID:
    """Whose key seals an event's ``personal`` attribute: its ``personal_owner``, else its
    record."""
    owner = event_state.get(OWNER)
    if owner is None:
        return originator_id
    return owner if isinstance(owner, UUID) else UUID(str(owner))


def aad(kind: bytes, record_id: UUID, version: int, owner: UUID) -> bytes:
    """What the ciphertext is bound to: event or snapshot, record id, version, owner."""
    return b"".join((_AAD_PREFIX, kind, b"\x00", record_id.bytes, _pack_q(version),
                     owner.bytes))


def seal(key: bytes, plaintext: bytes, associated: bytes, owner: UUID, *,
         deterministic: bool = False) -> dict[str, Any]:
    """AES-256-GCM under a random nonce; ``deterministic`` (snapshots) derives the nonce from
    the key, associated data and plaintext instead (a synthetic IV): the same state at the same
    version seals to the same bytes, so rebuilt projections are byte-identical, and a nonce
    repeats only with its plaintext."""
    if deterministic:
        nonce_key = hmac.new(key, b"opsledger/personal/nonce", hashlib.sha256).digest()
        nonce = hmac.new(nonce_key, associated + b"\x00" + plaintext,
                         hashlib.sha256).digest()[:12]
    else:
        nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, plaintext, associated)
    return {"_enc": base64.b64encode(sealed).decode(), "_owner": str(owner), "_v": 1}


def unseal(key: bytes, envelope: dict[str, Any], associated: bytes) -> bytes:
    try:
        raw = base64.b64decode(envelope["_enc"])
        return AESGCM(key).decrypt(raw[:12], raw[12:], associated)
    except (InvalidTag, ValueError, KeyError) as exc:
        raise PersonalDataUnreadable(
            "personal data does not authenticate for this record and version (edited or moved "
            "ciphertext)") from exc


# -- keys ----------------------------------------------------------------------------------------

@dataclass
class _Entry:
    key: bytes | None          # None: erased, or no key stored (``erased`` tells which)
    erased: bool
    fetched: float
    pending: bool = False      # generated here, not committed yet


class PersonalKeys:
    """The per-customer keys: a bounded, time-limited cache over ``personal_data_keys``.

    ``connect`` gives a connection (a context manager) for look-ups; the event writer calls
    ``in_transaction`` inside its append transaction and ``committed`` after the commit."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Any]], *,
                 snapshots_table: str = "snapshots", ttl: float = KEY_TTL_SECONDS,
                 size: int = KEY_CACHE_SIZE):
        self._connect = connect
        self.snapshots_table = snapshots_table
        self.ttl = ttl
        self.size = size
        self._cache: OrderedDict[UUID, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    # -- cache --------------------------------------------------------------------------
    def _get(self, owner: UUID, *, fresh: bool = False) -> _Entry | None:
        with self._lock:
            entry = self._cache.get(owner)
            if entry is None:
                return None
            if entry.pending or entry.erased:
                self._cache.move_to_end(owner)
                return entry  # pending keys are not in the database yet; erasure is final
            if fresh or time.monotonic() - entry.fetched > self.ttl:
                return None
            self._cache.move_to_end(owner)
            return entry

    def _put(self, owner: UUID, entry: _Entry) -> None:
        with self._lock:
            current = self._cache.get(owner)
            if current is not None and current.erased and not entry.erased:
                return  # never resurrect an erased key from a slower reader
            self._cache[owner] = entry
            self._cache.move_to_end(owner)
            if len(self._cache) > self.size:
                self._evict()

    def _evict(self) -> None:
        # Oldest first, but never a key whose events may still be on their way to the writer
        # (it would then not be stored with them); a pending key of a command that failed long
        # ago goes.
        now = time.monotonic()
        for owner in list(self._cache):
            if len(self._cache) <= self.size:
                return
            entry = self._cache[owner]
            if not entry.pending or now - entry.fetched > PENDING_MAX_AGE:
                del self._cache[owner]

    def forget(self, owners: Iterable[UUID]) -> None:
        with self._lock:
            for owner in owners:
                self._cache.pop(owner, None)

    def mark_erased(self, owner: UUID) -> None:
        self._put(owner, _Entry(None, True, time.monotonic()))

    def _fetch(self, owners: Sequence[UUID]) -> None:
        if not owners:
            return
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT record_id, key, erased_at FROM {KEYS_TABLE}"
                        " WHERE record_id = ANY(%s)", (list(owners),))
            rows = cur.fetchall()
        now = time.monotonic()
        found: set[UUID] = set()
        for row in rows:
            rid, key, erased_at = ((row["record_id"], row["key"], row["erased_at"])
                                   if isinstance(row, dict) else row)
            found.add(rid)
            self._put(rid, _Entry(None if key is None else bytes(key), erased_at is not None,
                                  now))
        for owner in owners:
            if owner not in found:
                self._put(owner, _Entry(None, False, now))

    def lookup(self, owner: UUID, *, fresh: bool = False) -> _Entry:
        entry = self._get(owner, fresh=fresh)
        if entry is None:
            self._fetch([owner])
            with self._lock:
                entry = self._cache.get(owner) or _Entry(None, False, time.monotonic())
        return entry

    def prefetch(self, owners: Iterable[UUID]) -> None:
        """Loads the keys of many owners in one statement (projection and audit batches)."""
        self._fetch([o for o in dict.fromkeys(owners) if self._get(o) is None])

    def is_erased(self, owner: UUID) -> bool:
        return self.lookup(owner).erased

    def key_for_read(self, owner: UUID) -> bytes | None:
        """The key, or ``None`` when the personal data is erased (or its key row is gone)."""
        entry = self.lookup(owner)
        if entry.key is None and not entry.erased:
            entry = self.lookup(owner, fresh=True)  # created by another process since
            if entry.key is None and not entry.erased:
                log.warning("personal data of %s is encrypted under a key that is not stored "
                            "(row deleted by hand?): reading it as erased", owner)
        return entry.key

    def key_for_write(self, owner: UUID, *, in_event_transaction: bool) -> bytes:
        """The owner's key, creating one when it has none.

        In the event writer's path (``in_event_transaction``) a new key stays pending in memory
        and the writer inserts it in the transaction that stores the events it seals; elsewhere
        (snapshots) a new key is stored at once, before anything sealed with it is written."""
        entry = self.lookup(owner)
        if entry.erased:
            raise PersonalDataErasedError(f"the personal data of {owner} is erased; nothing "
                                          "personal can be stored for it again")
        if entry.key is not None and (in_event_transaction or not entry.pending):
            return entry.key
        if not in_event_transaction:
            return self._store_now(owner)
        key = AESGCM.generate_key(bit_length=256)
        self._put(owner, _Entry(key, False, time.monotonic(), pending=True))
        return key

    def _store_now(self, owner: UUID) -> bytes:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {KEYS_TABLE} (record_id, key) VALUES (%s, %s)"
                        " ON CONFLICT (record_id) DO NOTHING",
                        (owner, AESGCM.generate_key(bit_length=256)))
            conn.commit()
        entry = self.lookup(owner, fresh=True)
        if entry.key is None:
            raise PersonalDataErasedError(f"the personal data of {owner} is erased")
        return entry.key

    # -- the event writer's hooks ----------------------------------------------------------
    @staticmethod
    def _owners(events: Sequence[Any]) -> tuple[set[UUID], list[tuple[int, Any]]]:
        sealed: set[UUID] = set()
        erasures: list[tuple[int, Any]] = []
        for index, event in enumerate(events):
            if type(event).__name__ == ERASURE_EVENT:
                erasures.append((index, event))
            elif getattr(event, PERSONAL, None) and not is_envelope(getattr(event, PERSONAL)):
                sealed.add(owner_of(vars(event), event.originator_id))
        return sealed, erasures

    def involved(self, events: Sequence[Any]) -> bool:
        """Whether appending these events has personal-data work to do in its transaction
        (keys to store or check, an erasure)."""
        sealed, erasures = self._owners(events)
        return bool(sealed or erasures)

    def in_transaction(self, curs: Any, events: Sequence[Any], positions: Sequence[int],
                       ) -> None:
        """Runs in the append transaction, under the event table's lock: stores the new keys
        the batch's events are sealed with, refuses personal data for erased customers, and
        carries out erasures (key destroyed, snapshots deleted)."""
        sealed, erasures = self._owners(events)
        if sealed:
            with self._lock:
                pending = {o: e.key for o in sealed
                           if (e := self._cache.get(o)) is not None and e.pending}
            if pending:
                curs.execute(
                    f"INSERT INTO {KEYS_TABLE} (record_id, key)"
                    " SELECT * FROM unnest(%s::uuid[], %s::bytea[])"
                    " ON CONFLICT (record_id) DO NOTHING RETURNING record_id",
                    (list(pending), list(pending.values())))
                stored = {_first(r) for r in curs.fetchall()}
                lost = set(pending) - stored
                if lost:  # another writer stored a key first: seal again with that one
                    self.forget(lost)
                    raise IntegrityError(f"personal data keys of {sorted(map(str, lost))} "
                                         "were created concurrently; retry")
            existing = sealed - set(pending)
            if existing:
                # Under the event table's lock: an erasure committed by another process, or a
                # key that is not stored, refuses the batch (the command is decided again).
                curs.execute(f"SELECT record_id, erased_at IS NOT NULL AS erased FROM {KEYS_TABLE}"
                             " WHERE record_id = ANY(%s)", (list(existing),))
                rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r)
                        for r in curs.fetchall()]
                erased = [rid for rid, gone in rows if gone]
                for owner in erased:
                    self.mark_erased(owner)
                missing = existing - {rid for rid, _ in rows}
                self.forget(missing)
                if erased or missing:
                    raise IntegrityError(
                        f"personal data of {sorted(map(str, erased))} was erased meanwhile, "
                        f"keys of {sorted(map(str, missing))} are not stored; nothing is "
                        "stored, decide again")
        for index, event in erasures:
            owner = owner_of(vars(event), event.originator_id)
            curs.execute(
                f"INSERT INTO {KEYS_TABLE} AS k (record_id, key, erased_at, erased_by, reason,"
                " erasure_position) VALUES (%s, NULL, now(), %s, %s, %s)"
                " ON CONFLICT (record_id) DO UPDATE SET key = NULL,"
                " erased_at = coalesce(k.erased_at, EXCLUDED.erased_at),"
                " erased_by = coalesce(k.erased_by, EXCLUDED.erased_by),"
                " reason = coalesce(k.reason, EXCLUDED.reason),"
                " erasure_position = coalesce(k.erasure_position, EXCLUDED.erasure_position)",
                (owner, getattr(event, "by", None), getattr(event, "reason", None),
                 positions[index]))
            # Snapshots are derived; their sealed part is unreadable now anyway. The store
            # rebuilds them from events (as-of reads heal them) without personal data.
            curs.execute(f"DELETE FROM {self.snapshots_table} WHERE originator_id = %s",
                         (owner,))

    def committed(self, events: Sequence[Any]) -> None:
        """After the append transaction committed: pending keys are stored, erasures final."""
        sealed, erasures = self._owners(events)
        now = time.monotonic()
        with self._lock:
            for owner in sealed:
                entry = self._cache.get(owner)
                if entry is not None and entry.pending:
                    entry.pending = False
                    entry.fetched = now
        for _, event in erasures:
            self.mark_erased(owner_of(vars(event), event.originator_id))


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


# -- the mapper ----------------------------------------------------------------------------------

class PersonalDataMapper(Mapper[UUID]):
    """The library's mapper, sealing ``personal`` attributes and personal snapshot state.

    Everything else is encoded exactly as by the plain mapper (``projections.codec``), so
    records without personal data store the same bytes as before."""

    def __init__(self, transcoder: Transcoder, keys: PersonalKeys):
        super().__init__(transcoder=transcoder)
        self.keys = keys

    # -- writing ------------------------------------------------------------------------
    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(type(domain_event))
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        if isinstance(domain_event, Snapshot):
            state["state"] = self._seal_snapshot(state["topic"], state["state"], originator_id,
                                                 originator_version)
        else:
            personal = state.get(PERSONAL)
            if personal and not is_envelope(personal):
                owner = owner_of(state, originator_id)
                key = self.keys.key_for_write(owner, in_event_transaction=True)
                state[PERSONAL] = seal(key, self.transcoder.encode(personal),
                                       aad(b"event", originator_id, originator_version, owner),
                                       owner)
            for mark in (ERASED_MARK, WITHHELD_MARK):
                state.pop(mark, None)
        return StoredEvent(originator_id=originator_id, originator_version=originator_version,
                           topic=topic, state=self.transcoder.encode(state))

    def _seal_snapshot(self, aggregate_topic: str, state: dict[str, Any], record_id: UUID,
                       version: int) -> dict[str, Any]:
        split = getattr(resolve_topic(aggregate_topic), "split_personal_state", None)
        if split is None:
            return state
        public, personal = split(state)
        if not personal:
            return public
        try:
            key = self.keys.key_for_write(record_id, in_event_transaction=False)
        except PersonalDataErasedError:
            return public  # erased meanwhile (read with a stale key): keep none of it
        public[SNAPSHOT_FIELD] = seal(key, self.transcoder.encode(personal),
                                      aad(b"snapshot", record_id, version, record_id),
                                      record_id, deterministic=True)
        return cast(dict[str, Any], public)

    # -- reading ------------------------------------------------------------------------
    def to_domain_event(self, stored_event: StoredEvent, *, with_personal: bool = True,
                        ) -> Any:
        """The domain event; with ``with_personal=False`` its personal data is left sealed
        (``personal`` None, marked ``personal_withheld``): for readers that never show it
        (the audit log, integration streams), at no key look-up."""
        cls = resolve_topic(stored_event.topic)
        try:
            state: dict[str, Any] = self.transcoder.decode(stored_event.state)
        except Exception as exc:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic "
                f"'{stored_event.topic}', originator_id '{stored_event.originator_id}' and "
                f"originator_version {stored_event.originator_version}: {exc}") from exc
        record_id = stored_event.originator_id
        version = stored_event.originator_version
        record_uuid = record_id if isinstance(record_id, UUID) else UUID(str(record_id))
        if isinstance(cls, type) and issubclass(cls, Snapshot):
            inner = state.get("state")
            if isinstance(inner, dict) and SNAPSHOT_FIELD in inner:
                state["state"] = self._open_snapshot(state["topic"], inner, record_uuid,
                                                     version)
        else:
            personal = state.get(PERSONAL)
            if personal and not is_envelope(personal) and self.keys.is_erased(
                    owner_of(state, record_uuid)):
                # Written before encryption was on: hidden in every view once erased (the
                # stored bytes cannot change; see docs/personal-data.md).
                state[PERSONAL] = None
                state[ERASED_MARK] = True
            elif is_envelope(personal):
                owner = owner_of(state, record_uuid)
                if not with_personal:
                    state[PERSONAL] = None
                    state[WITHHELD_MARK] = True
                else:
                    key = self.keys.key_for_read(owner)
                    if key is None:
                        state[PERSONAL] = None
                        state[ERASED_MARK] = True
                    else:
                        state[PERSONAL] = self.transcoder.decode(unseal(
                            key, personal, aad(b"event", record_uuid, version, owner)))
            if getattr(cls, "__name__", "") == ERASURE_EVENT:
                # Whoever reads an erasure learns it at once (other processes' key caches).
                self.keys.mark_erased(owner_of(state, record_uuid))
        state["originator_id"] = find_id_convertor(cls, cast(Any, type(record_id)))(record_id)
        state["originator_version"] = version
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def _open_snapshot(self, aggregate_topic: str, state: dict[str, Any], record_id: UUID,
                       version: int) -> dict[str, Any]:
        state = dict(state)
        envelope: dict[str, Any] = state.pop(SNAPSHOT_FIELD)
        key = self.keys.key_for_read(record_id)
        personal = None if key is None else self.transcoder.decode(
            unseal(key, envelope, aad(b"snapshot", record_id, version, record_id)))
        join = getattr(resolve_topic(aggregate_topic), "join_personal_state", None)
        return state if join is None else cast(dict[str, Any], join(state, personal))

    def prefetch(self, stored_events: Iterable[StoredEvent]) -> None:
        """Loads in one statement the keys a batch of stored events will need."""
        owners = [s.originator_id for s in stored_events
                  if b'"_enc"' in s.state]
        if owners:
            self.keys.prefetch(o if isinstance(o, UUID) else UUID(str(o)) for o in owners)
