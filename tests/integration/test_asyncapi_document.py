"""The committed AsyncAPI document is the generated one, and published events match it."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from service.streams.asyncapi import document_text
from service.streams.cloudevents import catalogue

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "asyncapi.yaml"


def test_committed_asyncapi_matches_the_event_classes() -> None:
    assert COMMITTED.read_text() == document_text(), (
        "run 'opsledger asyncapi' (./dev asyncapi) and commit openapi/asyncapi.yaml")


def test_every_published_type_has_a_message_channel_and_operation() -> None:
    doc = yaml.safe_load(COMMITTED.read_text())
    assert doc["asyncapi"] == "3.0.0"
    messages = doc["components"]["messages"]
    names = {m["name"] for m in messages.values()}
    assert names == {t.ce_type for t in catalogue().types}
    for t in catalogue().types:
        assert doc["channels"][t.key]["address"] == f"opsledger.{t.key}"
        assert doc["operations"][f"publish.{t.key}"]["action"] == "send"
    assert set(doc["channels"]["events"]["messages"]) == set(messages)
    assert "opsledger.unique_key.claimed.v1" not in names
    assert not any(n.startswith("opsledger.webhook.") for n in names)


# -- a small JSON Schema validator for the keywords the document uses ---------------------------

TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool,
                         "null": type(None)}
FORMATS = {"uuid": UUID, "date": date.fromisoformat,
           "date-time": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
           "uri-reference": str}
KNOWN = {"type", "properties", "required", "additionalProperties", "items", "anyOf", "const",
         "enum", "minimum", "format", "pattern", "description"}


def errors(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    unknown = set(schema) - KNOWN
    assert not unknown, f"extend the test validator for {unknown}"
    out: list[str] = []
    kind = schema.get("type")
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: {value!r} is not an integer"]
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{path}: {value!r} is not a number"]
    elif kind is not None and not isinstance(value, TYPES[kind]):
        return [f"{path}: {value!r} is not of type {kind}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"{path}: {value!r} < {schema['minimum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "format" in schema and isinstance(value, str):
        try:
            FORMATS[schema["format"]](value)
        except ValueError:
            out.append(f"{path}: {value!r} is not a {schema['format']}")
    if "anyOf" in schema and all(errors(s, value, path) for s in schema["anyOf"]):
        out.append(f"{path}: {value!r} matches none of anyOf")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}: '{k}' is required" for k in schema.get("required", [])
                if k not in value]
        for key, item in value.items():
            if key in props:
                out += errors(props[key], item, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: '{key}' is not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(schema["additionalProperties"], item, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(schema["items"], item, f"{path}[{i}]")
    return out


def test_the_validator_catches_a_wrong_payload() -> None:
    doc = yaml.safe_load(COMMITTED.read_text())
    schema = doc["components"]["messages"]["project.approved.v1"]["payload"]
    assert errors(schema, {"type": "opsledger.project.approved.v1", "data": {"by": 1}})


# -- published events validate against their messages ------------------------------------------

PROJECT = {
    "department": "ops", "name": "Documented", "background": "b", "objectives": "o",
    "scope": "s", "requested_budget": "120000.00", "expected_revenue": "300000.50",
    "start_date": "2026-01-05", "end_date": "2026-12-20",
}


@pytest.fixture(scope="module")
def activity(client: Any, token: Any) -> None:
    """A project from application to closure, and customers with personal data."""
    ann, mark, lena = token("ann", "member"), token("mark", "dept_manager"), token(
        "lena", "leadership")
    leo, cathy = token("leo", "member"), token("cathy", "customer_service")

    def post(path: str, who: dict[str, str], body: dict[str, Any] | None = None) -> Any:
        r = client.post(path, json=body or {}, headers=who)
        assert r.status_code in (200, 201), r.text
        return r.json()

    pid = post("/projects", ann, PROJECT)["id"]
    base = f"/projects/{pid}"
    post(f"{base}/edit-application", ann, {"scope": "Wider"})
    post(f"{base}/submit", ann)
    post(f"{base}/pass-preliminary-review", mark)
    post(f"{base}/approve", lena)
    post(f"{base}/appoint-lead", mark, {"user_id": "leo", "name": "Leo"})
    post(f"{base}/add-team-member", mark, {"user_id": "tom", "name": "Tom", "role": "dev"})
    post(f"{base}/submit-plan", leo, {
        "milestones": [{"name": "Pilot", "due_date": "2026-06-30", "budget": "50000.00"}],
        "tasks": [{"name": "Form", "owner": "tom", "start_date": "2026-02-01",
                   "due_date": "2026-04-30", "milestone": "Pilot"}],
        "resources": [{"milestone": "Pilot", "people": ["tom"], "amount": "50000.00"}]})
    post(f"{base}/approve-plan", mark)
    state = client.get(base, headers=leo).json()
    post(f"{base}/update-task-status", leo, {"task_id": state["tasks"][0]["id"],
                                             "status": "done"})
    post(f"{base}/complete-milestone", leo, {"milestone_id": state["milestones"][0]["id"],
                                             "completed_on": "2026-06-28"})
    post(f"{base}/report-progress", leo, {"period": "2026-06", "percent_complete": 100,
                                          "work_done": "Pilot live",
                                          "next_period_plan": "Roll out"})
    post(f"{base}/evaluate", mark, {"period": "2026-H1", "schedule_note": "on time",
                                    "quality_note": "good", "quality_rating": 4,
                                    "actual_cost": "48000.00", "verdict": "on_track"})
    post(f"{base}/request-acceptance", leo, {"report": "All objectives met"})
    post(f"{base}/review-acceptance", lena, {"objectives_met": True,
                                             "deliverable_quality": True, "cost_control": True,
                                             "documentation_complete": True})
    post(f"{base}/close", leo, {"summary": "Delivered", "lessons_learned": "Pilot early"})
    person = post("/customers", cathy, {"department": "ops", "kind": "individual",
                                        "name": "Li Na"})["id"]
    post(f"/customers/{person}/add-contact", cathy, {"name": "Li Na", "phone": "13800138000",
                                                     "email": "li.na@example.com"})
    post("/customers", cathy, {"department": "ops", "kind": "company", "name": "Acme",
                               "credit_code": f"91310000{uuid.uuid4().hex[:10].upper()}"})


def test_published_events_validate_against_their_asyncapi_messages(
        client: Any, token: Any, activity: None) -> None:
    doc = yaml.safe_load(COMMITTED.read_text())
    by_type = {m["name"]: m["payload"] for m in doc["components"]["messages"].values()}
    reader = token("iris", "analyst")
    events = client.get("/events", params={"limit": 1000}, headers=reader).json()["events"]
    assert len({e["type"] for e in events}) >= 18
    assert "opsledger.project.progress_reported.v2" in {e["type"] for e in events}
    for event in events:
        problems = errors(by_type[event["type"]], event)
        assert not problems, (event["type"], problems)
    personal = [e for e in events if "personal" in e["data"]]
    assert personal and all(e["data"]["personal"] == {"redacted": True} for e in personal)
