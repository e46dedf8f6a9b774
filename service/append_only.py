"""Append-only enforcement in PostgreSQL, and the integrity tables (digests, operator log).

Two layers (SPEC §7, issue 7):

* **Triggers** on the event table, the event log, the signed digests and the operator log refuse
  every UPDATE, DELETE and TRUNCATE — whoever asks, the owner included, unless they first switch
  the triggers off (``ALTER TABLE … DISABLE TRIGGER`` or ``session_replication_role``), which
  only the owner or a superuser can do. That is exactly the attacker the Merkle log and the
  signed digests exist for.
* **Privileges**: the service can run as a separate role (``OPSLEDGER_SERVICE_ROLE``) that gets
  only SELECT and INSERT on those tables; schema changes and maintenance use the owner role.
  PostgreSQL allows ``LOCK TABLE … IN EXCLUSIVE MODE`` (the library's gapless-order lock) only
  with UPDATE, DELETE or TRUNCATE privilege, so the lock is taken through a SECURITY DEFINER
  function owned by the owner instead of granting any of them.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.rows import tuple_row

APPEND_ONLY_TABLES = ("stored_events", "event_log", "merkle_digests", "operator_log")
LOCK_FUNCTION = "opsledger_lock_events"

INTEGRITY_SQL = """
CREATE TABLE IF NOT EXISTS merkle_digests (
    id            bigserial PRIMARY KEY,
    tree_size     bigint NOT NULL,
    last_position bigint NOT NULL,
    root_hash     bytea NOT NULL,
    signed_at     timestamptz NOT NULL,
    key_id        text NOT NULL,
    signature     bytea NOT NULL,
    reason        text NOT NULL
);
CREATE INDEX IF NOT EXISTS merkle_digests_size_idx ON merkle_digests (tree_size, id);
CREATE TABLE IF NOT EXISTS operator_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    operator   text NOT NULL,
    command    text NOT NULL,
    arguments  jsonb NOT NULL,
    outcome    text NOT NULL,
    detail     text NOT NULL
);
CREATE OR REPLACE FUNCTION opsledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'opsledger: % is append-only; % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are never changed or deleted; archival exports them instead';
END
$$;
"""


def install(conn: Any, schema: str = "public") -> None:
    """Creates the integrity tables, the refusing triggers and the lock function (as owner)."""
    conn.execute(INTEGRITY_SQL)
    with conn.cursor(row_factory=tuple_row) as cur:  # callers' connections may use dict rows
        existing = {row[0] for row in cur.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").fetchall()}
    for table in APPEND_ONLY_TABLES:
        # Statement level: refused even when no row matches, and once per statement.
        name = f"{table}_append_only"
        if name not in existing:
            conn.execute(sql.SQL(
                "CREATE TRIGGER {n} BEFORE UPDATE OR DELETE OR TRUNCATE ON {t}"
                " FOR EACH STATEMENT EXECUTE FUNCTION opsledger_refuse_change()").format(
                n=sql.Identifier(name), t=sql.Identifier(schema, table)))
    conn.execute(sql.SQL(
        "CREATE OR REPLACE FUNCTION {f}() RETURNS void LANGUAGE plpgsql SECURITY DEFINER"
        " SET search_path = pg_catalog AS $$ BEGIN LOCK TABLE {t} IN EXCLUSIVE MODE; END $$"
    ).format(f=sql.Identifier(schema, LOCK_FUNCTION),
             t=sql.Identifier(schema, "stored_events")))
    conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {f}() FROM PUBLIC").format(
        f=sql.Identifier(schema, LOCK_FUNCTION)))


def grant_service_role(conn: Any, role: str, schema: str = "public") -> None:
    """Gives the service role what it needs and no more: read and append the event tables;
    read and write projections, idempotency keys and the refused-command log."""
    r, s = sql.Identifier(role), sql.Identifier(schema)
    protected = sql.SQL(", ").join(sql.Identifier(schema, t) for t in APPEND_ONLY_TABLES)
    for statement in (
            "GRANT USAGE ON SCHEMA {s} TO {r}",
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {r}",
            "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {p} FROM {r}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
            "GRANT EXECUTE ON FUNCTION {f}() TO {r}"):
        conn.execute(sql.SQL(statement).format(
            s=s, r=r, p=protected, f=sql.Identifier(schema, LOCK_FUNCTION)))


def lock_events_statement(schema: str = "public") -> sql.Composed:
    return sql.SQL("SELECT {f}()").format(f=sql.Identifier(schema, LOCK_FUNCTION))
