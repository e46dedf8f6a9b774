"""How fast is verification? Seeds N real project events straight through the event store's
group commit (no HTTP), signs a digest, then times `verify` (target: ≥ 50,000 events/s).

    .venv/bin/python bench/verify_bench.py [-n 200000] [--database-url URL]

Without --database-url it starts a throw-away embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.project import Project
from domain.shared import Actor
from service.catalogue import commands_of
from service.database import Database, start_embedded
from service.digests import KeyRing, load_private_key
from service.integrity import Integrity
from service.store import EventStore

ANN = Actor("ann", "Ann", frozenset({"member"}), frozenset({"ops"}))
APPLICATION = {"department": "ops", "name": "P", "background": "b", "objectives": "o",
               "scope": "s", "requested_budget": Decimal("10.00"),
               "expected_revenue": Decimal("0.00"), "start_date": date(2026, 1, 1),
               "end_date": date(2026, 12, 31)}
EDITS_PER_PROJECT = 49


def spec(name: str) -> Any:
    return next(s for s in commands_of(Project) if s.name == name)


def seed(store: EventStore, total: int) -> None:
    propose, edit = spec("propose"), spec("edit_application")
    meta = {"schema": 1, "command": "project.edit_application", "actor": ANN.as_dict(),
            "comment": None, "department": "ops", "correlation_id": str(uuid.uuid4()),
            "causation_id": None, "request_id": str(uuid.uuid4()), "idempotency_key": None,
            "trace_id": None, "span_id": None}
    # Appends of ≤ 500 events, one at a time: psycopg's pipeline mode (used by the library's
    # insert) hangs on a single statement of more than ~1–2 MB (psycopg issue #685's symptom).
    pending, written = [], 0
    while written < total:
        record = propose.call(Project, ANN, propose.body_model(**APPLICATION))
        for k in range(min(EDITS_PER_PROJECT, total - written - 1)):
            edit.call(record, ANN, edit.body_model(name=f"name {k}"))
        events = record.collect_events()
        for event in events:
            object.__setattr__(event, "meta", meta)
        pending += events
        written += len(events)
        while len(pending) >= 500:
            store.append_and_wait(pending[:500], timeout=120)
            pending = pending[500:]
    if pending:
        store.append_and_wait(pending, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--events", type=int, default=200_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    database = (Database(url=args.database_url) if args.database_url
                else start_embedded(Path(tempfile.mkdtemp(prefix="opsledger-bench-")),
                                    persistent=False))
    store = EventStore(database, pool_size=4)
    try:
        started = time.perf_counter()
        seed(store, args.events)
        seeded = time.perf_counter() - started
        print(f"seeded {args.events:,} events in {seeded:.1f} s "
              f"({args.events / seeded:,.0f} events/s through group commit)")
        from service.config import DEV_SIGNING_KEY

        integrity = Integrity(database.conninfo, KeyRing(load_private_key(DEV_SIGNING_KEY)))
        t = time.perf_counter()
        digest = integrity.sign_digest("bench")
        print(f"signed a digest over {digest.tree_size:,} events in "
              f"{time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        report = integrity.verify()
        seconds = time.perf_counter() - t
        print(f"verify: {report.summary}")
        rate = report.events / seconds
        print(f"verify: {report.events:,} events in {seconds:.2f} s = {rate:,.0f} events/s")
        t = time.perf_counter()
        integrity.inclusion(max(1, report.events // 2))
        print(f"inclusion proof at tree size {digest.tree_size:,}: "
              f"{time.perf_counter() - t:.2f} s")
        print(f"target: verification ≥ 50,000 events/s: {rate:,.0f} events/s "
              f"{'MET' if rate >= 50_000 else 'NOT MET'}")
    finally:
        store.close()
        if database.embedded is not None:
            database.embedded.cleanup()


if __name__ == "__main__":
    main()
