"""The public event format: which events are published, and each one as a CloudEvent 1.0.

Published: every event of every record type in the command catalogue, except the internal
ones — ``unique_key`` (a uniqueness claim saved with its record: an implementation detail whose
meaning is already in the record's own event) and ``webhook`` (integration configuration, not
business data; publishing it would also echo deliveries' own set-up back to them).

A published event is a CloudEvent in structured JSON mode::

    {"specversion": "1.0", "id": "<uuid5 of record id and version>", "source": "/opsledger",
     "type": "opsledger.project.approved.v1", "subject": "<record id>", "time": "…Z",
     "datacontenttype": "application/json", "position": 42, "recordtype": "project",
     "recordversion": 3, "department": "ops", "actorid": "lena", "correlationid": "…",
     "causationid": "…", "traceparent": "00-<trace id>-<span id>-01", "data": {…}}

``id`` is derived from the record id and version, so it is the same however often and wherever
the event is delivered (de-duplicate on it). ``position`` is the global order. ``data`` is the
event's declared attributes (its class annotations), exactly — the schema in the AsyncAPI
document is generated from the same annotations. The type's version is the event class's
``class_version``; older stored events are upcast to it when read, so only the current version
is ever published. Not published from the metadata: the free-text comment, the actor's name
and roles, request and idempotency keys.

Personal data: customer events carry it only in a ``personal`` attribute; it is never
published — ``data.personal`` is always ``{"redacted": true}``. ``public_payload`` is the one
function that builds ``data``; erasure and any future consent-based disclosure hook in there.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, CanMutateAggregate

from projections.codec import jsonable

TYPE_PREFIX = "opsledger"
SPEC_VERSION = "1.0"
PERSONAL_FIELD = "personal"
REDACTED: dict[str, Any] = {"redacted": True}
INTERNAL_RECORD_TYPES = frozenset({"webhook", "unique_key"})
# Attributes every library event has: they are the envelope (subject, recordversion, time).
ENVELOPE_ATTRIBUTES = frozenset({"originator_id", "originator_version", "timestamp",
                                 "originator_id_type", "originator_topic"})
EVENT_ID_NAMESPACE = UUID("8a0c3c4e-5d2b-4c1f-9a7e-3b6d2f1e0c55")
_VERSION_SUFFIX = re.compile(r"^(?P<stem>.+)\.v(?P<version>\d+)$")


class UnknownEventType(ValueError):
    """A filter names a record type or event type that is not published."""


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class PublishedType:
    """One published event type: a record type's event class and its public names."""

    record_type: str
    event_cls: type
    description: str = ""
    hints: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.event_cls.__name__

    @property
    def key(self) -> str:
        """``project.approved``: filters, webhook subscriptions and broker subjects use it."""
        return f"{self.record_type}.{snake(self.name)}"

    @property
    def version(self) -> int:
        return int(getattr(self.event_cls, "class_version", 1))

    @property
    def ce_type(self) -> str:
        return f"{TYPE_PREFIX}.{self.key}.v{self.version}"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.hints)


def _event_classes(record_cls: type) -> list[type]:
    """The event classes a record type emits, in declaration order (bases left out)."""
    found: dict[str, type] = {}
    for owner in reversed(record_cls.__mro__):
        if owner is Aggregate or not issubclass(owner, Aggregate):
            continue
        for name, value in vars(owner).items():
            if isinstance(value, type) and issubclass(value, CanMutateAggregate):
                found[name] = getattr(record_cls, name)
    classes = list(dict.fromkeys(found.values()))
    created = [c for c in classes if issubclass(c, Aggregate.Created)]
    keep = []
    for c in classes:
        if any(o is not c and issubclass(o, c) for o in classes):
            continue  # a base class (Event, a shared Created)
        if c.__name__ == "Created" and len(created) > 1:
            continue  # the library's default, replaced by a named creation event
        keep.append(c)
    return keep


def _descriptions(record_cls: type) -> dict[str, str]:
    """Event name → the docstring of the method decorated with ``@event`` for it."""
    out: dict[str, str] = {}
    for owner in reversed(record_cls.__mro__):
        for value in vars(owner).values():
            func = getattr(value, "decorated_func", None)
            given = getattr(value, "given_event_cls", None)
            name = given.__name__ if given is not None else getattr(value, "event_cls_name", None)
            if func is not None and name and func.__doc__:
                out[name] = inspect.cleandoc(func.__doc__)
    return out


def _description(event_cls: type, docs: dict[str, str]) -> str:
    """The decorated method's docstring, or the declared event class's own."""
    if event_cls.__name__ in docs:
        return docs[event_cls.__name__]
    for klass in event_cls.__mro__:  # the declared class is under the library's subclasses
        if klass.__name__ != event_cls.__name__:
            continue
        doc = klass.__dict__.get("__doc__")
        if doc and not doc.startswith(klass.__name__ + "("):  # not the dataclass signature
            return inspect.cleandoc(doc)
    return ""


def _payload_hints(event_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(event_cls)
    return {k: v for k, v in hints.items()
            if k not in ENVELOPE_ATTRIBUTES and typing.get_origin(v) is not typing.ClassVar}


class Catalogue:
    """Every published event type, looked up by class, by key or by (record type, name)."""

    def __init__(self, record_classes: Iterable[type]):
        types: list[PublishedType] = []
        for record_cls in record_classes:
            record_type = record_cls.RECORD_TYPE  # type: ignore[attr-defined]
            docs = _descriptions(record_cls)
            for event_cls in _event_classes(record_cls):
                types.append(PublishedType(record_type, event_cls,
                                           _description(event_cls, docs),
                                           _payload_hints(event_cls)))
        self.types: tuple[PublishedType, ...] = tuple(types)
        self.by_class = {t.event_cls: t for t in types}
        self.by_key = {t.key: t for t in types}
        self.by_name = {(t.record_type, t.name): t for t in types}
        self.record_types: tuple[str, ...] = tuple(dict.fromkeys(t.record_type for t in types))

    def of(self, event: Any) -> PublishedType | None:
        return self.by_class.get(type(event))

    @cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(self.by_key)

    def parse_type(self, value: str) -> PublishedType:
        """``project.approved``, ``opsledger.project.approved`` or the full CloudEvents type."""
        text = value.strip().lower()
        if text.startswith(TYPE_PREFIX + "."):
            text = text[len(TYPE_PREFIX) + 1:]
        version = None
        match = _VERSION_SUFFIX.match(text)
        if match:
            text, version = match["stem"], int(match["version"])
        published = self.by_key.get(text)
        if published is None:
            raise UnknownEventType(f"'{value}' is not a published event type (e.g. "
                                   f"'project.approved' or '{TYPE_PREFIX}.project.approved.v1')")
        if version is not None and version != published.version:
            raise UnknownEventType(f"'{value}': the published version is {published.ce_type} "
                                   "(older events are upcast to it)")
        return published

    def parse_record_type(self, value: str) -> str:
        text = value.strip().lower()
        if text not in self.record_types:
            raise UnknownEventType(f"'{value}' is not a published record type (one of: "
                                   f"{', '.join(self.record_types)})")
        return text


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    from service.catalogue import RECORD_TYPES

    return Catalogue(c for c in RECORD_TYPES if c.RECORD_TYPE not in INTERNAL_RECORD_TYPES)


def event_id(record_id: UUID | str, version: int) -> str:
    """The stable id of the event at ``version`` of a record: the same on every delivery."""
    return str(uuid5(EVENT_ID_NAMESPACE, f"{record_id}/{version}"))


def public_payload(event: Any, published: PublishedType) -> dict[str, Any]:
    """The ``data`` of an integration event: the declared attributes, personal data withheld.

    This is the only place the public shape of an event is decided: personal data (the
    ``personal`` attribute of customer events) is replaced by ``{"redacted": true}`` whether
    or not it is present, encrypted or erased, so erasure never changes what was published.
    """
    data: dict[str, Any] = {}
    for name in published.fields:
        if name == PERSONAL_FIELD:
            data[name] = dict(REDACTED)
        else:
            data[name] = jsonable(getattr(event, name, None))
    return data


def traceparent(meta: dict[str, Any]) -> str | None:
    trace_id, span_id = meta.get("trace_id"), meta.get("span_id")
    if not trace_id or not span_id:
        return None
    return f"00-{trace_id}-{span_id}-01"


def to_cloudevent(position: int, event: Any, published: PublishedType,
                  source: str) -> dict[str, Any]:
    """One stored event as a CloudEvent 1.0 (structured JSON mode)."""
    meta: dict[str, Any] = getattr(event, "meta", None) or {}
    actor = meta.get("actor") or {}
    ce: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event_id(event.originator_id, event.originator_version),
        "source": source,
        "type": published.ce_type,
        "subject": str(event.originator_id),
        "time": event.timestamp.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "position": position,
        "recordtype": published.record_type,
        "recordversion": event.originator_version,
    }
    optional = {"department": meta.get("department"), "actorid": actor.get("user_id"),
                "correlationid": meta.get("correlation_id"),
                "causationid": meta.get("causation_id"), "traceparent": traceparent(meta)}
    ce.update({k: str(v) for k, v in optional.items() if v})
    ce["data"] = public_payload(event, published)
    return ce


# Extension attributes (CloudEvents: lower-case letters and digits) and their descriptions.
EXTENSIONS: dict[str, str] = {
    "position": "Global position in the event store: the order of all events, and the cursor "
                "for the feed (`after`), Server-Sent Events (`Last-Event-ID`) and resumption.",
    "recordtype": "The record type (`project`, `customer`, …).",
    "recordversion": "The record's version after this event (1 for its first event).",
    "department": "The department owning the record.",
    "actorid": "User id of the person whose command caused the event.",
    "correlationid": "Correlation id of the request that caused the event.",
    "causationid": "The id of what caused the request, when the caller named it.",
    "traceparent": "W3C trace context of the command (CloudEvents distributed tracing "
                   "extension).",
}
REQUIRED_ATTRIBUTES: Sequence[str] = ("specversion", "id", "source", "type", "subject", "time",
                                      "datacontenttype", "position", "recordtype",
                                      "recordversion", "data")
