"""Tamper evidence use cases: sign digests (on demand and periodically), prove inclusion and
consistency against signed digests, verify the whole log, export bundles.

REST (``rest/integrity.py``), GraphQL (``graphql/integrity.py``) and the CLI all call this one
object (``container.integrity``). Proofs are built from the leaf hashes the writer stored in
``event_log``; before answering, each proof is checked against the signed root it claims, so the
service never hands out a proof over a history that no longer matches its own digest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from domain.shared import DomainError
from service import bundle
from service.digests import (
    KeyRing,
    SignedDigest,
    insert_digest,
    load_digests,
    sign_digest,
)
from service.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    root_from_inclusion,
    subtree_root,
    verify_consistency,
)
from service.tamper import leaf_hash
from service.verify import Progress, Report, verify_database

log = logging.getLogger(__name__)

PREPARE_POLL_SECONDS = 1.0  # how soon after it may sign a process prepares its tree


class NoSuchDigest(DomainError):
    status = 404
    rule = "no_such_digest"


class ProofNotPossible(DomainError):
    status = 422
    rule = "proof_not_possible"


class LogDiverged(DomainError):
    """The stored log no longer matches a signed digest: someone changed history."""

    status = 409
    rule = "log_diverged"


class Integrity:
    def __init__(self, conninfo: str, keys: KeyRing, *, events_table: str = "stored_events"):
        self.conninfo = conninfo
        self.keys = keys
        self.events_table = events_table
        self._lock = threading.Lock()
        self._frontier: Frontier | None = None  # the log as of our last digest
        self._last_position = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- digests ------------------------------------------------------------------------
    def digests(self, *, limit: int = 50, before_id: int | None = None) -> list[SignedDigest]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return load_digests(conn, limit=limit, before_id=before_id, newest_first=True)

    def all_digests(self) -> list[SignedDigest]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return load_digests(conn)

    def sign_digest(self, reason: str = "on_demand") -> SignedDigest:
        """Signs (tree size, root, time) of the log as it is now and stores the digest."""
        with self._lock, psycopg.connect(self.conninfo) as conn:
            if self._frontier is None:
                frontier, last = self._fresh_frontier(conn)
            else:
                frontier, last = self._frontier.copy(), self._last_position
                with conn.cursor(name="digest_leaves", binary=True) as cur:
                    cur.itersize = 20_000
                    cur.execute("SELECT position, leaf_hash FROM event_log WHERE position > %s"
                                " ORDER BY position", (last,))
                    for position, leaf in cur:
                        frontier.append(bytes(leaf))
                        last = position
            digest = insert_digest(conn, sign_digest(self.keys, frontier.size, last,
                                                     frontier.root(), reason))
            conn.commit()
            self._frontier, self._last_position = frontier, last
            return digest

    def _fresh_frontier(self, conn: psycopg.Connection[Any]) -> tuple[Frontier, int]:
        """Builds the tree from every stored leaf, refusing to sign over a history that no
        longer matches the latest genuine digest."""
        latest = next((d for d in reversed(load_digests(conn)) if self.keys.check(d) is None),
                      None)
        frontier, last = Frontier(), 0
        checked = latest is None
        with conn.cursor(name="digest_leaves", binary=True) as cur:
            cur.itersize = 20_000
            cur.execute("SELECT position, leaf_hash FROM event_log ORDER BY position")
            for position, leaf in cur:
                frontier.append(bytes(leaf))
                last = position
                if latest is not None and frontier.size == latest.tree_size:
                    checked = True
                    if frontier.root() != latest.root_hash or last != latest.last_position:
                        raise LogDiverged(self._diverged(latest))
        if not checked:
            raise LogDiverged(self._diverged(latest))
        return frontier, last

    @staticmethod
    def _diverged(digest: SignedDigest | None) -> str:
        name = f"#{digest.id} (tree size {digest.tree_size})" if digest else ""
        return (f"the stored log no longer matches signed digest {name}; no new digest is "
                "signed over it — run 'opsledger verify' to find what changed")

    @property
    def tree_size(self) -> int | None:
        """How many leaves the tree this process holds covers (None: none built yet)."""
        frontier = self._frontier
        return None if frontier is None else frontier.size

    def prepare(self) -> None:
        """Builds the tree of the log as it is now, for the next digest to extend. The first
        digest a process signs reads every stored leaf (a million events: ~1 s of this
        process's CPU and as much of PostgreSQL's): better spent while the process starts
        than at its first tick, in the middle of its traffic."""
        with self._lock:
            if self._frontier is not None:
                return
            with psycopg.connect(self.conninfo) as conn:
                self._frontier, self._last_position = self._fresh_frontier(conn)
                conn.rollback()

    def start_periodic(self, interval: float, should_sign: Callable[[], bool]) -> None:
        """Signs a digest every ``interval`` seconds when events were appended since the last;
        before the first, prepares the tree as soon as this process may sign."""
        if interval <= 0:
            return

        def run() -> None:
            first_tick = time.monotonic() + interval
            while not self._stop.wait(min(PREPARE_POLL_SECONDS, interval)):
                if time.monotonic() >= first_tick:
                    break
                if should_sign():
                    try:
                        self.prepare()
                    except Exception:  # the first tick tries again, and reports it again
                        log.exception("preparing the digest tree failed")
                    break
            if self._stop.wait(max(0.0, first_tick - time.monotonic())):
                return
            while True:
                try:
                    if should_sign() and self._behind():
                        self.sign_digest("periodic")
                except Exception:  # never let the timer die; the next tick retries
                    log.exception("periodic digest failed")
                if self._stop.wait(interval):
                    return

        self._thread = threading.Thread(target=run, name="digest-signer", daemon=True)
        self._thread.start()

    def _behind(self) -> bool:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            row = conn.execute(
                "SELECT (SELECT coalesce(max(position), 0) FROM event_log),"
                " (SELECT coalesce(max(last_position), 0) FROM merkle_digests)").fetchone()
        return bool(row and row[0] > row[1])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- proofs -------------------------------------------------------------------------
    def _digest(self, conn: psycopg.Connection[Any], tree_size: int | None) -> SignedDigest:
        candidates = (load_digests(conn, tree_size=tree_size) if tree_size is not None
                      else load_digests(conn, limit=20, newest_first=True))
        genuine = [d for d in candidates if self.keys.check(d) is None]
        if not genuine:
            raise NoSuchDigest("no signed digest yet: request one first" if tree_size is None
                               else f"no signed digest with tree size {tree_size}",
                               field="tree_size")
        return max(genuine, key=lambda d: (d.tree_size, d.id or 0)) if tree_size is None \
            else genuine[-1]

    @staticmethod
    def _leaves(conn: psycopg.Connection[Any], size: int) -> list[bytes]:
        with conn.cursor(name="proof_leaves", binary=True) as cur:
            cur.itersize = 50_000
            cur.execute("SELECT leaf_hash FROM event_log ORDER BY position LIMIT %s", (size,))
            leaves = [bytes(r[0]) for r in cur]
        if len(leaves) < size:
            raise LogDiverged(f"a digest covers {size} events but the log holds {len(leaves)}")
        return leaves

    def inclusion(self, position: int, tree_size: int | None = None) -> dict[str, Any]:
        """The audit path of the event at ``position`` in the tree of a signed digest."""
        with psycopg.connect(self.conninfo) as conn:
            digest = self._digest(conn, tree_size)
            if position > digest.last_position:
                raise ProofNotPossible(
                    f"position {position} is after digest #{digest.id}, which ends at "
                    f"position {digest.last_position}: request a newer digest",
                    field="position")
            row = conn.execute(
                "SELECT (SELECT count(*) FROM event_log WHERE position < %s),"
                " (SELECT leaf_hash FROM event_log WHERE position = %s)",
                (position, position)).fetchone()
            if row is None or row[1] is None:
                raise ProofNotPossible(f"no event at position {position}", field="position")
            index, logged_leaf = int(row[0]), bytes(row[1])
            event = conn.execute(
                f"SELECT originator_id, originator_version, topic, state FROM"
                f" {self.events_table} WHERE notification_id = %s", (position,)).fetchone()
            leaves = self._leaves(conn, digest.tree_size)
            conn.rollback()
        path = inclusion_proof(leaves, index, digest.tree_size)
        if root_from_inclusion(index, digest.tree_size, leaves[index], path) != digest.root_hash:
            raise LogDiverged(self._diverged(digest))
        doc = bundle.event_doc(*event) if event else None
        if event is None or leaf_hash(position, *event) != logged_leaf:
            raise LogDiverged(f"the event row at position {position} does not match the leaf "
                              "hash logged when it was appended — run 'opsledger verify'")
        return {"kind": "inclusion", "position": position, "leaf_index": index,
                "tree_size": digest.tree_size, "leaf_hash": logged_leaf.hex(), "event": doc,
                "audit_path": [h.hex() for h in path], "digest": digest.to_json(),
                "public_keys": self.keys.public_keys()}

    def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        """Proof that the log's first ``first`` events are a prefix of a signed digest's tree."""
        with psycopg.connect(self.conninfo) as conn:
            digest = self._digest(conn, second)
            if not 0 <= first <= digest.tree_size:
                raise ProofNotPossible(f"first must be between 0 and {digest.tree_size}",
                                       field="first")
            first_digests = [d for d in load_digests(conn, tree_size=first)
                             if self.keys.check(d) is None]
            leaves = self._leaves(conn, digest.tree_size)
            conn.rollback()
        path = consistency_proof(leaves, first, digest.tree_size)
        first_root = subtree_root(leaves, 0, first)
        if not verify_consistency(first, digest.tree_size, first_root, digest.root_hash, path):
            raise LogDiverged(self._diverged(digest))
        if first_digests and first_digests[-1].root_hash != first_root:
            raise LogDiverged(self._diverged(first_digests[-1]))
        return {"kind": "consistency", "first": first, "second": digest.tree_size,
                "first_root": first_root.hex(), "second_root": digest.root_hash.hex(),
                "path": [h.hex() for h in path],
                "first_digest": first_digests[-1].to_json() if first_digests else None,
                "second_digest": digest.to_json(), "public_keys": self.keys.public_keys()}

    # -- verification and export -----------------------------------------------------------
    def verify(self, *, extra_digests: Sequence[SignedDigest] = (),
               kept_bundle: Path | None = None, progress: Progress | None = None) -> Report:
        """Checks the log; ``extra_digests`` and ``kept_bundle`` are evidence kept outside."""
        trusted: list[tuple[int, bytes]] = []
        if kept_bundle is not None:
            trusted, bundle_digests = bundle.read_kept(kept_bundle, self.keys)
            extra_digests = [*extra_digests, *bundle_digests]
        return verify_database(self.conninfo, self.keys, extra_digests=extra_digests,
                               trusted=trusted, events_table=self.events_table,
                               progress=progress)

    def export(self, output: Path, *, before_position: int | None = None, reason: str = "export",
               progress: Progress | None = None) -> dict[str, Any]:
        """Writes a bundle: a fresh digest first, then the events (all, or those before a
        position) with every digest and the proofs an outsider needs."""
        target = self.sign_digest(reason)
        return bundle.write_bundle(output, self.conninfo, self.keys, target,
                                   events_table=self.events_table,
                                   before_position=before_position, progress=progress)

