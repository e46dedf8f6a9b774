"""The GraphQL executor's shortcut for plain scalar fields answers exactly as graphql-core's
own execution: values, key order, nulls and errors (service/graphql/executor.py)."""

from __future__ import annotations

import asyncio
import json
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
