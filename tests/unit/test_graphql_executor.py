"""The GraphQL executor's shortcut for plain scalar fields answers exactly as graphql-core's
own execution: values, key order, nulls and errors (service/graphql/executor.py)."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry

from service.graphql.executor import Executor


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Broken:
    def __get__(self, obj: Any, owner: Any) -> Any:
        if obj is None:
            return self
        raise ValueError("cannot read this")

    def __set__(self, obj: Any, value: Any) -> None:
        pass


@strawberry.type
class Item:
    name: str
    note: str | None
    amount: Decimal
    colour: Colour
    count: int
    flag: bool | None

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times

    @strawberry.field
    async def later(self) -> int:
        return self.count + 1


class BrokenItem(Item):
    count = Broken()  # type: ignore[assignment]


def _items() -> list[Item]:
    good = Item(name="a", note=None, amount=Decimal("1.50"), colour=Colour.RED, count=3,
                flag=None)
    null_name = Item(name=None, note="n", amount=Decimal("2"), colour=Colour.BLUE,  # type: ignore[arg-type]
                     count=1, flag=True)
    bad_colour = Item(name="c", note="x", amount=Decimal("0"), colour="green",  # type: ignore[arg-type]
                      count=0, flag=False)
    broken = BrokenItem(name="d", note=None, amount=Decimal("4"), colour=Colour.RED, count=0,
                        flag=None)
    return [good, null_name, bad_colour, broken]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return _items()  # type: ignore[return-value]

    @strawberry.field
    def one(self) -> Item:
        return _items()[0]


QUERIES = [
    "{ items { name note amount colour count flag } }",
    "{ items { __typename flag x: count n: name later shout(times: 2) amount } }",
    "{ one { ...F name } } fragment F on Item { count colour note }",
    "{ one { name @include(if: false) note @skip(if: true) count } }",
    "{ items { count } }",
]


def _answers(schema: strawberry.Schema) -> list[str]:
    out = []
    for query in QUERIES:
        result = asyncio.run(schema.execute(query))
        errors = [(e.message, e.path) for e in result.errors or ()]
        out.append(json.dumps({"data": result.data, "errors": errors}, default=str))
    return out


def test_the_shortcut_answers_as_graphql_core_does() -> None:
    plain = strawberry.Schema(query=Query)
    fast = strawberry.Schema(query=Query, execution_context_class=Executor)
    assert _answers(fast) == _answers(plain)
    # the cases the shortcut must hand back to graphql-core did occur
    first = json.loads(_answers(fast)[0])
    assert [path for _, path in first["errors"]] == [
        ["items", 1, "name"], ["items", 2, "colour"], ["items", 3, "count"]]
    assert first["data"]["items"][0]["amount"] == "1.50"


# Answered without errors (an error's traceback keeps the frames of the execution).
FREED = ["{ one { name later shout(times: 2) count } }", QUERIES[2], QUERIES[3]]


def test_an_execution_is_freed_when_it_ends_not_left_to_the_cyclic_collector() -> None:
    """A request's executor, and all it reaches (context, loaders, rows), is freed by
    reference counting when the execution ends: left in a cycle, the read server collected
    ~50,000 such objects at a time, in 100–160 ms pauses."""
    made: list[weakref.ref[Executor]] = []

    class Recorded(Executor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    schema = strawberry.Schema(query=Query, execution_context_class=Recorded)
    gc.collect()
    gc.disable()
    try:
        for query in FREED:
            assert asyncio.run(schema.execute(query)).errors is None
        assert len(made) == len(FREED)
        assert [ref() for ref in made] == [None] * len(made)
    finally:
        gc.enable()
