"""Export bundles: everything an outside auditor needs to check the log without our code.

A bundle is a zip file::

    manifest.json      format, sizes, how leaves and nodes are hashed, the signed message format
    events.jsonl       one line per position, in order: the stored event (exact bytes) and the
                       entry the log index recorded when it was appended
    digests.jsonl      the signed digests covering the bundle (and, for an archive of older
                       events, the newest digest with a consistency proof back to them)
    public_keys.json   the Ed25519 keys that sign digests (compare the fingerprints with the
                       ones the operator publishes)
    proofs.json        consistency proofs between digests, and sample inclusion proofs
    README.txt         how to verify: python tools/verify_bundle.py <bundle.zip>

``tools/verify_bundle.py`` recomputes every leaf and root from ``events.jsonl``, checks every
signature and proof, and names the first position that does not match.
"""

from __future__ import annotations

import base64
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from service.digests import MESSAGE_HEADER, KeyRing, SignedDigest, load_digests
from service.merkle import Frontier, Tree
from service.tamper import leaf_hash
from service.verify import Progress, merged_rows, open_snapshot

FORMAT = "opsledger-bundle/v1"
MAX_CONSISTENCY_PROOFS = 100
INCLUSION_SAMPLES = 16

README = f"""opsledger audit bundle
======================

Verify with the standalone script tools/verify_bundle.py from the opsledger repository (one
short file: read it before trusting it; it needs Python 3.11+ and the 'cryptography' package):

    python verify_bundle.py bundle.zip [--public-key operator-key.pem] [--digests kept.jsonl]

Pin the key: pass the public key the operator published (otherwise the bundle's own key is
used, and its fingerprint printed for you to compare). --digests adds digests you kept
elsewhere (e.g. from an earlier bundle), so a history rewritten since then is caught even if
the operator dropped those digests from the database.

Leaf hash  = SHA-256(0x00 || u64 position || 16-byte record id || u64 version
                     || u32 len(topic) || topic || SHA-256(state bytes))
Node hash  = SHA-256(0x01 || left || right)   (RFC 9162 tree shape)
Signed message (Ed25519), UTF-8, each line ending in \\n:
    {MESSAGE_HEADER}
    tree_size=<n>
    last_position=<position of the n-th event>
    root_hash=<hex>
    timestamp=<YYYY-MM-DDTHH:MM:SS.ffffffZ>

events.jsonl: {{"position", "event": {{"record_id", "version", "topic", "state_text" or
"state_b64"}} or null, "logged": {{"record_id", "version", "leaf_hash"}} or null}}. "state_text"
is the stored bytes as UTF-8 text; it holds the event's timestamp, metadata and payload
(personal fields only as ciphertext).
"""


def event_doc(record_id: UUID | bytes, version: int, topic: str, state: bytes) -> dict[str, Any]:
    rid = record_id if isinstance(record_id, UUID) else UUID(bytes=bytes(record_id))
    doc: dict[str, Any] = {"record_id": str(rid), "version": version, "topic": topic}
    state = bytes(state)
    try:
        doc["state_text"] = state.decode("utf-8")
    except UnicodeDecodeError:
        doc["state_b64"] = base64.b64encode(state).decode()
    return doc


def write_bundle(output: Path, conninfo: str, keys: KeyRing, target: SignedDigest, *,
                 events_table: str = "stored_events", before_position: int | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Writes the events up to ``target`` (or only those before ``before_position``)."""
    cutoff = target.last_position if before_position is None else min(
        target.last_position, before_position - 1)
    logged_leaves: list[bytes] = []
    logged_positions: list[int] = []
    covered = events = lines = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with open_snapshot(conninfo) as conn, zipfile.ZipFile(
            output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        stored = load_digests(conn)
        with zf.open("events.jsonl", "w") as out:
            for position, event, logged in merged_rows(conn, events_table, progress):
                if position > target.last_position:
                    break
                if logged is not None:
                    logged_leaves.append(bytes(logged[3]))
                    logged_positions.append(position)
                if position > cutoff:
                    continue
                covered = len(logged_leaves)
                events += event is not None
                line = {"position": position,
                        "event": event_doc(*event[1:]) if event is not None else None,
                        "logged": None if logged is None else {
                            "record_id": str(UUID(bytes=bytes(logged[1]))),
                            "version": logged[2], "leaf_hash": bytes(logged[3]).hex()}}
                out.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
                lines += 1
        conn.rollback()
        size = covered
        digests = [d for d in stored if d.tree_size <= size]
        if target.tree_size > size:
            digests.append(target)
        tree = Tree(logged_leaves)
        proofs = _proofs(tree, logged_positions, keys, digests, size, target)
        manifest = {
            "format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
            "tree_size": size, "last_position": cutoff if size else 0,
            "events": events, "lines": lines, "target_digest": target.to_json(),
            "complete": size == target.tree_size,
            "leaf_hash": "SHA-256(0x00 || u64 position || record id (16 bytes) || u64 version "
                         "|| u32 len(topic) || topic || SHA-256(state))",
            "node_hash": "SHA-256(0x01 || left || right)",
            "digest_message": MESSAGE_HEADER,
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        zf.writestr("digests.jsonl", "".join(json.dumps(d.to_json()) + "\n" for d in digests))
        zf.writestr("public_keys.json", json.dumps(keys.public_keys(), indent=2))
        zf.writestr("proofs.json", json.dumps(proofs, indent=2))
        zf.writestr("README.txt", README)
    return {"path": str(output), "tree_size": size, "events": events,
            "digests": len(digests), "target_digest": target.to_json()}


def _proofs(tree: Tree, positions: list[int], keys: KeyRing, digests: list[SignedDigest],
            size: int, target: SignedDigest) -> dict[str, Any]:
    genuine = sorted({d.tree_size: d for d in digests if keys.check(d) is None
                      and d.tree_size <= len(tree.leaves)}.values(), key=lambda d: d.tree_size)
    consistency = []
    pairs = list(zip(genuine, genuine[1:], strict=False))[-MAX_CONSISTENCY_PROOFS:]
    for older, newer in pairs:
        consistency.append({"first": older.tree_size, "second": newer.tree_size,
                            "path": [h.hex() for h in tree.consistency(older.tree_size,
                                                                       newer.tree_size)]})
    if target.tree_size > size and target.tree_size <= len(tree.leaves):
        # An archive of older events: prove they are the start of the newest signed tree.
        consistency.append({"first": size, "second": target.tree_size,
                            "path": [h.hex() for h in tree.consistency(size, target.tree_size)]})
    inclusion = []
    final = genuine[-1] if genuine else None
    if final is not None and size and final.tree_size <= len(tree.leaves):
        count = min(INCLUSION_SAMPLES, size)
        for index in sorted({round(i * (size - 1) / max(1, count - 1)) for i in range(count)}):
            inclusion.append({"position": positions[index], "leaf_index": index,
                              "tree_size": final.tree_size,
                              "path": [h.hex() for h in tree.inclusion(index, final.tree_size)]})
    return {"consistency": consistency, "inclusion": inclusion}


def read_kept(path: Path, keys: KeyRing) -> tuple[list[tuple[int, bytes]], list[SignedDigest]]:
    """A bundle kept outside the database, as trusted evidence for ``verify --bundle``: its
    genuine digests, and the (position, leaf) of its events up to the largest of them whose
    root the events reproduce. ValueError when nothing in it can be trusted."""
    try:
        with zipfile.ZipFile(path) as zf:
            digests = [SignedDigest.from_json(json.loads(line)) for line in
                       zf.read("digests.jsonl").decode().splitlines() if line.strip()]
            lines = zf.read("events.jsonl").splitlines()
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a bundle: {exc}") from exc
    genuine = {d.tree_size: d for d in digests if keys.check(d) is None}
    leaves: list[tuple[int, bytes]] = []
    frontier, trusted_size = Frontier(), 0
    for raw in lines:
        line = json.loads(raw)
        event = line.get("event")
        if event is None:
            continue
        state = (event["state_text"].encode() if "state_text" in event
                 else base64.b64decode(event["state_b64"]))
        leaf = leaf_hash(int(line["position"]), UUID(event["record_id"]),
                         int(event["version"]), event["topic"], state)
        leaves.append((int(line["position"]), leaf))
        frontier.append(leaf)
        signed = genuine.get(frontier.size)
        if signed is not None and signed.root_hash == frontier.root() \
                and signed.last_position == leaves[-1][0]:
            trusted_size = frontier.size
    if not trusted_size:
        raise ValueError(f"no event of {path} is covered by a genuine digest it holds")
    return leaves[:trusted_size], list(genuine.values())
