"""kill -9 of the API process, twice, during 10,000 commands sent with Idempotency-Keys.

32 client threads (httpx, keep-alive) each drive one project with ~313 sequential commands;
every command has its own Idempotency-Key and is retried by the client until acknowledged
(connection errors and 5xx while the service is down or restarting). The service is killed with
SIGKILL at about a third and two thirds of the acknowledgements and restarted at once. Then:
every acknowledged command is in the event log at the position and version it was acknowledged
with (0 lost), and each project has exactly one event per command (0 applied twice).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import psycopg
import pytest

from tests.resilience.support import PROJECT, ServiceProcess, report, token

pytestmark = pytest.mark.slow

COMMANDS = 10_000
CLIENTS = 32
KILLS = 2


def test_two_kill_9_during_10k_commands_lose_nothing_and_apply_nothing_twice(
        fresh_database: Any) -> None:
    server = ServiceProcess(fresh_database.url, env={"OPSLEDGER_LOG_LEVEL": "WARNING"})
    auth = {"Authorization": f"Bearer {token('ann', 'member')}"}
    startup = [server.start()]
    try:
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
            pids = [http.post("/projects", json=PROJECT).json()["id"] for _ in range(CLIENTS)]
        per_client = [COMMANDS // CLIENTS + (1 if i < COMMANDS % CLIENTS else 0)
                      for i in range(CLIENTS)]
        acked: dict[str, tuple[str, dict[str, Any]]] = {}
        counts: Counter[str] = Counter()
        lock = threading.Lock()
        failures: list[str] = []

        def client(i: int) -> None:
            pid = pids[i]
            with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
                for k in range(per_client[i]):
                    key = str(uuid.uuid4())
                    body = {"name": f"{i}-{k}"}
                    deadline = time.monotonic() + 120
                    while True:
                        if time.monotonic() > deadline:
                            failures.append(f"{key} never acknowledged")
                            return
                        try:
                            r = http.post(f"/projects/{pid}/edit-application", json=body,
                                          headers={"Idempotency-Key": key})
                        except httpx.HTTPError:
                            with lock:
                                counts["connection errors"] += 1
                            time.sleep(0.05)
                            continue
                        if r.status_code == 200:
                            with lock:
                                acked[key] = (pid, r.json())
                                if r.headers.get("Idempotent-Replayed") == "true":
                                    counts["replayed"] += 1
                            break
                        with lock:
                            counts[f"HTTP {r.status_code}"] += 1
                        if r.status_code < 500 and r.status_code != 409:
                            failures.append(f"{key}: {r.status_code} {r.text[:200]}")
                            return
                        time.sleep(0.05)

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for n in range(1, KILLS + 1):
            while len(acked) < COMMANDS * n // (KILLS + 1) and not failures:
                time.sleep(0.01)
            server.kill9()
            counts["kills"] += 1
            startup.append(server.start())
        for t in threads:
            t.join(300)
        elapsed = time.monotonic() - started
        assert not failures, failures[:10]
        assert len(acked) == COMMANDS

        # 0 lost: every acknowledged command is stored where its answer said it was.
        positions = {a["position"]: (pid, a["version"]) for pid, a in acked.values()}
        assert len(positions) == COMMANDS  # no two acknowledgements share an event
        with psycopg.connect(fresh_database.conninfo) as conn:
            rows = conn.execute("SELECT position, record_id::text, version FROM event_log"
                                " WHERE position = ANY(%s)", (list(positions),)).fetchall()
            found = {p: (rid, v) for p, rid, v in rows}
            per_record = dict(conn.execute(
                "SELECT record_id::text, count(*) FROM event_log WHERE record_id = ANY(%s)"
                " GROUP BY record_id", (pids,)).fetchall())
            keys = conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()
        lost = [p for p, want in positions.items() if found.get(p) != want]
        assert lost == []
        # 0 applied twice: each project holds its creation plus exactly one event per command.
        doubled = {pid: per_record[pid] - 1 - per_client[i] for i, pid in enumerate(pids)
                   if per_record[pid] != 1 + per_client[i]}
        assert doubled == {}
        assert keys is not None and keys[0] == COMMANDS
        report("kill -9 during 10k commands", commands=COMMANDS, clients=CLIENTS,
               kills=counts["kills"], acknowledged=len(acked), lost=len(lost),
               applied_twice=len(doubled), replayed_from_idempotency=counts["replayed"],
               connection_errors=counts["connection errors"],
               http_retries={k: v for k, v in counts.items() if k.startswith("HTTP")},
               restart_seconds=[round(s, 2) for s in startup[1:]],
               seconds=round(elapsed, 1), commands_per_second=round(COMMANDS / elapsed))
    finally:
        server.cleanup()
