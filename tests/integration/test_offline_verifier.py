"""The standalone verifier (tools/verify_bundle.py), run as an outside auditor would: a separate
Python process that cannot import opsledger, given a bundle exported from PostgreSQL."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.bundle import write_bundle
from service.digests import KeyRing, insert_digest, public_pem, sign_digest
from service.merkle import root
from service.tamper import leaf_hash
from tests.conftest import make_settings
from tests.integration.test_event_store import edit, propose

TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_bundle.py"


def run_tool(*args: Any) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode — no PYTHONPATH, no current directory: the project cannot be imported.
    return subprocess.run([sys.executable, "-I", str(TOOL), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def ledger(module_database: Any) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), module_database, start_projector=False)
    ids = [propose(c.ledger, name=f"p{i}").body["id"] for i in range(3)]
    c.integrity.sign_digest("periodic")
    for k in range(4):
        for pid in ids:
            edit(c.ledger, pid, f"{pid[:4]}-{k}")
        c.integrity.sign_digest("periodic")
    yield c
    c.close()


@pytest.fixture(scope="module")
def bundle(ledger: Any, tmp_path_factory: Any) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "bundle.zip"
    ledger.integrity.export(path)
    return path


@pytest.fixture(scope="module")
def key_file(ledger: Any, tmp_path_factory: Any) -> Path:
    path = tmp_path_factory.mktemp("key") / "operator.pem"
    path.write_text(public_pem(ledger.integrity.keys.public))
    return path


def rewrite(bundle: Path, target: Path, member: str, change: Callable[[str], str]) -> Path:
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = src.read(name).decode()
            dst.writestr(name, change(data) if name == member else data)
    return target


def jsonl(change: Callable[[list[dict[str, Any]]], None]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        docs = [json.loads(line) for line in text.splitlines() if line]
        change(docs)
        return "".join(json.dumps(d) + "\n" for d in docs)
    return apply


def test_an_exported_bundle_verifies_offline(bundle: Path, key_file: Path) -> None:
    result = run_tool(bundle, "--public-key", key_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: every signature, root and proof verifies" in result.stdout
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        proofs = json.loads(zf.read("proofs.json"))
    assert manifest["tree_size"] == 15 and manifest["complete"]
    assert len(proofs["consistency"]) == 4 and proofs["inclusion"]  # 3→6→9→12→15


def test_the_tool_hashes_leaves_exactly_like_the_writer() -> None:
    spec = importlib.util.spec_from_file_location("verify_bundle", TOOL)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = (42, UUID(int=99), 3, "domain.project:Project.Approved", b'{"by":"leo"}')
    assert tool.leaf_hash(*args) == leaf_hash(*args)


def test_an_edited_event_in_the_bundle_is_named(bundle: Path, key_file: Path,
                                                 tmp_path: Path) -> None:
    def edit_fifth(docs: list[dict[str, Any]]) -> None:
        docs[4]["event"]["state_text"] = docs[4]["event"]["state_text"].replace("ann", "eve")

    forged = rewrite(bundle, tmp_path / "b.zip", "events.jsonl", jsonl(edit_fifth))
    result = run_tool(forged, "--public-key", key_file)
    assert result.returncode == 1
    assert "TAMPERED: first bad position 5 (edited)" in result.stdout


def test_an_edit_with_a_matching_leaf_hash_is_caught_by_the_signed_roots(
        bundle: Path, key_file: Path, tmp_path: Path) -> None:
    def edit_and_rehash(docs: list[dict[str, Any]]) -> None:
        doc = docs[7]
        doc["event"]["state_text"] = doc["event"]["state_text"].replace("ann", "eve")
        e = doc["event"]
        doc["logged"]["leaf_hash"] = leaf_hash(doc["position"], UUID(e["record_id"]),
                                               e["version"], e["topic"],
                                               e["state_text"].encode()).hex()

    forged = rewrite(bundle, tmp_path / "b.zip", "events.jsonl", jsonl(edit_and_rehash))
    result = run_tool(forged, "--public-key", key_file)
    assert result.returncode == 1
    assert "digest_mismatch" in result.stdout
    assert "first bad position 7 or later" in result.stdout  # digest 6 holds, digest 9 not


@pytest.mark.parametrize("where", ["consistency", "inclusion"])
def test_a_forged_proof_in_the_bundle_is_refused(bundle: Path, key_file: Path, tmp_path: Path,
                                                 where: str) -> None:
    def forge(text: str) -> str:
        proofs = json.loads(text)
        path = proofs[where][1]["path"]
        path[0] = path[0][:-2] + ("00" if path[0][-2:] != "00" else "11")
        return json.dumps(proofs)

    result = run_tool(rewrite(bundle, tmp_path / "b.zip", "proofs.json", forge),
                      "--public-key", key_file)
    assert result.returncode == 1
    assert "bad_proof" in result.stdout


def test_a_padded_consistency_proof_is_refused(bundle: Path, key_file: Path,
                                               tmp_path: Path) -> None:
    def pad(text: str) -> str:
        proofs = json.loads(text)
        proofs["consistency"][0]["path"].append("00" * 32)
        return json.dumps(proofs)

    result = run_tool(rewrite(bundle, tmp_path / "b.zip", "proofs.json", pad),
                      "--public-key", key_file)
    assert result.returncode == 1 and "bad_proof" in result.stdout


def test_a_digest_with_a_changed_root_is_refused(bundle: Path, key_file: Path,
                                                 tmp_path: Path) -> None:
    def change_root(docs: list[dict[str, Any]]) -> None:
        docs[1]["root_hash"] = "ab" * 32

    forged = rewrite(bundle, tmp_path / "b.zip", "digests.jsonl", jsonl(change_root))
    result = run_tool(forged, "--public-key", key_file)
    assert result.returncode == 1
    assert "forged_digest" in result.stdout and "signature does not match" in result.stdout


def test_a_digest_signed_with_another_key_is_refused_when_the_key_is_pinned(
        ledger: Any, bundle: Path, key_file: Path, tmp_path: Path) -> None:
    mallory = KeyRing(Ed25519PrivateKey.generate())
    # Mallory rewrites event 2, recomputes everything and signs with her own key …
    fake = sign_digest(mallory, 15, 15, bytes(32), "forged")

    def replace_digests(text: str) -> str:
        return json.dumps(fake.to_json()) + "\n"

    forged = rewrite(bundle, tmp_path / "b1.zip", "digests.jsonl", replace_digests)
    forged = rewrite(forged, tmp_path / "b2.zip", "public_keys.json",
                     lambda _: json.dumps(mallory.public_keys()))
    result = run_tool(forged, "--public-key", key_file)
    assert result.returncode == 1
    assert "not trusted" in result.stdout
    # Unpinned, the tool at least prints whose key it trusted.
    unpinned = run_tool(forged)
    assert mallory.key_id in unpinned.stdout


def test_a_digest_claiming_more_events_than_the_bundle_holds_is_refused(
        ledger: Any, bundle: Path, key_file: Path, tmp_path: Path) -> None:
    def truncate(docs: list[dict[str, Any]]) -> None:
        del docs[-3:]

    forged = rewrite(bundle, tmp_path / "b.zip", "events.jsonl", jsonl(truncate))
    result = run_tool(forged, "--public-key", key_file)
    assert result.returncode == 1
    assert "unproven_digest" in result.stdout or "count" in result.stdout


def test_an_archive_of_older_events_verifies_through_a_consistency_proof(
        ledger: Any, key_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    result = ledger.integrity.export(path, before_position=8, reason="archive")
    assert result["tree_size"] == 7
    ok = run_tool(path, "--public-key", key_file)
    assert ok.returncode == 0, ok.stdout
    assert "the bundle holds the first 7 events" in ok.stdout

    def drop_archive_proof(text: str) -> str:
        proofs = json.loads(text)
        proofs["consistency"] = [p for p in proofs["consistency"] if p["first"] != 7]
        return json.dumps(proofs)

    forged = run_tool(rewrite(path, tmp_path / "b.zip", "proofs.json", drop_archive_proof),
                      "--public-key", key_file)
    assert forged.returncode == 1 and "unproven_digest" in forged.stdout


def test_proofs_from_the_service_verify_offline_and_forgeries_do_not(
        ledger: Any, key_file: Path, tmp_path: Path) -> None:
    inclusion = ledger.integrity.inclusion(5)
    consistency = ledger.integrity.consistency(6)
    good = tmp_path / "inclusion.json"
    good.write_text(json.dumps(inclusion))
    (tmp_path / "consistency.json").write_text(json.dumps(consistency))
    result = run_tool("--proof", good, "--proof", tmp_path / "consistency.json",
                      "--public-key", key_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "position 5 is leaf 4" in result.stdout

    forgeries = {
        "path": {**inclusion, "audit_path": inclusion["audit_path"][::-1]},
        "event": {**inclusion, "event": {**inclusion["event"], "version": 9}},
        "index": {**inclusion, "leaf_index": inclusion["leaf_index"] + 1},
        "digest": {**inclusion, "digest": {**inclusion["digest"], "tree_size": 14}},
        "consistency": {**consistency, "path": consistency["path"][1:]},
        "old root": {**consistency, "first_digest": None, "first_root": "00" * 32},
    }
    for name, doc in forgeries.items():
        path = tmp_path / f"forged-{name.replace(' ', '-')}.json"
        path.write_text(json.dumps(doc))
        result = run_tool("--proof", path, "--public-key", key_file)
        assert result.returncode == 1, (name, result.stdout)


def test_unreadable_input_exits_with_2(tmp_path: Path) -> None:
    (tmp_path / "not-a-bundle.zip").write_bytes(b"hello")
    assert run_tool(tmp_path / "not-a-bundle.zip").returncode == 2
    assert run_tool().returncode == 2


def test_tampering_in_the_database_shows_in_the_exported_bundle(
        ledger: Any, key_file: Path, tmp_path: Path) -> None:
    conninfo = ledger.database.conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        original = conn.execute("SELECT state FROM stored_events WHERE notification_id = 3"
                                ).fetchone()[0]
        conn.execute("UPDATE stored_events SET state = %s WHERE notification_id = 3",
                     (bytes(original).replace(b"ann", b"eve"),))
        try:
            path = tmp_path / "tampered.zip"
            ledger.integrity.export(path)
            result = run_tool(path, "--public-key", key_file, "--json")
            db_report = ledger.integrity.verify()
        finally:
            conn.execute("UPDATE stored_events SET state = %s WHERE notification_id = 3",
                         (original,))
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert (report["first_bad_position"], report["first_bad_kind"]) == (3, "edited")
    assert (db_report.first_bad_position, db_report.first_bad_kind) == (3, "edited")
    assert base64  # the bundle keeps exact bytes (state_text or state_b64)


def test_an_earlier_bundle_names_the_exact_start_of_a_history_rewritten_everywhere(
        ledger: Any, bundle: Path, key_file: Path, tmp_path: Path) -> None:
    """Rows, log index and digests all rewritten from position 11 on: the new bundle is
    self-consistent, but the auditor's earlier bundle still tells exactly where."""
    conninfo = ledger.database.conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        events = conn.execute("SELECT * FROM stored_events WHERE notification_id > 10"
                              " ORDER BY notification_id").fetchall()
        logs = conn.execute("SELECT * FROM event_log WHERE position > 10").fetchall()
        digests = conn.execute("SELECT * FROM merkle_digests WHERE tree_size > 9").fetchall()
        conn.execute("DELETE FROM stored_events WHERE notification_id > 10")
        conn.execute("DELETE FROM event_log WHERE position > 10")
        conn.execute("DELETE FROM merkle_digests WHERE tree_size > 9")
        for rid, version, topic, state, position in events:
            forged = bytes(state).replace(b"ann", b"eve")
            conn.execute("INSERT INTO stored_events VALUES (%s, %s, %s, %s, %s)",
                         (rid, version, topic, forged, position))
            conn.execute("INSERT INTO event_log (position, record_id, version, record_type,"
                         " event_type, occurred_at, leaf_hash) VALUES (%s, %s, %s, 'project',"
                         " 'ApplicationEdited', now(), %s)",
                         (position, rid, version, leaf_hash(position, rid, version, topic,
                                                            forged)))
        try:
            # With the later digests gone, the service itself signs the rewritten history.
            rewritten = tmp_path / "rewritten.zip"
            leaves = [bytes(r[0]) for r in conn.execute(
                "SELECT leaf_hash FROM event_log ORDER BY position").fetchall()]
            forged_digest = insert_digest(conn, sign_digest(ledger.integrity.keys, len(leaves),
                                                            15, root(leaves), "forged"))
            write_bundle(rewritten, conninfo, ledger.integrity.keys, forged_digest)
            alone = run_tool(rewritten, "--public-key", key_file)
            compared = run_tool(rewritten, "--public-key", key_file, "--previous", bundle,
                                "--json")
        finally:
            conn.execute("DELETE FROM stored_events WHERE notification_id > 10")
            conn.execute("DELETE FROM event_log WHERE position > 10")
            conn.execute("DELETE FROM merkle_digests WHERE id = %s", (forged_digest.id,))
            for row in events:
                conn.execute("INSERT INTO stored_events VALUES (%s, %s, %s, %s, %s)", row)
            for row in logs:
                conn.execute("INSERT INTO event_log VALUES (" + ", ".join(["%s"] * len(row))
                             + ")", row)
            for row in digests:
                conn.execute("INSERT INTO merkle_digests VALUES (" +
                             ", ".join(["%s"] * len(row)) + ")", row)
    assert alone.returncode == 0  # signed with the operator's key: only evidence kept outside
    report = json.loads(compared.stdout)
    assert compared.returncode == 1
    assert (report["first_bad_position"], report["first_bad_kind"], report["exact"]) == (
        11, "edited", True)
    assert ledger.integrity.verify().ok
