"""Tamper evidence against PostgreSQL: each kind of tampering, done with plain SQL by someone
holding the owner role (triggers switched off, as such an attacker can), is found by the verify
command, which names the first bad position.

One seeded database serves every test: each tampering runs in a maintenance transaction that
the verifier reads inside, and is rolled back afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
import pytest

from service.digests import SignedDigest, load_digests
from service.tamper import leaf_hash
from service.verify import Report, verify_connection
from tests.conftest import make_settings
from tests.integration.test_event_store import edit, propose

APPROVED = "domain.project:Project.Approved"


@pytest.fixture(scope="module")
def seeded(module_database: Any) -> Iterator[Any]:
    """16 events (4 projects × propose + 3 edits), digests at tree sizes 4, 8, 10, 12, 16."""
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), module_database, start_projector=False)
    ids = [propose(c.ledger, name=f"p{i}").body["id"] for i in range(4)]
    c.integrity.sign_digest("periodic")
    count = 4
    for k in range(3):
        for pid in ids:
            edit(c.ledger, pid, f"{pid[:4]}-{k}")
            count += 1
            if count in (8, 10, 12, 16):
                c.integrity.sign_digest("periodic")
    yield c
    c.close()


@contextmanager
def maintenance(container: Any) -> Iterator[psycopg.Connection[Any]]:
    """A superuser session with the append-only triggers off; rolled back at the end."""
    with psycopg.connect(container.database.conninfo) as conn:
        conn.execute("SET session_replication_role = replica")
        try:
            yield conn
        finally:
            conn.rollback()


def verify(conn: psycopg.Connection[Any], container: Any, **kwargs: Any) -> Report:
    return verify_connection(conn, container.integrity.keys, **kwargs)


def test_the_untouched_log_verifies_against_every_digest(seeded: Any) -> None:
    report = seeded.integrity.verify()
    assert report.ok, report.summary
    assert report.events == report.logged == report.tree_size == 16
    assert sorted({d.tree_size for d in report.digests}) == [4, 8, 10, 12, 16]
    assert all(d.recomputed_matches and d.log_index_matches for d in report.digests)
    assert report.first_bad_position is None and report.uncovered_events == 0


def test_the_event_table_refuses_changes_even_from_its_owner(seeded: Any) -> None:
    with psycopg.connect(seeded.database.conninfo) as conn:
        for statement in ("UPDATE stored_events SET topic = topic WHERE notification_id = 1",
                          "DELETE FROM event_log WHERE position = 1",
                          "TRUNCATE merkle_digests", "DELETE FROM operator_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
            conn.rollback()


def test_an_edited_amount_in_an_old_event_is_named(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        changed = conn.execute(
            "UPDATE stored_events SET state = convert_to(replace(convert_from(state, 'UTF8'),"
            " '\"10.00\"', '\"99000.00\"'), 'UTF8') WHERE notification_id = 2").rowcount
        assert changed == 1
        report = verify(conn, seeded)
    assert not report.ok
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (2, "edited", True)
    assert "differs from what was appended" in report.summary
    failing = sorted({d.tree_size for d in report.digests if not d.recomputed_matches})
    assert failing == [4, 8, 10, 12, 16]


def test_an_edited_log_index_entry_is_told_apart_from_an_edited_event(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        conn.execute("UPDATE event_log SET leaf_hash = %s WHERE position = 3", (bytes(32),))
        report = verify(conn, seeded)
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (3, "log_edited",
                                                                                True)
    assert "the event rows match signed digest" in report.summary


def test_a_deleted_event_row_is_named(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        conn.execute("DELETE FROM stored_events WHERE notification_id = 6")
        report = verify(conn, seeded)
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (6, "deleted",
                                                                                 True)
    assert report.events == 15 and report.logged == 16


def test_an_event_deleted_from_both_tables_is_named_by_the_digests(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        conn.execute("DELETE FROM stored_events WHERE notification_id = 6")
        conn.execute("DELETE FROM event_log WHERE position = 6")
        report = verify(conn, seeded)
    # Digest 4 still holds, digest 8 does not: the change lies in positions 5..8.
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (
        5, "digest_mismatch", False)
    finding = report.findings[0]
    assert (finding.position, finding.end_position) == (5, 8)
    assert "log index was rewritten" in finding.detail


def test_an_inserted_forged_approval_is_named(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        rid, version = conn.execute(
            "SELECT originator_id, max(originator_version) FROM stored_events WHERE"
            " originator_id = (SELECT originator_id FROM stored_events WHERE notification_id = 1)"
            " GROUP BY originator_id").fetchone()
        state = json.dumps({"timestamp": {"_type_": "datetime_iso",
                                          "_data_": "2026-01-05T10:00:00+00:00"},
                            "by": "mallory", "meta": {"actor": {"user_id": "mallory"}}})
        position = conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state)"
            " VALUES (%s, %s, %s, %s) RETURNING notification_id",
            (rid, version + 1, APPROVED, state.encode())).fetchone()[0]
        report = verify(conn, seeded)
    assert position == 17
    assert (report.first_bad_position, report.first_bad_kind) == (17, "inserted")
    assert "never recorded" in report.summary


def test_a_forged_row_inserted_between_two_events_is_named(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        # Make room (positions are only unique), then slip a forged approval in at 9.
        for p in range(16, 8, -1):
            conn.execute("UPDATE stored_events SET notification_id = notification_id + 1"
                         " WHERE notification_id = %s", (p,))
        conn.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state,"
                     " notification_id) VALUES (%s, 99, %s, %s, 9)",
                     (UUID(int=1), APPROVED, b'{"by":"mallory"}'))
        report = verify(conn, seeded)
    assert (report.first_bad_position, report.first_bad_kind) == (9, "reordered")
    assert "appended here but now sits at position 10" in report.findings[0].detail


def test_two_swapped_rows_are_named(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        conn.execute("UPDATE stored_events SET notification_id = -4 WHERE notification_id = 4")
        conn.execute("UPDATE stored_events SET notification_id = 4 WHERE notification_id = 7")
        conn.execute("UPDATE stored_events SET notification_id = 7 WHERE notification_id = -4")
        report = verify(conn, seeded)
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (4, "reordered",
                                                                                True)
    assert [(f.position, f.kind) for f in report.findings] == [(4, "reordered"),
                                                              (7, "reordered")]
    assert "appended at position 7" in report.findings[0].detail


def _rewrite_tail(conn: psycopg.Connection[Any], after: int, *, log_too: bool) -> None:
    """Truncate every event after ``after`` and append a forged history in its place."""
    rows = conn.execute("SELECT originator_id, originator_version, topic FROM stored_events"
                        " WHERE notification_id > %s ORDER BY notification_id",
                        (after,)).fetchall()
    conn.execute("DELETE FROM stored_events WHERE notification_id > %s", (after,))
    if log_too:
        conn.execute("DELETE FROM event_log WHERE position > %s", (after,))
    for i, (rid, version, topic) in enumerate(rows, start=after + 1):
        state = json.dumps({"changes": {"name": f"forged-{i}"}, "by": "mallory"}).encode()
        conn.execute("INSERT INTO stored_events (originator_id, originator_version, topic,"
                     " state, notification_id) VALUES (%s, %s, %s, %s, %s)",
                     (rid, version, topic, state, i))
        if log_too:  # a careful attacker recomputes the log index with our own code
            conn.execute(
                "INSERT INTO event_log (position, record_id, version, record_type, event_type,"
                " occurred_at, leaf_hash) VALUES (%s, %s, %s, 'project', 'ApplicationEdited',"
                " now(), %s)", (i, rid, version, leaf_hash(i, rid, version, topic, state)))


def test_a_truncated_and_rewritten_tail_is_named(seeded: Any) -> None:
    with maintenance(seeded) as conn:
        _rewrite_tail(conn, 11, log_too=False)
        report = verify(conn, seeded)
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (12, "edited",
                                                                                True)
    assert report.findings_total == 5


def test_a_tail_rewritten_everywhere_is_named_by_an_older_digest_kept_outside(
        seeded: Any) -> None:
    kept = [SignedDigest.from_json(d.to_json()) for d in seeded.integrity.all_digests()]
    with maintenance(seeded) as conn:
        _rewrite_tail(conn, 10, log_too=True)
        conn.execute("DELETE FROM merkle_digests WHERE tree_size > 10")  # hide the evidence
        assert verify(conn, seeded).ok  # the database alone can no longer tell …
        report = verify(conn, seeded, extra_digests=kept)  # … the digests kept outside can
    # Digest 10 holds, digest 12 does not: the first changed position is 11.
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (
        11, "digest_mismatch", False)
    assert report.findings[0].end_position == 12
    assert "first bad position 11 or later" in report.summary


@pytest.fixture(scope="module")
def kept_bundle(seeded: Any, tmp_path_factory: Any) -> Any:
    """A bundle the auditor exported before anyone tampered, and kept outside."""
    from service.bundle import read_kept

    path = tmp_path_factory.mktemp("kept") / "bundle.zip"
    seeded.integrity.export(path)
    return read_kept(path, seeded.integrity.keys)


def test_a_kept_bundle_names_the_exact_start_of_a_tail_rewritten_everywhere(
        seeded: Any, kept_bundle: Any) -> None:
    leaves, digests = kept_bundle
    with maintenance(seeded) as conn:
        _rewrite_tail(conn, 13, log_too=True)
        conn.execute("DELETE FROM merkle_digests")
        report = verify(conn, seeded, trusted=leaves, extra_digests=digests)
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (14, "edited",
                                                                                True)
    assert "differs from the bundle kept outside" in report.summary


def test_a_kept_bundle_names_an_event_deleted_from_both_tables(seeded: Any,
                                                               kept_bundle: Any) -> None:
    leaves, digests = kept_bundle
    with maintenance(seeded) as conn:
        conn.execute("DELETE FROM stored_events WHERE notification_id = 6")
        conn.execute("DELETE FROM event_log WHERE position = 6")
        report = verify(conn, seeded, trusted=leaves, extra_digests=digests)
    assert (report.first_bad_position, report.first_bad_kind, report.exact) == (6, "deleted",
                                                                                True)


def test_a_forged_digest_in_the_table_is_reported(seeded: Any) -> None:
    with psycopg.connect(seeded.database.conninfo) as conn:
        genuine = load_digests(conn)[-1]
    with maintenance(seeded) as conn:
        conn.execute("INSERT INTO merkle_digests (tree_size, last_position, root_hash, signed_at,"
                     " key_id, signature, reason) VALUES (16, 16, %s, now(), %s, %s, 'forged')",
                     (bytes(32), genuine.key_id, genuine.signature))
        report = verify(conn, seeded)
    assert not report.ok
    assert report.findings[-1].kind == "forged_digest"
    assert "signature does not match" in report.findings[-1].detail


def test_a_new_digest_is_refused_over_a_rewritten_history(seeded: Any, module_database: Any,
                                                          ) -> None:
    from service.digests import KeyRing
    from service.integrity import Integrity, LogDiverged

    fresh = Integrity(module_database.conninfo, KeyRing.from_settings(seeded.settings))
    with psycopg.connect(module_database.conninfo, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        original = conn.execute("SELECT leaf_hash FROM event_log WHERE position = 3"
                                ).fetchone()[0]
        conn.execute("UPDATE event_log SET leaf_hash = %s WHERE position = 3", (bytes(32),))
        try:
            with pytest.raises(LogDiverged, match="no longer matches signed digest"):
                fresh.sign_digest()
        finally:
            conn.execute("UPDATE event_log SET leaf_hash = %s WHERE position = 3", (original,))
    assert seeded.integrity.verify().ok
