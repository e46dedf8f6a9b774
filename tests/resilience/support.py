"""Shared helpers of the resilience tests: service subprocesses, tokens, figures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

PROJECT = {"department": "ops", "name": "resilience", "background": "b", "objectives": "o",
           "scope": "s", "requested_budget": "1.00", "expected_revenue": "0.00",
           "start_date": "2026-01-01", "end_date": "2026-12-31"}


def token(user: str, *roles: str, departments: tuple[str, ...] = ("ops",)) -> str:
    """A development token the service (in-process or a subprocess) accepts."""
    from service.auth import issue_token
    from service.config import Settings

    return issue_token(Settings(), user, roles=list(roles), departments=list(departments))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report(name: str, **figures: Any) -> None:
    """Prints one line of figures (run pytest with -s, or read the captured output)."""
    text = "; ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[resilience] {name}: {text}", flush=True)


class ServiceProcess:
    """`opsledger <command>` as a real subprocess (serve, worker, rebuild), for kill -9."""

    def __init__(self, database_url: str, *, command: Sequence[str] = ("serve",),
                 env: dict[str, str] | None = None, http: bool = True):
        self.port = free_port() if http else 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = list(command)
        self.http = http
        self.log_path = Path(tempfile.mkstemp(prefix="opsledger-resilience-", suffix=".log")[1])
        self.env = {**os.environ, "DATABASE_URL": database_url,
                    "OPSLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="opsledger-resilience-"),
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Starts the process; for `serve`, waits until /healthz answers. Returns seconds."""
        t0 = time.monotonic()
        args = [sys.executable, "-m", "service.cli", *self.command]
        if self.http:
            args += ["--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT)
        if not self.http:
            return time.monotonic() - t0
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"service did not start:\n{self.log()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cleanup(self) -> None:
        """Stops the process and removes its log and data directory."""
        self.stop()
        self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self.env["OPSLEDGER_DATA_DIR"], ignore_errors=True)

    def log(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""
