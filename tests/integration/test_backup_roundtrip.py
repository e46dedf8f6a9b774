"""Backup: pg_dump → pg_restore into a new database → verification passes there (README
"Tamper evidence" documents the same commands)."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.database import Database
from tests.conftest import make_settings
from tests.integration.test_event_store import edit, propose


def _major(binary: Path) -> int | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def pg_tools(server_major: int) -> Path | None:
    """A bin directory with pg_dump and pg_restore of the server's major version."""
    candidates: list[Path] = []
    try:
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = shutil.which("pg_dump")
    if found:
        candidates.append(Path(found).parent)
    for folder in candidates:
        if (folder / "pg_restore").exists() and _major(folder / "pg_dump") == server_major:
            return folder
    return None


@pytest.fixture
def restored(fresh_database: Database, tmp_path: Path) -> Iterator[tuple[Any, Database]]:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(), fresh_database, start_projector=False)
    try:
        pid = propose(c.ledger).body["id"]
        for k in range(5):
            edit(c.ledger, pid, f"v{k}")
        c.integrity.sign_digest()
        with psycopg.connect(fresh_database.conninfo) as conn:
            major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
        tools = pg_tools(major)
        if tools is None:
            pytest.skip(f"no pg_dump/pg_restore {major} found (pgserver's pginstall/bin, "
                        "/usr/lib/postgresql/*/bin, PATH)")
        dump = tmp_path / "opsledger.dump"
        subprocess.run([str(tools / "pg_dump"), "--format=custom", f"--file={dump}",
                        f"--dbname={fresh_database.conninfo}"], check=True, timeout=120)
        params = conninfo_to_dict(fresh_database.conninfo)
        name = f"restore_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(fresh_database.conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        target = Database(url=make_conninfo(**{**params, "dbname": name}))
        try:
            subprocess.run([str(tools / "pg_restore"), "--exit-on-error",
                            f"--dbname={target.conninfo}", str(dump)], check=True, timeout=120)
            yield c, target
        finally:
            with psycopg.connect(fresh_database.conninfo, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        c.close()


def test_a_restored_backup_verifies_and_keeps_its_protection(
        restored: tuple[Any, Database]) -> None:
    from service.integrity import Integrity

    original, target = restored
    copy = Integrity(target.conninfo, original.integrity.keys)
    report = copy.verify()
    assert report.ok, report.summary
    assert report.events == 6 and [d.tree_size for d in report.digests] == [6]
    assert copy.sign_digest().tree_size == 6  # the restored log continues the signed one
    with psycopg.connect(target.conninfo, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute("DELETE FROM stored_events")
