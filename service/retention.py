"""Retention: nothing in the product deletes events; archival exports old events to a bundle.

MLPS 2.0 and the Cybersecurity Law (art. 21) want logs kept at least six months, 21 CFR 11 as
long as the records. So archival never deletes: it writes the events older than a date to a
verifiable bundle (see ``bundle.py``) for cold storage, refuses any date younger than
max(6 months, ``OPSLEDGER_RETENTION_DAYS``), and every attempt — refused or done — is itself
written to the append-only ``operator_log``.
"""

from __future__ import annotations

import calendar
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from domain.shared import DomainError
from service.integrity import Integrity

MINIMUM_MONTHS = 6


class ArchiveRefused(DomainError):
    status = 422
    rule = "retention_period"


def months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def archive_cutoff(today: date, retention_days: int) -> date:
    """The latest ``--before`` date allowed: nothing younger than the longer period goes."""
    return min(months_before(today, MINIMUM_MONTHS), today - timedelta(days=retention_days))


def log_operation(conninfo: str, operator: str, command: str, arguments: dict[str, Any],
                  outcome: str, detail: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO operator_log (operator, command, arguments, outcome, detail)"
                     " VALUES (%s, %s, %s::jsonb, %s, %s)",
                     (operator, command, json.dumps(arguments), outcome, detail))


def archive(integrity: Integrity, *, before: date, output: Path, operator: str,
            retention_days: int, today: date | None = None) -> dict[str, Any]:
    """Exports the events older than ``before`` to a bundle; deletes nothing."""
    today = today or datetime.now(UTC).date()
    cutoff = archive_cutoff(today, retention_days)
    arguments = {"before": before.isoformat(), "output": str(output)}
    if before > cutoff:
        detail = (f"refused: events younger than {MINIMUM_MONTHS} months or "
                  f"{retention_days} days (OPSLEDGER_RETENTION_DAYS) may not be archived; "
                  f"the latest allowed --before is {cutoff.isoformat()}")
        log_operation(integrity.conninfo, operator, "archive", arguments, "refused", detail)
        raise ArchiveRefused(detail, field="before")
    with psycopg.connect(integrity.conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT min(position) FROM event_log WHERE occurred_at >= %s",
                           (datetime(before.year, before.month, before.day, tzinfo=UTC),)
                           ).fetchone()
    boundary = row[0] if row else None
    try:
        result = integrity.export(output, before_position=boundary, reason="archive")
    except Exception as exc:
        log_operation(integrity.conninfo, operator, "archive", arguments, "failed", str(exc))
        raise
    detail = (f"exported {result['events']} events older than {before.isoformat()} to "
              f"{output}; nothing deleted")
    log_operation(integrity.conninfo, operator, "archive", arguments, "done", detail)
    return {**result, "detail": detail}
