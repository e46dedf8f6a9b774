#!/usr/bin/env python3
"""Standalone verifier for opsledger audit bundles and proofs.

Needs Python 3.11+ and the ``cryptography`` package, nothing else — in particular not opsledger
itself, so an auditor can read all of it. It:

* checks every digest's Ed25519 signature (pin the operator's key with --public-key);
* recomputes every leaf hash from the events' exact bytes and the RFC 9162 tree from the leaves,
  and compares the roots with every signed digest (and with digests you kept, --digests);
* compares each event with the leaf hash logged when it was appended, naming the first position
  that was edited, deleted, inserted or reordered;
* checks every consistency and inclusion proof in the bundle, and proofs given with --proof
  (as served by GET /integrity/proofs/... or 'opsledger prove').

Exit status: 0 everything verifies, 1 something does not, 2 the input cannot be read.

    python verify_bundle.py bundle.zip [--public-key key.pem] [--digests kept.jsonl]
                            [--previous earlier-bundle.zip]
    python verify_bundle.py --proof proof.json --public-key key.pem
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any
from uuid import UUID

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover
    sys.exit("verify_bundle.py needs the 'cryptography' package: pip install cryptography")

FORMAT = "opsledger-bundle/v1"
HEADER = "opsledger-tree-head/v1"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class Unreadable(Exception):
    """The input is not a bundle or proof this verifier understands (exit 2)."""


# --- hashing (RFC 9162 §2.1) ------------------------------------------------------------

def leaf_hash(position: int, record_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    t = topic.encode()
    return hashlib.sha256(b"\x00" + struct.pack(">Q", position) + record_id.bytes
                          + struct.pack(">Q", version) + struct.pack(">I", len(t)) + t
                          + hashlib.sha256(state).digest()).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """Roots of every prefix of a growing tree (the perfect subtrees, largest first)."""

    def __init__(self) -> None:
        self.size, self.stack = 0, []  # type: ignore[var-annotated]

    def append(self, leaf: bytes) -> None:
        self.size += 1
        count, h = 1, leaf
        while self.stack and self.stack[-1][0] == count:
            h = node(self.stack.pop()[1], h)
            count *= 2
        self.stack.append((count, h))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        h = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            h = node(left, h)
        return h


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2; None when the proof cannot be right."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def consistent(first: int, second: int, first_root: bytes, second_root: bytes,
               path: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2, refusing every degenerate claim."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if not path:
        return False
    proof = ([first_root] if first & (first - 1) == 0 else []) + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


# --- keys and digests --------------------------------------------------------------------------

def load_key(text: str) -> Ed25519PublicKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    if not isinstance(key, Ed25519PublicKey):
        raise Unreadable("digest keys are Ed25519 keys")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Digest:
    def __init__(self, doc: dict[str, Any], source: str):
        try:
            self.id = doc.get("id")
            self.tree_size = int(doc["tree_size"])
            self.last_position = int(doc["last_position"])
            self.root = bytes.fromhex(doc["root_hash"])
            self.timestamp = str(doc["timestamp"])
            self.key_id = str(doc["key_id"])
            self.signature = base64.b64decode(doc["signature"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise Unreadable(f"malformed digest in {source}: {exc}") from exc
        self.source = source

    def name(self) -> str:
        return f"digest #{self.id} (tree size {self.tree_size}, {self.source})"

    def message(self) -> bytes:
        return (f"{HEADER}\ntree_size={self.tree_size}\nlast_position={self.last_position}\n"
                f"root_hash={self.root.hex()}\ntimestamp={self.timestamp}\n").encode()

    def problem(self, keys: dict[str, Ed25519PublicKey]) -> str | None:
        key = keys.get(self.key_id)
        if key is None:
            return f"signed by key {self.key_id}, which is not trusted"
        try:
            key.verify(self.signature, self.message())
        except InvalidSignature:
            return "its signature does not match its contents"
        return None


def read_digest_lines(text: str, source: str) -> list[Digest]:
    text = text.strip()
    try:
        docs = json.loads(text) if text.startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise Unreadable(f"{source} is not JSON Lines: {exc}") from exc
    return [Digest(d, source) for d in docs]


# --- the report ----------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.first_bad: int | None = None
        self.first_kind: str | None = None
        self.exact = True

    def fail(self, kind: str, detail: str, position: int | None = None) -> None:
        self.problems.append({"kind": kind, "position": position, "detail": detail})

    def locate(self, position: int, kind: str, exact: bool = True) -> None:
        if self.first_bad is None or position < self.first_bad:
            self.first_bad, self.first_kind, self.exact = position, kind, exact

    @property
    def ok(self) -> bool:
        return not self.problems


# --- bundle verification -----------------------------------------------------------------------

def open_bundle(path: Path) -> dict[str, bytes]:
    names = ("manifest.json", "events.jsonl", "digests.jsonl", "public_keys.json",
             "proofs.json")
    try:
        if path.is_dir():
            return {n: (path / n).read_bytes() for n in names}
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in names}
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"{path} is not an opsledger bundle: {exc}") from exc


def trusted_keys(pinned: list[Ed25519PublicKey], bundled: list[dict[str, Any]],
                 report: Report) -> dict[str, Ed25519PublicKey]:
    if pinned:
        return {key_id(k): k for k in pinned}
    keys = {}
    for doc in bundled:
        try:
            k = load_key(doc["public_key_pem"])
        except (KeyError, ValueError) as exc:
            raise Unreadable(f"unreadable public key in the bundle: {exc}") from exc
        if key_id(k) != doc.get("key_id"):
            report.fail("forged_key", f"bundled key claims id {doc.get('key_id')} but is "
                                      f"{key_id(k)}")
        keys[key_id(k)] = k
    report.notes.append("no --public-key given: trusting the bundle's own key(s) "
                        f"{', '.join(sorted(keys))}; compare with the operator's published "
                        "fingerprint")
    return keys


def _name(key: tuple[str, int]) -> str:
    return f"record {key[0]} v{key[1]}"


def verify_bundle(path: Path, pinned: list[Ed25519PublicKey], kept: list[Digest],
                  previous: Path | None = None) -> Report:
    """Signatures, then one pass over the events, then roots, then proofs."""
    report = Report()
    files = open_bundle(path)
    try:
        manifest = json.loads(files["manifest.json"])
        bundled_keys = json.loads(files["public_keys.json"])
        proofs = json.loads(files["proofs.json"])
    except json.JSONDecodeError as exc:
        raise Unreadable(f"bundle metadata is not JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise Unreadable(f"unknown bundle format {manifest.get('format')!r}")
    keys = trusted_keys(pinned, bundled_keys, report)
    earlier: dict[int, bytes] = {}
    if previous is not None:
        earlier, earlier_digests = read_earlier(previous, keys)
        kept = kept + earlier_digests
    digests = genuine_digests(
        read_digest_lines(files["digests.jsonl"].decode(), "bundle") + kept, keys, report)
    size = int(manifest.get("tree_size", 0))
    try:
        wanted = {int(p["position"]) for p in proofs.get("inclusion", [])}
    except (KeyError, TypeError, ValueError) as exc:
        raise Unreadable(f"malformed inclusion proof: {exc}") from exc
    scan = Scan({d.tree_size for d in digests} | {size, 0}, wanted, earlier)
    scan.read(files["events.jsonl"], report)
    if scan.tree.size != size:
        report.fail("count", f"the manifest says {size} events, the bundle holds "
                             f"{scan.tree.size}")
    check_roots(scan, digests, size, report)
    check_proofs(proofs, scan, digests, size, report)
    report.notes.append(f"{scan.tree.size} events, root {scan.tree.root().hex()}, "
                        f"{len(digests)} genuine digest(s)")
    return report


def read_earlier(path: Path, keys: dict[str, Ed25519PublicKey],
                 ) -> tuple[dict[int, bytes], list[Digest]]:
    """An earlier bundle as evidence: its genuine digests, and its events' leaves up to the
    largest of those digests whose root they reproduce."""
    files = open_bundle(path)
    digests = [d for d in read_digest_lines(files["digests.jsonl"].decode(), str(path))
               if d.problem(keys) is None]
    by_size = {d.tree_size: d for d in digests}
    leaves: dict[int, bytes] = {}
    tree, trusted_size, trusted_end = Frontier(), 0, 0
    for raw in io.BytesIO(files["events.jsonl"]):
        try:
            line = json.loads(raw)
            event = line.get("event")
            if event is None:
                continue
            position = int(line["position"])
            state = (event["state_text"].encode("utf-8") if "state_text" in event
                     else base64.b64decode(event["state_b64"], validate=True))
            leaf = leaf_hash(position, UUID(event["record_id"]), int(event["version"]),
                             str(event["topic"]), state)
        except (KeyError, TypeError, ValueError) as exc:
            raise Unreadable(f"{path}: {exc}") from exc
        leaves[position] = leaf
        tree.append(leaf)
        signed = by_size.get(tree.size)
        if signed is not None and signed.root == tree.root() \
                and signed.last_position == position:
            trusted_size, trusted_end = tree.size, position
    if not trusted_size:
        raise Unreadable(f"{path}: no event is covered by a genuine digest it holds")
    return {p: h for p, h in leaves.items() if p <= trusted_end}, digests


def genuine_digests(candidates: list[Digest], keys: dict[str, Ed25519PublicKey],
                    report: Report) -> list[Digest]:
    digests, seen = [], set()
    for d in candidates:
        ident = (d.tree_size, d.root, d.timestamp, d.signature)
        if ident in seen:
            continue
        seen.add(ident)
        problem = d.problem(keys)
        if problem:
            report.fail("forged_digest", f"{d.name()} is not genuine: {problem}")
        else:
            digests.append(d)
    return sorted(digests, key=lambda d: d.tree_size)


Key = tuple[str, int]  # (record id, version)


class Scan:
    """One pass over events.jsonl: the recomputed tree, the logged tree, row mismatches."""

    def __init__(self, sizes: set[int], wanted: set[int], earlier: dict[int, bytes]):
        self.sizes, self.wanted = sizes, wanted
        self.earlier = earlier  # position → leaf of an earlier bundle (--previous), verified
        self.earlier_end = max(earlier, default=0)
        self.tree, self.logged_tree = Frontier(), Frontier()
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}  # recomputed root at each digest size
        self.logged_roots: dict[int, bytes] = {0: EMPTY_ROOT}
        self.last_at: dict[int, int] = {0: 0}  # position of the last leaf at each size
        self.first_after: dict[int, int] = {}  # position of the first leaf after each size
        self.leaves: dict[int, tuple[int, bytes]] = {}  # position → (index, leaf), for proofs
        self.leaves_seen: list[int] = []  # positions holding an event
        self.log_rows: set[int] = set()  # positions where event and log index disagree
        self.first_row: int | None = None

    def read(self, data: bytes, report: Report) -> None:
        rows: list[tuple[str, int, str, Key | None, Key | None]] = []
        moved_from: dict[Key, int] = {}
        moved_to: dict[Key, int] = {}
        previous = 0
        for number, raw in enumerate(io.BytesIO(data), start=1):
            try:
                line = json.loads(raw)
                position = int(line["position"])
                event, logged = line.get("event"), line.get("logged")
                if position <= previous:
                    raise ValueError("positions out of order")
                previous = position
                leaf = ekey = lkey = logged_leaf = None
                if event is not None:
                    state = (event["state_text"].encode("utf-8") if "state_text" in event
                             else base64.b64decode(event["state_b64"], validate=True))
                    ekey = (str(event["record_id"]), int(event["version"]))
                    leaf = leaf_hash(position, UUID(ekey[0]), ekey[1], str(event["topic"]),
                                     state)
                if logged is not None:
                    lkey = (str(logged["record_id"]), int(logged["version"]))
                    logged_leaf = bytes.fromhex(logged["leaf_hash"])
                if ekey is None and lkey is None:
                    raise ValueError("neither an event nor a log entry")
            except (KeyError, TypeError, ValueError) as exc:
                raise Unreadable(f"events.jsonl line {number}: {exc}") from exc
            self._grow(position, leaf, logged_leaf)
            kind, detail = "", ""
            if lkey is None:
                kind, detail = "inserted", "an event the log index never recorded"
            elif ekey is None:
                kind, detail = "deleted", f"{_name(lkey)} was appended here; it is gone"
            elif ekey != lkey:
                kind, detail = "edited", f"holds {_name(ekey)}, logged {_name(lkey)}"
            elif leaf != logged_leaf:
                kind, detail = "edited", f"{_name(ekey)}: content differs from what was appended"
            if kind:
                self.log_rows.add(position)
            elif position <= self.earlier_end and self.earlier.get(position) != leaf:
                kind = "edited" if position in self.earlier else "inserted"
                detail = (f"{'differs from' if kind == 'edited' else 'not in'} the earlier "
                          "bundle (the log index was rewritten to match)")
            else:
                continue
            rows.append((kind, position, detail, ekey, lkey))
            if ekey is not None:
                moved_to[ekey] = position
            if lkey is not None:
                moved_from[lkey] = position
        seen = set(self.leaves_seen) | {r[1] for r in rows}
        rows += [("deleted", p, "in the earlier bundle, gone from this one", None, None)
                 for p in self.earlier if p not in seen]
        rows.sort(key=lambda r: r[1])
        for kind, position, detail, ekey, lkey in rows:
            if ekey is not None and moved_from.get(ekey, position) != position:
                kind, detail = "reordered", (f"{_name(ekey)} was appended at position "
                                             f"{moved_from[ekey]} but sits here")
            elif lkey is not None and moved_to.get(lkey, position) != position:
                kind, detail = "reordered", (f"{_name(lkey)} was appended here but sits at "
                                             f"position {moved_to[lkey]}")
            report.fail(kind, detail, position)
        if rows:
            self.first_row = rows[0][1]
            report.locate(self.first_row, next(p["kind"] for p in report.problems
                                               if p["position"] == self.first_row))

    def _grow(self, position: int, leaf: bytes | None, logged_leaf: bytes | None) -> None:
        if leaf is not None:
            if self.tree.size in self.sizes:
                self.first_after.setdefault(self.tree.size, position)
            if position in self.wanted:
                self.leaves[position] = (self.tree.size, leaf)
            self.tree.append(leaf)
            self.leaves_seen.append(position)
            if self.tree.size in self.sizes:
                self.roots[self.tree.size] = self.tree.root()
                self.last_at[self.tree.size] = position
        if logged_leaf is not None:
            self.logged_tree.append(logged_leaf)
            if self.logged_tree.size in self.sizes:
                self.logged_roots[self.logged_tree.size] = self.logged_tree.root()


def check_roots(scan: Scan, digests: list[Digest], size: int, report: Report) -> None:
    """Every digest within the events must sign the root recomputed from them."""
    good = [d for d in digests if d.tree_size <= scan.tree.size
            and scan.roots.get(d.tree_size) == d.root
            and scan.last_at.get(d.tree_size) == d.last_position]
    if good:  # where the event rows reproduce a signed root, a mismatch is the log index's
        top = max(good, key=lambda d: d.last_position)
        renamed = {"edited": "log_edited", "inserted": "log_deleted", "deleted": "log_inserted"}
        for found in report.problems:
            if found["position"] in scan.log_rows and found["position"] <= top.last_position \
                    and found["kind"] in renamed:
                found["kind"] = renamed[found["kind"]]
                found["detail"] = (f"the events match {top.name()}; the logged leaf hash "
                                   f"differs ({found['detail']})")
                if report.first_bad == found["position"]:
                    report.first_kind = found["kind"]
    for d in digests:
        if d.tree_size > size or d in good:
            continue
        before = [g for g in good if g.tree_size < d.tree_size]
        after = before[-1].last_position if before else 0
        log_ok = scan.logged_roots.get(d.tree_size) == d.root
        begin = scan.first_after.get(before[-1].tree_size if before else 0, after + 1)
        if scan.first_row is not None and scan.first_row <= d.last_position and (
                log_ok or scan.earlier_end >= scan.first_row):
            continue  # the row comparison already names it exactly
        note = "" if log_ok else " (the log index was rewritten to match)"
        report.fail("digest_mismatch", f"{d.name()} does not hold: history after position "
                                       f"{after} up to {d.last_position} changed{note}", begin)
        report.locate(begin, "digest_mismatch", exact=False)


def check_proofs(proofs: dict[str, Any], scan: Scan, digests: list[Digest], size: int,
                 report: Report) -> None:
    """Every proof must verify against genuine digests; digests beyond the events (an archive
    of older events) must be reached by a consistency proof from the bundle's own root."""
    bundle_root = scan.roots.get(size)
    proven: set[int] = set()
    for entry in proofs.get("consistency", []):
        try:
            first, second = int(entry["first"]), int(entry["second"])
            steps = [bytes.fromhex(h) for h in entry["path"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise Unreadable(f"malformed consistency proof: {exc}") from exc
        old = next((d.root for d in digests if d.tree_size == first), None)
        if old is None and first == size:
            old = bundle_root
        new = [d for d in digests if d.tree_size == second]
        if old is None or not new:
            report.fail("bad_proof", f"consistency proof {first}→{second} refers to no "
                                     "genuine digest")
            continue
        for d in new:
            if not consistent(first, second, old, d.root, steps):
                report.fail("bad_proof", f"consistency proof {first}→{second} does not verify "
                                         f"against {d.name()}")
            elif first == size:
                proven.add(second)
    for d in digests:
        if d.tree_size <= size:
            continue
        if d.tree_size in proven:
            report.notes.append(f"the bundle holds the first {size} events of {d.name()} "
                                "(an archive of older events)")
        else:
            report.fail("unproven_digest", f"{d.name()} covers events beyond the bundle and no "
                                           "consistency proof links them")
    for entry in proofs.get("inclusion", []):
        try:
            position, index = int(entry["position"]), int(entry["leaf_index"])
            tree_size = int(entry["tree_size"])
            steps = [bytes.fromhex(h) for h in entry["path"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise Unreadable(f"malformed inclusion proof: {exc}") from exc
        located = scan.leaves.get(position)
        targets = [d for d in digests if d.tree_size == tree_size]
        if located is None or located[0] != index or not targets or any(
                root_from_inclusion(index, tree_size, located[1], steps) != d.root
                for d in targets):
            report.fail("bad_proof", f"inclusion proof of position {position} in tree size "
                                     f"{tree_size} does not verify", position)


# --- single proofs (from the API or 'opsledger prove') ----------------------------------------

def verify_proof(doc: dict[str, Any], pinned: list[Ed25519PublicKey], kept: list[Digest],
                 report: Report) -> None:
    keys = trusted_keys(pinned, doc.get("public_keys", []), report)
    try:
        kind = doc["kind"]
        if kind == "inclusion":
            digest = Digest(doc["digest"], "proof")
            event = doc["event"]
            state = (event["state_text"].encode("utf-8") if "state_text" in event
                     else base64.b64decode(event["state_b64"], validate=True))
            position = int(doc["position"])
            leaf = leaf_hash(position, UUID(event["record_id"]), int(event["version"]),
                             event["topic"], state)
            path = [bytes.fromhex(h) for h in doc["audit_path"]]
            index, size = int(doc["leaf_index"]), int(doc["tree_size"])
        elif kind == "consistency":
            digest = Digest(doc["second_digest"], "proof")
            first, size = int(doc["first"]), int(doc["second"])
            path = [bytes.fromhex(h) for h in doc["path"]]
        else:
            raise Unreadable(f"unknown proof kind {kind!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise Unreadable(f"malformed proof: {exc}") from exc
    problem = digest.problem(keys)
    if problem:
        report.fail("forged_digest", f"the proof's {digest.name()} is not genuine: {problem}")
        return
    if size != digest.tree_size:
        report.fail("bad_proof", f"the proof is for tree size {size}, its digest for "
                                 f"{digest.tree_size}")
        return
    if kind == "inclusion":
        if position > digest.last_position or root_from_inclusion(
                index, size, leaf, path) != digest.root:
            report.fail("bad_proof", f"the event at position {position} is not proven to be "
                                     f"leaf {index} of {digest.name()}", position)
        else:
            report.notes.append(f"position {position} is leaf {index} of {digest.name()}")
        return
    olds = [d for d in kept if d.tree_size == first and d.problem(keys) is None]
    if doc.get("first_digest"):
        first_digest = Digest(doc["first_digest"], "proof")
        problem = first_digest.problem(keys)
        if problem:
            report.fail("forged_digest", f"the proof's {first_digest.name()} is not genuine: "
                                         f"{problem}")
            return
        olds.append(first_digest)
    if not olds:
        olds_roots = [bytes.fromhex(doc["first_root"])]
        report.notes.append(f"no signed digest of size {first} given: checked against the "
                            "proof's own first_root — compare it with the digest you hold")
    else:
        olds_roots = [d.root for d in olds]
    for old_root in olds_roots:
        if not consistent(first, size, old_root, digest.root, path):
            report.fail("bad_proof", f"the tree of size {first} is not proven to be a prefix "
                                     f"of {digest.name()}")
            return
    report.notes.append(f"tree size {first} is a prefix of {digest.name()}")


# --- command line ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", nargs="?", type=Path, help="bundle zip (or unpacked directory)")
    parser.add_argument("--public-key", action="append", default=[], type=Path,
                        help="the operator's published Ed25519 key (PEM or base64); repeat")
    parser.add_argument("--digests", action="append", default=[], type=Path,
                        help="digests you kept outside the database (JSON Lines); repeat")
    parser.add_argument("--previous", type=Path,
                        help="an earlier bundle you kept: names the exact first change even "
                             "when the log index was rewritten too")
    parser.add_argument("--proof", action="append", default=[], type=Path,
                        help="an inclusion or consistency proof (JSON); repeat")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.bundle is None and not args.proof:
        parser.print_usage(sys.stderr)
        print("give a bundle, or --proof files", file=sys.stderr)
        return 2
    report = Report()
    try:
        pinned = [load_key(p.read_text()) for p in args.public_key]
        kept = [d for p in args.digests for d in read_digest_lines(p.read_text(), str(p))]
        if args.bundle is not None:
            bundle_report = verify_bundle(args.bundle, pinned, kept, args.previous)
            report = bundle_report
        for proof_path in args.proof:
            try:
                doc = json.loads(proof_path.read_text())
            except json.JSONDecodeError as exc:
                raise Unreadable(f"{proof_path} is not JSON: {exc}") from exc
            verify_proof(doc, pinned, kept, report)
    except (Unreadable, OSError, ValueError) as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": report.ok, "first_bad_position": report.first_bad,
                          "first_bad_kind": report.first_kind, "exact": report.exact,
                          "problems": report.problems, "notes": report.notes}, indent=2))
    else:
        for note in report.notes:
            print(f"note: {note}")
        for problem in report.problems[:50]:
            where = f"position {problem['position']}: " if problem["position"] else ""
            print(f"FAIL {problem['kind']}: {where}{problem['detail']}")
        if report.ok:
            print("OK: every signature, root and proof verifies")
        elif report.first_bad is not None:
            where = "" if report.exact else " or later"
            print(f"TAMPERED: first bad position {report.first_bad}{where} "
                  f"({report.first_kind}); {len(report.problems)} problem(s)")
        else:
            print(f"TAMPERED: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
