"""What every record type shares: people and roles, domain errors, money, the record base class.

Pure Python: no I/O, no web or database packages. Aggregates follow the `eventsourcing`
library's style: a public command method checks the rules and computes, then calls a private
method decorated with ``@event("PastTense")`` that only assigns state (it runs again on replay).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum, StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

DEFAULT_CURRENCY = "CNY"
MONEY_PLACES = Decimal("0.01")


class Role(StrEnum):
    MEMBER = "member"
    DEPT_MANAGER = "dept_manager"
    DEPUTY_MANAGER = "deputy_manager"
    LEADERSHIP = "leadership"
    FINANCE = "finance"
    CUSTOMER_SERVICE = "customer_service"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    DATA_PROTECTION = "data_protection"


# Roles that act for the whole company rather than for their own departments (SPEC §1).
COMPANY_WIDE_ROLES = frozenset({Role.LEADERSHIP, Role.FINANCE, Role.ANALYST, Role.AUDITOR,
                                Role.DATA_PROTECTION})
MANAGER_ROLES = frozenset({Role.DEPT_MANAGER, Role.DEPUTY_MANAGER})


@dataclass(frozen=True)
class Actor:
    """The person issuing a command, as the identity provider vouches for them."""

    user_id: str
    name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    departments: frozenset[str] = field(default_factory=frozenset)

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    def acts_in(self, department: str, *roles: str) -> bool:
        """True when the actor holds one of ``roles`` for ``department`` (or company-wide)."""
        for role in roles:
            if role not in self.roles:
                continue
            if role in COMPANY_WIDE_ROLES or department in self.departments:
                return True
        return False

    def manages(self, department: str) -> bool:
        return self.acts_in(department, *MANAGER_ROLES)

    def as_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "name": self.name, "roles": sorted(self.roles),
                "departments": sorted(self.departments)}


class DomainError(Exception):
    """A command refused by a business rule. ``rule`` names it for clients and auditors."""

    status = 422
    rule = "domain_rule"

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if rule:
            self.rule = rule
        self.field = field


class ValidationFailed(DomainError):
    status = 422
    rule = "validation"


class NotPermitted(DomainError):
    """The actor's role, department or part in the record does not allow the command."""

    status = 403
    rule = "not_permitted"


class InvalidTransition(DomainError):
    status = 409
    rule = "invalid_transition"

    def __init__(self, command: str, current_state: str, allowed: Iterable[str] = ()):
        allowed = sorted(allowed)
        detail = f"'{command}' is not allowed in state '{current_state}'"
        if allowed:
            detail += f" (allowed in: {', '.join(allowed)})"
        super().__init__(detail)
        self.command = command
        self.current_state = current_state
        self.allowed = allowed


class Duplicate(DomainError):
    status = 409
    rule = "duplicate"


_IMMUTABLE = (str, int, float, bool, type(None), Decimal, date, datetime, time, timedelta, UUID,
              bytes, Enum, frozenset)


_PLAIN = frozenset(_IMMUTABLE) - {Enum}  # exactly these types: shared without a further look


def copy_data(value: Any) -> Any:
    """A deep copy of record data (dicts, lists, sets and tuples of plain values), like
    ``copy.deepcopy`` but several times faster: immutable values (str, numbers, Decimal,
    dates, UUIDs, enums …) are shared, containers are copied, anything else is deep-copied."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k: copy_data(v) for k, v in value.items()}
    if kind is list:
        return [copy_data(v) for v in value]
    if isinstance(value, _IMMUTABLE):
        return value
    if kind is tuple:
        return tuple(copy_data(v) for v in value)
    if kind is set:
        return {copy_data(v) for v in value}
    return copy.deepcopy(value)


def copy_record(aggregate: Any) -> Any:
    """A copy of an aggregate whose mutation cannot reach the original (``copy_data`` of its
    attributes); classes with their own copy rules (``__slots__``, ``__deepcopy__``) get
    ``copy.deepcopy``."""
    cls: type = type(aggregate)
    if _own_copy_rules(cls) or not hasattr(aggregate, "__dict__"):
        return copy.deepcopy(aggregate)
    clone: Any = object.__new__(cls)
    plain = _PLAIN
    clone.__dict__.update({k: v if type(v) in plain else copy_data(v)
                           for k, v in aggregate.__dict__.items()})
    return clone


@cache
def _own_copy_rules(cls: type) -> bool:
    """Whether the class copies itself (``__deepcopy__``) or has ``__slots__`` somewhere."""
    return hasattr(cls, "__deepcopy__") or any(vars(k).get("__slots__") for k in cls.__mro__)


def require(condition: bool, message: str, *, field: str | None = None,
            rule: str = "validation") -> None:
    if not condition:
        raise ValidationFailed(message, field=field, rule=rule)


def require_text(value: str | None, field: str, *, max_length: int = 10_000) -> str:
    text = (value or "").strip()
    require(bool(text), f"'{field}' is required", field=field, rule="required")
    require(len(text) <= max_length, f"'{field}' is longer than {max_length} characters",
            field=field)
    return text


def require_reason(reason: str | None, what: str) -> str:
    """Rejections, returns, cancellations, overrides and adjustments need a reason (SPEC §1)."""
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed(f"a reason is required to {what}", field="reason",
                               rule="reason_required")
    return text


def money(value: Any, field: str = "amount", *, allow_negative: bool = False) -> Decimal:
    """Exact money: a Decimal with at most two places; never a float."""
    if isinstance(value, float):
        raise ValidationFailed(f"'{field}' must be a decimal string, not a float", field=field)
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"'{field}' is not a decimal amount", field=field) from None
    if not amount.is_finite():
        raise ValidationFailed(f"'{field}' is not a finite amount", field=field)
    if amount != amount.quantize(MONEY_PLACES):
        raise ValidationFailed(f"'{field}' has more than two decimal places", field=field)
    if amount < 0 and not allow_negative:
        raise ValidationFailed(f"'{field}' must not be negative", field=field)
    return amount.quantize(MONEY_PLACES)


def require_period(start: date | None, end: date | None, start_field: str = "start_date",
                   end_field: str = "end_date") -> None:
    if start and end and end < start:
        raise ValidationFailed(f"'{end_field}' is before '{start_field}'", field=end_field,
                               rule="date_order")


def different_person(actor: Actor, earlier: str | None, rule: str, message: str) -> None:
    """Maker–checker: nobody reviews or approves what they submitted or already passed."""
    if earlier is not None and actor.user_id == earlier:
        raise NotPermitted(message, rule=rule)


class Record(Aggregate):
    """Base of every record type: a department, a status and a named state machine."""

    # Subclasses set ``self.status`` and ``self.department`` in their created event. (No class
    # annotations here: the library would turn them into constructor fields.)
    RECORD_TYPE: ClassVar[str] = "record"
    if TYPE_CHECKING:  # for type checkers only: at run time the library would make them fields
        status: str
        department: str

    def check_status(self, command: str, *allowed: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(command, self.status, allowed)

    def reference(self) -> dict[str, Any]:
        return {"type": self.RECORD_TYPE, "id": str(self.id)}


UNIQUE_KEY_NAMESPACE = UUID("6f1b1f4e-3f1a-4c55-9a43-2f1f0e0b7a11")


class UniqueKey(Aggregate):
    """Claims a business key (a tax number, a department+year) for one record.

    Its id is derived from the key, so two records claiming the same key collide on the
    event store's (id, version) constraint inside the same transaction as the record itself:
    uniqueness is enforced atomically, not by a racy lookup. The service turns that
    collision into a 409 naming ``namespace`` and ``key``.
    """

    RECORD_TYPE: ClassVar[str] = "unique_key"

    def __init__(self, namespace: str, key: str, owner_type: str, owner_id: UUID):
        self.namespace = namespace
        self.key = key
        self.owner_type = owner_type
        self.owner_id = owner_id

    @staticmethod
    def id_for(namespace: str, key: str) -> UUID:
        return uuid5(UNIQUE_KEY_NAMESPACE, f"{namespace}:{key}")

    @classmethod
    def claim(cls, namespace: str, key: str, owner: Record) -> UniqueKey:
        return cls._create(cls.Claimed, id=cls.id_for(namespace, key), namespace=namespace,
                           key=key, owner_type=owner.RECORD_TYPE, owner_id=owner.id)

    class Claimed(Aggregate.Created):
        namespace: str
        key: str
        owner_type: str
        owner_id: UUID


def command(fn: Any) -> Any:
    """Marks a public method (or classmethod, under ``@classmethod``) as a command.

    The service exposes each marked method as one REST endpoint whose JSON body is validated
    from the method's keyword parameters (after ``actor``), so the signature is the contract:
    keep parameter types to str, int, bool, Decimal, date, datetime, UUID, Literal, StrEnum,
    TypedDict classes, lists of those and ``X | None``. The docstring becomes the endpoint's
    description.
    """
    fn.is_command = True
    return fn
