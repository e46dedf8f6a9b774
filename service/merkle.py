"""Merkle tree math of RFC 9162 §2.1 over leaf hashes: roots, inclusion and consistency proofs.

Pure functions over lists of 32-byte leaf hashes (``tamper.leaf_hash`` already applied the 0x00
prefix; interior nodes use ``tamper.node_hash`` with 0x01). The tree of ``n`` leaves is the
RFC's: split at the largest power of two smaller than ``n``. Verification follows the RFC's
algorithms step by step and refuses anything it cannot fully account for — trailing path
elements, impossible sizes, a final ``sn != 0`` — because a verifier that accepts a forged proof
is worse than none (immudb's client once did: GHSA-672p-m5jq-mrh8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from service.tamper import node_hash

EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = HASH()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(leaves: Sequence[bytes], lo: int = 0, hi: int | None = None) -> bytes:
    """MTH(D[lo:hi]), computed level by level (a lone last node moves up unchanged, which is
    the same tree as the RFC's recursive split)."""
    hi = len(leaves) if hi is None else hi
    if hi <= lo:
        return EMPTY_ROOT
    level = list(leaves[lo:hi])
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    return subtree_root(leaves)


class Frontier:
    """The perfect subtrees of a growing tree: the root of every prefix in O(log n) memory.

    Used to recompute the log in one streaming pass and to sign digests incrementally.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (leaf count, hash), largest first

    def append(self, leaf: bytes) -> None:
        self.size += 1
        count, h = 1, leaf
        stack = self._stack
        while stack and stack[-1][0] == count:
            left = stack.pop()[1]
            h = node_hash(left, h)
            count *= 2
        stack.append((count, h))

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> Frontier:
        other = Frontier()
        other.size, other._stack = self.size, list(self._stack)
        return other


# --- proofs (RFC 9162 §2.1.3.1 and §2.1.4.1) -----------------------------------------------------

class Tree:
    """A fixed list of leaves whose larger subtree hashes are remembered, so that many proofs
    over one log (a bundle's) cost about one pass over it rather than one pass each."""

    MEMO_MIN = 256

    def __init__(self, leaves: Sequence[bytes]):
        self.leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    def hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        n = hi - lo
        if n < self.MEMO_MIN:
            return subtree_root(self.leaves, lo, hi)
        memo = self._memo.get((lo, hi))
        if memo is None:
            k = _split(n)
            memo = node_hash(self.hash(lo, lo + k), self.hash(lo + k, hi))
            self._memo[(lo, hi)] = memo
        return memo

    def root(self, size: int | None = None) -> bytes:
        return self.hash(0, len(self.leaves) if size is None else size)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]): the audit path of leaf ``index`` in a tree of ``size``."""
        size = len(self.leaves) if size is None else size
        if not 0 <= index < size <= len(self.leaves):
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:  # walk down, collecting each step's sibling, then reverse
            k = _split(hi - lo)
            if index - lo < k:
                path.append(self.hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.hash(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path

    def consistency(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[0:second]): the tree of ``first`` leaves is a prefix of ``second``."""
        second = len(self.leaves) if second is None else second
        if not 0 <= first <= second <= len(self.leaves):
            raise ValueError(f"no consistency proof from size {first} to size {second}")
        if first == 0 or first == second:
            return []
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, complete) + [self.hash(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.hash(lo, lo + k)]


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    return Tree(leaves).inclusion(index, size)


def consistency_proof(leaves: Sequence[bytes], first: int, second: int | None = None,
                      ) -> list[bytes]:
    return Tree(leaves).consistency(first, second)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------------

def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to; ValueError if the proof cannot be right."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ValueError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes],
                     expected_root: bytes) -> bool:
    try:
        return root_from_inclusion(index, size, leaf, path) == expected_root
    except ValueError:
        return False


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> bool:
    """True when the tree (first, first_root) is a prefix of (second, second_root)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:  # the empty tree is a prefix of every tree; nothing may be claimed about it
        return not path and first_root == EMPTY_ROOT
    if not path:
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
