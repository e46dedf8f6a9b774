"""Event streams for integrations: the catch-up feed, Server-Sent Events, GraphQL subscriptions.

SSE and graphql-ws run against a real uvicorn on a free port (the TestClient buffers whole
responses), with every read bounded by a timeout.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect as ws_connect

from service.streams.cloudevents import catalogue
from tests.conftest import make_settings

PROJECT = {
    "department": "ops", "name": "Stream me", "background": "b", "objectives": "o",
    "scope": "s", "requested_budget": "1000.00", "expected_revenue": "2000.00",
    "start_date": "2026-01-05", "end_date": "2026-12-20",
}


@pytest.fixture(scope="module")
def container(module_database: Any) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(stream_heartbeat_seconds=0.3, stream_poll_interval=0.2),
                  module_database, start_projector=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {"ann": token("ann", "member"), "mark": token("mark", "dept_manager"),
            "cathy": token("cathy", "customer_service"),
            "iris": token("iris", "analyst"), "audrey": token("audrey", "auditor"),
            "lena": token("lena", "leadership")}


@pytest.fixture(scope="module")
def live(container: Any) -> Iterator[str]:
    """The app on a real uvicorn at 127.0.0.1:<free port>."""
    from service.main import create_app

    config = uvicorn.Config(create_app(container=container), host="127.0.0.1", port=0,
                            log_level="warning", ws="websockets-sansio")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def propose(client: Any, who: dict[str, str], n: int = 1, submit: bool = False) -> list[str]:
    ids = []
    for i in range(n):
        r = client.post("/projects", json={**PROJECT, "name": f"Stream {i}"}, headers=who)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        if submit:
            assert client.post(f"/projects/{ids[-1]}/submit", json={},
                               headers=who).status_code == 200
    return ids


def published_positions(container: Any) -> list[int]:
    rows = container.store.execute(
        "SELECT position FROM event_log WHERE record_type = ANY(%s) ORDER BY position",
        (list(catalogue().record_types),))
    return [r["position"] for r in rows]


def read_all(client: Any, who: dict[str, str], limit: int, **params: Any) -> list[dict]:
    events: list[dict] = []
    after = 0
    for _ in range(1000):
        r = client.get("/events", params={"after": after, "limit": limit, **params}, headers=who)
        assert r.status_code == 200, r.text
        page = r.json()
        events += page["events"]
        assert page["next_after"] >= after
        after = page["next_after"]
        if not page["has_more"]:
            return events
    raise AssertionError("the feed never reached its head")


# -- the catch-up feed -----------------------------------------------------------------------

def test_reading_the_feed_from_zero_in_pages_returns_every_published_event_once_in_order(
        client: Any, people: dict, container: Any) -> None:
    propose(client, people["ann"], 4, submit=True)
    events = read_all(client, people["iris"], limit=3)
    positions = [e["position"] for e in events]
    assert positions == sorted(set(positions))
    assert positions == published_positions(container)
    first = events[0]
    assert first["specversion"] == "1.0" and first["source"] == "/opsledger"
    assert first["type"] == "opsledger.project.proposed.v1"
    assert first["recordtype"] == "project" and first["recordversion"] == 1
    assert first["subject"] and first["id"] and first["time"].endswith("Z")
    assert first["actorid"] == "ann" and first["department"] == "ops"
    assert first["data"]["name"] == "Stream 0" and first["data"]["requested_budget"] == "1000.00"
    assert "comment" not in json.dumps(first)


def test_the_same_page_is_returned_again_with_the_same_event_ids(
        client: Any, people: dict) -> None:
    one = client.get("/events", params={"after": 0, "limit": 5}, headers=people["iris"]).json()
    two = client.get("/events", params={"after": 0, "limit": 5}, headers=people["iris"]).json()
    assert [e["id"] for e in one["events"]] == [e["id"] for e in two["events"]]
    assert one["events"] == two["events"]


def test_the_feed_filters_by_record_type_event_type_and_record(
        client: Any, people: dict) -> None:
    pid = propose(client, people["ann"], 1, submit=True)[0]
    iris = people["iris"]
    submitted = read_all(client, iris, 2, type="project.submitted")
    assert submitted and {e["type"] for e in submitted} == {"opsledger.project.submitted.v1"}
    full_name = read_all(client, iris, 50, type="opsledger.project.submitted.v1")
    assert full_name == submitted
    mine = read_all(client, iris, 50, record_id=pid)
    assert [e["type"] for e in mine] == ["opsledger.project.proposed.v1",
                                         "opsledger.project.submitted.v1"]
    assert {e["recordtype"] for e in read_all(client, iris, 50, record_type="project")} == {
        "project"}
    none = client.get("/events", params={"record_type": "risk"}, headers=iris).json()
    assert none["events"] == [] and none["next_after"] == none["head"]


def test_a_filter_naming_an_unknown_or_old_type_is_refused(client: Any, people: dict) -> None:
    r = client.get("/events", params={"type": "project.teleported"}, headers=people["iris"])
    assert r.status_code == 422 and r.json()["rule"] == "unknown_event_type"
    r = client.get("/events", params={"type": "opsledger.project.progress_reported.v1"},
                   headers=people["iris"])
    assert r.status_code == 422 and "v2" in r.json()["detail"]


def test_only_analysts_auditors_and_leadership_read_the_streams(
        client: Any, people: dict) -> None:
    assert client.get("/events").status_code == 401
    r = client.get("/events", headers=people["ann"])
    assert r.status_code == 403 and r.json()["rule"] == "stream_reader_role"
    for who in ("iris", "audrey", "lena"):
        assert client.get("/events", headers=people[who]).status_code == 200


def test_internal_events_are_not_published_and_personal_data_never_is(
        client: Any, people: dict, container: Any) -> None:
    cathy = people["cathy"]
    company = client.post("/customers", json={
        "department": "ops", "kind": "company", "name": "Acme Trading",
        "credit_code": f"91310000{uuid.uuid4().hex[:10].upper()}"}, headers=cathy)
    assert company.status_code == 201, company.text
    person = client.post("/customers", json={
        "department": "ops", "kind": "individual", "name": "Zhang Wei"}, headers=cathy)
    assert person.status_code == 201, person.text
    claims = container.store.execute(
        "SELECT count(*) AS n FROM event_log WHERE record_type = 'unique_key'")
    assert claims[0]["n"] >= 1
    events = read_all(client, people["audrey"], 100, record_type="customer")
    assert all(e["recordtype"] != "unique_key" for e in events)
    registered = [e for e in events if e["subject"] == person.json()["id"]]
    assert registered[0]["data"]["personal"] == {"redacted": True}
    assert "Zhang Wei" not in json.dumps(events)


# -- Server-Sent Events ----------------------------------------------------------------------

def sse(url: str, headers: dict[str, str], want: int, *, timeout: float = 10,
        on_open: Callable[[], None] | None = None) -> tuple[list[dict], int]:
    """Reads ``want`` SSE messages (bounded); returns (events, heartbeats seen)."""
    events: list[dict] = []
    beats = 0
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, headers=headers, timeout=5) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        if on_open is not None:
            on_open()
        fields: dict[str, str] = {}
        for line in r.iter_lines():
            assert time.monotonic() < deadline, f"only {len(events)} of {want} events arrived"
            if line.startswith(": heartbeat"):
                beats += 1
            elif line == "" and "data" in fields:
                event = json.loads(fields["data"])
                assert fields["id"] == str(event["position"])
                events.append(event)
                fields = {}
                if len(events) >= want:
                    break
            elif line and not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
    return events, beats


def test_sse_resumes_after_last_event_id_without_loss_or_duplicates(
        client: Any, people: dict, live: str) -> None:
    iris = people["iris"]
    start = client.get("/events", params={"limit": 0}, headers=iris).json()["head"]
    url = f"http://{live}/events/stream?after={start}&record_type=project"
    propose(client, people["ann"], 3)
    first, _ = sse(url, iris, 2)  # then the client drops the connection
    propose(client, people["ann"], 3)
    rest, _ = sse(url, {**iris, "Last-Event-ID": str(first[-1]["position"])}, 4)
    got = [e["position"] for e in first + rest]
    assert len(got) == len(set(got)) == 6
    assert got == sorted(got)
    expected = [e["position"] for e in read_all(client, iris, 100, record_type="project")
                if e["position"] > start]
    assert got == expected


def test_sse_delivers_new_events_live_and_heartbeats_when_quiet(
        client: Any, people: dict, live: str) -> None:
    iris = people["iris"]
    head = client.get("/events", params={"limit": 0}, headers=iris).json()["head"]
    url = f"http://{live}/events/stream?after={head}&type=project.submitted"
    made: list[str] = []

    def run() -> None:
        time.sleep(0.8)  # longer than the heartbeat interval (0.3 s)
        made.extend(propose(client, people["ann"], 1, submit=True))

    writer = threading.Thread(target=run, daemon=True)
    events, beats = sse(url, iris, 1, on_open=writer.start)
    writer.join(timeout=10)  # the event may arrive before the command's answer
    assert beats >= 1
    assert events[0]["type"] == "opsledger.project.submitted.v1"
    assert events[0]["subject"] == made[0]


def test_sse_ends_when_its_token_expires(client: Any, container: Any, people: dict,
                                         live: str) -> None:
    from service.auth import issue_token

    head = client.get("/events", params={"limit": 0}, headers=people["iris"]).json()["head"]
    short = {"Authorization": "Bearer " + issue_token(container.settings, "ivy",
                                                      roles=["analyst"], ttl_seconds=2)}
    started = time.monotonic()
    with httpx.stream("GET", f"http://{live}/events/stream?after={head}", headers=short,
                      timeout=10) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())  # ends only if the server ends the stream
    took = time.monotonic() - started
    assert "event: token-expired" in lines, lines
    assert 0.9 < took < 6, took  # exp is 1–2 s away (whole seconds); heartbeats every 0.3 s
    assert lines.index("event: token-expired") == len(lines) - 3  # the stream's last message


def test_sse_refuses_a_malformed_last_event_id(client: Any, people: dict) -> None:
    r = client.get("/events/stream", headers={**people["iris"], "Last-Event-ID": "abc"})
    assert r.status_code == 422 and r.json()["rule"] == "last_event_id"


# -- GraphQL subscriptions (graphql-transport-ws) --------------------------------------------

def received(ws: Any, timeout: float) -> dict:
    """The next graphql-transport-ws message: a text frame, as the protocol (and browsers'
    clients, which would get a Blob from a binary one) has it."""
    frame = ws.recv(timeout=timeout)
    assert isinstance(frame, str), "a binary frame"
    return json.loads(frame)


def subscribe(live: str, bearer: str, query: str, variables: dict[str, Any], want: int,
              on_ready: Callable[[], None], timeout: float = 10) -> list[dict]:
    with ws_connect(f"ws://{live}/graphql", subprotocols=["graphql-transport-ws"],
                    open_timeout=5) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": bearer}}))
        assert received(ws, 5)["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe",
                            "payload": {"query": query, "variables": variables}}))
        on_ready()
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(got) < want:
            message = received(ws, max(0.1, deadline - time.monotonic()))
            if message["type"] == "ping":
                ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            got.append(message["payload"]["data"])
        ws.send(json.dumps({"id": "1", "type": "complete"}))
        return got


def test_graphql_subscription_streams_events_by_filter(
        client: Any, people: dict, live: str) -> None:
    query = """subscription($types: [String!]) {
      events(filter: {types: $types}) { id type subject position recordType data }
    }"""
    made: list[str] = []
    got = subscribe(live, people["iris"]["Authorization"], query,
                    {"types": ["project.submitted"]}, 2,
                    lambda: made.extend(propose(client, people["ann"], 2, submit=True)))
    events = [g["events"] for g in got]
    assert [e["subject"] for e in events] == made
    assert {e["type"] for e in events} == {"opsledger.project.submitted.v1"}
    assert events[0]["position"] < events[1]["position"]


def test_graphql_record_changed_follows_one_record(
        client: Any, people: dict, live: str) -> None:
    ann = people["ann"]
    pid = propose(client, ann, 1)[0]
    query = """subscription($id: ID!, $after: Int) {
      recordChanged(id: $id, after: $after) { type recordVersion subject data }
    }"""

    def change() -> None:
        propose(client, ann, 1)  # another record: not seen
        client.post(f"/projects/{pid}/edit-application", json={"name": "Renamed"}, headers=ann)

    got = subscribe(live, people["audrey"]["Authorization"], query, {"id": pid, "after": 0},
                    2, change)
    changes = [g["recordChanged"] for g in got]
    assert [c["recordVersion"] for c in changes] == [1, 2]
    assert {c["subject"] for c in changes} == {pid}
    assert changes[1]["data"]["changes"] == {"name": "Renamed"}


def test_graphql_subscriptions_need_a_stream_reader(people: dict, live: str) -> None:
    with ws_connect(f"ws://{live}/graphql", subprotocols=["graphql-transport-ws"],
                    open_timeout=5) as ws:
        ws.send(json.dumps({"type": "connection_init",
                            "payload": {"Authorization": people["ann"]["Authorization"]}}))
        assert received(ws, 5)["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe",
                            "payload": {"query": "subscription { events { id } }"}}))
        message = received(ws, 5)
    assert message["type"] in ("next", "error")
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


def test_graphql_subscription_ends_when_its_token_expires(container: Any, live: str) -> None:
    from service.auth import issue_token

    short = "Bearer " + issue_token(container.settings, "ivy", roles=["analyst"], ttl_seconds=2)
    started = time.monotonic()
    with ws_connect(f"ws://{live}/graphql", subprotocols=["graphql-transport-ws"],
                    open_timeout=5) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": short}}))
        assert received(ws, 5)["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe",
                            "payload": {"query": "subscription { events { id } }"}}))
        while True:  # nothing is published meanwhile: only the expiry ends it
            message = received(ws, 8)
            if message["type"] == "ping":
                ws.send(json.dumps({"type": "pong"}))
                continue
            break
        took = time.monotonic() - started
        assert message["type"] in ("next", "error"), message
        errors = message["payload"]["errors"] if message["type"] == "next" \
            else message["payload"]
        assert errors[0]["extensions"]["code"] == "TOKEN_EXPIRED", message
        if message["type"] == "next":  # then the subscription is complete
            assert received(ws, 5)["type"] == "complete"
    assert 0.9 < took < 6, took  # exp is 1–2 s away (whole seconds); heartbeats every 0.3 s
