"""REST: tamper evidence — signed digests, proofs, verification and export bundles.

Readable by auditors and leadership only. Requesting a digest is allowed to the same roles: it
records no business fact, only attests what the log holds now, and an auditor needs a fresh
anchor before exporting or proving. Routes translate HTTP to ``service.integrity.Integrity``.
"""

# No `from __future__ import annotations` here: FastAPI reads the signatures.

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from domain.shared import Actor, NotPermitted, Role
from service.integrity import Integrity
from service.rest.commands import PROBLEMS, get_actor

READERS = (Role.AUDITOR, Role.LEADERSHIP)


def integrity_reader(request: Request, actor: Annotated[Actor, Depends(get_actor)]) -> Integrity:
    if not actor.has_role(*READERS):
        raise NotPermitted("tamper evidence is for auditors and leadership",
                           rule="integrity_readers_only")
    return request.app.state.container.integrity


IntegrityDep = Annotated[Integrity, Depends(integrity_reader)]


class Digest(BaseModel):
    """A signed digest (RFC 9162 "signed tree head")."""

    id: int | None
    tree_size: int = Field(description="How many events the tree covers.")
    last_position: int = Field(description="Global position of the last covered event.")
    root_hash: str = Field(description="Merkle root, hex.")
    timestamp: str = Field(description="When it was signed (UTC, part of the signed message).")
    key_id: str
    algorithm: str
    signature: str = Field(description="Ed25519 signature, base64, over the message described "
                                       "in the README ('Tamper evidence').")
    reason: str


class PublicKey(BaseModel):
    key_id: str
    algorithm: str
    public_key_pem: str


class DigestList(BaseModel):
    public_keys: list[PublicKey]
    digests: list[Digest]


class InclusionProof(BaseModel):
    kind: str
    position: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    event: dict[str, Any] | None = Field(description="The stored event: record id, version, "
                                                      "topic, exact state (text or base64).")
    audit_path: list[str]
    digest: Digest
    public_keys: list[PublicKey]


class ConsistencyProof(BaseModel):
    kind: str
    first: int
    second: int
    first_root: str
    second_root: str
    path: list[str]
    first_digest: Digest | None
    second_digest: Digest
    public_keys: list[PublicKey]


class Finding(BaseModel):
    kind: str
    position: int | None
    detail: str
    end_position: int | None = None
    witness: str = Field(description="What contradicts the rows: log_index, kept_bundle, "
                                     "digests.")


class DigestCheck(BaseModel):
    id: int | None
    tree_size: int
    last_position: int
    timestamp: str
    recomputed_matches: bool
    log_index_matches: bool
    problem: str | None


class VerifyReport(BaseModel):
    ok: bool
    summary: str
    first_bad_position: int | None
    first_bad_kind: str | None
    exact: bool = Field(description="False when only a digest range is known (the log index "
                                     "was rewritten too).")
    events: int
    logged: int
    tree_size: int
    root_hash: str
    uncovered_events: int
    findings: list[Finding]
    findings_total: int
    digests: list[DigestCheck]
    seconds: float
    events_per_second: float
    notes: list[str]


READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    k: v for k, v in PROBLEMS.items() if k in (401, 403, 503)}
PROOF_PROBLEMS: dict[int | str, dict[str, Any]] = {
    k: v for k, v in PROBLEMS.items() if k in (401, 403, 404, 409, 422, 503)}


def build_integrity_router() -> APIRouter:
    router = APIRouter(prefix="/integrity", tags=["integrity"])

    @router.get("/digests", operation_id="integrity-list-digests", response_model=DigestList,
                summary="Signed digests, newest first", responses=READ_PROBLEMS)
    def list_digests(integrity: IntegrityDep,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                     before_id: int | None = None) -> dict[str, Any]:
        return {"public_keys": integrity.keys.public_keys(),
                "digests": [d.to_json() for d in integrity.digests(limit=limit,
                                                                   before_id=before_id)]}

    @router.post("/digests", operation_id="integrity-sign-digest", response_model=Digest,
                 status_code=201, summary="Sign a digest of the log now",
                 responses=PROOF_PROBLEMS)
    def sign_digest(integrity: IntegrityDep) -> dict[str, Any]:
        return integrity.sign_digest("on_demand").to_json()

    @router.get("/proofs/inclusion", operation_id="integrity-inclusion-proof",
                response_model=InclusionProof, responses=PROOF_PROBLEMS,
                summary="Prove an event is in a signed digest's tree")
    def inclusion(integrity: IntegrityDep, position: Annotated[int, Query(ge=1)],
                  tree_size: Annotated[int | None, Query(ge=1, description=(
                      "A signed digest's tree size (default: the latest digest)."))] = None,
                  ) -> dict[str, Any]:
        return integrity.inclusion(position, tree_size)

    @router.get("/proofs/consistency", operation_id="integrity-consistency-proof",
                response_model=ConsistencyProof, responses=PROOF_PROBLEMS,
                summary="Prove an older tree is a prefix of a signed digest's tree")
    def consistency(integrity: IntegrityDep, first: Annotated[int, Query(ge=0)],
                    second: Annotated[int | None, Query(ge=1, description=(
                        "A signed digest's tree size (default: the latest digest)."))] = None,
                    ) -> dict[str, Any]:
        return integrity.consistency(first, second)

    @router.post("/verify", operation_id="integrity-verify", response_model=VerifyReport,
                 responses=READ_PROBLEMS,
                 summary="Recompute the log from the event rows and check every digest")
    def verify(integrity: IntegrityDep) -> dict[str, Any]:
        return integrity.verify().to_json()

    # The same report as a GET: it changes nothing, and the auditor console reads it this way.
    router.add_api_route("/verify", verify, methods=["GET"], operation_id="integrity-verify-get",
                         response_model=VerifyReport, responses=READ_PROBLEMS,
                         summary="Recompute the log and check every digest (same as POST)")

    @router.get("/export", operation_id="integrity-export", response_class=FileResponse,
                responses={200: {"content": {"application/zip": {}},
                                 "description": "The bundle (zip)"}, **PROOF_PROBLEMS},
                summary="Export a bundle an outside auditor verifies offline")
    def export(integrity: IntegrityDep) -> FileResponse:
        folder = Path(tempfile.mkdtemp(prefix="opsledger-export-"))
        path = folder / "bundle.zip"
        result = integrity.export(path)
        name = f"opsledger-bundle-{result['tree_size']}.zip"

        def cleanup() -> None:
            path.unlink(missing_ok=True)
            folder.rmdir()

        return FileResponse(path, media_type="application/zip", filename=name,
                            background=BackgroundTask(cleanup))

    return router
