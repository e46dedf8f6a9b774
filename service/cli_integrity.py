"""CLI commands for tamper evidence: verify, digest, prove, export, archive, migrate.

Exit codes: 0 all good, 1 tampering found (or a proof/digest cannot be produced because the log
diverged), 2 usage errors.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from domain.shared import DomainError
from service.config import get_settings


def _integrity() -> Any:
    from service import database as db
    from service.digests import KeyRing
    from service.integrity import Integrity

    settings = get_settings()
    database = db.resolve(settings.database_url, settings.data_dir)
    return Integrity(database.conninfo, KeyRing.from_settings(settings))


def _head(integrity: Any) -> int:
    import psycopg

    with psycopg.connect(integrity.conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT greatest((SELECT count(*) FROM event_log),"
                           " (SELECT count(*) FROM stored_events))").fetchone()
    return int(row[0]) if row else 0


def _bar(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True)


def _emit(doc: Any, output: Path | None) -> None:
    text = json.dumps(doc, indent=2, default=str) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)


def _refused(exc: DomainError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(1 if exc.status == 409 else 2)


def verify(digests: Annotated[list[Path] | None, typer.Option(
               "--digests", help="Digests kept outside the database (JSON Lines); repeat")] = None,
           bundle: Annotated[Path | None, typer.Option(
               "--bundle", help="A bundle exported earlier and kept outside: names the exact "
                                "first change even if the log index was rewritten too")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print the full report")] = False,
           ) -> None:
    """Recompute the Merkle log from the event rows and check every signed digest."""
    from service.digests import read_digest_file

    integrity = _integrity()
    extra = []
    for path in digests or []:
        try:
            extra += read_digest_file(path.read_text().splitlines(keepends=True))
        except (OSError, ValueError) as exc:
            typer.echo(f"cannot read {path}: {exc}", err=True)
            raise typer.Exit(2) from None
    total = _head(integrity)
    try:
        with _bar("verifying") as bar:
            task = bar.add_task("rows", total=total)
            report = integrity.verify(extra_digests=extra, kept_bundle=bundle,
                                      progress=lambda n: bar.update(task, completed=n))
    except ValueError as exc:  # an unreadable or unsigned --bundle
        typer.echo(f"cannot use {bundle}: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        _emit(report.to_json(), None)
    else:
        for finding in report.findings[:20]:
            where = f"position {finding.position}: " if finding.position is not None else ""
            typer.echo(f"  {finding.kind}: {where}{finding.detail}")
        for note in report.notes:
            typer.echo(f"  note: {note}")
        typer.echo(f"{report.summary} ({report.events} events, {len(report.digests)} digests, "
                   f"{report.events_per_second:,.0f} events/s)")
    raise typer.Exit(0 if report.ok else 1)


def digest(list_: Annotated[bool, typer.Option("--list", help="List stored digests")] = False,
           limit: Annotated[int, typer.Option(help="How many to list")] = 20,
           export: Annotated[Path | None, typer.Option(
               help="Write every digest as JSON Lines here (keep it outside the database)")
           ] = None,
           public_key: Annotated[bool, typer.Option(
               "--public-key", help="Print the public key (PEM) to publish")] = False) -> None:
    """Sign a digest of the log now (default), or list / export the digests."""
    integrity = _integrity()
    if public_key:
        for key in integrity.keys.public_keys():
            typer.echo(f"# key id {key['key_id']} ({key['algorithm']})")
            typer.echo(key["public_key_pem"].rstrip())
        return
    if export is not None:
        rows = integrity.all_digests()
        export.write_text("".join(json.dumps(d.to_json()) + "\n" for d in rows))
        typer.echo(f"wrote {len(rows)} digests to {export}")
        return
    if list_:
        for d in integrity.digests(limit=limit):
            typer.echo(json.dumps(d.to_json()))
        return
    try:
        _emit(integrity.sign_digest("on_demand").to_json(), None)
    except DomainError as exc:
        raise _refused(exc) from None


def prove(position: Annotated[int | None, typer.Option(help="Inclusion: the event")] = None,
          tree_size: Annotated[int | None, typer.Option(
              help="Inclusion: a digest's tree size (default latest)")] = None,
          first: Annotated[int | None, typer.Option(help="Consistency: the older size")] = None,
          second: Annotated[int | None, typer.Option(
              help="Consistency: a digest's tree size (default latest)")] = None,
          output: Annotated[Path | None, typer.Option(help="Write the proof here")] = None,
          ) -> None:
    """Print an inclusion (--position) or consistency (--first) proof as JSON."""
    if (position is None) == (first is None):
        typer.echo("give exactly one of --position (inclusion) or --first (consistency)",
                   err=True)
        raise typer.Exit(2)
    integrity = _integrity()
    try:
        doc = (integrity.inclusion(position, tree_size) if position is not None
               else integrity.consistency(first, second))
    except DomainError as exc:
        raise _refused(exc) from None
    _emit(doc, output)


def export(output: Annotated[Path, typer.Argument(help="The bundle file to write (.zip)")],
           operator: Annotated[str | None, typer.Option(help="Who runs it (logged)")] = None,
           ) -> None:
    """Sign a fresh digest and export every event up to it as a verifiable bundle."""
    from service.retention import log_operation

    integrity = _integrity()
    total = _head(integrity)
    try:
        with _bar("exporting") as bar:
            task = bar.add_task("rows", total=total)
            result = integrity.export(output, progress=lambda n: bar.update(task, completed=n))
    except DomainError as exc:
        raise _refused(exc) from None
    log_operation(integrity.conninfo, operator or getpass.getuser(), "export",
                  {"output": str(output)}, "done", f"{result['events']} events")
    typer.echo(f"wrote {output}: {result['events']} events, {result['digests']} digests "
               f"(tree size {result['tree_size']}); check it with "
               f"'python tools/verify_bundle.py {output}'")


def archive(before: Annotated[str, typer.Option(help="Archive events older than this date "
                                                     "(YYYY-MM-DD)")],
            output: Annotated[Path, typer.Option(help="The bundle file to write (.zip)")],
            operator: Annotated[str | None, typer.Option(help="Who runs it (logged)")] = None,
            ) -> None:
    """Export events older than a date to a bundle (never deletes; refused for events younger
    than max(6 months, OPSLEDGER_RETENTION_DAYS); every attempt is logged)."""
    from service.retention import archive as run_archive

    try:
        day = date.fromisoformat(before)
    except ValueError:
        typer.echo(f"--before must be a date (YYYY-MM-DD), not {before!r}", err=True)
        raise typer.Exit(2) from None
    integrity = _integrity()
    try:
        result = run_archive(integrity, before=day, output=output,
                             operator=operator or getpass.getuser(),
                             retention_days=get_settings().retention_days)
    except DomainError as exc:
        raise _refused(exc) from None
    typer.echo(result["detail"])


def migrate(service_role: Annotated[str | None, typer.Option(
        help="Grant this role SELECT/INSERT only on the event tables")] = None) -> None:
    """Create or update the schema, append-only triggers and grants (run as the owner role)."""
    from service.bootstrap import bootstrap

    settings = get_settings().model_copy(update={"create_schema": True})
    if service_role:
        settings = settings.model_copy(update={"service_role": service_role})
    container = bootstrap(settings, start_projector=False)
    container.close()
    granted = f"; granted {settings.service_role}" if settings.service_role else ""
    typer.echo(f"schema ready{granted}")


def register(app: typer.Typer) -> None:
    for command in (verify, digest, prove, export, archive, migrate):
        app.command()(command)
