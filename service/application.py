"""Use cases: run one command against one record — load, decide, stamp metadata, append.

Everything a command promises (SPEC §7) happens here, once, for every record type:
optimistic concurrency (If-Match), Idempotency-Key replay, retries on concurrent writers,
event metadata, the refusal log, the aggregate cache and snapshots.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from domain.shared import (
    Actor,
    DomainError,
    InvalidTransition,
    Record,
    UniqueKey,
    ValidationFailed,
)
from service import telemetry
from service.catalogue import CommandBody, CommandSpec
from service.ids import uuid4
from service.logs import correlation_id
from service.store import EventStore, IdempotencyKeyTaken, IdempotencyRecord, RecordConflict

if TYPE_CHECKING:
    from service.loop_writer import LoopWriter

log = logging.getLogger(__name__)
tracer = trace.get_tracer("opsledger.commands")

EVENT_SCHEMA = 1  # version of the metadata envelope; payload versions are per event class
REFERENCE_FIELDS = {"customer_id": "customer", "project_id": "project", "budget_id": "budget"}


def _names_records(body: CommandBody) -> bool:
    """Whether the command names other records (``_check_references`` reads them)."""
    fields = _reference_fields(type(body))
    return bool(fields) and (any(getattr(body, name) is not None for name in fields if
                                 name != "scope")
                             or getattr(body, "scope", None) in REFERENCE_FIELDS.values())


@functools.cache
def _reference_fields(model: type[CommandBody]) -> tuple[str, ...]:
    """The fields of a command's body that may name another record."""
    return tuple(name for name in model.model_fields
                 if name in REFERENCE_FIELDS or name == "scope")


class NotFound(Exception):
    def __init__(self, record_type: str, record_id: UUID | str):
        super().__init__(f"no {record_type} with id {record_id}")
        self.record_type = record_type
        self.record_id = record_id


class StaleVersion(Exception):
    def __init__(self, expected: int, current: int):
        super().__init__(f"If-Match names version {expected} but the record is at version "
                         f"{current}; read it again and retry")
        self.expected = expected
        self.current = current


class IdempotencyMismatch(Exception):
    def __init__(self, key: str):
        super().__init__(f"Idempotency-Key '{key}' was already used with a different request "
                         "body or target")
        self.key = key


class Busy(Exception):
    """Too many concurrent writers kept winning: the client may retry."""


@dataclass
class CommandContext:
    actor: Actor
    comment: str | None = None
    correlation_id: str = field(default_factory=lambda: str(uuid4()))
    causation_id: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid4()))
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass
class CommandResult:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False

    @property
    def version(self) -> int:
        return int(self.body["version"])


# Makes a command's answer from the positions its events were given.
Respond = Callable[[list[int]], tuple[int, dict[str, Any]]]


class _RecordLocks:
    """One lock per record id (bounded): commands on one record queue up in this process."""

    def __init__(self, size: int = 10_000):
        self._locks: OrderedDict[UUID, threading.Lock] = OrderedDict()
        self._guard = threading.Lock()
        self._size = size

    @contextmanager
    def hold(self, record_id: UUID) -> Iterator[None]:
        with self._lock(record_id):
            yield

    def try_acquire(self, record_id: UUID) -> threading.Lock | None:
        """The record's lock, acquired, if it is free now (never waits); else None."""
        lock = self._lock(record_id)
        return lock if lock.acquire(blocking=False) else None

    def _lock(self, record_id: UUID) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(record_id)
            if lock is None:
                lock = self._locks[record_id] = threading.Lock()
                while len(self._locks) > self._size:
                    self._locks.popitem(last=False)
            else:
                self._locks.move_to_end(record_id)
        return lock


class Ledger:
    """The application service: a thin list of use cases over the event store."""

    def __init__(self, store: EventStore, *, retries: int = 5, commit_timeout: float = 30.0):
        self.store = store
        self.retries = retries
        self.commit_timeout = commit_timeout
        self._locks = _RecordLocks()
        self._snapshots_due: list[Any] = []  # taken by _take_snapshots (execute_on_loop)
        # The group commit on the event loop (service.loop_writer), when the API process
        # runs one: execute_on_loop's appends go there rather than to the writer thread.
        self.loop_writer: LoopWriter | None = None

    # -- queries ------------------------------------------------------------------------
    def load(self, record_cls: type[Record], record_id: UUID | str,
             version: int | None = None) -> Record:
        if not isinstance(record_id, UUID):
            record_id = UUID(str(record_id))
        try:
            record = self.store.get(record_id, version=version)
        except AggregateNotFoundError:
            raise NotFound(record_cls.RECORD_TYPE, record_id) from None
        if not isinstance(record, record_cls):
            raise NotFound(record_cls.RECORD_TYPE, record_id)
        return record

    def load_current(self, record_cls: type[Record], record_id: UUID | str) -> Record:
        """The latest state for reads (GET): the cached record (a copy) brought forward by the
        events another process appended since this one cached it — one indexed query. (The
        cache alone may lag behind other workers; commands detect that by conflict, reads must
        look.) A stale cache entry is dropped so the next command loads afresh."""
        record = self.load(record_cls, record_id)
        newer: list[Any] = list(self.store.events.get(record.id, gt=record.version))
        if newer:
            for event in newer:
                event.mutate(record)
            self.store.cache_evict(record.id)
        return record

    # -- commands -----------------------------------------------------------------------
    def execute(self, spec: CommandSpec, ctx: CommandContext, body: CommandBody,
                record_id: UUID | None = None, expected_version: int | None = None,
                ) -> CommandResult:
        if record_id is not None and not isinstance(record_id, UUID):
            record_id = UUID(str(record_id))
        with self._observed(spec, ctx, record_id) as observed:
            result = self._execute(spec, ctx, body, record_id, expected_version)
            observed(result)
            return result

    async def execute_on_loop(self, spec: CommandSpec, ctx: CommandContext, body: CommandBody,
                              record_id: UUID, expected_version: int | None,
                              ) -> CommandResult | None:
        """The common command — an update of a record this process has cached, naming no
        other record — decided on the event loop and committed there (``loop_writer``, when
        this loop runs one; else the writer thread's commit is awaited): no thread hop
        (measured: a hop to a thread and back costs ~40 µs of CPU per command). None, with
        nothing written, whenever the command needs more: a read, a refusal (answered and
        logged by ``execute``), a stale If-Match, a busy record, a conflict at the append. The
        caller then runs ``execute`` in a thread, which decides afresh."""
        if spec.creates or _names_records(body):
            return None
        lock = self._locks.try_acquire(record_id)
        if lock is None:
            return None
        try:
            record = self.store.cached_copy(record_id)
            if (not isinstance(record, spec.record_cls)
                    or getattr(record, "personal_data_erased", None) is not None  # store.get
                    or (expected_version is not None and expected_version != record.version)):
                return None
            try:
                spec.call(record, ctx.actor, body)
            except Exception:
                return None
            with self._observed(spec, ctx, record_id) as observed:
                respond, by_record, events, idem = self._stamp(spec, ctx, [record])
                with tracer.start_as_current_span("events.append") as span:
                    span.set_attribute("opsledger.events", len(events))
                    try:
                        # (The writer marks its futures running: a request cancelled now
                        # cannot cancel the write, whose answer is then simply not sent.)
                        writer = self.loop_writer
                        positions = await (
                            writer.append(events, idem) if writer is not None
                            and writer.accepts(events)
                            else asyncio.wrap_future(self.store.append(events, idem)))
                    except (RecordConflict, IdempotencyKeyTaken):
                        self.store.cache_evict(record_id)
                        observed(None)
                        return None
                    if positions:
                        span.set_attribute("opsledger.position", max(positions))
                result = self._committed(by_record, respond, positions, defer_snapshots=True)
                observed(result)
        finally:
            lock.release()
        if self._snapshots_due:
            await asyncio.get_running_loop().run_in_executor(None, self._take_snapshots)
        return result

    @contextmanager
    def _observed(self, spec: CommandSpec, ctx: CommandContext, record_id: UUID | None,
                  ) -> Iterator[Callable[[CommandResult | None], None]]:
        """The command's span, metrics and correlation id; the block calls ``observed(result)``
        with its answer (None: given up, to be run again by ``execute``)."""
        started = time.perf_counter()
        outcome = "error"
        token = correlation_id.set(ctx.correlation_id)
        # Refusals are answers, not failures: the span's status is an error only for the rest.
        with tracer.start_as_current_span(f"command {spec.full_name}", record_exception=False,
                                          set_status_on_exception=False) as span:
            span.set_attribute("opsledger.record_type", spec.record_type)
            span.set_attribute("opsledger.command", spec.full_name)
            if record_id is not None:
                span.set_attribute("opsledger.record_id", str(record_id))

            def observed(result: CommandResult | None) -> None:
                nonlocal outcome
                if result is None:
                    outcome = "retried"
                else:
                    outcome = "replayed" if result.replayed else "ok"
                    span.set_attribute("opsledger.record_id", result.body["id"])
                span.set_attribute("opsledger.outcome", outcome)

            try:
                yield observed
            except DomainError as exc:
                outcome = "refused"
                span.set_attribute("opsledger.outcome", f"refused:{exc.rule}")
                self._log_refusal(spec, ctx, record_id, exc.status, exc.rule, exc.message)
                raise
            except Exception as exc:
                outcome = telemetry.command_outcome(exc)
                span.set_attribute("opsledger.outcome", outcome)
                if outcome == "error":
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            finally:
                if outcome != "retried":  # counted once, by the run that answers
                    attrs = {"command": spec.full_name, "record_type": spec.record_type,
                             "outcome": outcome}
                    telemetry.COMMANDS.add(1, attrs)
                    telemetry.COMMAND_DURATION.record(time.perf_counter() - started, attrs)
                correlation_id.reset(token)

    def _execute(self, spec: CommandSpec, ctx: CommandContext, body: CommandBody,
                 record_id: UUID | None, expected_version: int | None) -> CommandResult:
        """Runs the command; an Idempotency-Key already used answers with the first answer.

        The key is not looked up before deciding (a round trip per command): the append
        stores it in the same transaction as the events, under a unique constraint, so a key
        used before makes the append fail (``IdempotencyKeyTaken``) and nothing is written; a
        retry refused by the state its first attempt left (412, 409, 422 …) looks the key up
        before answering. Either way the first answer is replayed, or a different body under
        the same key is refused (422), exactly as if it had been looked up first."""
        try:
            return self._execute_once(spec, ctx, body, record_id, expected_version)
        except (DomainError, StaleVersion, NotFound, Busy):
            if ctx.idempotency_key:
                prior = self._prior_response(ctx)
                if prior is not None:
                    return prior
            raise

    def _execute_once(self, spec: CommandSpec, ctx: CommandContext, body: CommandBody,
                      record_id: UUID | None, expected_version: int | None) -> CommandResult:
        self._check_references(body)
        for _attempt in range(self.retries):
            if spec.creates:
                records = self._decide_create(spec, ctx, body)
                lock_id = records[0].id
            else:
                assert record_id is not None
                lock_id = record_id
            with self._locks.hold(lock_id):
                if not spec.creates:
                    assert record_id is not None
                    records = self._decide_update(spec, ctx, body, record_id, expected_version)
                try:
                    return self._append(spec, ctx, records)
                except RecordConflict as conflict:
                    for r in records:
                        self.store.cache_evict(r.id)
                    if spec.creates:
                        raise self._duplicate(records, conflict) from None
                    continue  # someone else wrote first: decide again on fresh state
                except IdempotencyKeyTaken:
                    prior = self._prior_response(ctx)
                    if prior is not None:
                        return prior
                    raise
        raise Busy(f"{spec.full_name}: the record kept changing under {self.retries} attempts")

    def _check_references(self, body: CommandBody) -> None:
        """A command naming another record (``customer_id``, ``project_id``, ``budget_id``, or a
        risk's ``linked_id`` for its ``scope``) must name one that exists: 422 otherwise.
        Records are never deleted, so the check cannot be invalidated by a later command."""
        refs: list[tuple[str, Any, Any]] = [(name, getattr(body, name, None), rtype)
                for name, rtype in REFERENCE_FIELDS.items()]
        scope = getattr(body, "scope", None)
        if scope in REFERENCE_FIELDS.values():
            refs.append(("linked_id", getattr(body, "linked_id", None), scope))
        for name, value, rtype in refs:
            if value is None:
                continue
            try:
                record = self.store.get(value)
            except AggregateNotFoundError:
                record = None
            if getattr(record, "RECORD_TYPE", None) != rtype:
                raise ValidationFailed(f"'{name}': no {rtype.replace('_', ' ')} with id {value}",
                                       field=name, rule="unknown_reference")

    def _decide_create(self, spec: CommandSpec, ctx: CommandContext,
                       body: CommandBody) -> list[Any]:
        out = spec.call(spec.record_cls, ctx.actor, body)
        return list(out) if isinstance(out, tuple) else [out]

    def _decide_update(self, spec: CommandSpec, ctx: CommandContext, body: CommandBody,
                       record_id: UUID, expected_version: int | None) -> list[Any]:
        record = self.load(spec.record_cls, record_id)
        if expected_version is not None and expected_version > record.version:
            # Our cache may be behind another process: look again before calling it stale.
            self.store.cache_evict(record_id)
            record = self.load(spec.record_cls, record_id)
        if expected_version is not None and expected_version != record.version:
            raise StaleVersion(expected_version, record.version)
        spec.call(record, ctx.actor, body)
        return [record]

    def _append(self, spec: CommandSpec, ctx: CommandContext,
                records: list[Any]) -> CommandResult:
        respond, by_record, events, idem = self._stamp(spec, ctx, records)
        with tracer.start_as_current_span("events.append") as span:
            span.set_attribute("opsledger.events", len(events))
            positions = self.store.append(events, idem).result(self.commit_timeout)
            if positions:
                span.set_attribute("opsledger.position", max(positions))
        return self._committed(by_record, respond, positions)

    def _stamp(self, spec: CommandSpec, ctx: CommandContext, records: list[Any],
               ) -> tuple[Respond, list[tuple[Any, list[Any]]], list[Any],
                          IdempotencyRecord | None]:
        """The records' new events stamped with the command's metadata, and what the append
        stores with them: the answer (for the Idempotency-Key) is made by ``respond``."""
        main = records[0]
        events_by_record = [(r, r.collect_events()) for r in records]
        events = [e for _, es in events_by_record for e in es]
        meta = self._metadata(spec, ctx, main)
        for event in events:
            object.__setattr__(event, "meta", meta)
        main_events = events_by_record[0][1]

        def respond(positions: list[int]) -> tuple[int, dict[str, Any]]:
            return self._response(spec, main, main_events, positions)

        idem = None
        if ctx.idempotency_key:
            idem = IdempotencyRecord(ctx.actor.user_id, ctx.idempotency_key,
                                     ctx.request_hash or "", respond)
        return respond, events_by_record, events, idem

    def _committed(self, records: list[tuple[Any, list[Any]]], respond: Respond,
                   positions: list[int], *, defer_snapshots: bool = False) -> CommandResult:
        """After the commit: the records go to the cache, and a snapshot is taken when one is
        due (``defer_snapshots``: left to ``_take_snapshots``, which does I/O)."""
        for r, es in records:
            if isinstance(r, Record):
                self.store.cache_put(r)
                if not self.store.snapshot_due(r, len(es)):
                    continue
                if defer_snapshots:
                    self._snapshots_due.append(r)
                else:
                    self.store.take_snapshot(r)
        status, body = respond(positions)
        return CommandResult(status, body)

    def _take_snapshots(self) -> None:
        while self._snapshots_due:
            try:
                record = self._snapshots_due.pop()
            except IndexError:
                return
            self.store.take_snapshot(record)

    @staticmethod
    def _response(spec: CommandSpec, main: Any, main_events: list[Any],
                  positions: list[int]) -> tuple[int, dict[str, Any]]:
        main_positions = positions[: len(main_events)]
        body = {
            "id": str(main.id),
            "record_type": spec.record_type,
            "command": spec.name,
            "version": main.version,
            "position": max(main_positions) if main_positions else max(positions),
            "status": getattr(main, "status", None),
            "events": [
                {"type": type(e).__name__, "version": e.originator_version, "position": p}
                for e, p in zip(main_events, main_positions, strict=False)
            ],
        }
        return (201 if spec.creates else 200), body

    @staticmethod
    def _metadata(spec: CommandSpec, ctx: CommandContext, main: Any) -> dict[str, Any]:
        span_ctx = trace.get_current_span().get_span_context()
        return {
            "schema": EVENT_SCHEMA,
            "command": spec.full_name,
            "actor": ctx.actor.as_dict(),
            "comment": ctx.comment,
            "department": getattr(main, "department", None),
            "correlation_id": ctx.correlation_id,
            "causation_id": ctx.causation_id,
            "request_id": ctx.request_id,
            "idempotency_key": ctx.idempotency_key,
            "trace_id": format(span_ctx.trace_id, "032x") if span_ctx.is_valid else None,
            "span_id": format(span_ctx.span_id, "016x") if span_ctx.is_valid else None,
        }

    def _prior_response(self, ctx: CommandContext) -> CommandResult | None:
        rows = self.store.execute(
            "SELECT request_hash, status, body FROM idempotency_keys"
            " WHERE actor_id = %s AND key = %s", (ctx.actor.user_id, ctx.idempotency_key))
        if not rows:
            return None
        row = rows[0]
        if row["request_hash"] != (ctx.request_hash or ""):
            raise IdempotencyMismatch(ctx.idempotency_key or "")
        return CommandResult(row["status"], row["body"], replayed=True)

    @staticmethod
    def _duplicate(records: list[Any], conflict: RecordConflict) -> DomainError:
        from domain.shared import Duplicate
        for r in records:
            if isinstance(r, UniqueKey):
                return Duplicate(f"{r.namespace} '{r.key}' is already used by another "
                                 f"{r.owner_type.replace('_', ' ')}", rule="duplicate_key")
        record_type = getattr(records[0], "RECORD_TYPE", "record")
        return Duplicate(f"this {record_type} already exists (its identity is taken)",
                         rule="duplicate_record")

    def _log_refusal(self, spec: CommandSpec, ctx: CommandContext, record_id: UUID | None,
                     status: int, rule: str, detail: str) -> None:
        try:
            self.store.execute(
                "INSERT INTO refused_commands (actor_id, actor_roles, departments, command,"
                " record_type, record_id, status, rule, detail, correlation_id, request_id)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (ctx.actor.user_id, sorted(ctx.actor.roles), sorted(ctx.actor.departments),
                 spec.full_name, spec.record_type, record_id, status, rule, detail,
                 ctx.correlation_id, ctx.request_id))
        except Exception:
            log.exception("could not record a refused command")


def refusal_status(exc: DomainError) -> int:
    return 409 if isinstance(exc, InvalidTransition) else exc.status
