"""The NATS JetStream publisher against a real nats-server: every event arrives, once.

Uses the server at OPSLEDGER_TEST_NATS_URL (default nats://127.0.0.1:4222); when none answers
there, starts `nats-server -js` on a free port if the binary is installed, else skips. Each test
publishes to its own stream and subject prefix and deletes the stream afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest

from domain.project import Project
from domain.shared import Actor
from service.store import EventStore
from service.streams.cloudevents import event_id
from service.streams.hub import Streams
from service.streams.worker import save_position
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
ANN = Actor("ann", "Ann", frozenset({"member"}), frozenset({"ops"}))


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    url = os.environ.get("OPSLEDGER_TEST_NATS_URL", "nats://127.0.0.1:4222")
    if _answers(url):
        yield url
        return
    binary = shutil.which("nats-server")
    if binary is None:
        pytest.skip(f"no NATS server answers at {url} and no nats-server binary is installed "
                    "(set OPSLEDGER_TEST_NATS_URL or install nats-server with JetStream)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store_dir = tempfile.mkdtemp(prefix="opsledger-nats-")
    proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port),
                             "-sd", store_dir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not _answers(url):
        assert proc.poll() is None and time.monotonic() < deadline, "nats-server did not start"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(store_dir, ignore_errors=True)


@pytest.fixture
def names(nats_url: str) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    yield {"stream": f"OPSTEST_{tag.upper()}", "prefix": f"opstest{tag}"}

    async def drop() -> None:
        nc = await nats.connect(nats_url, connect_timeout=2)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(f"OPSTEST_{tag.upper()}")
        await nc.close()
    asyncio.run(drop())


def propose_many(store: EventStore, n: int) -> None:
    """n project applications, appended concurrently (group commit)."""
    futures = []
    for i in range(n):
        project = Project.propose(ANN, department="ops", name=f"P{i}", background="b",
                                  objectives="o", scope="s", requested_budget=Decimal("10.00"),
                                  expected_revenue=Decimal("20.00"),
                                  start_date=date(2026, 1, 1), end_date=date(2026, 12, 31))
        futures.append(store.append(project.collect_events()))
    for f in futures:
        f.result(30)


def expected_ids(store: EventStore) -> list[str]:
    rows = store.execute("SELECT record_id, version FROM event_log WHERE record_type = 'project'"
                         " ORDER BY position")
    return [event_id(r["record_id"], r["version"]) for r in rows]


async def stream_messages(url: str, stream: str, prefix: str) -> list[Any]:
    """Every message in the stream, in stream order."""
    nc = await nats.connect(url, connect_timeout=2)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"{prefix}.>", stream=stream, ordered_consumer=True)
        info = await js.stream_info(stream)
        out = []
        for _ in range(info.state.messages):
            out.append(await sub.next_msg(timeout=5))
        return out
    finally:
        await nc.close()


def wait_until(condition: Any, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_every_event_is_published_once_to_subjects_per_type_with_the_event_id(
        fresh_database: Any, nats_url: str, names: dict[str, str]) -> None:
    settings = make_settings(nats_url=nats_url, nats_stream=names["stream"],
                             nats_subject_prefix=names["prefix"], nats_batch_size=7,
                             stream_poll_interval=0.1)
    store = EventStore(fresh_database)
    streams = Streams(settings, fresh_database.conninfo, store)
    streams.create_tables()
    propose_many(store, 30)
    publisher = streams.nats
    assert publisher is not None
    publisher.start()
    try:
        head = store.max_position()
        wait_until(lambda: publisher.position >= head, what="the publisher to catch up")
        assert publisher.lag == 0
        # A crash after publishing but before saving the position: the next run re-sends
        # from the last saved position, and JetStream drops the copies by Nats-Msg-Id.
        publisher.stop()
        save_position_at(fresh_database.conninfo, publisher.name, head // 2)
        propose_many(store, 5)
        publisher.start()
        head = store.max_position()
        wait_until(lambda: publisher.position >= head, what="the restarted publisher")
        assert publisher.duplicates > 0
        expected = expected_ids(store)
    finally:
        publisher.stop()
        store.close()
    messages = asyncio.run(stream_messages(nats_url, names["stream"], names["prefix"]))
    ids = [m.headers["Nats-Msg-Id"] for m in messages]
    assert ids == expected
    assert {m.subject for m in messages} == {f"{names['prefix']}.project.proposed"}
    assert all(m.headers["Content-Type"] == "application/cloudevents+json" for m in messages)


def save_position_at(conninfo: str, name: str, position: int) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        save_position(conn, name, position)


def test_a_killed_publisher_process_resumes_and_every_event_arrives_once(
        fresh_database: Any, nats_url: str, names: dict[str, str], tmp_path: Path) -> None:
    store = EventStore(fresh_database)
    Streams(make_settings(), fresh_database.conninfo, store).create_tables()
    propose_many(store, 1500)
    total = len(expected_ids(store))
    env = {**os.environ, "DATABASE_URL": fresh_database.url, "OPSLEDGER_NATS_URL": nats_url,
           "OPSLEDGER_NATS_STREAM": names["stream"],
           "OPSLEDGER_NATS_SUBJECT_PREFIX": names["prefix"], "OPSLEDGER_NATS_BATCH_SIZE": "10",
           "OPSLEDGER_RUN_PROJECTOR": "true", "OPSLEDGER_STREAM_POLL_INTERVAL": "0.1",
           "OPSLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="opsledger-test-")}

    log = tmp_path / "worker.log"

    def worker() -> subprocess.Popen[bytes]:
        with log.open("ab") as err:
            return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], cwd=ROOT,
                                    env=env, stdout=subprocess.DEVNULL, stderr=err)

    def waited(condition: Any, what: str, proc: subprocess.Popen[bytes]) -> None:
        def done() -> bool:
            assert proc.poll() is None, "the worker process exited"
            return bool(condition())
        try:
            wait_until(done, timeout=30, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; worker log:\n{log.read_text()[-3000:]}") from None

    async def count() -> int:
        nc = await nats.connect(nats_url, connect_timeout=2)
        try:
            return (await nc.jetstream().stream_info(names["stream"])).state.messages
        except Exception:
            return 0
        finally:
            await nc.close()

    def published() -> int:
        return asyncio.run(count())

    first = worker()
    try:
        waited(lambda: published() > 0, "the first message", first)
        first.send_signal(signal.SIGKILL)  # mid-stream, no chance to save anything
        first.wait(timeout=10)
        killed_at = published()
        propose_many(store, 20)
        second = worker()
        try:
            waited(lambda: published() >= total + 20, "every event after the restart", second)
            time.sleep(0.3)  # let any stray re-sends land (they must be dropped)
            expected = expected_ids(store)
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        store.close()
    messages = asyncio.run(stream_messages(nats_url, names["stream"], names["prefix"]))
    ids = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(ids) == len(set(ids)) == total + 20, f"killed at {killed_at} of {total}"
    assert ids == expected
