"""Append-only in the database: the role the service runs as can read and append events but
cannot UPDATE, DELETE or TRUNCATE them, nor switch the triggers off; the owner role migrates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.database import Database
from tests.conftest import make_settings
from tests.integration.test_event_store import edit, propose

COLUMNS = {"stored_events": "topic", "event_log": "version", "merkle_digests": "reason",
           "operator_log": "detail"}
PROTECTED = tuple(COLUMNS)


@pytest.fixture
def owner(fresh_database: Database) -> Iterator[Any]:
    """The schema migrated by the owner (maintenance) role, with a few events and a digest."""
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), fresh_database, start_projector=False)
    pid = propose(c.ledger).body["id"]
    edit(c.ledger, pid, "second")
    c.integrity.sign_digest()
    yield c
    c.close()


@pytest.fixture
def service_role(owner: Any) -> Iterator[Database]:
    """A login role granted what OPSLEDGER_SERVICE_ROLE gets; its connection parameters."""
    role = f"svc_{uuid.uuid4().hex[:8]}"
    admin = owner.database.conninfo
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'svc-test-password'")
    owner.store.grant_service_role(role)
    params = conninfo_to_dict(admin)
    params.update(user=role, password="svc-test-password")
    yield Database(url=make_conninfo(**params))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_the_service_role_cannot_update_delete_or_truncate_events(service_role: Database,
                                                                  ) -> None:
    with psycopg.connect(service_role.conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM stored_events").fetchone()[0] == 2
        for table, column in COLUMNS.items():
            for statement in (f"UPDATE {table} SET {column} = {column}",
                              f"DELETE FROM {table}", f"TRUNCATE {table}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege,
                                   match="permission denied"):
                    conn.execute(statement)
        # … nor take the triggers away, the way the owner could.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE stored_events DISABLE TRIGGER ALL")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")


def test_the_service_role_appends_events_through_the_locking_function(
        owner: Any, service_role: Database) -> None:
    from service.application import Ledger
    from service.store import EventStore

    store = EventStore(service_role, pool_size=2, create_schema=False)
    try:
        body = propose(Ledger(store)).body
        assert body["position"] == 3
        assert store.execute("SELECT count(*) AS n FROM event_log")[0]["n"] == 3
    finally:
        store.close()
    assert owner.integrity.verify().ok


def test_even_the_owner_is_refused_while_the_triggers_are_on(owner: Any) -> None:
    with psycopg.connect(owner.database.conninfo, autocommit=True) as conn:
        for table in PROTECTED:
            for statement in (f"DELETE FROM {table}", f"TRUNCATE {table}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM stored_events").fetchone()[0] == 2


def test_restarting_reinstalls_nothing_twice(owner: Any) -> None:
    from service.bootstrap import bootstrap

    again = bootstrap(make_settings(), owner.database, start_projector=False)
    again.close()
    with psycopg.connect(owner.database.conninfo) as conn:
        triggers = conn.execute("SELECT tgrelid::regclass::text FROM pg_trigger"
                                " WHERE tgname LIKE '%append_only' ORDER BY 1").fetchall()
    assert sorted(t[0] for t in triggers) == sorted(PROTECTED)
