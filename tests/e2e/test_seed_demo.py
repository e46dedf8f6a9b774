"""seed-demo: a realistic department through the real commands, reproducible by seed."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from projections.codec import record_view, thaw, view_json
from service.bootstrap import bootstrap
from service.demo import Seeder
from service.demo.stories import PROJECT_STATES
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
SEED, YEAR = 3, 2026


def seed_demo(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "OPSLEDGER_LOG_LEVEL": "WARNING",
           "OPSLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="opsledger-seed-")}
    return subprocess.run([sys.executable, "-m", "service.cli", "seed-demo", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def views(conninfo: str) -> Counter[tuple[str, str]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT record_type, status, count(*) FROM record_state"
                            " GROUP BY 1, 2").fetchall()
    return Counter({(t, s): n for t, s, n in rows})


def history(container: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every record's events: (version, type, payload, metadata) — minus clock readings and the
    trace context, which differ from run to run."""
    def plain(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return "<time>"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    out: dict[str, list[tuple[Any, ...]]] = {}
    for n in container.store.notifications(0, 100_000):
        event = container.store.to_event(n)
        payload = {k: plain(v) for k, v in vars(event).items()
                   if k not in ("timestamp", "meta", "originator_id", "originator_version")}
        meta = {k: v for k, v in (getattr(event, "meta", None) or {}).items()
                if k not in ("trace_id", "span_id")}
        out.setdefault(str(event.originator_id), []).append(
            (event.originator_version, type(event).__qualname__, payload, meta))
    return out


def test_seed_demo_makes_every_state_through_the_real_commands_and_refuses_a_second_run(
        fresh_database: Any) -> None:
    done = seed_demo(fresh_database.url, "--seed", str(SEED), "--scale", "1", "--year",
                     str(YEAR))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "commands/s" in done.stdout
    counts = views(fresh_database.conninfo)
    for state in set(PROJECT_STATES):
        assert counts[("project", state)] >= 1, state
    for state in ("open", "escalated", "resolved", "closed", "complaint_investigation",
                  "complaint_resolved"):
        assert counts[("service_request", state)] >= 1, state
    for state in ("prospect", "active", "dormant", "lost"):
        assert counts[("customer", state)] >= 1, state
    for state in ("identified", "assessed", "responding", "monitoring", "closed"):
        assert counts[("risk", state)] >= 1, state
    assert counts[("budget", "in_execution")] == 2 and counts[("budget", "closed")] == 1
    with psycopg.connect(fresh_database.conninfo) as conn:
        levels = {r[0] for r in conn.execute("SELECT doc->>'level' FROM record_state"
                                             " WHERE record_type = 'risk'")}
        assert {"low", "medium", "high", "critical"} <= levels
        warnings = conn.execute("SELECT count(*) FROM budget_warnings").fetchone()
        assert warnings is not None and warnings[0] >= 2  # 80 % and 100 % of travel
        adjustments = conn.execute(
            "SELECT count(*) FROM event_log WHERE event_type = 'AdjustmentApproved'").fetchone()
        assert adjustments == (1,)
        # A real audit log: who did what, as themselves, under maker–checker.
        actors = {r[0] for r in conn.execute("SELECT DISTINCT actor_id FROM event_log")}
        assert {"wang.min", "ma.jun", "guo.ting", "sun.fang", "lin.na"} <= actors
    assert_views_are_the_records_views(fresh_database)
    again = seed_demo(fresh_database.url, "--seed", str(SEED), "--scale", "1")
    assert again.returncode == 1
    assert "already has events" in again.stderr


def assert_views_are_the_records_views(database: Any) -> None:
    """Every projected view (``record_state.doc``, written by ``codec.view_bytes``) is the
    record's own ``record_view``, for records in every state the demo reaches."""
    container = bootstrap(make_settings(), database, start_projector=False)
    try:
        with psycopg.connect(database.conninfo) as conn:
            rows = conn.execute("SELECT id, version, state, doc FROM record_state").fetchall()
        assert len(rows) > 50
        for record_id, version, state, doc in rows:
            record = thaw(container.store.mapper, record_id, version, bytes(state))
            assert doc == json.loads(view_json(record_view(record))), record_id
    finally:
        container.close()


def test_the_same_seed_gives_the_same_records_ids_and_events(server: Any) -> None:
    from tests.conftest import _fresh

    runs = []
    for _ in range(2):
        databases = _fresh(server)
        database = next(databases)
        container = bootstrap(make_settings(), database, start_projector=False)
        try:
            report = Seeder(container.ledger, seed=SEED, year=YEAR, scale=1).run()
            runs.append((report, history(container)))
        finally:
            container.close()
            next(databases, None)
    (first, events_1), (second, events_2) = runs
    assert first.records == second.records and first.events == second.events
    assert set(events_1) == set(events_2)  # the same record ids
    assert events_1 == events_2  # and the same events, payloads and metadata
    assert first.events > 400 and first.commands_per_second > 0
