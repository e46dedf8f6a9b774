"""The GraphQL answer's JSON (``OpsGraphQLRouter.encode_json``): orjson, and Strawberry's own
encoder for what orjson cannot write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.graphql.schema import graphql_router


@pytest.mark.parametrize("data", [
    {"data": {"project": {"name": "Zhōngwén 中文 \u2028", "score": 12, "ok": True,
                          "lead": None, "risks": [{"level": "high"}]}}},
    {"data": {"big": 2 ** 70}},  # past 64 bits: orjson refuses it
    {"data": {1: "a key that is not a string"}},
])
def test_the_answer_is_text_with_the_values_strawberry_would_write(data: Any) -> None:
    answer = graphql_router().encode_json(data)
    assert isinstance(answer, str)  # a text WebSocket frame, not a binary one
    assert json.loads(answer) == json.loads(json.dumps(data))
