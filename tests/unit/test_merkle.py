"""The Merkle tree math against RFC 9162's definitions, and verifiers that refuse forgeries."""

from __future__ import annotations

import hashlib
from uuid import UUID

import pytest

from service.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
)
from service.tamper import LEAF_PREFIX, leaf_hash, leaf_hash_raw, node_hash


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(LEAF_PREFIX + i.to_bytes(4, "big")).digest() for i in range(n)]


# --- RFC 9162 §2.1.1–2.1.4, written as literally as the text -------------------------------------

def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = k_of(len(d))
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = k_of(len(d))
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = k_of(len(d))
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


# --- agreement with the definitions ------------------------------------------------------------

def test_roots_match_the_rfc_definition_for_every_size_up_to_70() -> None:
    d = leaves(70)
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT == root([])
    for n in range(1, 71):
        frontier.append(d[n - 1])
        assert root(d[:n]) == mth(d[:n]) == frontier.root(), n


def test_inclusion_proofs_match_the_rfc_and_verify_for_every_leaf() -> None:
    d = leaves(33)
    for n in range(1, 34):
        r = mth(d[:n])
        for i in range(n):
            proof = inclusion_proof(d, i, n)
            assert proof == path(i, d[:n])
            assert verify_inclusion(i, n, d[i], proof, r)


def test_consistency_proofs_match_the_rfc_and_verify_for_every_pair() -> None:
    d = leaves(33)
    for n in range(1, 34):
        for m in range(0, n + 1):
            proof = consistency_proof(d, m, n)
            expected = [] if m in (0, n) else subproof(m, d[:n], True)
            assert proof == expected
            assert verify_consistency(m, n, mth(d[:m]), mth(d[:n]), proof), (m, n)


def test_the_leaf_hash_prefixes_keep_leaves_and_nodes_apart() -> None:
    rid = UUID(int=7)
    leaf = leaf_hash(5, rid, 2, "domain.project:Project.Approved", b'{"a":1}')
    assert leaf == leaf_hash_raw(5, rid.bytes, 2, "domain.project:Project.Approved", b'{"a":1}')
    body = b"".join((b"\x00", (5).to_bytes(8, "big"), rid.bytes, (2).to_bytes(8, "big"),
                     (31).to_bytes(4, "big"), b"domain.project:Project.Approved",
                     hashlib.sha256(b'{"a":1}').digest()))
    assert leaf == hashlib.sha256(body).digest()
    assert node_hash(leaf, leaf) == hashlib.sha256(b"\x01" + leaf + leaf).digest()


# --- forged inclusion proofs ------------------------------------------------------------

D = leaves(13)
R13 = mth(D)


@pytest.mark.parametrize("index", [0, 6, 12])
def test_an_inclusion_proof_with_an_altered_step_is_refused(index: int) -> None:
    proof = inclusion_proof(D, index)
    for j in range(len(proof)):
        forged = list(proof)
        forged[j] = bytes(32)
        assert not verify_inclusion(index, 13, D[index], forged, R13)


def test_an_inclusion_proof_for_another_leaf_or_index_or_size_is_refused() -> None:
    proof = inclusion_proof(D, 6)
    assert not verify_inclusion(6, 13, D[7], proof, R13)  # another event
    assert not verify_inclusion(7, 13, D[6], proof, R13)  # another position
    assert not verify_inclusion(6, 8, D[6], proof, R13)  # another tree shape
    assert not verify_inclusion(6, 13, D[6], proof, mth(D[:12]))  # another root
    assert not verify_inclusion(13, 13, D[6], proof, R13)  # index outside the tree
    assert not verify_inclusion(-1, 13, D[6], proof, R13)


def test_an_inclusion_proof_with_extra_or_missing_steps_is_refused() -> None:
    proof = inclusion_proof(D, 6)
    assert not verify_inclusion(6, 13, D[6], proof + [R13], R13)
    assert not verify_inclusion(6, 13, D[6], proof[:-1], R13)
    assert not verify_inclusion(6, 13, D[6], [], R13)


def test_an_interior_node_cannot_pass_as_a_leaf() -> None:
    # The node over leaves 0 and 1, offered as "leaf 0" of a 7-leaf tree whose first two
    # leaves collapsed into one: the path would hash up to the right root without prefixes.
    n01 = node_hash(D[0], D[1])
    proof = inclusion_proof(D, 0, 8)[1:]
    assert not verify_inclusion(0, 7, n01, proof, mth(D[:8]))


# --- forged consistency proofs ----------------------------------------------------------

def test_a_consistency_proof_with_any_altered_or_extra_element_is_refused() -> None:
    for m in (1, 4, 5, 7, 8, 12):
        proof = consistency_proof(D, m)
        rm = mth(D[:m])
        for j in range(len(proof)):
            forged = list(proof)
            forged[j] = bytes(32)
            assert not verify_consistency(m, 13, rm, R13, forged)
        assert not verify_consistency(m, 13, rm, R13, proof + [bytes(32)])
        assert not verify_consistency(m, 13, rm, R13, proof[:-1])
        assert not verify_consistency(m, 13, rm, R13, [])


def test_a_rewritten_history_has_no_consistency_proof_to_the_old_root() -> None:
    rewritten = list(D)
    rewritten[3] = hashlib.sha256(b"forged approval").digest()
    old_root = mth(D[:6])
    # The rewritten log's own proof, the old root, the new (rewritten) root: refused.
    proof = consistency_proof(rewritten, 6)
    assert not verify_consistency(6, 13, old_root, mth(rewritten), proof)
    # Even one built from the genuine history fails against the rewritten head.
    assert not verify_consistency(6, 13, old_root, mth(rewritten), consistency_proof(D, 6))


def test_degenerate_consistency_claims_are_refused() -> None:
    r5 = mth(D[:5])
    assert not verify_consistency(5, 5, r5, R13, [])  # same size, different roots
    assert not verify_consistency(13, 5, R13, r5, consistency_proof(D, 5))  # shrinking
    assert not verify_consistency(0, 13, r5, R13, [])  # "empty" tree with a non-empty root
    assert not verify_consistency(0, 13, EMPTY_ROOT, R13, [R13])  # nothing to prove
    assert not verify_consistency(5, 5, r5, r5, [r5])  # padding
    assert verify_consistency(5, 5, r5, r5, [])
    # A proof for a different old size that happens to share the new root.
    assert not verify_consistency(6, 13, r5, R13, consistency_proof(D, 5))


def test_memoised_proofs_over_a_large_tree_match_the_rfc() -> None:
    from service.merkle import Tree

    d = leaves(1500)
    tree = Tree(d)
    assert tree.root() == mth(d) and tree.root(1024) == mth(d[:1024])
    for index in (0, 255, 256, 777, 1023, 1024, 1499):
        assert tree.inclusion(index, 1500) == path(index, d)
        if index < 1300:
            assert tree.inclusion(index, 1300) == path(index, d[:1300])
    for m in (1, 256, 300, 1024, 1025, 1499):
        assert tree.consistency(m, 1500) == subproof(m, d, True)
