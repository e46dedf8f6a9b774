"""The `opsledger` command line: serve, worker, token, rebuild, openapi, asyncapi."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service import cli_integrity
from service.config import get_settings

app = typer.Typer(help="opsledger: event-sourced operations backend.", no_args_is_help=True,
                  add_completion=False)

OPENAPI_PATH = Path("openapi/openapi.json")
ASYNCAPI_PATH = Path("openapi/asyncapi.yaml")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


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
    _logging()
    if settings.database_url is None:
        # Start the embedded server once here so worker processes share it.
        database = db.resolve(None, settings.data_dir)
        os.environ["DATABASE_URL"] = database.url
        typer.echo(f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}")
    if not projector:
        os.environ["OPSLEDGER_RUN_PROJECTOR"] = "false"
    get_settings.cache_clear()
    uvicorn.run("service.main:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_level="info")


@app.command()
def worker() -> None:
    """Run the projections and stream workers (NATS publisher, webhooks) as a separate
    process (one leader each at a time; others stand by)."""
    from service.bootstrap import bootstrap

    _logging()
    container = bootstrap(start_projector=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    typer.echo("projection worker running (Ctrl-C to stop)")
    stop.wait()
    container.close()


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
        help="Projection names (default: all)")] = None) -> None:
    """Empty and rebuild projections from the event store, with progress."""
    from service.bootstrap import bootstrap

    container = bootstrap(start_projector=False)
    runner = container.runner
    names = [p.name for p in runner.projections]
    unknown = [p for p in projection or [] if p not in names]
    if unknown:
        typer.echo(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(names)}",
                   err=True)
        raise typer.Exit(2)
    head = container.store.max_position()
    runner.reset(projection or None)
    with Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task("events", total=head)
        runner.catch_up(lambda pos: bar.update(task, completed=pos))
    typer.echo(f"rebuilt {', '.join(projection or names)} up to position {runner.position}")
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
