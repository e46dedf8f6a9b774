"""An Idempotency-Key's request fingerprint is the same bytes however it is computed: orjson's
canonical JSON where it equals the standard library's, the library's elsewhere (keys stored
before keep matching their retries)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from domain.project import Project
from service.catalogue import CommandBody, commands_of
from service.rest.commands import request_hash

EVERY_ASCII = "".join(chr(i) for i in range(128))


def as_before(method: str, path: str, body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def body_model(name: str) -> type[CommandBody]:
    [spec] = [s for s in commands_of(Project) if s.name == name]
    return spec.body_model


@pytest.mark.parametrize("fields", [
    {"name": "Renamed", "comment": "typo"},
    {"name": "x", "comment": EVERY_ASCII},  # control characters, DEL
    {"name": "项目 Ω", "comment": "naïve — “quoted”"},  # not ASCII
    {"name": "emoji 🚀", "requested_budget": Decimal("1234.50")},
    {"start_date": "2026-01-05", "end_date": "2026-12-20", "scope": "a\\b\"c/d"},
    {},
])
def test_the_fingerprint_is_the_standard_librarys(fields: dict[str, Any]) -> None:
    body = body_model("edit_application").model_validate(fields)
    path = "/projects/2f1c2d3e-0000-4000-8000-000000000001/edit-application"
    assert request_hash("POST", path, body) == as_before("POST", path, body)


class Counted(CommandBody):
    count: int
    items: list[int] = []


@pytest.mark.parametrize("count", [0, -1, 2**63 - 1, 2**64, -(2**70), 10**40])
def test_integers_of_any_size(count: int) -> None:
    body = Counted(count=count, items=[count, 1])
    assert request_hash("POST", "/p", body) == as_before("POST", "/p", body)


@pytest.mark.parametrize("decisions", ["Go ahead", "继续 " + EVERY_ASCII])
def test_nested_bodies_and_dates_too(decisions: str) -> None:
    body = body_model("record_meeting").model_validate(
        {"date": "2026-03-02", "attendees": ["Ann", "Bob", "李娜"][: 2 + len(decisions) % 2],
         "decisions": decisions, "minutes": "m\tn", "comment": None})
    assert request_hash("POST", "/p", body) == as_before("POST", "/p", body)
    assert request_hash("POST", "/p", body) != request_hash("POST", "/q", body)
