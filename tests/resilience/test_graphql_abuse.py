"""1,000 malformed, deeply nested and oversized GraphQL requests: no server error, ever.

Every request must be answered below 500, and the limits (depth 12, 4,000 tokens, 30 aliases,
the request body size) must answer with an error that names the limit. The requests are
generated from a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.resilience.support import report

SEED = 20260110
TOTAL = 1000

VALID = ("query Q($n: Int) { projects(first: $n) { edges { node { id name status } } "
         "pageInfo { hasNextPage endCursor } } }")
FIELDS = ["projects", "customers", "risks", "budgets", "project", "edges", "node", "id",
          "name", "status", "pageInfo", "serviceRequestQueue", "heatMap", "__typename",
          "__schema", "types", "fields", "type", "ofType", "auditLog"]
PUNCT = list("{}()[]:!$@.=|&,\"'#\\") + ["...", "fragment", "on", "query", "mutation",
                                         "subscription", "\n", " ", "\t"]


@pytest.fixture(scope="module")
def gql(container: Any) -> Iterator[Any]:
    # Strawberry logs every refused query with its traceback: a thousand of them are noise.
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)
    from fastapi.testclient import TestClient

    from service.auth import issue_token
    from service.main import create_app

    token = issue_token(container.settings, "fuzz", roles=["auditor", "analyst", "leadership"],
                        departments=["ops"])
    with TestClient(create_app(container=container), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
    logging.getLogger("strawberry.execution").setLevel(logging.NOTSET)


# -- generators: each returns (kind, request kwargs, expectation on the error text) ------------

Case = tuple[str, dict[str, Any], str | None]


def _post(query: Any, variables: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    body.update(extra)
    return {"json": body}


def malformed(rng: random.Random) -> Case:
    choice = rng.randrange(6)
    if choice == 0:  # token soup
        text = "".join(rng.choice(PUNCT + FIELDS) + rng.choice(["", " "])
                       for _ in range(rng.randint(1, 60)))
        return "malformed: token soup", _post(text), None
    if choice == 1:  # a valid query cut short
        return "malformed: truncated", _post(VALID[: rng.randint(1, len(VALID) - 1)]), None
    if choice == 2:  # unbalanced braces
        return ("malformed: unbalanced",
                _post("{" * rng.randint(1, 50) + "projects" + "}" * rng.randint(0, 3)), None)
    if choice == 3:  # unterminated string / bad characters
        return ("malformed: bad literal",
                _post('{ project(id: "' + "".join(rng.choices(string.printable, k=40)) + ") }"),
                None)
    if choice == 4:  # random unicode noise
        text = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 200)))
        return "malformed: unicode noise", _post(text), None
    # unknown fields and wrong argument types
    field = rng.choice(["nope", "projects(first: \"x\")", "project", "risks(first: -1)",
                        "customers(filter: 3)", "node(id: 1)", "projects { nope }",
                        "projects(first: 99999999999999999999)"])
    return "malformed: invalid selection", _post("{ " + field + " }"), None


def deep(rng: random.Random) -> Case:
    choice = rng.randrange(5)
    depth = rng.choice([13, 20, 50, 100, 300, 1000, 3000, 10000])
    if choice == 0:  # nested selections of real fields: the depth limiter must refuse
        inner = "id"
        for _ in range(min(depth, 1500)):
            inner = f"edges {{ node {{ {inner} }} }}"
        return "deep: selections", _post("{ projects { " + inner + " } }"), "depth|deep"
    if choice == 1:  # nested selections of any name
        return "deep: anonymous nesting", _post("{a" * depth + "}" * depth), None
    if choice == 2:  # a deeply nested list literal in an argument
        return ("deep: list literal",
                _post("{ projects(first: " + "[" * depth + "1" + "]" * depth + ") { edges "
                      "{ node { id } } } }"), None)
    if choice == 3:  # a deeply nested object literal in an argument
        return ("deep: object literal",
                _post("{ projects(filter: " + "{status: " * depth + "null" + "}" * depth
                      + ") { edges { node { id } } } }"), None)
    # deeply nested JSON variables (encoded by hand: json.dumps itself would recurse)
    text = ('{"query": ' + json.dumps(VALID) + ', "variables": {"n": ' + "[" * depth + "1"
            + "]" * depth + "}}")
    return ("deep: JSON variables",
            {"content": text.encode(), "headers": {"Content-Type": "application/json"}}, None)


def oversized(rng: random.Random) -> Case:
    choice = rng.randrange(6)
    if choice == 0:  # more than 4,000 tokens
        n = rng.choice([4100, 6000])
        return ("oversized: tokens", _post("{ " + " ".join(["__typename"] * n) + " }"),
                "token")
    if choice == 1:  # more than 30 aliases
        n = rng.choice([31, 100, 400])
        body = " ".join(f"a{i}: __typename" for i in range(n))
        return "oversized: aliases", _post("{ " + body + " }"), "alias"
    if choice == 2:  # a long string literal (under the body limit)
        n = rng.choice([10_000, 100_000, 900_000])
        return ("oversized: string literal",
                _post('{ project(id: "' + "x" * n + '") { id } }'), None)
    if choice == 3:  # a body over the size limit
        n = rng.choice([1_100_000, 3_000_000])
        return ("oversized: body", _post('{ project(id: "' + "x" * n + '") { id } }'),
                "exceeds|large")
    if choice == 4:  # many variables
        n = rng.choice([1000, 10_000])
        variables = {f"v{i}": i for i in range(n)}
        # unused variables are allowed (the spec ignores them): only "no server error" counts
        return "oversized: variables", _post(VALID, variables), "any"
    n = rng.choice([10_000, 100_000])  # a very long name
    return "oversized: long name", _post("{ " + "a" * n + " }"), None


def transport(rng: random.Random) -> Case:
    choice = rng.randrange(12)
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("transport: not JSON", {"content": b"{not json", "headers": {
            "Content-Type": "application/json"}}),
        ("transport: JSON scalar", {"content": rng.choice([b"1", b'"q"', b"null", b"true"]),
                                    "headers": {"Content-Type": "application/json"}}),
        ("transport: batch", {"json": [{"query": "{ __typename }"}] * rng.randint(1, 5)}),
        ("transport: batch of junk", {"json": [1, "x", None]}),
        ("transport: query not a string", {"json": {"query": rng.choice([1, [], {}, True])}}),
        ("transport: variables not an object", {"json": {"query": VALID,
                                                         "variables": rng.choice([1, "x", []])}}),
        ("transport: no query", {"json": {"variables": {}}}),
        ("transport: operationName junk", {"json": {"query": VALID,
                                                    "operationName": rng.choice([1, [], "Z"])}}),
        ("transport: wrong content type", {"content": b"{ __typename }",
                                           "headers": {"Content-Type": "text/plain"}}),
        ("transport: invalid UTF-8", {"content": b'{"query": "\xff\xfe"}',
                                      "headers": {"Content-Type": "application/json"}}),
        ("transport: empty body", {"content": b"", "headers": {
            "Content-Type": "application/json"}}),
        ("transport: deep JSON body", {"content": b"[" * 100_000 + b"]" * 100_000,
                                       "headers": {"Content-Type": "application/json"}}),
    ]
    kind, kwargs = kinds[choice]
    return kind, kwargs, None


GENERATORS: list[Callable[[random.Random], Case]] = [malformed, deep, oversized, transport]


def cases() -> list[Case]:
    rng = random.Random(SEED)
    out = [GENERATORS[i % len(GENERATORS)](rng) for i in range(TOTAL)]
    # one GET with a query string too, and a mutation on a query-only schema
    out[0] = ("transport: GET", {"method": "GET", "params": {"query": "{ __typename }"}}, None)
    out[1] = ("malformed: mutation", _post("mutation { x }"), None)
    return out


def error_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict) and body.get("errors"):
        return " ".join(str(e.get("message", "")) for e in body["errors"])
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)


@pytest.mark.slow
def test_a_thousand_abusive_graphql_requests_get_no_server_error(gql: Any) -> None:
    started = time.monotonic()
    statuses: Counter[int] = Counter()
    by_kind: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    failures: list[str] = []
    for kind, kwargs, expect in cases():
        method = kwargs.pop("method", "POST")
        t0 = time.monotonic()
        response = gql.request(method, "/graphql", **kwargs)
        seconds[kind] += time.monotonic() - t0
        statuses[response.status_code] += 1
        by_kind[kind.split(":")[0]] += 1
        text = error_text(response)
        if response.status_code >= 500:
            failures.append(f"{kind}: {response.status_code} {text[:200]}")
            continue
        if kind.startswith("transport: GET") or expect == "any":
            continue
        if response.status_code == 200:
            body = response.json()
            if not body.get("errors"):
                failures.append(f"{kind}: 200 without errors")
                continue
        if expect and not any(word in text.lower() for word in expect.split("|")):
            failures.append(f"{kind}: error does not name the limit ({expect}): {text[:200]}")
    elapsed = time.monotonic() - started
    report("graphql abuse", requests=TOTAL, server_errors=sum(
        n for s, n in statuses.items() if s >= 500), statuses=dict(sorted(statuses.items())),
        kinds=dict(by_kind), seconds=round(elapsed, 1),
        slowest={k: round(v, 2) for k, v in seconds.most_common(5)})
    assert not failures, "\n".join(failures[:40])


def test_the_limits_answer_with_clear_errors(gql: Any) -> None:
    """One of each limit, with the message a client developer would read."""
    deep_q = "id"
    for _ in range(13):
        deep_q = f"edges {{ node {{ {deep_q} }} }}"
    r = gql.post("/graphql", json={"query": "{ projects { " + deep_q + " } }"})
    assert r.status_code < 500 and "depth" in error_text(r).lower()
    r = gql.post("/graphql", json={"query": "{ " + " ".join(["__typename"] * 4100) + " }"})
    assert r.status_code < 500 and "token" in error_text(r).lower()
    r = gql.post("/graphql", json={"query": "{ " + " ".join(
        f"a{i}: __typename" for i in range(31)) + " }"})
    assert r.status_code < 500 and "alias" in error_text(r).lower()
    r = gql.post("/graphql", content=json.dumps({"query": "{ __typename }",
                                                 "pad": "x" * 3_000_000}),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/problem+json")
