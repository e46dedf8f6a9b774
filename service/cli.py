"""The `opsledger` command line: serve, worker, token, rebuild, seed-demo, openapi, asyncapi
(and, from cli_integrity, verify, digest, prove, export, archive, migrate).

Exit codes, for every command:
  0  done;
  1  done, and the answer is no: tampering found, a document out of date, a proof that cannot
     be made, a refusal (seed-demo into a database that has events, rebuild while a projector
     leads);
  2  usage: an unknown option, role, projection or a malformed value;
  3  PostgreSQL cannot be reached;
  130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service import cli_integrity
from service.config import get_settings
from service.logs import configure_logging

EXIT_NO, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 1, 2, 3, 130


class _App(typer.Typer):
    """Maps every ending to the documented exit codes (no traceback for an unreachable
    database or Ctrl-C): Click runs without its standalone handling, so this decides."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from service.store import is_unavailable

        try:
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except (KeyboardInterrupt, typer.Abort):
            typer.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            usage_code = getattr(exc, "exit_code", None)
            show = getattr(exc, "show", None)
            if isinstance(usage_code, int) and show is not None:
                show()  # Click's usage errors (typer vendors Click): 2
                sys.exit(usage_code)
            if not is_unavailable(exc):
                raise
            typer.echo(f"PostgreSQL cannot be reached: {str(exc).strip()[:300]}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        sys.exit(code if isinstance(code, int) else 0)


app = _App(help="opsledger: event-sourced operations backend.", no_args_is_help=True,
           add_completion=False, pretty_exceptions_enable=False)

OPENAPI_PATH = Path("openapi/openapi.json")
ASYNCAPI_PATH = Path("openapi/asyncapi.yaml")


def _logging() -> dict[str, Any]:
    """JSON lines on stderr (OPSLEDGER_LOG_FORMAT / _LEVEL / _LEVELS); the config for uvicorn."""
    settings = get_settings()
    return configure_logging(settings.log_level, settings.log_format, settings.log_levels)


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="Bind address")] = None,
          port: Annotated[int | None, typer.Option(help="Port")] = None,
          workers: Annotated[int, typer.Option(help="Worker processes (needs DATABASE_URL "
                                                    "or a started embedded server)")] = 1,
          projector: Annotated[bool, typer.Option(help="Run the projector in-process")] = True,
          ) -> None:
    """Run the HTTP service (REST, GraphQL at /graphql). Embedded PostgreSQL by default."""
    import os

    import uvicorn

    from service import database as db

    settings = get_settings()
    log_config = _logging()
    if settings.database_url is None:
        # Start the embedded server once here so worker processes share it.
        database = db.resolve(None, settings.data_dir)
        os.environ["DATABASE_URL"] = database.url
        typer.echo(f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}")
    if not projector:
        os.environ["OPSLEDGER_RUN_PROJECTOR"] = "false"
    get_settings.cache_clear()
    # Our access log replaces uvicorn's (which logs client addresses and query strings).
    uvicorn.run("service.main:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_config=log_config,
                access_log=False)


@app.command()
def worker() -> None:
    """Run the projections and stream workers (NATS publisher, webhooks) as a separate
    process (one leader each at a time; others stand by)."""
    from service import telemetry
    from service.bootstrap import bootstrap, tune_garbage_collector

    _logging()
    container = bootstrap(start_projector=True)
    tune_garbage_collector()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.getLogger("service.cli").info("projection worker running; leader when it holds the "
                                          "advisory lock, standby otherwise")
    stop.wait()
    container.close()
    telemetry.flush()


@app.command()
def token(user: Annotated[str, typer.Option("--user", "-u", help="User id (JWT sub)")],
          role: Annotated[list[str], typer.Option("--role", "-r", help="Role (repeat)")] = [],  # noqa: B006
          department: Annotated[list[str], typer.Option("--department", "-d",
                                                        help="Department (repeat)")] = [],  # noqa: B006
          name: Annotated[str | None, typer.Option(help="Display name")] = None,
          hours: Annotated[int, typer.Option(help="Lifetime in hours")] = 12) -> None:
    """Issue a development token (HS256, signed with OPSLEDGER_JWT_SECRET)."""
    from service.auth import KNOWN_ROLES, issue_token

    unknown = [r for r in role if r not in KNOWN_ROLES]
    if unknown:
        known = ", ".join(sorted(KNOWN_ROLES))
        typer.echo(f"unknown role(s): {', '.join(unknown)}; known: {known}", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    if settings.mode == "production" and settings.jwt_jwks_url:
        typer.echo("production mode uses JWKS tokens from your identity provider", err=True)
        raise typer.Exit(2)
    typer.echo(issue_token(settings, user, name=name, roles=role, departments=department,
                           ttl_seconds=hours * 3600))


@app.command()
def rebuild(projection: Annotated[list[str] | None, typer.Argument(
        help="Projection names (default: all)")] = None,
            jobs: Annotated[int, typer.Option(
                "--jobs", "-j", min=1, max=64,
                help="Processes: the records split among them by id (3 on a 2-core machine: "
                     "1.4-1.6x as fast at a million events)")] = 1,
            resume: Annotated[bool, typer.Option(
                help="Continue an interrupted rebuild (in as many processes as it had) "
                     "instead of starting over")] = False) -> None:
    """Empty and rebuild projections from the event store, with progress."""
    import psycopg

    from projections.engine import LEADER_LOCK_KEY
    from service.bootstrap import bootstrap
    from service.rebuild import PartitionFailed
    from service.rebuild import rebuild as run_rebuild

    container = bootstrap(start_projector=False)
    runner = container.runner
    names = [p.name for p in runner.projections]
    unknown = [p for p in projection or [] if p not in names]
    if unknown:
        typer.echo(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(names)}",
                   err=True)
        container.close()
        raise typer.Exit(EXIT_USAGE)
    # Rebuild as the projector's leader, so no running projector applies events meanwhile.
    with psycopg.connect(container.database.conninfo, autocommit=True) as lock:
        row = lock.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            typer.echo("a projector is running (serve or worker holds the leader lock): stop "
                       "it first, or it would apply events while the views are rebuilt",
                       err=True)
            container.close()
            raise typer.Exit(EXIT_NO)
        head = container.store.max_position()
        with Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task("events", total=head)
            try:
                done = run_rebuild(container, projection or None, jobs=jobs, resume=resume,
                                   progress=lambda pos: bar.update(task, completed=pos))
            except PartitionFailed as exc:
                bar.stop()
                typer.echo(str(exc), err=True)
                container.close()
                raise typer.Exit(EXIT_NO) from None
    typer.echo(f"rebuilt {', '.join(projection or names)} up to position {done.position}"
               + (f" in {done.parts} processes" if done.parts > 1 else ""))
    container.close()


@app.command("seed-demo")
def seed_demo(seed: Annotated[int, typer.Option(help="Same seed (and year): same records, ids "
                                                     "and events")] = 1,
              scale: Annotated[int, typer.Option(min=1, max=1000, help="1: 16 projects, 8 "
                                                 "customers, 20 requests, 10 risks")] = 5,
              year: Annotated[int | None, typer.Option(
                  help="The demo's fiscal year (default: this year)")] = None,
              threads: Annotated[int, typer.Option(min=1, max=128,
                                                   help="Storylines run at once")] = 16,
              ) -> None:
    """Seed an empty database with a realistic department, through the real commands."""
    from datetime import date

    from service.bootstrap import bootstrap
    from service.demo import Seeder

    _logging()
    container = bootstrap(start_projector=True)
    try:
        if container.store.max_position() > 0:
            typer.echo("the event store already has events: seed-demo fills an empty database "
                       "(its records would mix with real ones)", err=True)
            raise typer.Exit(EXIT_NO)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task("seeding (commands)", total=None)
            seeder = Seeder(container.ledger, seed=seed, year=year or date.today().year,
                            scale=scale, threads=threads,
                            progress=lambda done, total: bar.update(task, completed=done,
                                                                    total=total))
            report = seeder.run()
            bar.update(task, total=report.commands, completed=report.commands)
            runner = container.runner
            head = container.store.max_position()
            if runner.is_leader:  # else another process projects: it catches up on its own
                views = bar.add_task("projecting (events)", total=head)
                while not runner.wait_for(head, 0.2):
                    bar.update(views, completed=runner.position)
                bar.update(views, completed=head)
        typer.echo(f"seeded {report.commands} commands, {report.events} events in "
                   f"{report.seconds:.1f} s ({report.commands_per_second:,.0f} commands/s, "
                   f"{report.events_per_second:,.0f} events/s); seed {seed}, year {report.year}")
        for (record_type, status), n in sorted(report.records.items()):
            typer.echo(f"  {record_type:<17} {status:<24} {n}")
        typer.echo("people: ./dev token --user wang.min --role dept_manager -d ops "
                   "(others: service/demo/seeder.py)")
    finally:
        container.close()


@app.command()
def openapi(output: Annotated[Path, typer.Option(help="Where to write")] = OPENAPI_PATH,
            check: Annotated[bool, typer.Option(help="Fail if the file differs")] = False) -> None:
    """Write (or --check) the OpenAPI document of the REST API."""
    from service.main import create_app

    document = json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"
    if check:
        if not output.exists() or output.read_text() != document:
            typer.echo(f"{output} is out of date: run 'opsledger openapi'", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    typer.echo(f"wrote {output}")


@app.command()
def asyncapi(output: Annotated[Path, typer.Option(help="Where to write")] = ASYNCAPI_PATH,
             check: Annotated[bool, typer.Option(help="Fail if the file differs")] = False,
             ) -> None:
    """Write (or --check) the AsyncAPI document of the published events."""
    from service.streams.asyncapi import document_text

    document = document_text()
    if check:
        if not output.exists() or output.read_text() != document:
            typer.echo(f"{output} is out of date: run 'opsledger asyncapi'", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    typer.echo(f"wrote {output}")


cli_integrity.register(app)  # verify, digest, prove, export, archive, migrate


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
