"""What a query selects below a field, read from the query document before the field's
children run: a page resolver fetches its nodes' nested data in one statement each and hands
it over ready, instead of one awaited DataLoader call per node (a task and a few futures per
node and field: most of a page's execution time)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
    VariableNode,
)
from strawberry.types import Info
from strawberry.types.nodes import get_variable_values


class Conditional(Exception):
    """A selection on the way carries a directive (``@skip``, ``@include``, …): what runs
    depends on more than the document, so the caller does not look ahead."""


def _fields(selections: Iterable[SelectionNode],
            fragments: dict[str, FragmentDefinitionNode]) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments spread (in document order)."""
    for selection in selections:
        if selection.directives:
            raise Conditional
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set.selections, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or fragment.directives or getattr(selection, "arguments", None):
                raise Conditional
            yield from _fields(fragment.selection_set.selections, fragments)
        else:  # pragma: no cover - no other kind of selection exists
            raise Conditional


def selected_below(info: Info[Any, Any], *path: str) -> list[FieldNode] | None:
    """The field nodes the current field's selection reaches by ``path`` (response fields by
    name, e.g. ``"edges", "node"``), then every field selected there; ``None`` when a
    directive on the way makes that conditional."""
    raw = info._raw_info
    fragments: dict[str, FragmentDefinitionNode] = raw.fragments
    try:
        level: list[FieldNode] = list(raw.field_nodes)
        for name in path:
            level = [f for node in level if node.selection_set
                     for f in _fields(node.selection_set.selections, fragments)
                     if f.name.value == name]
        return [f for node in level if node.selection_set
                for f in _fields(node.selection_set.selections, fragments)]
    except Conditional:
        return None


def selected_below_node(info: Info[Any, Any], field: FieldNode) -> list[FieldNode] | None:
    """The fields selected on one field node (fragments spread); ``None`` when a directive
    makes that conditional."""
    if not field.selection_set:
        return []
    try:
        return list(_fields(field.selection_set.selections, info._raw_info.fragments))
    except Conditional:
        return None


def argument(info: Info[Any, Any], field: FieldNode, name: str) -> Any:
    """The value a field's argument is given in the document (a literal or a variable's
    coerced value); ``None`` when it is not given or null (the resolver's default applies)."""
    for arg in field.arguments or ():
        if arg.name.value == name:
            value = arg.value
            if isinstance(value, VariableNode):
                return get_variable_values(info._raw_info).get(value.name.value)
            return getattr(value, "value", None)
    return None
