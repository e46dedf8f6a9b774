"""Builds Strawberry objects from the JSON views stored by projections."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition

T = TypeVar("T")
Converter = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _to_date(value: Any) -> Any:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


def _to_datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _to_decimal(value: Any) -> Any:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _converter(kind: Any) -> Converter:
    """A function converting a JSON value (never None) to a field of type ``kind``."""
    if isinstance(kind, StrawberryOptional):
        return _converter(kind.of_type)
    if isinstance(kind, StrawberryList):
        item = _converter(kind.of_type)
        return lambda value: [None if v is None else item(v) for v in value]
    if isinstance(kind, type) and has_object_definition(kind):
        return lambda value: from_doc(kind, value)
    if kind is date:
        return _to_date
    if kind is datetime:
        return _to_datetime
    if kind is Decimal:
        return _to_decimal
    return _same


_plans: dict[type, list[tuple[str, Converter]]] = {}


def _plan(cls: type) -> list[tuple[str, Converter]]:
    """The fields ``from_doc`` fills for ``cls`` and how, worked out once per class (a field's
    type is resolved by Strawberry on each access otherwise: most of the cost of a page)."""
    plan = _plans.get(cls)
    if plan is None:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        plan = [(f.python_name, _converter(f.type)) for f in definition.fields
                if f.base_resolver is None and f.init]
        _plans[cls] = plan
    return plan


_lazy: dict[type, tuple[type, list[tuple[str, Converter]]]] = {}


def _lazy_class(cls: type) -> tuple[type, list[tuple[str, Converter]]]:
    """A subclass of ``cls`` whose fields are converted from the document when first read.

    A page of projects asks for a few fields of each; converting every nested plan, task and
    report up front was most of a request's time. Fields with a default (a class attribute,
    which ``__getattr__`` would never see) are converted at once, the others on first access
    (Strawberry's resolvers read fields with ``getattr``)."""
    found = _lazy.get(cls)
    if found is None:
        defaulted = {f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING
                     or f.default_factory is not dataclasses.MISSING}
        plan = _plan(cls)
        eager = [(name, convert) for name, convert in plan if name in defaulted]
        deferred = {name: convert for name, convert in plan if name not in defaulted}

        def __getattr__(self: Any, name: str) -> Any:  # noqa: N807
            convert = deferred.get(name)
            doc = self.__dict__.get("_doc")
            if convert is None or doc is None:
                raise AttributeError(name)
            value = doc.get(name)
            value = None if value is None else convert(value)
            self.__dict__[name] = value
            return value

        sub = type(cls.__name__, (cls,), {"__getattr__": __getattr__,
                                          "__module__": cls.__module__,
                                          "__qualname__": cls.__qualname__})
        found = _lazy[cls] = (sub, eager)
    return found


def from_doc(cls: type[T], doc: dict[str, Any], **overrides: Any) -> T:
    """``cls(**doc)`` for a Strawberry type, converting nested types, dates and decimals (each
    field when it is first read: an instance of a subclass of ``cls``)."""
    sub, eager = _lazy_class(cls)
    obj: Any = object.__new__(sub)
    values = obj.__dict__
    values["_doc"] = doc
    for name, convert in eager:
        if name not in overrides:
            value = doc.get(name)
            values[name] = None if value is None else convert(value)
    values.update(overrides)
    return cast(T, obj)
