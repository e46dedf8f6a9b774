"""The group commit on the event loop: what the API process decides on its loop it commits
there — the same rows as the writer thread (event_log with leaf hashes, Idempotency-Key
answers), a conflict decided again in a thread, a lost connection replaced, personal data left
to the writer thread."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from service.tamper import leaf_hash
from tests.e2e.test_project_lifecycle import PROJECT

CUSTOMER = {"department": "ops", "kind": "company", "name": "Loop Ltd",
            "credit_code": "91110000MA01LOOP01"}


@pytest.fixture
def batches(client: Any, container: Any, monkeypatch: pytest.MonkeyPatch,
            ) -> Iterator[list[tuple[int, str]]]:
    """(commands, outcome) of every group commit the loop writer makes during the test."""
    writer = container.ledger.loop_writer
    assert writer is not None  # the app's lifespan started it
    seen: list[tuple[int, str]] = []
    original = type(writer)._insert_batch

    async def counting(self: Any, items: list[Any]) -> Any:
        try:
            result = await original(self, items)
        except Exception as exc:
            seen.append((len(items), type(exc).__name__))
            raise
        seen.append((len(items), "ok"))
        return result

    monkeypatch.setattr(type(writer), "_insert_batch", counting)
    yield seen


def _project(client: Any, who: dict[str, str]) -> str:
    r = client.post("/projects", json=PROJECT, headers=who)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _edited_once(client: Any, who: dict[str, str]) -> tuple[str, str]:
    """A new project edited once (version 2): its id and its edit path."""
    rid = _project(client, who)
    path = f"/projects/{rid}/edit-application"
    assert client.post(path, json={"name": "Two"}, headers=who).status_code == 200
    return rid, path


def _versions(container: Any, rid: str) -> list[int]:
    rows = container.store.execute(
        "SELECT originator_version FROM stored_events WHERE originator_id = %s"
        " ORDER BY originator_version", (uuid.UUID(rid),))
    return [r["originator_version"] for r in rows]


def test_a_command_decided_on_the_loop_is_committed_there_with_its_rows(
        client: Any, container: Any, token: Any, batches: list[tuple[int, str]]) -> None:
    ann = token("ann", "member")
    rid = _project(client, ann)
    assert batches == []  # a create: decided and committed in a thread
    headers = {**ann, "If-Match": '"1"', "Idempotency-Key": "loop-" + rid}
    r = client.post(f"/projects/{rid}/edit-application", json={"name": "On the loop"},
                    headers=headers)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert batches == [(1, "ok")]
    position = r.json()["position"]
    [event] = container.store.execute(
        "SELECT originator_id, originator_version, topic, state FROM stored_events"
        " WHERE notification_id = %s", (position,))
    [log] = container.store.execute(
        "SELECT record_id, version, record_type, event_type, actor_id, leaf_hash"
        " FROM event_log WHERE position = %s", (position,))
    assert (log["record_id"], log["version"], log["record_type"], log["event_type"],
            log["actor_id"]) == (uuid.UUID(rid), 2, "project", "ApplicationEdited", "ann")
    assert bytes(log["leaf_hash"]) == leaf_hash(position, event["originator_id"], 2,
                                                event["topic"], bytes(event["state"]))
    [key] = container.store.execute("SELECT status, body FROM idempotency_keys"
                                    " WHERE actor_id = 'ann' AND key = %s", ("loop-" + rid,))
    assert key["status"] == 200 and key["body"] == r.json()
    # Its retry is the stored answer, nothing appended.
    again = client.post(f"/projects/{rid}/edit-application", json={"name": "On the loop"},
                        headers=headers)
    assert again.json() == r.json() and again.headers["idempotent-replayed"] == "true"
    assert _versions(container, rid) == [1, 2]


def test_the_loop_commits_event_log_values_exactly_as_the_events_have_them(
        client: Any, container: Any, token: Any, batches: list[tuple[int, str]]) -> None:
    # The rows go to PostgreSQL as one JSON parameter: text that JSON escapes, text beyond
    # ASCII and the timestamp's microseconds come back as they were.
    who = token('zoë "q" \\ 漢', "member")
    rid = _project(client, who)
    cid = 'c"orr\\el\tation'
    r = client.post(f"/projects/{rid}/edit-application", json={"name": "Escapes"},
                    headers={**who, "X-Correlation-ID": cid})
    assert r.status_code == 200, r.text
    assert batches == [(1, "ok")]
    [stored] = [e for e in container.store.events.get(uuid.UUID(rid)) if e.originator_version == 2]
    [log] = container.store.execute(
        "SELECT actor_id, correlation_id, department, occurred_at FROM event_log"
        " WHERE position = %s", (r.json()["position"],))
    assert (log["actor_id"], log["correlation_id"], log["department"]) == (
        'zoë "q" \\ 漢', cid, "ops")
    assert log["occurred_at"] == stored.timestamp


def test_a_conflict_at_the_loop_commit_is_decided_again_in_a_thread(
        client: Any, container: Any, token: Any, batches: list[tuple[int, str]]) -> None:
    ann = token("ann", "member")
    rid, path = _edited_once(client, ann)
    stale = container.store.cached_copy(uuid.UUID(rid))  # version 2
    # Version 3 is appended as another process would; this process's cache is then left
    # behind at version 2.
    assert client.post(path, json={"name": "Three"}, headers=ann).status_code == 200
    container.store.cache_put(stale)
    r = client.post(path, json={"name": "Four"}, headers=ann)
    assert r.status_code == 200 and r.json()["version"] == 4, r.text
    assert batches[-1] == (1, "UniqueViolation")  # given up at the append, nothing written
    assert _versions(container, rid) == [1, 2, 3, 4]


def test_a_connection_lost_between_commits_is_replaced(
        client: Any, container: Any, token: Any, batches: list[tuple[int, str]]) -> None:
    ann = token("ann", "member")
    rid, path = _edited_once(client, ann)
    pid = container.ledger.loop_writer._conn.info.backend_pid
    container.store.execute("SELECT pg_terminate_backend(%s)", (pid,))
    r = client.post(path, json={"name": "After"}, headers=ann)
    assert r.status_code == 200 and r.json()["version"] == 3, r.text
    assert batches[-1] == (1, "ok")
    assert container.ledger.loop_writer._conn.info.backend_pid != pid
    assert _versions(container, rid) == [1, 2, 3]


def test_personal_data_is_committed_by_the_writer_thread(
        client: Any, container: Any, token: Any, batches: list[tuple[int, str]]) -> None:
    agent = token("sun", "customer_service")
    r = client.post("/customers", json=CUSTOMER, headers=agent)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    contact = client.post(f"/customers/{cid}/add-contact", headers=agent,
                          json={"name": "李娜", "phone": "+86 138 1234 5678"})
    assert contact.status_code == 200, contact.text
    assert batches == []  # sealed with the customer's key, in the writer thread's transaction
    stored = container.store.execute(
        "SELECT state FROM stored_events WHERE notification_id = %s",
        (contact.json()["position"],))
    assert b"1234 5678" not in bytes(stored[0]["state"])  # ciphertext, not the number


def test_stopping_commits_what_was_queued_first(container: Any) -> None:
    """A writer of its own on a loop of its own: commands queued when it is told to stop are
    committed (the server stops it after its last request), and it stops."""
    from service.application import CommandContext
    from service.loop_writer import LoopWriter
    from tests.integration.test_event_store import ANN, propose, spec

    pids = [str(propose(container.ledger).body["id"]) for _ in range(3)]  # cached
    edit = spec("edit_application")

    async def main() -> list[Any]:
        writer = LoopWriter(container.store)
        writer.start()
        ledger = container.ledger
        saved, ledger.loop_writer = ledger.loop_writer, writer
        try:
            tasks = [asyncio.create_task(ledger.execute_on_loop(
                edit, CommandContext(ANN), edit.body_model(name=f"Queued {pid}"),
                uuid.UUID(pid), None)) for pid in pids]
            await asyncio.sleep(0)  # each has decided and queued its events
            assert len(writer._pending) == 3
            await writer.close()
            assert writer._task is not None and writer._task.done()
            return await asyncio.gather(*tasks)
        finally:
            ledger.loop_writer = saved

    results = asyncio.run(main())
    assert [r.status_code for r in results] == [200, 200, 200]
    assert all(_versions(container, pid) == [1, 2] for pid in pids)
