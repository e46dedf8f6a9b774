"""The committed OpenAPI document is the one the service serves."""

import json
from pathlib import Path

from service.main import create_app

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_served_document() -> None:
    served = json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"
    assert COMMITTED.read_text() == served, "run './dev openapi' and commit openapi/openapi.json"


def test_operation_ids_are_stable_and_unique() -> None:
    doc = create_app().openapi()
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert "projects-propose" in ids and "projects-approve" in ids and "projects-get" in ids
