"""Shared helpers of the benchmarks: a fresh database, percentiles, RSS, a service process.

Every benchmark runs against a database of its own: on the server named by ``DATABASE_URL``
(or ``--database-url``) a new database ``bench_<hex>`` is created and dropped afterwards;
without one, a throw-away embedded PostgreSQL (pgserver) is started in /tmp.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.database import Database, start_embedded

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def fresh_database(url: str | None = None) -> Iterator[Database]:
    """A new, empty database for one benchmark (dropped at the end)."""
    url = url or os.environ.get("DATABASE_URL")
    embedded = None
    if url:
        server = Database(url=url)
    else:
        embedded = start_embedded(Path(tempfile.mkdtemp(prefix="opsledger-bench-")),
                                  persistent=False)
        server = embedded
    try:
        with sibling_database(server) as database:
            yield database
    finally:
        if embedded is not None and embedded.embedded is not None:
            embedded.embedded.cleanup()


@contextlib.contextmanager
def sibling_database(server: Database) -> Iterator[Database]:
    """A new, empty database on the same server as ``server`` (dropped at the end)."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server.conninfo)
    params["dbname"] = name
    try:
        yield Database(url=make_conninfo(**params))
    finally:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backend_pids(database: Database) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``database`` (same host only)."""
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid()").fetchall()
    return [int(r[0]) for r in rows]


def settle(database: Database, *, checkpoint: bool = False) -> float:
    """After a bulk load: ``VACUUM (ANALYZE)`` of ``database``, as an operator runs it after
    loading, so that PostgreSQL's autovacuum, which would otherwise start on the freshly
    written tables within a minute, does not run in the middle of a measurement (a VACUUM of
    ``event_log`` at the start of a read run made its p50 ~25 % slower there). A running
    autovacuum worker is cancelled by PostgreSQL when the VACUUM waits for its table. With
    ``checkpoint``, then a ``CHECKPOINT``: the load's dirty pages are written now rather than
    by the checkpointer during the measurement. Returns the seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        if checkpoint:
            conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def server_label(database: Database) -> str:
    p = database.params
    where = p.get("host", "?")
    if where.startswith("/"):
        where = "embedded pgserver (unix socket)"
    with psycopg.connect(database.conninfo) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        fsync = conn.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
    return f"PostgreSQL {version} at {where} (fsync={fsync}, synchronous_commit={sync})"


def machine_label() -> str:
    cores = os.cpu_count()
    load = os.getloadavg()
    return (f"{cores} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, "
            f"Python {sys.version.split()[0]}, psycopg {psycopg.__version__} "
            f"({psycopg.pq.__impl__})")


def percentile(samples: Sequence[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary_ms(samples: Sequence[float]) -> str:
    """p50 / p99 / max of latencies given in seconds, as milliseconds."""
    if not samples:
        return "no samples"
    ms = [s * 1000 for s in samples]
    return (f"p50 {statistics.median(ms):6.2f} ms  p90 {percentile(ms, 0.9):6.2f} ms  "
            f"p99 {percentile(ms, 0.99):6.2f} ms  max {max(ms):7.2f} ms")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc (VmRSS, VmHWM)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def tree_rss_mb(pid: int) -> float:
    """Current RSS of a process and its children (uvicorn's supervisor + workers), in MB."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            total += rss_mb(p)[0]
    return total


def children_of(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An ASGI app served by uvicorn in a child process (``python -m uvicorn …``)."""

    def __init__(self, app: str, *, env: dict[str, str] | None = None, workers: int = 1,
                 factory: bool = False, extra: Sequence[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(workers), "--http", "httptools",
               "--loop", "uvloop", "--no-access-log", "--log-level", "warning", *extra]
        if factory:
            cmd.append("--factory")
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by stop())
            prefix="opsledger-bench-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, path: str = "/healthz", timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s: {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def worker_pids(self) -> list[int]:
        kids = children_of(self.proc.pid)
        # uvicorn --workers N: a supervisor with N worker children (plus a resource tracker)
        return [k for k in kids if "uvicorn" in _cmdline(k) or "multiprocessing" in _cmdline(k)
                ] or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


@contextlib.contextmanager
def projection_worker(env: dict[str, str], enabled: bool = True,
                      ) -> Iterator[subprocess.Popen[bytes] | None]:
    """``serve --no-projector`` + ``worker``: sets ``OPSLEDGER_RUN_PROJECTOR=false`` in
    ``env`` for the API processes and runs the projections in a ``worker`` process of their
    own (which hears of the API's commits through LISTEN/NOTIFY)."""
    if not enabled:
        yield None
        return
    env["OPSLEDGER_RUN_PROJECTOR"] = "false"
    worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], cwd=ROOT,
                              env={**os.environ, **env, "OPSLEDGER_RUN_PROJECTOR": "true"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(20)


def service_env(database: Database, **overrides: str) -> dict[str, str]:
    """Environment of the real service against ``database``."""
    env = {"DATABASE_URL": database.url,
           "OPSLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="opsledger-bench-data-")}
    env.update(overrides)
    return env
