"""Old stored events are upcast to the current schema when read (Project.ProgressReported v1→v2).

Version 1 of ProgressReported had no ``next_period_plan``. A row written by that release is
inserted here with SQL, exactly as it was stored (no ``class_version``), then read back through
the repository (the record) and the feed (the published event).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from domain.project import Project
from domain.shared import Actor
from service.store import EventStore, describe_topic
from service.streams.hub import Streams
from service.tamper import leaf_hash
from tests.conftest import make_settings

ANN = Actor("ann", "Ann", frozenset({"member"}), frozenset({"ops"}))
TOPIC = "domain.project:Project.ProgressReported"


def a_project(store: EventStore) -> Project:
    project = Project.propose(ANN, department="ops", name="Upcast", background="b",
                              objectives="o", scope="s", requested_budget=Decimal("10.00"),
                              expected_revenue=Decimal("20.00"), start_date=date(2026, 1, 1),
                              end_date=date(2026, 12, 31))
    store.append_and_wait(project.collect_events())
    return project


def insert_v1_progress_report(conninfo: str, project: Project) -> int:
    """A version-1 row as the previous release stored it; returns its position."""
    state = json.dumps({
        "timestamp": {"_type_": "datetime_iso", "_data_": datetime.now(UTC).isoformat()},
        "report_id": "r-1", "period": "2026-01", "percent_complete": 15,
        "work_done": "Kick-off held", "problems": "", "measures": "", "by": "ann",
    }, separators=(",", ":")).encode()
    record_type, event_type = describe_topic(TOPIC)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        position = conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state)"
            " VALUES (%s, 2, %s, %s) RETURNING notification_id",
            (project.id, TOPIC, state)).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO event_log (position, record_id, version, record_type, event_type,"
            " occurred_at, actor_id, department, correlation_id, leaf_hash)"
            " VALUES (%s, %s, 2, %s, %s, now(), 'ann', 'ops', NULL, %s)",
            (position, project.id, record_type, event_type,
             leaf_hash(position, project.id, 2, TOPIC, state)))
    return int(position)


def test_a_stored_version_1_progress_report_is_read_as_version_2(fresh_database: Any) -> None:
    store = EventStore(fresh_database)
    try:
        project = a_project(store)
        position = insert_v1_progress_report(fresh_database.conninfo, project)
        store.cache_evict(project.id)

        record = store.get(project.id)
        assert record.progress_reports == [{
            "id": "r-1", "period": "2026-01", "percent_complete": 15,
            "work_done": "Kick-off held", "problems": "", "measures": "",
            "next_period_plan": "", "by": "ann"}]
        assert record.percent_complete == 15

        streams = Streams(make_settings(), fresh_database.conninfo, store)
        page = streams.feed.read(0, 10)
        published = [e for e in page.events if e["position"] == position]
        assert published[0]["type"] == "opsledger.project.progress_reported.v2"
        assert published[0]["data"]["next_period_plan"] == ""
    finally:
        store.close()


def test_new_progress_reports_are_stored_as_version_2(fresh_database: Any) -> None:
    store = EventStore(fresh_database)
    try:
        project = a_project(store)
        project._progress_reported(report_id="r-2", period="2026-02", percent_complete=30,
                                   work_done="Design", problems="", measures="",
                                   next_period_plan="Build", by="ann")
        store.append_and_wait(project.collect_events())
        rows = store.execute("SELECT state FROM stored_events WHERE topic = %s", (TOPIC,))
        state = json.loads(bytes(rows[0]["state"]))
        assert state["class_version"] == 2 and state["next_period_plan"] == "Build"
    finally:
        store.close()
