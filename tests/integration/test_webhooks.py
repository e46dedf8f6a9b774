"""Webhooks: registered by an audited command, deliveries signed, retried, dead-lettered, replayed.

The receivers are real HTTP servers on 127.0.0.1 (free ports) answering as each test scripts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from service.streams.webhooks import RetryPolicy, signature, verify
from tests.conftest import make_settings

PROJECT = {
    "department": "ops", "name": "Hooked", "background": "b", "objectives": "o", "scope": "s",
    "requested_budget": "1000.00", "expected_revenue": "2000.00",
    "start_date": "2026-01-05", "end_date": "2026-12-20",
}


@pytest.fixture(scope="module")
def container(module_database: Any) -> Iterator[Any]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(webhook_retry_base_seconds=0.05, webhook_max_attempts=4,
                                webhook_timeout_seconds=2, stream_poll_interval=0.1),
                  module_database, start_projector=True)
    yield c
    c.close()


class Receiver:
    """An HTTP endpoint that fails the first ``failures`` requests, then accepts."""

    def __init__(self, failures: int):
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = 503 if receiver.failures > 0 else 204
                    receiver.failures -= 1
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()},
                                              body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def accepted(self) -> list[tuple[dict[str, str], bytes, int]]:
        with self.lock:
            return [r for r in self.requests if r[2] == 204]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[[int], Receiver]]:
    made: list[Receiver] = []

    def make(failures: int) -> Receiver:
        made.append(Receiver(failures))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def people(token: Any) -> dict[str, dict[str, str]]:
    return {"lena": token("lena", "leadership"), "ann": token("ann", "member"),
            "audrey": token("audrey", "auditor"), "iris": token("iris", "analyst")}


def wait_until(condition: Callable[[], Any], timeout: float = 10, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def register(client: Any, who: dict[str, str], url: str, **filters: Any) -> str:
    r = client.post("/webhooks", json={"name": "ERP", "url": url, **filters,
                                       "comment": "finance system"}, headers=who)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def deliveries(client: Any, who: dict[str, str], hook: str, **params: Any) -> list[dict]:
    r = client.get(f"/webhooks/{hook}/deliveries", params=params, headers=who)
    assert r.status_code == 200, r.text
    return list(r.json()["deliveries"])


def test_a_delivery_failing_three_times_is_retried_with_backoff_and_arrives_signed(
        client: Any, people: dict, receiver: Callable[[int], Receiver]) -> None:
    lena, ann = people["lena"], people["ann"]
    endpoint = receiver(3)
    hook = register(client, lena, endpoint.url, event_types=["project.submitted"])
    secret = client.get(f"/webhooks/{hook}/secret", headers=lena).json()["secret"]
    pid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    assert client.post(f"/projects/{pid}/submit", json={}, headers=ann).status_code == 200

    headers, body, _ = wait_until(lambda: endpoint.accepted(), what="the delivery")[0]
    event = json.loads(body)
    assert event["type"] == "opsledger.project.submitted.v1" and event["subject"] == pid
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["webhook-id"] == event["id"]
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")  # tampered body
    assert len(endpoint.requests) == 4  # 3 failures, then accepted; Proposed not subscribed
    assert {r[0]["webhook-id"] for r in endpoint.requests} == {event["id"]}

    delivery = wait_until(lambda: [d for d in deliveries(client, people["audrey"], hook)
                                   if d["status"] == "delivered"], what="the history")[0]
    assert delivery["attempts"] == 4 and delivery["position"] == event["position"]
    assert [a["status"] for a in delivery["history"]] == [503, 503, 503, 204]
    at = [datetime.fromisoformat(a["at"]) for a in delivery["history"]]
    gaps = [(b - a).total_seconds() for a, b in zip(at, at[1:], strict=False)]
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, [0.05, 0.1, 0.2], strict=True))


def test_after_the_attempt_limit_a_delivery_is_a_dead_letter_until_replayed(
        client: Any, people: dict, receiver: Callable[[int], Receiver]) -> None:
    lena, ann = people["lena"], people["ann"]
    endpoint = receiver(4)  # as many failures as the attempt limit
    hook = register(client, lena, endpoint.url, record_types=["project"])
    pid = client.post("/projects", json=PROJECT, headers=ann).json()["id"]
    dead = wait_until(lambda: deliveries(client, lena, hook, status="dead"),
                      what="a dead letter")
    assert dead[0]["attempts"] == 4 and dead[0]["last_status"] == 503
    assert endpoint.accepted() == []

    r = client.post(f"/webhooks/{hook}/replay-dead-letters", json={"comment": "ERP is back"},
                    headers=lena)
    assert r.status_code == 200, r.text
    wait_until(lambda: endpoint.accepted(), what="the replayed delivery")
    replayed = wait_until(lambda: deliveries(client, lena, hook, status="delivered"),
                          what="the delivered status")[0]
    assert replayed["replays"] == 1 and len(replayed["history"]) == 5
    assert json.loads(endpoint.accepted()[0][1])["subject"] == pid


def test_a_disabled_webhook_receives_nothing_and_registration_is_audited(
        client: Any, people: dict, receiver: Callable[[int], Receiver], container: Any) -> None:
    lena, ann = people["lena"], people["ann"]
    endpoint = receiver(0)
    hook = register(client, lena, endpoint.url)
    r = client.post(f"/webhooks/{hook}/disable", json={"reason": "maintenance"}, headers=lena)
    assert r.status_code == 200, r.text
    client.post("/projects", json=PROJECT, headers=ann)
    position = client.post("/projects", json=PROJECT, headers=ann).json()["position"]
    wait_until(lambda: container.streams.webhooks.position >= position, what="the dispatcher")
    assert endpoint.requests == []
    state = client.get(f"/webhooks/{hook}", headers=lena).json()
    assert state["status"] == "disabled" and "secret" not in json.dumps(state).replace(
        "secret_version", "")
    rows = container.store.execute(
        "SELECT event_type, actor_id FROM event_log WHERE record_id = %s ORDER BY version",
        (hook,))
    assert [(r["event_type"], r["actor_id"]) for r in rows] == [("Registered", "lena"),
                                                                ("Disabled", "lena")]


def test_only_leadership_registers_webhooks_and_reads_their_secret(
        client: Any, people: dict) -> None:
    for who in ("ann", "iris", "audrey"):
        r = client.post("/webhooks", json={"name": "x", "url": "https://example.com/h"},
                        headers=people[who])
        assert r.status_code == 403, who
    hook = register(client, people["lena"], "https://example.com/h")
    assert client.get(f"/webhooks/{hook}/secret", headers=people["iris"]).status_code == 403
    assert client.get(f"/webhooks/{hook}/deliveries", headers=people["ann"]).status_code == 403


def test_a_filter_naming_an_unpublished_type_is_refused(client: Any, people: dict) -> None:
    r = client.post("/webhooks", json={"name": "x", "url": "https://example.com/h",
                                       "event_types": ["unique_key.claimed"]},
                    headers=people["lena"])
    assert r.status_code == 422 and r.json()["rule"] == "unknown_type"


def test_rotating_the_secret_changes_the_signature(client: Any, people: dict) -> None:
    lena = people["lena"]
    hook = register(client, lena, "https://example.com/h")
    before = client.get(f"/webhooks/{hook}/secret", headers=lena).json()
    assert client.post(f"/webhooks/{hook}/rotate-secret", json={},
                       headers=lena).status_code == 200
    after = client.get(f"/webhooks/{hook}/secret", headers=lena).json()
    assert after["secret_version"] == before["secret_version"] + 1
    assert after["secret"] != before["secret"] and after["secret"].startswith("whsec_")
    assert signature(before["secret"], "id", 1, b"{}") != signature(after["secret"], "id", 1,
                                                                     b"{}")


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base_seconds=5, max_seconds=30)
    assert [policy.delay(n) for n in range(1, 6)] == [5, 10, 20, 30, 30]
