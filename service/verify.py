"""Verification: recompute the Merkle log from the event rows and check every signed digest.

Three witnesses are compared in one streaming pass over the event table and the event log
(both read in position order, in one REPEATABLE READ snapshot):

1. **the event rows** (``stored_events``): what the history says now; each row's leaf hash is
   recomputed exactly as the writer computed it (``tamper.leaf_hash_raw``);
2. **the log index** (``event_log``): the leaf hash the writer stored in the append transaction;
3. **the signed digests**: roots the service signed earlier, which nobody without the key can
   forge — kept in ``merkle_digests`` and, ideally, also outside the database.

Row against log names the exact position and kind of an edit, deletion, insertion or reordering
of event rows. Digests catch what a careful attacker also rewrote in the log index: a digest
whose root no longer matches names the range between the last digest that still holds and it.
When the log index still reproduces a digest's root, its leaves are authentic up to that digest,
so the row findings are exact there (``exact``); otherwise only the range is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from service.digests import KeyRing, SignedDigest, load_digests
from service.merkle import Frontier
from service.tamper import leaf_hash_raw

EventRow = tuple[int, bytes, int, str, bytes]  # position, record id, version, topic, state
LogRow = tuple[int, bytes, int, bytes]  # position, record id, version, leaf hash
Progress = Callable[[int], None]

BATCH = 20_000
MAX_LISTED = 200  # findings listed in a report (all are counted)
MAX_TRACKED = 100_000  # mismatched rows remembered to recognise moved events


def open_snapshot(conninfo: str) -> psycopg.Connection[Any]:
    """A read-only connection whose reads all see one consistent snapshot."""
    conn = psycopg.connect(conninfo)
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    return conn


def merged_rows(conn: psycopg.Connection[Any], events_table: str = "stored_events",
                progress: Progress | None = None,
                ) -> Iterator[tuple[int, EventRow | None, LogRow | None]]:
    """(position, event row or None, log row or None) for every position either table holds."""
    events_sql = sql.SQL(
        "SELECT notification_id, uuid_send(originator_id), originator_version, topic, state"
        " FROM {t} ORDER BY notification_id").format(t=sql.Identifier(events_table))
    log_sql = "SELECT position, uuid_send(record_id), version, leaf_hash FROM event_log" \
              " ORDER BY position"
    with conn.cursor(name="verify_events", binary=True) as ev, \
            conn.cursor(name="verify_log", binary=True) as lg:
        ev.itersize = lg.itersize = BATCH
        ev.execute(events_sql)
        lg.execute(log_sql)
        events, logs = iter(ev), iter(lg)
        e: Any = next(events, None)
        g: Any = next(logs, None)
        seen = 0
        while e is not None or g is not None:
            if g is None or (e is not None and e[0] < g[0]):
                yield e[0], e, None
                e = next(events, None)
            elif e is None or g[0] < e[0]:
                yield g[0], None, g
                g = next(logs, None)
            else:
                yield e[0], e, g
                e, g = next(events, None), next(logs, None)
            seen += 1
            if progress is not None and seen % BATCH == 0:
                progress(seen)


@dataclass
class Finding:
    """One problem. ``kind``: edited, deleted, inserted, reordered (event rows); log_edited,
    log_deleted, log_inserted (the log index, where the rows still match a signed digest);
    digest_mismatch, truncated (only a signed root shows it); forged_digest."""

    kind: str
    position: int | None
    detail: str
    end_position: int | None = None
    witness: str = "log_index"  # what contradicts the rows: log_index, kept_bundle, digests


@dataclass
class DigestCheck:
    id: int | None
    tree_size: int
    last_position: int
    timestamp: str
    recomputed_matches: bool = False
    log_index_matches: bool = False
    problem: str | None = None


@dataclass
class Report:
    ok: bool
    events: int
    logged: int
    tree_size: int
    root_hash: str
    digests: list[DigestCheck]
    uncovered_events: int
    findings: list[Finding]
    findings_total: int
    first_bad_position: int | None
    first_bad_kind: str | None
    exact: bool
    seconds: float
    events_per_second: float
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _key(record_id: bytes, version: int) -> str:
    return f"record {UUID(bytes=bytes(record_id))} v{version}"


class LogChecker:
    """Consumes merged rows in position order; knows nothing about where they come from."""

    def __init__(self, digests: Sequence[SignedDigest],
                 trusted: Sequence[tuple[int, bytes]] = ()):
        """``trusted``: (position, leaf) of a bundle kept outside, already checked against
        its signed digests — the one witness that still names the exact position when the
        rows and the log index were rewritten together."""
        self.digests = sorted(digests, key=lambda d: (d.tree_size, d.id or 0))
        self._trusted, self._t = trusted, 0
        self.trusted_end = trusted[-1][0] if trusted else 0
        self.checks = [DigestCheck(d.id, d.tree_size, d.last_position, d.timestamp)
                       for d in self.digests]
        self.tree, self.log_tree = Frontier(), Frontier()
        self._next_tree = self._next_log = 0
        self.findings_total = 0
        self.first_row_bad: int | None = None
        self.position_at_size: dict[int, int] = {}  # first position after each digest's size
        self.last_position = 0
        self._event_at: dict[tuple[bytes, int], int] = {}  # mismatched rows: key → position
        self._logged_at: dict[tuple[bytes, int], int] = {}
        self._pending: list[tuple[Finding, tuple[bytes, int] | None,
                                  tuple[bytes, int] | None]] = []
        self._sizes = {0, *(d.tree_size for d in self.digests)}
        self._reach(self.tree, 0)
        self._reach(self.log_tree, 0)

    # -- streaming ----------------------------------------------------------------------
    def feed(self, position: int, event: EventRow | None, logged: LogRow | None) -> None:
        kept = self._kept_leaf(position)
        before = self.findings_total
        leaf = None
        if event is not None:
            _, rid, version, topic, state = event
            leaf = leaf_hash_raw(position, bytes(rid), version, topic, bytes(state))
            if self.tree.size in self._sizes:
                self.position_at_size.setdefault(self.tree.size, position)
            self.tree.append(leaf)
            self.last_position = position
            self._reach(self.tree, position)
            if logged is None:
                self._row("inserted", position, "an event row the log index never recorded",
                          (bytes(rid), version), None)
            elif (bytes(logged[1]), logged[2]) != (bytes(rid), version):
                self._row("edited", position,
                          f"the row holds {_key(rid, version)} where the log recorded "
                          f"{_key(logged[1], logged[2])}",
                          (bytes(rid), version), (bytes(logged[1]), logged[2]))
            elif bytes(logged[3]) != leaf:
                self._row("edited", position, f"{_key(rid, version)}: the row's content "
                          "(type, time, metadata or payload) differs from what was appended",
                          None, None)
        if logged is not None:
            self.log_tree.append(bytes(logged[3]))
            self._reach(self.log_tree, position)
            if event is None:
                self._row("deleted", position,
                          f"{_key(logged[1], logged[2])} was appended here; its row is gone",
                          None, (bytes(logged[1]), logged[2]))
        if leaf is not None and self.findings_total == before and position <= self.trusted_end:
            # Rows and log agree; the kept bundle is the judge.
            if kept is None:
                self._row("inserted", position, "not in the bundle kept outside (the log index "
                          "was rewritten to match)", None, None, witness="kept_bundle")
            elif kept != leaf:
                self._row("edited", position, "differs from the bundle kept outside (the log "
                          "index was rewritten to match)", None, None, witness="kept_bundle")

    def _kept_leaf(self, position: int | None) -> bytes | None:
        """The kept bundle's leaf at ``position``; kept events skipped over are gone."""
        trusted = self._trusted
        while self._t < len(trusted) and (position is None or trusted[self._t][0] < position):
            self._row("deleted", trusted[self._t][0], "in the bundle kept outside, gone from "
                      "the event table and the log index", None, None, witness="kept_bundle")
            self._t += 1
        if self._t < len(trusted) and trusted[self._t][0] == position:
            self._t += 1
            return trusted[self._t - 1][1]
        return None

    def _row(self, kind: str, position: int, detail: str, event_key: tuple[bytes, int] | None,
             logged_key: tuple[bytes, int] | None, *, witness: str = "log_index") -> None:
        self.findings_total += 1
        if self.first_row_bad is None:
            self.first_row_bad = position
        if len(self._event_at) < MAX_TRACKED:
            if event_key is not None:
                self._event_at[event_key] = position
            if logged_key is not None:
                self._logged_at[logged_key] = position
        if len(self._pending) < MAX_LISTED:
            self._pending.append((Finding(kind, position, detail, witness=witness), event_key,
                                  logged_key))

    def _reach(self, tree: Frontier, position: int) -> None:
        """Checks the digests whose size this tree has just reached."""
        is_log = tree is self.log_tree
        i = self._next_log if is_log else self._next_tree
        while i < len(self.digests) and self.digests[i].tree_size <= tree.size:
            d, check = self.digests[i], self.checks[i]
            if d.tree_size == tree.size:
                matches = tree.root() == d.root_hash and (
                    is_log or d.last_position == position)
                if is_log:
                    check.log_index_matches = matches
                else:
                    check.recomputed_matches = matches
            i += 1
        if is_log:
            self._next_log = i
        else:
            self._next_tree = i

    # -- conclusions --------------------------------------------------------------------
    def report(self, *, events: int, logged: int, forged: Sequence[Finding] = (),
               seconds: float = 0.0) -> Report:
        self._kept_leaf(None)  # kept events after the last row: deleted too
        findings = self._classified() + list(forged)
        total = self.findings_total + len(forged)
        self._attribute_to_log_index(findings)
        first_bad, kind, exact = self.first_row_bad, None, True
        if first_bad is not None:
            kind = next(f.kind for f in findings if f.position == first_bad)  # after renaming
        failed = [(d, c) for d, c in zip(self.digests, self.checks, strict=True)
                  if not c.recomputed_matches]
        if failed:
            d, c = failed[0]
            good = [g for g, gc in zip(self.digests, self.checks, strict=True)
                    if gc.recomputed_matches and g.tree_size < d.tree_size]
            start = self.position_at_size.get(good[-1].tree_size if good else 0)
            after = good[-1].last_position if good else 0
            truncated = d.tree_size > self.tree.size
            c.problem = (f"covers {d.tree_size} events but only {self.tree.size} remain"
                         if truncated else "the recomputed root differs from the signed root")
            log_ok = any(cc.log_index_matches for dd, cc in zip(self.digests, self.checks,
                                                                strict=True)
                         if dd.tree_size >= d.tree_size)
            explained = first_bad is not None and first_bad <= d.last_position and (
                log_ok or self.trusted_end >= first_bad)
            if not explained:
                begin = start if start is not None else after + 1
                end = d.last_position if first_bad is None else min(first_bad, d.last_position)
                note = ("" if log_ok else "; the log index was rewritten to match, so only the "
                        "signed digests show it")
                digest_kind = "truncated" if truncated else "digest_mismatch"
                findings.append(Finding(
                    digest_kind, begin,
                    f"digest #{d.id} (tree size {d.tree_size}, signed {d.timestamp}) no longer "
                    f"holds: history after position {after} up to {d.last_position} was "
                    f"changed{note}", end_position=end, witness="digests"))
                total += 1
                if first_bad is None or begin < first_bad:
                    first_bad, kind, exact = begin, digest_kind, False
        for check in self.checks:
            if not check.recomputed_matches and check.problem is None:
                check.problem = ("covers more events than remain"
                                 if check.tree_size > self.tree.size
                                 else "the recomputed root differs from the signed root")
        if forged and first_bad is None:
            kind = forged[0].kind
        findings.sort(key=lambda f: (f.position is None, f.position or 0))
        covered = max((d.tree_size for d, c in zip(self.digests, self.checks, strict=True)
                       if c.recomputed_matches), default=0)
        ok = total == 0
        notes = []
        if self.tree.size > covered:
            notes.append(f"{self.tree.size - covered} event(s) after the latest digest are not "
                         "yet covered by a signed digest")
        return Report(
            ok=ok, events=events, logged=logged, tree_size=self.tree.size,
            root_hash=self.tree.root().hex(), digests=self.checks,
            uncovered_events=max(0, self.tree.size - covered), findings=findings[:MAX_LISTED],
            findings_total=total, first_bad_position=first_bad, first_bad_kind=kind,
            exact=exact if first_bad is not None else True, seconds=round(seconds, 3),
            events_per_second=round(events / seconds) if seconds > 0 else 0.0,
            summary=_summary(ok, first_bad, kind, exact, findings, total, self.tree.size),
            notes=notes)

    def _attribute_to_log_index(self, findings: list[Finding]) -> None:
        """Where the event rows still reproduce a signed root, a mismatch is the log index's."""
        held = [d for d, c in zip(self.digests, self.checks, strict=True)
                if c.recomputed_matches]
        if not held:
            return
        top = max(held, key=lambda d: d.last_position)
        renamed = {"edited": ("log_edited", "its log index entry was changed"),
                   "inserted": ("log_deleted", "its log index entry was deleted"),
                   "deleted": ("log_inserted", "a log index entry was added for an event that "
                                               "never existed")}
        for f in findings:
            if f.witness == "log_index" and f.position is not None \
                    and f.position <= top.last_position and f.kind in renamed:
                f.kind, why = renamed[f.kind]
                f.detail = f"the event rows match signed digest #{top.id}; {why} ({f.detail})"

    def _classified(self) -> list[Finding]:
        out = []
        for finding, event_key, logged_key in self._pending:
            if event_key is not None and self._logged_at.get(event_key, finding.position) \
                    != finding.position:
                finding.kind = "reordered"
                finding.detail = (f"{_key(*event_key)} was appended at position "
                                  f"{self._logged_at[event_key]} but now sits here")
            elif logged_key is not None and self._event_at.get(logged_key, finding.position) \
                    != finding.position:
                finding.kind = "reordered"
                finding.detail = (f"{_key(*logged_key)} was appended here but now sits at "
                                  f"position {self._event_at[logged_key]}")
            out.append(finding)
        return out


def _summary(ok: bool, first_bad: int | None, kind: str | None, exact: bool,
             findings: Sequence[Finding], total: int, size: int) -> str:
    if ok:
        return f"ok: {size} events, every signed digest holds"
    if first_bad is None:
        return f"TAMPERING: {total} problem(s): {findings[0].detail if findings else ''}"
    where = f"position {first_bad}" if exact else f"position {first_bad} or later"
    first = next((f for f in findings if f.position == first_bad), None)
    return (f"TAMPERING: first bad {where} ({kind}): {first.detail if first else ''}"
            f" — {total} problem(s) in all")


def check_signatures(keys: KeyRing, digests: Sequence[SignedDigest],
                     ) -> tuple[list[SignedDigest], list[Finding]]:
    valid, forged, seen = [], [], set()
    for d in digests:
        ident = (d.tree_size, d.root_hash, d.timestamp, d.signature)
        if ident in seen:
            continue
        seen.add(ident)
        problem = keys.check(d)
        if problem is None:
            valid.append(d)
        else:
            forged.append(Finding("forged_digest", None, f"digest #{d.id} (tree size "
                                  f"{d.tree_size}) is not genuine: {problem}",
                                  witness="digests"))
    return valid, forged


def verify_database(conninfo: str, keys: KeyRing, *, extra_digests: Sequence[SignedDigest] = (),
                    trusted: Sequence[tuple[int, bytes]] = (),
                    events_table: str = "stored_events", progress: Progress | None = None,
                    ) -> Report:
    """Recomputes the whole log from the event rows and checks it against every digest."""
    with open_snapshot(conninfo) as conn:
        report = verify_connection(conn, keys, extra_digests=extra_digests, trusted=trusted,
                                   events_table=events_table, progress=progress)
        conn.rollback()
    return report


def verify_connection(conn: psycopg.Connection[Any], keys: KeyRing, *,
                      extra_digests: Sequence[SignedDigest] = (),
                      trusted: Sequence[tuple[int, bytes]] = (),
                      events_table: str = "stored_events", progress: Progress | None = None,
                      ) -> Report:
    """``verify_database`` inside the caller's transaction (which should be one snapshot)."""
    started = time.perf_counter()
    valid, forged = check_signatures(keys, [*load_digests(conn), *extra_digests])
    checker = LogChecker(valid, trusted)
    events = logged = 0
    for position, event, log_row in merged_rows(conn, events_table, progress):
        checker.feed(position, event, log_row)
        events += event is not None
        logged += log_row is not None
    return checker.report(events=events, logged=logged, forged=forged,
                          seconds=time.perf_counter() - started)
