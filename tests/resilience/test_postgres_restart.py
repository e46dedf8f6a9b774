"""PostgreSQL restarted under load: 503 + Retry-After during the outage and nothing else,
healthy again within 5 s, no acknowledged command lost.

Runs its own embedded PostgreSQL (pgserver) so it can stop and start it — never the machine's
shared server. The service runs as a real process; clients keep sending commands (with
Idempotency-Keys, retried), GraphQL queries, record reads and readiness probes while
PostgreSQL is stopped with ``pg_ctl stop -m immediate`` (a crash: recovery replays the WAL at
start) and started again a few seconds later.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from service.database import Database, start_embedded
from tests.resilience.support import PROJECT, ServiceProcess, report, token

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 6.0
RECOVERY_LIMIT = 5.0
WRITERS = 8
KINDS = ("command", "graphql", "get", "audit", "readyz")


class Postgres:
    """A private pgserver instance we may stop and start (pg_ctl from the wheel)."""

    def __init__(self) -> None:
        self.db = start_embedded(Path(tempfile.mkdtemp(prefix="opsledger-pgrestart-")),
                                 persistent=False)
        self.server = self.db.embedded
        self.pgdata = self.server.pgdata
        self.socket_dir = self.server.get_postmaster_info().socket_dir

    def pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl
        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                    "-l", str(self.server.log), "start")

    def database(self, name: str) -> Database:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        params = psycopg.conninfo.conninfo_to_dict(self.db.conninfo)
        params["dbname"] = name
        return Database(url=psycopg.conninfo.make_conninfo(**params))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the restarted server is ours to stop
            self.pg_ctl("-w", "-m", "fast", "stop")
        self.server.cleanup()


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    yield pg
    pg.close()


@dataclass
class Seen:
    at: float
    kind: str
    status: int  # 0: no HTTP answer (connection refused or reset)
    retry_after: str | None
    body: str
    seconds: float  # how long the answer took

    @property
    def sent(self) -> float:
        return self.at - self.seconds


def test_postgres_restart_under_load(postgres: Postgres) -> None:
    database = postgres.database("restart")
    service = ServiceProcess(database.url, env={"OPSLEDGER_LOG_LEVEL": "WARNING",
                                                "OPSLEDGER_POOL_SIZE": "6"})
    service.start()
    member = {"Authorization": f"Bearer {token('ann', 'member')}"}
    reader = {"Authorization": f"Bearer {token('audrey', 'auditor')}"}
    seen: list[Seen] = []
    lock = threading.Lock()
    stop = threading.Event()
    acked: dict[str, dict[str, Any]] = {}

    def record(kind: str, response: httpx.Response | None, sent: float) -> None:
        now = time.monotonic()
        item = Seen(now, kind, response.status_code if response else 0,
                    response.headers.get("Retry-After") if response else None,
                    response.text[:300] if response else "", now - sent)
        with lock:
            seen.append(item)

    with httpx.Client(base_url=service.url, headers=member, timeout=10) as http:
        pids = [http.post("/projects", json=PROJECT).json()["id"] for _ in range(WRITERS)]

    def writer(pid: str) -> None:
        with httpx.Client(base_url=service.url, headers=member, timeout=10) as http:
            k = 0
            while not stop.is_set():
                key, k = str(uuid.uuid4()), k + 1
                while not stop.is_set():  # retried until acknowledged
                    sent = time.monotonic()
                    try:
                        r = http.post(f"/projects/{pid}/edit-application",
                                      json={"name": f"{pid[:6]}-{k}"},
                                      headers={"Idempotency-Key": key})
                    except httpx.HTTPError:
                        record("command", None, sent)
                        time.sleep(0.1)
                        continue
                    record("command", r, sent)
                    if r.status_code == 200:
                        with lock:
                            acked[key] = r.json()
                        break
                    time.sleep(0.1)

    def graphql() -> None:
        q = {"query": "{ projects(first: 5) { edges { node { id version } } } }"}
        with httpx.Client(base_url=service.url, headers=reader, timeout=10) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    record("graphql", http.post("/graphql", json=q), sent)
                except httpx.HTTPError:
                    record("graphql", None, sent)
                time.sleep(0.05)

    def gets() -> None:
        with httpx.Client(base_url=service.url, headers=reader, timeout=10) as http:
            i = 0
            while not stop.is_set():
                i += 1
                for kind, path in (("get", f"/projects/{pids[i % len(pids)]}"),
                                   ("audit", f"/audit/records/project/{pids[i % len(pids)]}"
                                             "/history?limit=5")):
                    sent = time.monotonic()
                    try:
                        record(kind, http.get(path), sent)
                    except httpx.HTTPError:
                        record(kind, None, sent)
                time.sleep(0.05)

    def ready() -> None:
        with httpx.Client(base_url=service.url, timeout=10) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    record("readyz", http.get("/readyz"), sent)
                except httpx.HTTPError:
                    record("readyz", None, sent)
                time.sleep(0.05)

    threads = [threading.Thread(target=writer, args=(p,)) for p in pids]
    threads += [threading.Thread(target=graphql) for _ in range(2)]
    threads += [threading.Thread(target=gets), threading.Thread(target=ready)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        acked_before = len(acked)
        down_at = time.monotonic()
        postgres.stop()
        time.sleep(OUTAGE_SECONDS)
        postgres.start()
        up_at = time.monotonic()
        time.sleep(RECOVERY_LIMIT + 1.5)  # keep the load on: recovery is read from it below
        acked_during = len(acked)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    try:
        # Nothing acknowledged is lost (the server crashed: WAL recovery at start).
        positions = {a["position"]: (a["id"], a["version"]) for a in acked.values()}
        with psycopg.connect(database.conninfo) as conn:
            rows = conn.execute("SELECT position, record_id::text, version FROM event_log"
                                " WHERE position = ANY(%s)", (list(positions),)).fetchall()
        lost = len(positions) - sum(1 for p, rid, v in rows if positions[p] == (rid, v))

        outage = [s for s in seen if down_at <= s.sent < up_at]  # sent while it was down
        after = [s for s in seen if s.sent >= up_at]
        # Healthy from the moment after which every request succeeded (and each kind did).
        healthy_at = max((s.sent for s in after if s.status != 200), default=up_at)
        recovered = {s.kind for s in after if s.sent > healthy_at and s.status == 200}
        recovery = healthy_at - up_at
        server_errors = [s for s in seen if s.status >= 500 and s.status != 503]
        unanswered = [s for s in seen if s.status == 0]
        no_retry_after = [s for s in seen if s.status == 503 and not s.retry_after]
        graphql_outage = Counter(s.status for s in outage if s.kind == "graphql")
        statuses = Counter((s.kind, s.status) for s in outage)
        report("postgres restart under load", outage_seconds=OUTAGE_SECONDS,
               requests=len(seen), sent_during_outage=dict(sorted(
                   (f"{k} {v}", n) for (k, v), n in statuses.items())),
               slowest_answer_during_outage={k: round(max(
                   (s.seconds for s in outage if s.kind == k), default=0), 1)
                   for k in KINDS},
               other_5xx=len(server_errors), unanswered=len(unanswered),
               missing_retry_after=len(no_retry_after),
               seconds_to_healthy=round(recovery, 2),
               acknowledged=len(acked), acknowledged_before=acked_before,
               acknowledged_after_restart=acked_during - acked_before, lost=lost)
        assert server_errors == [], [(s.kind, s.status, s.body) for s in server_errors[:5]]
        assert unanswered == [], [(s.kind, round(s.seconds, 1)) for s in unanswered[:10]]
        assert no_retry_after == []
        assert graphql_outage.get(503, 0) > 0, graphql_outage  # GraphQL answers 503 too
        assert all(s.status in (200, 503) for s in outage), statuses
        assert recovery <= RECOVERY_LIMIT, recovery
        assert recovered == set(KINDS), recovered
        assert lost == 0
        assert acked_during > acked_before  # commands flow again after the restart
        with httpx.Client(base_url=service.url, timeout=10) as http:
            ready = http.get("/readyz").json()
        assert ready["status"] == "ready", ready  # the projector reconnected and caught up
    finally:
        if service.proc is not None and service.proc.poll() is not None:
            print(service.log())
        service.cleanup()
