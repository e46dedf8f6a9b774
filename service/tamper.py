"""Hashes that make the history tamper-evident (RFC 9162 style: distinct leaf/node prefixes)."""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

_sha256 = hashlib.sha256
_pack_q = struct.Struct(">Q").pack
_pack_i = struct.Struct(">I").pack


def leaf_hash(position: int, record_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """H(0x00 ‖ position ‖ record id ‖ version ‖ len(topic) ‖ topic ‖ H(state)).

    ``state`` is the stored event body: its timestamp, metadata and payload, with personal data
    present only as ciphertext, so the leaf commits to what is stored and survives erasure.
    """
    return leaf_hash_raw(position, record_id.bytes, version, topic, state)


def leaf_hash_raw(position: int, record_id: bytes, version: int, topic: str,
                  state: bytes) -> bytes:
    """``leaf_hash`` with the record id as its 16 bytes (what verification reads in bulk)."""
    topic_bytes = topic.encode()
    return _sha256(b"".join((
        LEAF_PREFIX, _pack_q(position), record_id, _pack_q(version),
        _pack_i(len(topic_bytes)), topic_bytes, _sha256(state).digest(),
    ))).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """H(0x01 ‖ left ‖ right): an interior node, never confusable with a leaf."""
    return _sha256(NODE_PREFIX + left + right).digest()
