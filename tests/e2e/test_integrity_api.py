"""Tamper evidence over HTTP: auditors (and leadership) get digests, proofs, verification and
the export bundle; everyone else gets 403 problem+json."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any
from uuid import UUID

import pytest

from service.merkle import root_from_inclusion, verify_consistency
from service.tamper import leaf_hash
from tests.e2e.test_project_lifecycle import PROJECT


@pytest.fixture(scope="module")
def auditor(token: Any) -> dict[str, str]:
    return token("audrey", "auditor")


@pytest.fixture(scope="module")
def seeded(client: Any, token: Any) -> list[int]:
    ann = token("ann", "member")
    positions = []
    for i in range(5):
        r = client.post("/projects", json={**PROJECT, "name": f"Portal {i}"}, headers=ann)
        assert r.status_code == 201, r.text
        positions.append(r.json()["position"])
    return positions


def test_only_auditors_and_leadership_read_tamper_evidence(client: Any, token: Any,
                                                          seeded: list[int]) -> None:
    for who in (token("ann", "member"), token("fin", "finance"), token("al", "analyst")):
        for method, path in (("GET", "/integrity/digests"), ("POST", "/integrity/digests"),
                             ("POST", "/integrity/verify"), ("GET", "/integrity/export"),
                             ("GET", "/integrity/proofs/inclusion?position=1")):
            r = client.request(method, path, headers=who)
            assert r.status_code == 403, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["rule"] == "integrity_readers_only"
    assert client.get("/integrity/digests").status_code == 401
    assert client.get("/integrity/digests", headers=token("lena", "leadership")).status_code \
        == 200


def test_an_auditor_requests_a_digest_and_proves_an_event_in_it(
        client: Any, auditor: dict[str, str], seeded: list[int]) -> None:
    r = client.post("/integrity/digests", headers=auditor)
    assert r.status_code == 201, r.text
    digest = r.json()
    assert digest["tree_size"] >= 5 and digest["last_position"] >= seeded[-1]
    listed = client.get("/integrity/digests", headers=auditor).json()
    assert listed["digests"][0]["id"] == digest["id"]
    assert listed["public_keys"][0]["key_id"] == digest["key_id"]

    proof = client.get(f"/integrity/proofs/inclusion?position={seeded[2]}",
                       headers=auditor).json()
    event = proof["event"]
    leaf = leaf_hash(seeded[2], UUID(event["record_id"]), event["version"], event["topic"],
                     event["state_text"].encode())
    assert leaf.hex() == proof["leaf_hash"]
    assert root_from_inclusion(proof["leaf_index"], proof["tree_size"], leaf,
                               [bytes.fromhex(h) for h in proof["audit_path"]]) \
        == bytes.fromhex(digest["root_hash"])


def test_consistency_between_two_digests(client: Any, auditor: dict[str, str], token: Any,
                                         seeded: list[int]) -> None:
    first = client.post("/integrity/digests", headers=auditor).json()
    client.post("/projects", json={**PROJECT, "name": "Later"}, headers=token("ann", "member"))
    second = client.post("/integrity/digests", headers=auditor).json()
    r = client.get(f"/integrity/proofs/consistency?first={first['tree_size']}"
                   f"&second={second['tree_size']}", headers=auditor)
    assert r.status_code == 200, r.text
    proof = r.json()
    assert verify_consistency(first["tree_size"], second["tree_size"],
                              bytes.fromhex(first["root_hash"]),
                              bytes.fromhex(second["root_hash"]),
                              [bytes.fromhex(h) for h in proof["path"]])


def test_proof_requests_that_cannot_be_answered_are_problems(client: Any,
                                                            auditor: dict[str, str],
                                                            seeded: list[int]) -> None:
    r = client.get("/integrity/proofs/inclusion?position=1&tree_size=999999", headers=auditor)
    assert r.status_code == 404 and r.json()["rule"] == "no_such_digest"
    r = client.get("/integrity/proofs/consistency?first=999999", headers=auditor)
    assert r.status_code == 422 and r.json()["rule"] == "proof_not_possible"


def test_verify_and_export_over_http(client: Any, auditor: dict[str, str],
                                     seeded: list[int]) -> None:
    report = client.post("/integrity/verify", headers=auditor).json()
    assert report["ok"] is True, report["summary"]
    r = client.get("/integrity/export", headers=auditor)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        lines = zf.read("events.jsonl").decode().splitlines()
    assert manifest["complete"] and manifest["tree_size"] == len(lines) >= 5


def test_graphql_serves_digests_and_proofs_to_auditors(client: Any, auditor: dict[str, str],
                                                       token: Any, seeded: list[int]) -> None:
    query = """query($pos: Int!) {
      integrityDigests(first: 1) { treeSize rootHash keyId signature }
      inclusionProof(position: $pos) { leafIndex treeSize auditPath digest { rootHash } }
      consistencyProof(first: 1) { first second path }
    }"""
    r = client.post("/graphql", json={"query": query, "variables": {"pos": seeded[0]}},
                    headers=auditor)
    data = r.json()
    assert "errors" not in data, data
    assert data["data"]["inclusionProof"]["digest"]["rootHash"] == \
        data["data"]["integrityDigests"][0]["rootHash"]
    denied = client.post("/graphql", json={"query": query, "variables": {"pos": 1}},
                         headers=token("ann", "member")).json()
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
