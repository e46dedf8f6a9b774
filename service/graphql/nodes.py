"""Relay global object identification: `Node`, global ids, and `node(id:)`."""

from __future__ import annotations

import base64
from uuid import UUID

import strawberry

from service.graphql.context import ReadError


@strawberry.interface(description="An object with a global id (Relay).")
class Node:
    id: strawberry.ID


def global_id(type_name: str, record_id: UUID | str) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{record_id}".encode()).decode())


def parse_global_id(value: str) -> tuple[str, UUID]:
    try:
        type_name, _, raw = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
        return type_name, UUID(raw)
    except Exception:
        shown = value if len(value) <= 100 else value[:100] + "…"  # never echo a huge input
        raise ReadError(f"'{shown}' is not a global id returned by this API", "BAD_ID") from None


def record_uuid(value: str, type_name: str) -> UUID:
    """Accepts a record's UUID or its global id."""
    try:
        return UUID(value)
    except ValueError:
        kind, rid = parse_global_id(value)
        if kind != type_name:
            raise ReadError(f"'{value}' is the id of a {kind}, not a {type_name}",
                            "BAD_ID") from None
        return rid
