"""Property: a record's state as of any past version or moment is exactly what it was then.

Random command sequences run through the Ledger against PostgreSQL, over every record type in
the catalogue: command bodies are drawn from each command's signature (so a new record type is
covered without new test code), by people with random roles; refused commands are simply part
of the sequence. At random moments the record's state is remembered; afterwards the as-of query
by version and by timestamp must answer exactly the remembered state. A small snapshot interval
makes the rebuilds start from snapshots (and heal missing ones) as well as from the start.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import string
import types
import typing
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.shared import Actor, DomainError, Role
from projections.codec import record_view
from service.application import CommandContext, NotFound
from service.audit import ReadContext, auditor_of
from service.catalogue import RECORD_TYPES, CommandSpec, commands_of, record_class
from tests.conftest import make_settings

USERS = ("ann", "bob", "cyd", "dee")
DEPARTMENT = "ops"
WORDS = ("Pilot", "alpha", "todo", "doing", "done", "blocked", "ops", "reason given")
AUDITOR = ReadContext(Actor("aud", "Aud", frozenset({"auditor"})), via="test")


@pytest.fixture(scope="module")
def ledger_container(module_database: Any) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(snapshot_interval=3), module_database, start_projector=False)
    yield c
    c.close()


def strings_in(value: Any) -> list[str]:
    """Every string in a record view (ids, names, statuses): good guesses for str arguments."""
    if isinstance(value, str):
        return [value] if len(value) < 80 else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


class Args:
    """Draws plausible arguments for a command from its parameter names and types."""

    def __init__(self, records: dict[str, list[UUID]], doc: dict[str, Any] | None):
        self.records = records
        self.seen = sorted(set(strings_in(doc or {})))

    def for_type(self, name: str, tp: Any) -> st.SearchStrategy[Any]:  # noqa: C901
        origin = get_origin(tp)
        if origin is typing.Annotated:
            return self.for_type(name, get_args(tp)[0])
        if tp is type(None):
            return st.none()
        if origin in (Union, types.UnionType):
            return st.one_of([self.for_type(name, a) for a in get_args(tp)])
        if origin is Literal:
            return st.sampled_from(get_args(tp))
        if origin in (list, tuple, set, frozenset):
            (inner,) = get_args(tp)[:1] or (str,)
            return st.lists(self.for_type(name, inner), min_size=1, max_size=3)
        if origin is dict:
            return st.just({})
        if typing.is_typeddict(tp):
            hints = typing.get_type_hints(tp)
            required = {k: self.for_type(k, hints[k]) for k in tp.__required_keys__}
            optional = {k: self.for_type(k, hints[k]) for k in tp.__optional_keys__}
            return st.fixed_dictionaries(required, optional=optional)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return st.sampled_from([m.value for m in tp])
        if tp is bool:
            return st.booleans()
        if tp is int:
            if "year" in name:
                return st.integers(2025, 2028)
            return st.sampled_from([1, 2, 3, 4, 5, 50, 100])
        if tp is Decimal:
            return st.sampled_from(["0.00", "100.00", "2500.50", "12000.00"]).map(Decimal)
        if tp is dt.date:
            return st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        if tp is dt.datetime:
            return st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2026, 12, 31),
                                timezones=st.just(dt.UTC))
        if tp is UUID:
            kind = name.removesuffix("_id")
            pool = self.records.get(kind) or [r for ids in self.records.values() for r in ids]
            return st.sampled_from(pool) if pool else st.uuids()
        return self.text(name)

    def text(self, name: str) -> st.SearchStrategy[str]:
        if name == "department":
            return st.just(DEPARTMENT)
        if name == "credit_code":
            return st.text(string.digits + "ABCDEF", min_size=18, max_size=18)
        if name == "email":
            return st.just("someone@example.com")
        if name == "phone":
            return st.just("+86 138 0000 0000")
        if name == "url":
            return st.just("https://example.com/hook")
        pool = [*USERS, *WORDS, *self.seen]
        return st.sampled_from(pool)

    def body(self, spec: CommandSpec) -> st.SearchStrategy[dict[str, Any]]:
        hints = typing.get_type_hints(spec.method)
        required: dict[str, Any] = {}
        optional: dict[str, Any] = {}
        for pname, param in inspect.signature(spec.method).parameters.items():
            if pname in ("self", "cls", "actor") or param.kind != param.KEYWORD_ONLY:
                continue
            strategy = self.for_type(pname, hints.get(pname, str))
            (required if param.default is inspect.Parameter.empty else optional)[pname] = \
                strategy
        return st.fixed_dictionaries(required, optional=optional)


ROLES = [r.value for r in Role if r not in (Role.AUDITOR,)]
actors = st.builds(lambda user, roles: Actor(user, user.title(), frozenset(roles),
                                             frozenset({DEPARTMENT})),
                   st.sampled_from(USERS), st.sets(st.sampled_from(ROLES), min_size=1,
                                                   max_size=4))


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_as_of_a_version_or_a_moment_returns_exactly_the_remembered_state(
        ledger_container: Any, data: st.DataObject) -> None:
    ledger, auditor = ledger_container.ledger, auditor_of(ledger_container)
    records: dict[str, list[UUID]] = {}
    remembered: list[tuple[str, UUID, int, dt.datetime, dict[str, Any]]] = []
    for _step in range(25):
        existing = [(t, rid) for t, ids in records.items() for rid in ids]
        create = not existing or data.draw(st.integers(0, 3)) == 0
        if create:
            cls = data.draw(st.sampled_from(RECORD_TYPES))
            specs = [s for s in commands_of(cls) if s.creates]
            record_id = None
            doc = None
        else:
            rtype, record_id = data.draw(st.sampled_from(existing))
            cls = record_class(rtype)
            specs = [s for s in commands_of(cls) if not s.creates]
            doc = record_view(ledger.load(cls, record_id))
        if not specs:
            continue
        spec = data.draw(st.sampled_from(specs))
        kwargs = data.draw(Args(records, doc).body(spec))
        ctx = CommandContext(actor=data.draw(actors), comment=data.draw(
            st.none() | st.sampled_from(["why not", "因為"])), request_id=str(uuid4()))
        try:
            body = spec.body_model(**kwargs)
            result = ledger.execute(spec, ctx, body, record_id)
        except (DomainError, NotFound, ValidationError):
            continue
        rid = UUID(result.body["id"])
        if create:
            records.setdefault(cls.RECORD_TYPE, []).append(rid)
        if data.draw(st.booleans()):
            state = record_view(ledger.load(cls, rid))
            remembered.append((cls.RECORD_TYPE, rid, state["version"],
                               dt.datetime.now(dt.UTC), state))

    for rtype, rid, version, moment, state in remembered:
        assert auditor.as_of(AUDITOR, rtype, rid, version=version) == state
        assert auditor.as_of(AUDITOR, rtype, rid, at=moment) == state
        assert auditor.as_of(AUDITOR, rtype, rid, at=dt.datetime.fromisoformat(
            state["modified_on"])) == state
