"""The tamper-evidence CLI (verify, digest, prove, export, archive) and the retention rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from service.retention import archive_cutoff, months_before
from tests.conftest import make_settings
from tests.integration.test_event_store import edit, propose

runner = CliRunner()


@pytest.fixture(scope="module")
def cli(module_database: Any) -> Iterator[Any]:
    """The CLI pointed at a seeded test database."""
    from service.bootstrap import bootstrap
    from service.cli import app
    from service.config import get_settings

    c = bootstrap(make_settings(), module_database, start_projector=False)
    pid = propose(c.ledger).body["id"]
    for k in range(4):
        edit(c.ledger, pid, f"v{k}")
    patch = pytest.MonkeyPatch()
    patch.setenv("DATABASE_URL", module_database.url)
    get_settings.cache_clear()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args))

    yield invoke
    patch.undo()
    get_settings.cache_clear()
    c.close()


def test_digest_verify_and_prove_from_the_command_line(cli: Any, tmp_path: Path) -> None:
    signed = cli("digest")
    assert signed.exit_code == 0, signed.output
    digest = json.loads(signed.stdout)
    assert digest["tree_size"] == 5
    verified = cli("verify")
    assert verified.exit_code == 0, verified.output
    assert "ok: 5 events" in verified.stdout
    proof = cli("prove", "--position", "3", "--output", str(tmp_path / "p.json"))
    assert proof.exit_code == 0, proof.output
    assert json.loads((tmp_path / "p.json").read_text())["leaf_index"] == 2
    kept = tmp_path / "digests.jsonl"
    assert cli("digest", "--export", str(kept)).exit_code == 0
    assert json.loads(kept.read_text().splitlines()[0])["root_hash"] == digest["root_hash"]
    assert "BEGIN PUBLIC KEY" in cli("digest", "--public-key").stdout
    listed = cli("digest", "--list", "--limit", "1")
    assert json.loads(listed.stdout)["id"] == digest["id"]


def test_usage_errors_exit_with_2(cli: Any) -> None:
    assert cli("prove").exit_code == 2
    assert cli("prove", "--position", "1", "--first", "1").exit_code == 2
    assert cli("archive", "--before", "yesterday", "--output", "x.zip").exit_code == 2
    assert cli("verify", "--digests", "/nonexistent/digests.jsonl").exit_code == 2


def test_verify_exits_with_1_and_names_the_tampering(cli: Any, module_database: Any) -> None:
    with psycopg.connect(module_database.conninfo, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        state = conn.execute("SELECT state FROM stored_events WHERE notification_id = 2"
                             ).fetchone()[0]
        conn.execute("UPDATE stored_events SET state = %s WHERE notification_id = 2",
                     (bytes(state).replace(b"v0", b"v9"),))
        try:
            result = cli("verify")
        finally:
            conn.execute("UPDATE stored_events SET state = %s WHERE notification_id = 2",
                         (state,))
    assert result.exit_code == 1
    assert "first bad position 2 (edited)" in result.stdout


def test_export_writes_a_bundle_and_logs_the_operator(cli: Any, module_database: Any,
                                                      tmp_path: Path) -> None:
    result = cli("export", str(tmp_path / "b.zip"), "--operator", "olga")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.zip").stat().st_size > 0
    with psycopg.connect(module_database.conninfo) as conn:
        row = conn.execute("SELECT operator, command, outcome FROM operator_log"
                           " ORDER BY id DESC LIMIT 1").fetchone()
    assert row == ("olga", "export", "done")
    kept = cli("verify", "--bundle", str(tmp_path / "b.zip"))
    assert kept.exit_code == 0, kept.output
    (tmp_path / "junk.zip").write_bytes(b"junk")
    assert cli("verify", "--bundle", str(tmp_path / "junk.zip")).exit_code == 2


def test_archiving_recent_events_is_refused_and_logged(cli: Any, module_database: Any,
                                                       tmp_path: Path) -> None:
    recent = (date.today() - timedelta(days=30)).isoformat()
    result = cli("archive", "--before", recent, "--output", str(tmp_path / "a.zip"),
                 "--operator", "olga")
    assert result.exit_code == 2
    assert "may not be archived" in result.output
    assert not (tmp_path / "a.zip").exists()
    with psycopg.connect(module_database.conninfo) as conn:
        row = conn.execute("SELECT operator, command, outcome, arguments->>'before'"
                           " FROM operator_log ORDER BY id DESC LIMIT 1").fetchone()
    assert row == ("olga", "archive", "refused", recent)


def test_archival_exports_old_events_and_deletes_nothing(cli: Any, module_database: Any,
                                                         tmp_path: Path) -> None:
    from service.digests import KeyRing
    from service.integrity import Integrity
    from service.retention import archive

    integrity = Integrity(module_database.conninfo, KeyRing.from_settings(make_settings()))
    a_year_on = date.today() + timedelta(days=400)
    result = archive(integrity, before=date.today() + timedelta(days=1),
                     output=tmp_path / "a.zip", operator="olga", retention_days=183,
                     today=a_year_on)
    assert result["events"] == 5 and (tmp_path / "a.zip").exists()
    with psycopg.connect(module_database.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM stored_events").fetchone()[0] == 5
        outcome = conn.execute("SELECT outcome FROM operator_log ORDER BY id DESC LIMIT 1"
                               ).fetchone()[0]
    assert outcome == "done"


def test_the_retention_floor_is_the_longer_of_six_months_and_the_setting() -> None:
    today = date(2026, 8, 31)
    assert months_before(today, 6) == date(2026, 2, 28)
    assert archive_cutoff(today, 30) == date(2026, 2, 28)  # six months is longer
    assert archive_cutoff(today, 400) == today - timedelta(days=400)
