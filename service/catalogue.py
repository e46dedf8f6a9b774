"""The command catalogue: every `@command` of every record type, with its validated body model.

A record type joins the API by being listed in ``RECORD_TYPES``; its commands, their JSON
bodies (from the method signatures) and their REST routes follow without further code.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from domain.budget import Budget
from domain.customer import Customer
from domain.indicators import IndicatorTarget
from domain.project import Project
from domain.risk import Risk
from domain.service_request import ServiceRequest
from domain.shared import Actor, Record
from domain.webhook import Webhook

RECORD_TYPES: tuple[type[Record], ...] = (Project, Customer, ServiceRequest, Risk, Budget,
                                          IndicatorTarget, Webhook)

PLURALS = {"project": "projects", "customer": "customers", "service_request": "service-requests",
           "risk": "risks", "budget": "budgets",
           "indicator_target": "indicator-targets", "webhook": "webhooks"}


class CommandBody(BaseModel):
    """Base of every command body: a free-text comment, and no floats anywhere."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    comment: str | None = Field(default=None, max_length=10_000,
                                description="Why: recorded in the event's metadata.")

    @model_validator(mode="before")
    @classmethod
    def _no_floats(cls, data: Any) -> Any:
        _reject_floats(data, "")
        return data


def _reject_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"'{path or 'body'}': numbers with a fraction must be sent as decimal "
                         "strings (e.g. \"1250.50\"), never as JSON floats")
    if isinstance(value, dict):
        for k, v in value.items():
            _reject_floats(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _reject_floats(v, f"{path}[{i}]")


@dataclass(frozen=True)
class CommandSpec:
    record_cls: type[Record]
    name: str
    creates: bool

    @property
    def record_type(self) -> str:
        return self.record_cls.RECORD_TYPE

    @property
    def path_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def full_name(self) -> str:
        return f"{self.record_type}.{self.name}"

    @property
    def method(self) -> Callable[..., Any]:
        return typing.cast(Callable[..., Any], getattr(self.record_cls, self.name))

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.method) or self.name.replace("_", " ")

    @cached_property
    def body_model(self) -> type[CommandBody]:
        hints = typing.get_type_hints(self.method, include_extras=True)
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(self.method).parameters.items():
            if pname in ("self", "cls", "actor") or param.kind != param.KEYWORD_ONLY:
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (hints.get(pname, Any), default)
        name = "".join(p.capitalize() for p in f"{self.record_type}_{self.name}".split("_"))
        return create_model(f"{name}Body", __base__=CommandBody, **fields)

    def call(self, target: Any, actor: Actor, body: CommandBody) -> Any:
        kwargs = {k: getattr(body, k) for k in type(body).model_fields if k != "comment"}
        return getattr(target, self.name)(actor, **kwargs)


@cache
def commands_of(record_cls: type[Record]) -> list[CommandSpec]:
    specs = []
    for name, member in inspect.getmembers(record_cls):
        func = getattr(member, "__func__", member)
        if getattr(func, "is_command", False):
            creates = isinstance(inspect.getattr_static(record_cls, name), classmethod)
            specs.append(CommandSpec(record_cls, name, creates))
    # creation first, then in source order, so the API documents the workflow in order
    def order(spec: CommandSpec) -> tuple[int, int]:
        try:
            line = inspect.getsourcelines(getattr(record_cls, spec.name))[1]
        except (OSError, TypeError):
            line = 0
        return (0 if spec.creates else 1, line)
    return sorted(specs, key=order)


def record_class(record_type: str) -> type[Record]:
    for cls in RECORD_TYPES:
        if record_type == cls.RECORD_TYPE:
            return cls
    raise KeyError(record_type)


def all_commands() -> list[CommandSpec]:
    return [spec for cls in RECORD_TYPES for spec in commands_of(cls)]
