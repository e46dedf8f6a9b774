"""Hashes that make the history tamper-evident (RFC 9162 style: distinct leaf/node prefixes)."""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(position: int, record_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """H(0x00 ‖ position ‖ record id ‖ version ‖ topic ‖ H(state)).

    ``state`` is the stored event body: its timestamp, metadata and payload, with personal data
    present only as ciphertext, so the leaf commits to what is stored and survives erasure.
    """
    topic_bytes = topic.encode()
    body = b"".join((
        struct.pack(">Q", position),
        record_id.bytes,
        struct.pack(">Q", version),
        struct.pack(">I", len(topic_bytes)),
        topic_bytes,
        hashlib.sha256(state).digest(),
    ))
    return hashlib.sha256(LEAF_PREFIX + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()
