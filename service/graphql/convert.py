"""Builds Strawberry objects from the JSON views stored by projections."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition

T = TypeVar("T")


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, StrawberryOptional):
        return _convert(kind.of_type, value)
    if isinstance(kind, StrawberryList):
        return [_convert(kind.of_type, v) for v in value]
    if isinstance(kind, type) and has_object_definition(kind):
        return from_doc(kind, value)
    if kind is date and isinstance(value, str):
        return date.fromisoformat(value[:10])
    if kind is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if kind is Decimal and not isinstance(value, Decimal):
        return Decimal(str(value))
    return value


def from_doc(cls: type[T], doc: dict[str, Any], **overrides: Any) -> T:
    """``cls(**doc)`` for a Strawberry type, converting nested types, dates and decimals."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for f in definition.fields:
        if f.base_resolver is not None or not f.init:
            continue
        name = f.python_name
        if name in overrides:
            kwargs[name] = overrides[name]
        else:
            kwargs[name] = _convert(f.type, doc.get(name))
    for name, value in overrides.items():
        kwargs.setdefault(name, value)
    return cls(**kwargs)
