"""kill -9 of the service mid-work: every acknowledged command survives, none is applied twice,
and the views catch up after the restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from service.auth import issue_token
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

PROJECT = {"department": "ops", "name": "crash", "background": "b", "objectives": "o",
           "scope": "s", "requested_budget": "1.00", "expected_revenue": "0.00",
           "start_date": "2026-01-01", "end_date": "2026-12-31"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, database_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": database_url,
                    "OPSLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="opsledger-crash-")}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("service did not start")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def test_kill_9_loses_no_acknowledged_command_and_applies_none_twice(fresh_database: Any) -> None:
    server = Server(fresh_database.url)
    settings = make_settings()
    auth = {"Authorization": "Bearer " + issue_token(settings, "ann", roles=["member"],
                                                     departments=["ops"])}
    server.start()
    writers, per_writer = 4, 40
    acked: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    with httpx.Client(base_url=server.url, headers=auth, timeout=5) as http:
        pids = [http.post("/projects", json=PROJECT).json()["id"] for _ in range(writers)]

    def send(pid: str, k: int) -> None:
        key = str(uuid.uuid4())
        body = {"name": f"{pid[:8]}-{k}"}
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, headers={**auth, "Idempotency-Key": key},
                          timeout=5) as http:
            while time.monotonic() < deadline:  # the client retries until acknowledged
                try:
                    r = http.post(f"/projects/{pid}/edit-application", json=body)
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    with lock:
                        acked[key] = r.json()
                    return
                time.sleep(0.05)
        raise AssertionError(f"command {key} never acknowledged")

    def writer(pid: str) -> None:
        for k in range(per_writer):
            send(pid, k)

    threads = [threading.Thread(target=writer, args=(pid,)) for pid in pids]
    for t in threads:
        t.start()
    while len(acked) < writers * per_writer // 3:
        time.sleep(0.01)
    server.kill9()
    acked_before_kill = len(acked)
    server.start()
    for t in threads:
        t.join(90)
    try:
        assert len(acked) == writers * per_writer
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
            for pid in pids:
                state = http.get(f"/projects/{pid}").json()
                assert state["version"] == 1 + per_writer  # each command applied exactly once
            top = max(a["position"] for a in acked.values())
            q = {"query": "query($p: Int) { projects(first: 10, waitForPosition: $p) "
                          "{ edges { node { recordId version } } } }", "variables": {"p": top}}
            data = http.post("/graphql", json=q).json()
            assert not data.get("errors"), data
            versions = {e["node"]["recordId"]: e["node"]["version"]
                        for e in data["data"]["projects"]["edges"]}
            assert versions == {pid: 1 + per_writer for pid in pids}
        print(f"acknowledged before kill: {acked_before_kill}; total {len(acked)}; lost 0;"
              " applied twice 0")
    finally:
        server.stop()
