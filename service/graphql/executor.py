"""graphql-core's executor with a shortcut for plain scalar fields.

A page of 50 projects with their risks and cost is ~1,200 fields, ~950 of them scalars read
straight from an attribute (``name``, ``score``, ``budget``, …). For each, graphql-core builds a
path, a ``GraphQLResolveInfo`` and calls Strawberry's default resolver, then completes the value
through the non-null and leaf steps: most of a page's execution time. Here such a field — a
Strawberry field without resolver, extension, middleware or arguments whose type is a scalar or
an enum (non-null or not) — is read with the same ``getattr`` and coerced with the same
``coerce_output_value``, and nothing else. Anything else, and any value that would take
graphql-core off its plain path (an error, a null for a non-null field, an exception instance,
``Undefined``), goes through graphql-core's own ``execute_field``, which produces exactly the
value or error it always did. Field order, values and errors are unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import CoroutineType, GeneratorType
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    Undefined,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import has_object_definition

# (attribute reader, attribute name, coercion, non-null)
Leaf = tuple[Callable[[Any, str], Any], str, Callable[[Any], Any], bool]

_plans: dict[GraphQLObjectType, dict[str, Leaf]] = {}


def _leaf(field: GraphQLField) -> Leaf | None:
    """How to read a plain scalar field at once, or None when it is anything else."""
    if field.args or not getattr(field.resolve, "_is_default", False):
        return None
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if definition is None or definition.base_resolver or definition.extensions:
        return None
    kind: GraphQLOutputType = field.type
    non_null = is_non_null_type(kind)
    if non_null:
        kind = kind.of_type  # type: ignore[union-attr]
    if not is_leaf_type(kind):
        return None
    return (definition.default_resolver, definition.python_name,
            kind.coerce_output_value, non_null)


def _plan(parent_type: GraphQLObjectType) -> dict[str, Leaf]:
    plan = _plans.get(parent_type)
    if plan is None:
        plan = {}
        for name, field in parent_type.fields.items():
            leaf = _leaf(field)
            if leaf is not None:
                plan[name] = leaf
        _plans[parent_type] = plan
    return plan


def _never_awaited(kind: type) -> bool:
    """Instances of a Strawberry object type with no ``__await__`` of its own are never
    awaitable: graphql-core's check (``hasattr(value, "__await__")``) would otherwise go
    through the lazy views' ``__getattr__`` and raise, for every object of a page."""
    return has_object_definition(kind) and not hasattr(kind, "__await__") and not issubclass(
        kind, (CoroutineType, GeneratorType))


_plain_types: dict[type, bool] = {}


def _object_aware(is_awaitable: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        kind = type(value)
        plain = _plain_types.get(kind)
        if plain is None:
            plain = _plain_types[kind] = _never_awaited(kind)
        return False if plain else is_awaitable(value)
    check.wrapped = is_awaitable  # type: ignore[attr-defined]
    return check


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    """A bound method called through a weak reference to its object."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any, **kwargs: Any) -> Any:
        return ref()(*args, **kwargs)  # type: ignore[misc]
    return call


class Executor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self.is_awaitable, "wrapped"):
            self.is_awaitable = _object_aware(self.is_awaitable)  # type: ignore[assignment]
        # graphql-core keeps its own bound methods in ``async_helpers``: a reference cycle
        # through the executor, so everything a request built (its context, loaders, rows)
        # was freed only by the cyclic collector, not when the request ended, and a read
        # server collected ~50,000 such objects at a time, in 100–160 ms pauses: most of
        # the GraphQL p99 at 1,000 commands/s. The same methods, called through a weak
        # reference (resolvers only call them while the execution runs).
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=_weakly(self.gather_async_work), track=_weakly(self.track_async_work))

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        middleware = self.middleware_manager
        if middleware is not None and middleware.middlewares:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        plan = _plan(parent_type)
        if not plan:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        # graphql-core's execute_fields, with the shortcut: same order, same awaiting.
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                node = field_details_list[0].node
                leaf = plan.get(node.name.value)
                if leaf is not None and not node.arguments:
                    read, attribute, coerce, non_null = leaf
                    try:
                        value = read(source_value, attribute)
                        if value is None:
                            if not non_null:
                                results[response_name] = None
                                continue
                        elif value is not Undefined and not isinstance(value, Exception):
                            coerced = coerce(value)
                            if coerced is not None and coerced is not Undefined:
                                results[response_name] = coerced
                                continue
                    except Exception:  # noqa: BLE001, S110 - graphql-core reports it below
                        pass
                result = self.execute_field(parent_type, source_value, field_details_list,
                                            Path(path, response_name, parent_type.name),
                                            position_context)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather_fields(results, awaitable_fields)

    async def _gather_fields(self, results: dict[str, Any],
                             awaitable_fields: list[str]) -> dict[str, Any]:
        if len(awaitable_fields) == 1:
            field = awaitable_fields[0]
            results[field] = await results[field]
        else:
            awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results
