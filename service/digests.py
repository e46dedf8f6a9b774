"""Signed digests of the Merkle log (RFC 9162 "signed tree heads"): Ed25519 keys, the exact
signed message, and the ``merkle_digests`` table.

A digest says "the log's first ``tree_size`` events, the last at ``last_position``, have root
``root_hash``", at ``timestamp``, signed with the configured key. Its message is plain text so an
outside auditor can rebuild it without our code (see ``tools/verify_bundle.py``)::

    opsledger-tree-head/v1
    tree_size=<n>
    last_position=<p>
    root_hash=<64 hex>
    timestamp=<YYYY-MM-DDTHH:MM:SS.ffffffZ>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MESSAGE_HEADER = "opsledger-tree-head/v1"


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def digest_message(tree_size: int, last_position: int, root_hash: bytes, timestamp: str) -> bytes:
    return (f"{MESSAGE_HEADER}\ntree_size={tree_size}\nlast_position={last_position}\n"
            f"root_hash={root_hash.hex()}\ntimestamp={timestamp}\n").encode()


# --- keys ------------------------------------------------------------------------------------

def _b64(text: str) -> bytes:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise ValueError("not base64")


def load_private_key(text: str) -> Ed25519PrivateKey:
    """A PKCS#8 PEM Ed25519 key, or the base64 of its 32-byte seed."""
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key must be an Ed25519 key")
        return key
    raw = _b64(text)
    if len(raw) != 32:
        raise ValueError("a base64 Ed25519 signing key is a 32-byte seed")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(text: str) -> Ed25519PublicKey:
    """A SubjectPublicKeyInfo PEM Ed25519 key, or the base64 of its 32 raw bytes."""
    if text.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("a digest key must be an Ed25519 key")
        return key
    raw = _b64(text)
    if len(raw) != 32:
        raise ValueError("a base64 Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


class KeyRing:
    """The signing key and every public key whose digests we accept (current + rotated-out)."""

    def __init__(self, signing_key: Ed25519PrivateKey,
                 trusted: Iterable[Ed25519PublicKey] = ()):
        self._signing = signing_key
        self.public = signing_key.public_key()
        self.key_id = key_id(self.public)
        self.keys: dict[str, Ed25519PublicKey] = {key_id(k): k for k in trusted}
        self.keys[self.key_id] = self.public

    @classmethod
    def from_settings(cls, settings: Any) -> KeyRing:
        return cls(load_private_key(settings.signing_key.get_secret_value()),
                   [load_public_key(k) for k in settings.trusted_digest_keys])

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    def check(self, digest: SignedDigest) -> str | None:
        """None when the digest is signed by a trusted key, else why not."""
        key = self.keys.get(digest.key_id)
        if key is None:
            return f"signed by unknown key {digest.key_id}"
        try:
            key.verify(digest.signature, digest.message())
        except InvalidSignature:
            return "the signature does not match"
        return None

    def public_keys(self) -> list[dict[str, str]]:
        return [{"key_id": kid, "algorithm": "Ed25519", "public_key_pem": public_pem(k)}
                for kid, k in sorted(self.keys.items())]


# --- digests ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedDigest:
    tree_size: int
    last_position: int
    root_hash: bytes
    timestamp: str
    key_id: str
    signature: bytes
    id: int | None = None
    reason: str = "on_demand"

    def message(self) -> bytes:
        return digest_message(self.tree_size, self.last_position, self.root_hash,
                              self.timestamp)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "tree_size": self.tree_size, "last_position": self.last_position,
                "root_hash": self.root_hash.hex(), "timestamp": self.timestamp,
                "key_id": self.key_id, "algorithm": "Ed25519",
                "signature": base64.b64encode(self.signature).decode(), "reason": self.reason}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SignedDigest:
        try:
            return cls(tree_size=int(doc["tree_size"]), last_position=int(doc["last_position"]),
                       root_hash=bytes.fromhex(doc["root_hash"]), timestamp=str(doc["timestamp"]),
                       key_id=str(doc["key_id"]), signature=base64.b64decode(doc["signature"]),
                       id=doc.get("id"), reason=str(doc.get("reason", "external")))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed digest: {exc}") from exc


def sign_digest(keys: KeyRing, tree_size: int, last_position: int, root_hash: bytes,
                reason: str, now: datetime | None = None) -> SignedDigest:
    stamp = format_timestamp(now or datetime.now(UTC))
    message = digest_message(tree_size, last_position, root_hash, stamp)
    return SignedDigest(tree_size, last_position, root_hash, stamp, keys.key_id,
                        keys.sign(message), reason=reason)


_COLUMNS = "id, tree_size, last_position, root_hash, signed_at, key_id, signature, reason"


def _row(row: Sequence[Any]) -> SignedDigest:
    return SignedDigest(id=row[0], tree_size=row[1], last_position=row[2],
                        root_hash=bytes(row[3]), timestamp=format_timestamp(row[4]),
                        key_id=row[5], signature=bytes(row[6]), reason=row[7])


def insert_digest(conn: Any, digest: SignedDigest) -> SignedDigest:
    row = conn.execute(
        "INSERT INTO merkle_digests (tree_size, last_position, root_hash, signed_at, key_id,"
        " signature, reason) VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING id",
        (digest.tree_size, digest.last_position, digest.root_hash,
         parse_timestamp(digest.timestamp), digest.key_id, digest.signature, digest.reason),
    ).fetchone()
    return SignedDigest(**{**digest.__dict__, "id": row[0]})


def load_digests(conn: Any, *, limit: int | None = None, before_id: int | None = None,
                 tree_size: int | None = None, newest_first: bool = False,
                 ) -> list[SignedDigest]:
    where, params = [], []
    if before_id is not None:
        where.append("id < %s")
        params.append(before_id)
    if tree_size is not None:
        where.append("tree_size = %s")
        params.append(tree_size)
    query = f"SELECT {_COLUMNS} FROM merkle_digests"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += " ORDER BY id DESC" if newest_first else " ORDER BY tree_size, id"
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit)
    return [_row(r) for r in conn.execute(query, params).fetchall()]


def read_digest_file(lines: Iterable[str]) -> list[SignedDigest]:
    """Digests kept outside the database: JSON Lines (or one JSON list) of ``to_json`` docs."""
    import json

    text = "".join(lines).strip()
    if not text:
        return []
    docs = json.loads(text) if text.startswith("[") else [
        json.loads(line) for line in text.splitlines() if line.strip()]
    return [SignedDigest.from_json(d) for d in docs]
