"""The event store against PostgreSQL: gapless global order, group commit, exactly-once views."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from domain.project import Project
from domain.shared import Actor
from service.application import CommandContext, IdempotencyMismatch, Ledger
from service.bootstrap import bootstrap
from service.catalogue import commands_of
from tests.conftest import make_settings

ANN = Actor("ann", "Ann", frozenset({"member"}), frozenset({"ops"}))
APPLICATION = {"department": "ops", "name": "P", "background": "b", "objectives": "o",
               "scope": "s", "requested_budget": Decimal("10.00"),
               "expected_revenue": Decimal("0.00"), "start_date": date(2026, 1, 1),
               "end_date": date(2026, 12, 31)}


def spec(name: str) -> Any:
    return next(s for s in commands_of(Project) if s.name == name)


def propose(ledger: Ledger, **over: Any) -> Any:
    s = spec("propose")
    return ledger.execute(s, CommandContext(ANN), s.body_model(**{**APPLICATION, **over}))


def edit(ledger: Ledger, pid: str, name: str, key: str | None = None) -> Any:
    s = spec("edit_application")
    return ledger.execute(s, CommandContext(ANN, idempotency_key=key, request_hash=name),
                          s.body_model(name=name), record_id=pid)


@pytest.fixture
def c(fresh_database: Any) -> Any:
    container = bootstrap(make_settings(), fresh_database, start_projector=False)
    yield container
    container.close()


def test_a_reader_following_positions_sees_every_event_of_concurrent_writers(c: Any) -> None:
    ledger = c.ledger
    writers, per_writer = 8, 25
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        after = 0
        while True:
            batch = c.store.notifications(after, 100)
            for n in batch:
                seen.append(n.id)
                after = n.id
            if not batch and done.is_set() and after >= c.store.max_position():
                return

    reader = threading.Thread(target=follow)
    reader.start()

    def write(i: int) -> list[int]:
        pid = propose(ledger, name=f"w{i}").body["id"]
        return [edit(ledger, pid, f"w{i}-{k}").body["position"] for k in range(per_writer)]

    with ThreadPoolExecutor(writers) as pool:
        acknowledged = [p for ps in pool.map(write, range(writers)) for p in ps]
    done.set()
    reader.join(timeout=30)
    total = writers * (per_writer + 1)
    assert seen == sorted(seen) == list(range(1, total + 1))  # no gap, no skip, in order
    assert set(acknowledged) <= set(seen)


def test_concurrent_commands_on_one_record_never_lose_an_update(c: Any) -> None:
    pid = propose(c.ledger).body["id"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: edit(c.ledger, pid, f"name-{k}"), range(64)))
    assert c.ledger.load(Project, pid).version == 65


def test_idempotency_keys_survive_a_restart(c: Any, fresh_database: Any) -> None:
    pid = propose(c.ledger).body["id"]
    first = edit(c.ledger, pid, "once", key="k-1")
    c.close()
    again = bootstrap(make_settings(), fresh_database, start_projector=False)
    try:
        retry = edit(again.ledger, pid, "once", key="k-1")
        assert retry.replayed and retry.body == first.body
        assert again.ledger.load(Project, pid).version == 2
    finally:
        again.close()


def test_retried_keys_in_a_group_commit_replay_and_the_others_commit(c: Any) -> None:
    # The key is checked by the append (not looked up first). A retried creation decides
    # again (a new record), its append fails on the key, and it replays its first answer;
    # new commands in the same group commits still commit; no retry leaves an event behind.
    s = spec("propose")

    def create(name: str, key: str) -> Any:
        return c.ledger.execute(s, CommandContext(ANN, idempotency_key=key, request_hash=name),
                                s.body_model(**{**APPLICATION, "name": name}))

    firsts = {k: create(f"first {k}", f"k-{k}") for k in range(8)}
    for round_ in range(3):
        barrier = threading.Barrier(16)

        def together(k: int, round_: int = round_,
                     barrier: threading.Barrier = barrier) -> Any:
            barrier.wait()
            if k % 2:  # a retry: same key, same body
                return create(f"first {k // 2}", f"k-{k // 2}")
            return create(f"new {round_}-{k}", f"n-{round_}-{k}")

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(together, range(16)))
        for k, result in enumerate(results):
            if k % 2:
                assert result.replayed and result.body == firsts[k // 2].body
            else:
                assert not result.replayed and result.status_code == 201
    events = c.store.execute("SELECT count(*) AS n FROM stored_events")[0]["n"]
    assert events == 8 + 3 * 8  # the first creations and the new ones only
    with pytest.raises(IdempotencyMismatch):  # the same key with another body
        create("something else", "k-1")
    pid = firsts[0].body["id"]
    edit(c.ledger, pid, "renamed", key="e-1")
    assert edit(c.ledger, pid, "renamed", key="e-1").replayed  # refused (no change): replayed
    with pytest.raises(IdempotencyMismatch):
        edit(c.ledger, pid, "renamed again", key="e-1")


def test_the_event_log_indexes_every_event_with_metadata(c: Any) -> None:
    pid = propose(c.ledger).body["id"]
    edit(c.ledger, pid, "x")
    rows = c.store.execute("SELECT position, version, record_type, event_type, actor_id,"
                           " department, length(leaf_hash) AS h FROM event_log ORDER BY position")
    assert [(r["version"], r["record_type"], r["event_type"], r["actor_id"], r["department"],
             r["h"]) for r in rows] == [
        (1, "project", "Proposed", "ann", "ops", 32),
        (2, "project", "ApplicationEdited", "ann", "ops", 32)]
    event = c.store.get(pid).version  # the aggregate replays from the store
    assert event == 2
    stored = list(c.store.events.get(UUID(pid)))
    meta = stored[-1].meta
    assert meta["actor"]["user_id"] == "ann" and meta["command"] == "project.edit_application"
    assert meta["schema"] == 1 and meta["correlation_id"] and meta["request_id"]


def test_projection_applies_each_event_exactly_once_and_rebuilds_identically(c: Any) -> None:
    ids = [propose(c.ledger, name=f"p{i}").body["id"] for i in range(5)]
    for pid in ids:
        for k in range(3):
            edit(c.ledger, pid, f"{pid}-{k}")
    runner = c.runner
    runner.catch_up()
    first = c.store.execute("SELECT id, version, doc FROM record_state ORDER BY id")
    assert [r["version"] for r in first] == [4] * 5
    runner.catch_up()  # nothing new: nothing applied twice
    assert c.store.execute("SELECT id, version, doc FROM record_state ORDER BY id") == first
    runner.reset()
    runner.catch_up()
    assert c.store.execute("SELECT id, version, doc FROM record_state ORDER BY id") == first
    tracked = c.store.execute("SELECT name, position FROM projection_tracking")
    assert {"name": "records", "position": c.store.max_position()} in tracked
    assert all(t["position"] == c.store.max_position() for t in tracked)


def test_the_notifications_read_for_projections_are_the_librarys(c: Any) -> None:
    """``EventStore.notifications`` builds its rows without the dataclass's ``__init__``:
    they must be the library's own, field for field (a field the library adds would be
    missing from them)."""
    ids = [propose(c.ledger, name=f"n{i}").body["id"] for i in range(3)]
    edit(c.ledger, ids[0], "n0 again")
    ours = c.store.notifications(0, 10)
    library = c.store.recorder.select_notifications(1, 10)
    assert len(ours) == len(library) == 4
    assert ours == library
    assert [vars(n) for n in ours] == [vars(n) for n in library]
    assert [type(n) for n in ours] == [type(n) for n in library]


def test_snapshots_are_taken_and_used_for_loading(c: Any) -> None:
    pid = propose(c.ledger).body["id"]
    for k in range(120):
        edit(c.ledger, pid, f"v{k}")
    snaps = c.store.execute("SELECT originator_version FROM snapshots WHERE originator_id = %s"
                            " ORDER BY originator_version", (pid,))
    assert [s["originator_version"] for s in snaps] == [50, 100]
    c.store.cache_evict(pid)
    assert c.ledger.load(Project, pid).name == "v119"
    assert c.ledger.load(Project, pid, version=60).name == "v58"


def test_the_writer_threads_connection_lost_between_commits_is_replaced(c: Any) -> None:
    # (The loop writer's case: tests/e2e/test_loop_writer.py; both follow store.written_again.)
    pid = propose(c.ledger).body["id"]
    backend = c.store._writer_connection().info.backend_pid
    c.store.execute("SELECT pg_terminate_backend(%s)", (backend,))
    answer = edit(c.ledger, pid, "after the loss")
    assert answer.body["version"] == 2
    assert c.store._writer_connection().info.backend_pid != backend
    rows = c.store.execute("SELECT version FROM event_log WHERE record_id = %s ORDER BY version",
                           (UUID(pid),))
    assert [r["version"] for r in rows] == [1, 2]
