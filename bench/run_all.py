"""Runs every benchmark of issue 10, one after another, and prints their target lines.

Each benchmark is a separate process with its own fresh database (embedded PostgreSQL, or on
the server named by DATABASE_URL) and prints its own figures and the ratios against the
baselines it measured in the same run. The default sizes keep each under ~2 minutes; ``--full``
uses the issue's sizes (1M events for rebuild and reads, 5M for scale: ~30 minutes in all).

    .venv/bin/python -m bench.run_all                     # ~10 minutes
    .venv/bin/python -m bench.run_all --full
    .venv/bin/python -m bench.run_all --only rebuild graphql_reads
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import ROOT, machine_label

# Target 1 as deployed (deploy/: API processes without the projector, a projection worker),
# and the command path alone; `bench.command_path` without flags runs every configuration.
TARGET_1 = ["--workers", "1", "--projector", "process", "deferred", "--clients", "raw"]
QUICK: dict[str, list[str]] = {
    "command_path": TARGET_1,
    "rebuild": [],
    "projection_lag": ["--projector", "process", "--read-server"],
    "asof_latency": ["--events", "10000", "--samples", "500"],
    "verify_bench": ["-n", "200000"],
    "graphql_reads": [],
    "scale": [],
}
FULL: dict[str, list[str]] = {
    "command_path": [*TARGET_1, "--duration", "30"],
    "rebuild": ["--events", "1M", "--memory-sizes", "100k", "--baseline-events", "50k"],
    "projection_lag": ["--duration", "30", "--projector", "process", "--read-server"],
    "asof_latency": ["--events", "10000", "--samples", "1000", "--naive-samples", "100"],
    "verify_bench": ["-n", "1000000"],
    "graphql_reads": ["--events", "1M", "--duration", "30"],
    "scale": ["--events", "5M", "--pause", "30"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (slow)")
    parser.add_argument("--only", nargs="+", choices=list(QUICK), help="these benchmarks")
    args = parser.parse_args()
    plan = FULL if args.full else QUICK
    names = args.only or list(plan)
    print(f"machine: {machine_label()}\n")
    summary: list[str] = []
    for name in names:
        module = f"bench.{name}"
        cmd = [sys.executable, "-m", module, *plan[name]]
        print(f"=== {' '.join(['python', '-m', module, *plan[name]])}", flush=True)
        started = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        lines = [ln for ln in out.stdout.splitlines() if "RuntimeDirWarning" not in ln]
        print("\n".join(lines))
        if out.returncode != 0:
            print(out.stderr[-3000:])
            summary.append(f"{name}: FAILED (exit {out.returncode})")
        took = time.perf_counter() - started
        print(f"--- {name}: {took:.0f} s\n", flush=True)
        for ln in lines:
            if "MET" in ln or "verify:" in ln and "events/s" in ln:
                summary.append(f"{name}: {ln.strip()}")
    print("=== summary (each line: target, measured, verdict — ratios from the same run)")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
