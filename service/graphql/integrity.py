"""GraphQL: signed digests and Merkle proofs (tamper evidence), for auditors and leadership.

The same use cases as REST ``/integrity/…`` (``service.integrity.Integrity``); verification and
export stay REST/CLI only, being long-running jobs rather than reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.shared import DomainError, Role
from service.digests import SignedDigest
from service.graphql.context import GraphQLContext, ReadError
from service.integrity import Integrity

R = TypeVar("R")


@strawberry.type(description="A signed digest (RFC 9162 signed tree head) of the event log.")
class IntegrityDigest:
    id: int | None
    tree_size: int
    last_position: int
    root_hash: str
    timestamp: str
    key_id: str
    algorithm: str
    signature: str
    reason: str


@strawberry.type
class DigestKey:
    key_id: str
    algorithm: str
    public_key_pem: str


@strawberry.type(description="The audit path of one event in a signed digest's tree.")
class InclusionProof:
    position: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    event: JSON | None
    audit_path: list[str]
    digest: IntegrityDigest


@strawberry.type(description="Proof that the first `first` events are a prefix of a signed "
                             "digest's tree.")
class ConsistencyProof:
    first: int
    second: int
    first_root: str
    second_root: str
    path: list[str]
    first_digest: IntegrityDigest | None
    second_digest: IntegrityDigest


def _digest(doc: dict[str, Any] | None) -> IntegrityDigest | None:
    return None if doc is None else IntegrityDigest(**doc)


async def _call(info: Info[GraphQLContext, None], fn: Callable[[Integrity], R]) -> R:
    actor = info.context.require_actor()
    if not actor.has_role(Role.AUDITOR, Role.LEADERSHIP):
        raise ReadError("tamper evidence is for auditors and leadership", "FORBIDDEN")
    integrity = info.context.container.integrity
    assert integrity is not None  # bootstrap always sets it
    try:
        return await asyncio.to_thread(fn, integrity)
    except DomainError as exc:
        code = {403: "FORBIDDEN", 404: "NOT_FOUND", 409: "LOG_DIVERGED"}.get(
            exc.status, "BAD_ARGUMENT")
        raise ReadError(exc.message, code) from None


@strawberry.type
class IntegrityQuery:
    @strawberry.field(description="Signed digests of the event log, newest first (auditors, "
                                  "leadership).")
    async def integrity_digests(self, info: Info[GraphQLContext, None], first: int = 20,
                                before_id: int | None = None) -> list[IntegrityDigest]:
        first = max(1, min(first, 1000))
        digests: list[SignedDigest] = await _call(
            info, lambda i: i.digests(limit=first, before_id=before_id))
        return [IntegrityDigest(**d.to_json()) for d in digests]

    @strawberry.field(description="The Ed25519 keys whose digests are trusted.")
    async def integrity_keys(self, info: Info[GraphQLContext, None]) -> list[DigestKey]:
        keys = await _call(info, lambda i: i.keys.public_keys())
        return [DigestKey(**k) for k in keys]

    @strawberry.field(description="Inclusion proof of the event at `position` in the tree of "
                                  "the digest of `treeSize` (default: the latest digest).")
    async def inclusion_proof(self, info: Info[GraphQLContext, None], position: int,
                              tree_size: int | None = None) -> InclusionProof:
        doc = await _call(info, lambda i: i.inclusion(position, tree_size))
        return InclusionProof(
            position=doc["position"], leaf_index=doc["leaf_index"], tree_size=doc["tree_size"],
            leaf_hash=doc["leaf_hash"], event=doc["event"], audit_path=doc["audit_path"],
            digest=IntegrityDigest(**doc["digest"]))

    @strawberry.field(description="Consistency proof from tree size `first` to the digest of "
                                  "`second` (default: the latest digest).")
    async def consistency_proof(self, info: Info[GraphQLContext, None], first: int,
                                second: int | None = None) -> ConsistencyProof:
        doc = await _call(info, lambda i: i.consistency(first, second))
        return ConsistencyProof(
            first=doc["first"], second=doc["second"], first_root=doc["first_root"],
            second_root=doc["second_root"], path=doc["path"],
            first_digest=_digest(doc["first_digest"]),
            second_digest=IntegrityDigest(**doc["second_digest"]))
